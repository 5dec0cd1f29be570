"""IAM policy evaluation as AWS documents it, for the local runtime (moto's own check is too coarse).

Scope: identity policies and trust policies of one account. An explicit ``Deny`` in any applicable
statement wins, an ``Allow`` is needed otherwise (implicit deny). Supported: ``Action``/``NotAction``
(case-insensitive, ``*``/``?`` wildcards), ``Resource``/``NotResource``, ``Principal``/``NotPrincipal``
(``AWS``/``Service``/``*``) and the condition operators ``String*``, ``Arn*``, ``Bool``, ``Null``,
``Numeric*``, ``Date*``, ``IpAddress``/``NotIpAddress`` with ``...IfExists`` and the
``ForAnyValue:``/``ForAllValues:`` set qualifiers. Policy variables (``${aws:username}``) are resolved in
``Resource`` and condition values. Not supported (documented limits): ``Binary*`` operators (a statement
using an unknown operator never applies), permissions boundaries, SCPs and resource-based policies.

No library on PyPI evaluates a request against IAM policies with conditions (policyuniverse and
policy-sentry parse and expand policies only), so this is a small module of its own.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

ContextValue = str | Sequence[str]


class Decision(enum.Enum):
    """The outcome of evaluating one request against a set of policies."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Principal:
    """Who makes a request, as a trust policy's ``Principal`` element sees it."""

    arn: str | None = None
    account: str | None = None
    service: str | None = None


@dataclass(frozen=True)
class RequestContext:
    """One authorisation question: may ``action`` be done on ``resource`` given these context keys?"""

    action: str
    resource: str = "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal: Principal | None = None


def load_policy(document: str | Mapping[str, Any]) -> dict[str, Any]:
    """A policy document as a dict (moto keeps them as JSON text)."""
    if isinstance(document, Mapping):
        return dict(document)
    return dict(json.loads(document))


def evaluate(policies: Iterable[str | Mapping[str, Any]], request: RequestContext) -> Decision:
    """Evaluate ``request`` against every statement of every policy: explicit deny, then allow."""
    allowed = False
    for policy in policies:
        for statement in _statements(load_policy(policy)):
            if not _statement_applies(statement, request):
                continue
            if statement.get("Effect") == "Deny":
                return Decision.EXPLICIT_DENY
            if statement.get("Effect") == "Allow":
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _statement_applies(statement: Mapping[str, Any], request: RequestContext) -> bool:
    def resource_matches(pattern: str, resource: str) -> bool:
        resolved = substitute(pattern, request.context)
        return resolved is not None and _resource_matches(resolved, resource)

    return (
        _element_matches(statement, "Action", request.action, _action_matches)
        and _element_matches(statement, "Resource", request.resource, resource_matches)
        and _principal_applies(statement, request.principal)
        and conditions_hold(statement.get("Condition", {}), request.context)
    )


_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def substitute(text: str, context: Mapping[str, ContextValue]) -> str | None:
    """Policy variables: ``${aws:username}`` becomes the request's single value of that key; None when the
    request has no such value (the element then matches nothing). ``${*}``/``${?}``/``${$}`` become the
    bare character (so ``${*}`` still acts as a wildcard here)."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1).strip()
        if name in ("*", "?", "$"):
            return name
        found = _lookup(context, name)
        if found is None or len(found) != 1:
            missing = True
            return ""
        return found[0]

    resolved = _VARIABLE.sub(value, text)
    return None if missing else resolved


def _element_matches(statement: Mapping[str, Any], name: str, value: str, match: Any) -> bool:
    """``Action``/``NotAction`` (or ``Resource``/``NotResource``); absent in trust policies' Resource."""
    if name in statement:
        return any(match(pattern, value) for pattern in _as_list(statement[name]))
    if f"Not{name}" in statement:
        return not any(match(pattern, value) for pattern in _as_list(statement[f"Not{name}"]))
    return name == "Resource"


@lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's glob: ``*`` any run of characters, ``?`` one character, nothing else special."""
    return _wildcard_regex(pattern, ignore_case).match(value) is not None


def _action_matches(pattern: str, action: str) -> bool:
    return wildcard_match(pattern, action, ignore_case=True)


def _resource_matches(pattern: str, resource: str) -> bool:
    return pattern == "*" or arn_like(pattern, resource)


def arn_like(pattern: str, arn: str) -> bool:
    """``ArnLike``: the six colon-separated ARN parts are matched one by one (the last may hold colons)."""
    if pattern == "*":
        return True
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return wildcard_match(pattern, arn)
    return all(wildcard_match(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


def _principal_applies(statement: Mapping[str, Any], principal: Principal | None) -> bool:
    """Identity policies have no Principal element; trust policies name who may assume the role."""
    if "Principal" in statement:
        return principal is not None and principal_matches(statement["Principal"], principal)
    if "NotPrincipal" in statement:
        return principal is not None and not principal_matches(statement["NotPrincipal"], principal)
    return True


def principal_matches(element: Any, principal: Principal) -> bool:
    """Whether a ``Principal`` element names ``principal`` (an account id or root ARN names the account)."""
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        return False
    for kind, values in element.items():
        for value in _as_list(values):
            if kind == "Service" and principal.service and value == principal.service:
                return True
            if kind == "AWS" and _aws_principal_matches(str(value), principal):
                return True
    return False


def _aws_principal_matches(value: str, principal: Principal) -> bool:
    if principal.service:
        return False
    if value == "*":
        return True
    if principal.account and value in (principal.account, f"arn:aws:iam::{principal.account}:root"):
        return True
    return principal.arn is not None and value == principal.arn


# --- conditions ---------------------------------------------------------------------------------

_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
    "DateNotEquals",
    "NotIpAddress",
}


def _string_equals(expected: str, actual: str) -> bool:
    return expected == actual


def _string_equals_ignore_case(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


def _string_like(expected: str, actual: str) -> bool:
    return wildcard_match(expected, actual)


def _bool(expected: str, actual: str) -> bool:
    return str(expected).lower() == str(actual).lower()


def _compared(convert: Callable[[str], float], compare: Callable[[float, float], bool]) -> Any:
    """A condition operator comparing (actual, expected) after ``convert``; unreadable values never match."""

    def check(expected: str, actual: str) -> bool:
        try:
            return bool(compare(convert(actual), convert(expected)))
        except ValueError:
            return False

    return check


def _timestamp(text: str) -> float:
    """A condition date: ISO 8601 (``2026-01-01T00:00:00Z``, ``2026-01-01``) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


#: Numeric* and Date* operators by suffix (a Not... operator is the negation of its match).
_ORDERINGS: dict[str, Callable[[float, float], bool]] = {
    "Equals": operator.eq,
    "NotEquals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}


def _ip_address(expected: str, actual: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


_MATCHERS: dict[str, Any] = {
    "StringEquals": _string_equals,
    "StringNotEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringNotEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "StringNotLike": _string_like,
    "ArnEquals": arn_like,
    "ArnNotEquals": arn_like,
    "ArnLike": arn_like,
    "ArnNotLike": arn_like,
    "Bool": _bool,
    **{f"Numeric{name}": _compared(float, compare) for name, compare in _ORDERINGS.items()},
    **{f"Date{name}": _compared(_timestamp, compare) for name, compare in _ORDERINGS.items()},
    "IpAddress": _ip_address,
    "NotIpAddress": _ip_address,
}


def _lookup(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    """Condition keys are case-insensitive; a missing key is ``None``, a multi-valued key a list."""
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return [value] if isinstance(value, str) else [str(v) for v in value]
    return None


def conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]) -> bool:
    """All operators, all keys within an operator must hold (AND); the values of one key are OR'd."""
    return all(
        _condition_holds(operator, _expected_values(expected, context), _lookup(context, key))
        for operator, keys in conditions.items()
        for key, expected in keys.items()
    )


def _expected_values(expected: Any, context: Mapping[str, ContextValue]) -> list[str]:
    resolved = (substitute(str(value), context) for value in _as_list(expected))
    return [value for value in resolved if value is not None]


def _condition_holds(operator: str, expected: list[str], actual: list[str] | None) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if name == "Null":
        return (actual is None) == _bool(expected[0], "true") if expected else False
    if actual is None:
        if qualifier == "ForAllValues":
            return True
        return if_exists or (name in _NEGATED and qualifier != "ForAnyValue")
    matcher = _MATCHERS.get(name)
    if matcher is None:
        return False
    negated = name in _NEGATED

    def value_matches(value: str) -> bool:
        hit = any(matcher(e, value) for e in expected)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(value_matches(v) for v in actual)
    return any(value_matches(v) for v in actual)
