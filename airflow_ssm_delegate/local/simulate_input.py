"""The policy simulator's request, read from the query protocol and checked as IAM checks it.

``ContextEntries`` are typed by ``ContextKeyType`` (string, stringList, numeric, numericList, boolean,
booleanList, ip, ipList, binary, binaryList, date, dateList): a ``...List`` type makes a multivalued key,
and each value must be of its type (else ``InvalidInput`` naming the key and value).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.iam_eval import ContextValue, parse_date
from airflow_ssm_delegate.local.policy_text import parse_policy
from airflow_ssm_delegate.local.resources import indexed

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

MAX_ITEMS_DEFAULT = 100  # IAM's documented default page size
_USER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:user/.+$")
_ACCOUNT_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):root$")


class InvalidInput(ValueError):
    """A request the simulator refuses with IAM's ``InvalidInput`` (the message says what to fix)."""


@dataclass(frozen=True)
class PolicySource:
    """One policy of the simulation with the id and type the response reports for it."""

    text: str
    policy_id: str
    policy_type: str  # user | group | role | aws-managed | user-managed | resource | none
    document: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class SimulationInput:
    """Everything one simulation evaluates."""

    actions: list[str]
    resources: list[str]
    context: dict[str, ContextValue]
    identity: list[PolicySource]
    boundaries: list[PolicySource]
    resource_policy: PolicySource | None
    caller_arn: str | None
    resource_owner: str | None
    max_items: int
    marker: int


def _checked(kind: str, convert: Callable[[str], Any]) -> Callable[[str, str], str]:
    def check(key: str, value: str) -> str:
        try:
            convert(value)
        except (ValueError, binascii.Error):
            raise InvalidInput(
                f"Context key {key!r}: {value!r} is not a valid {kind} value; "
                "give a value of the entry's ContextKeyType."
            ) from None
        return value

    return check


def _boolean(value: str) -> None:
    if value.lower() not in ("true", "false"):
        raise ValueError(value)


_TYPES: dict[str, Callable[[str, str], str]] = {
    "string": lambda _key, value: value,
    "numeric": _checked("numeric", float),
    "boolean": _checked("boolean", _boolean),
    "ip": _checked("ip", lambda v: ipaddress.ip_network(v, strict=False)),
    "binary": _checked("binary", lambda v: base64.b64decode(v, validate=True)),
    "date": _checked("date", parse_date),
}


def read_context(params: Mapping[str, Any]) -> dict[str, ContextValue]:
    """``ContextEntries``: each key with its values, typed; a ``...List`` type is a multivalued key."""
    context: dict[str, ContextValue] = {}
    index = 1
    while f"ContextEntries.member.{index}.ContextKeyName" in params:
        entry = f"ContextEntries.member.{index}"
        key = str(params[f"{entry}.ContextKeyName"])
        kind = str(params.get(f"{entry}.ContextKeyType", ""))
        base = kind.removesuffix("List")
        if base not in _TYPES:
            raise InvalidInput(
                f"ContextKeyType {kind!r} of context key {key!r} is not one of "
                f"{', '.join(t + s for t in _TYPES for s in ('', 'List'))}."
            )
        values = [_TYPES[base](key, value) for value in indexed(params, f"{entry}.ContextKeyValues.member")]
        if kind.endswith("List"):
            context[key] = values
        elif len(values) != 1:
            raise InvalidInput(
                f"Context key {key!r} of type {kind} takes exactly one value, got {len(values)}; "
                f"use {kind}List for several."
            )
        else:
            context[key] = values[0]
        index += 1
    return context


def read_policies(params: Mapping[str, Any], name: str, policy_type: str = "none") -> list[PolicySource]:
    """``PolicyInputList`` / ``PermissionsBoundaryPolicyInputList``, each validated as IAM validates."""
    sources = []
    for number, text in enumerate(indexed(params, f"{name}.member"), start=1):
        policy_id = f"{name}.{number}"
        sources.append(PolicySource(text, policy_id, policy_type, parse_policy(text, policy_id)))
    return sources


def _page(params: Mapping[str, Any]) -> tuple[int, int]:
    raw_items = params.get("MaxItems")
    try:
        max_items = MAX_ITEMS_DEFAULT if raw_items is None else int(raw_items)
    except ValueError:
        raise InvalidInput(f"MaxItems {raw_items!r} is not a whole number between 1 and 1000.") from None
    if not 1 <= max_items <= 1000:
        raise InvalidInput(f"MaxItems {max_items} is outside 1..1000.")
    marker = str(params.get("Marker") or "")
    if not marker:
        return max_items, 0
    try:
        return max_items, int(base64.urlsafe_b64decode(marker.encode()).decode().removeprefix("offset:"))
    except (ValueError, binascii.Error):
        raise InvalidInput(
            f"Marker {marker!r} was not returned by this simulator; pass the Marker of the previous page."
        ) from None


def marker_for(offset: int) -> str:
    """The opaque Marker of the page starting at ``offset``."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def read_simulation(params: Mapping[str, Any], identity: list[PolicySource]) -> SimulationInput:
    """The common members of SimulateCustomPolicy and SimulatePrincipalPolicy."""
    actions = indexed(params, "ActionNames.member")
    if not actions:
        raise InvalidInput("ActionNames must name at least one action (service:Action).")
    bad_action = next((a for a in actions if ":" not in a), None)
    if bad_action is not None:
        raise InvalidInput(f"Action {bad_action!r} must be prefixed by its service, e.g. s3:GetObject.")
    if params.get("ResourceHandlingOption"):
        raise InvalidInput(
            "ResourceHandlingOption (the EC2 scenarios of the simulator) is not emulated by the local "
            "runtime; simulate each resource's ARN in ResourceArns instead."
        )
    caller = str(params["CallerArn"]) if params.get("CallerArn") else None
    if caller is not None and not _USER_ARN.match(caller):
        raise InvalidInput(
            f"CallerArn {caller!r} must be the ARN of an IAM user (arn:aws:iam::ACCOUNT:user/NAME)."
        )
    owner = str(params["ResourceOwner"]) if params.get("ResourceOwner") else None
    if owner is not None and not _ACCOUNT_ARN.match(owner):
        raise InvalidInput(f"ResourceOwner {owner!r} must be an account ARN (arn:aws:iam::ACCOUNT:root).")
    resource_policy = None
    if params.get("ResourcePolicy"):
        text = str(params["ResourcePolicy"])
        document = parse_policy(text, "ResourcePolicy", resource_policy=True)
        resource_policy = PolicySource(text, "ResourcePolicy", "resource", document)
    max_items, marker = _page(params)
    return SimulationInput(
        actions=actions,
        resources=indexed(params, "ResourceArns.member") or ["*"],
        context=read_context(params),
        identity=identity + read_policies(params, "PolicyInputList"),
        boundaries=read_policies(params, "PermissionsBoundaryPolicyInputList"),
        resource_policy=resource_policy,
        caller_arn=caller,
        resource_owner=owner,
        max_items=max_items,
        marker=marker,
    )


def owner_account(owner: str | None) -> str | None:
    """The account id of a ``ResourceOwner`` ARN."""
    match = _ACCOUNT_ARN.match(owner or "")
    return match.group(1) if match else None
