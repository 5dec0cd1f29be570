"""IAM policy evaluation as AWS documents it, for the local runtime (moto's own check is too coarse).

Scope: identity, trust and resource policies and permissions boundaries of one account (see
``simulate`` for how they combine). Within a set of policies an explicit ``Deny`` wins, an ``Allow`` is
needed otherwise (implicit deny). Implemented from AWS's IAM User Guide pages "IAM JSON policy elements:
Condition operators", "Policy variables", "Policy evaluation logic" and "IAM identifiers" (ARNs):

- ``Action``/``NotAction``: case-insensitive, ``*``/``?`` wildcards.
- ``Resource``/``NotResource``: each of the six ARN parts matched on its own (a wildcard never spans a
  ``:`` of the first five); a wildcard in the resource-type part (``*/i-1``) matches nothing for
  services whose ARNs have one; case-sensitive.
- ``Principal``/``NotPrincipal`` (``AWS``/``Service``/``*``).
- every condition operator (``String*``, ``Numeric*``, ``Date*``, ``Bool``, ``BinaryEquals``,
  ``IpAddress``/``NotIpAddress``, ``Arn*``, ``Null``) with ``...IfExists`` and ``ForAllValues:`` /
  ``ForAnyValue:``; condition keys case-insensitive, values case-sensitive. A single-valued operator on
  a multivalued key (a list in the context) does not match, as in AWS's simulator.
- policy variables (``Version`` 2012-10-17 only) in ``Resource`` and condition values, with defaults
  (``${aws:PrincipalTag/team, 'company-wide'}``) and the literal ``${*}``, ``${?}``, ``${$}``; a variable
  with no single value and no default makes that resource or condition value match nothing.

No library on PyPI evaluates a request against IAM policies with conditions (policyuniverse and
policy-sentry parse and expand policies only), so this is a module of its own.
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from airflow_ssm_delegate.local.sar import typed_resource_segment

ContextValue = str | Sequence[str]
VARIABLES_VERSION = "2012-10-17"


class Decision(enum.Enum):
    """The outcome of evaluating one request against a set of policies."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Principal:
    """Who makes a request, as a trust or resource policy's ``Principal`` element sees it."""

    arn: str | None = None
    account: str | None = None
    service: str | None = None


@dataclass(frozen=True)
class RequestContext:
    """One authorisation question: may ``action`` be done on ``resource`` given these context keys?

    A context value given as a list is a multivalued key (``aws:TagKeys``), a string a single value."""

    action: str
    resource: str = "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    principal: Principal | None = None


@dataclass(frozen=True)
class MatchedStatement:
    """A statement that applied to the request: which policy, which statement, its effect."""

    policy_index: int
    statement_index: int
    effect: str


@dataclass
class Evaluation:
    """A decision with what led to it (for the simulator's MatchedStatements/MissingContextValues)."""

    decision: Decision
    matched: list[MatchedStatement] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)


def load_policy(document: str | Mapping[str, Any]) -> dict[str, Any]:
    """A policy document as a dict (moto keeps them as JSON text)."""
    if isinstance(document, Mapping):
        return dict(document)
    return dict(json.loads(document))


def evaluate(policies: Iterable[str | Mapping[str, Any]], request: RequestContext) -> Decision:
    """Evaluate ``request`` against every statement of every policy: explicit deny, then allow."""
    return explain(policies, request).decision


def explain(policies: Iterable[str | Mapping[str, Any]], request: RequestContext) -> Evaluation:
    """Like ``evaluate``, keeping the statements that applied and the condition keys the request lacked."""
    result = Evaluation(Decision.IMPLICIT_DENY)
    missing: dict[str, str] = {}
    for policy_index, policy in enumerate(policies):
        document = load_policy(policy)
        variables = document.get("Version") == VARIABLES_VERSION
        for statement_index, statement in enumerate(statements_of(document)):
            if not _targets(statement, request, variables):
                continue
            for key in _condition_keys(statement):
                if _lookup(request.context, key) is None:
                    missing.setdefault(key.lower(), key)
            if not conditions_hold(statement.get("Condition", {}), request.context, variables=variables):
                continue
            effect = str(statement.get("Effect"))
            result.matched.append(MatchedStatement(policy_index, statement_index, effect))
    denies = [m for m in result.matched if m.effect == "Deny"]
    if denies:
        result.decision, result.matched = Decision.EXPLICIT_DENY, denies
    elif result.matched:
        result.decision = Decision.ALLOW
    result.missing_keys = sorted(missing.values())
    return result


def statements_of(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A policy's statements (``Statement`` may be one object or a list)."""
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _targets(statement: Mapping[str, Any], request: RequestContext, variables: bool) -> bool:
    """Action, resource and principal match (conditions are checked separately)."""

    def resource_matches(pattern: str, resource: str) -> bool:
        return resource_pattern_matches(pattern, resource, request.context, variables=variables)

    return (
        _element_matches(statement, "Action", request.action, _action_matches)
        and _element_matches(statement, "Resource", request.resource, resource_matches)
        and _principal_applies(statement, request.principal)
    )


def _condition_keys(statement: Mapping[str, Any]) -> list[str]:
    condition = statement.get("Condition") or {}
    return [str(key) for block in condition.values() if isinstance(block, Mapping) for key in block]


def _element_matches(statement: Mapping[str, Any], name: str, value: str, match: Any) -> bool:
    """``Action``/``NotAction`` (or ``Resource``/``NotResource``); absent in trust policies' Resource."""
    if name in statement:
        return any(match(str(pattern), value) for pattern in _as_list(statement[name]))
    if f"Not{name}" in statement:
        return not any(match(str(pattern), value) for pattern in _as_list(statement[f"Not{name}"]))
    return name == "Resource"


# --- wildcards and policy variables ------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,]+?)\s*,\s*'([^']*)'\s*$")
_LITERALS = ("*", "?", "$")


class _Unresolved(Exception):
    """A policy variable with no single value in the request and no default."""


def _variable_value(name: str, context: Mapping[str, ContextValue]) -> str:
    """``${name}``'s value: the key's single value, else the default after the comma, else unresolved."""
    default_match = _DEFAULT.match(name)
    key, default = (default_match.group(1), default_match.group(2)) if default_match else (name.strip(), None)
    found = context_value(context, key)
    if isinstance(found, str):
        return found
    if default is not None:
        return default
    raise _Unresolved(key)


def _render(text: str, context: Mapping[str, ContextValue], variables: bool, literal: Callable[[str], str],
            wildcard: Callable[[str], str]) -> str:  # fmt: skip
    """``text`` with each character passed through ``wildcard`` and each variable value through
    ``literal`` (``${*}``, ``${?}``, ``${$}`` are the literal characters)."""
    parts: list[str] = []
    position = 0
    for match in _VARIABLE.finditer(text) if variables else ():
        parts.extend(wildcard(c) for c in text[position : match.start()])
        name = match.group(1).strip()
        parts.append(literal(name if name in _LITERALS else _variable_value(name, context)))
        position = match.end()
    parts.extend(wildcard(c) for c in text[position:])
    return "".join(parts)


def substitute(text: str, context: Mapping[str, ContextValue], *, variables: bool = True) -> str | None:
    """Policy variables replaced by the request's values (None when one cannot be resolved)."""
    try:
        return _render(text, context, variables, lambda v: v, lambda c: c)
    except _Unresolved:
        return None


def _glob_char(char: str) -> str:
    return ".*" if char == "*" else "." if char == "?" else re.escape(char)


@lru_cache(maxsize=8192)
def _compiled(body: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(f"^{body}$", (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL)


def like_match(
    pattern: str,
    value: str,
    context: Mapping[str, ContextValue] | None = None,
    *,
    variables: bool = False,
    ignore_case: bool = False,
) -> bool:
    """IAM's glob (``*`` any run, ``?`` one character) with policy variables matched literally."""
    try:
        body = _render(pattern, context or {}, variables, re.escape, _glob_char)
    except _Unresolved:
        return False
    return _compiled(body, ignore_case).match(value) is not None


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's glob: ``*`` any run of characters, ``?`` one character, nothing else special."""
    return like_match(pattern, value, ignore_case=ignore_case)


def _action_matches(pattern: str, action: str) -> bool:
    return wildcard_match(pattern, action, ignore_case=True)


def split_arn(text: str) -> list[str]:
    """The six parts of an ARN or pattern (``:`` inside ``${...}`` does not split; the sixth keeps colons)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for index, char in enumerate(text):
        if char == "{" and index and text[index - 1] == "$":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if char == ":" and not depth and len(parts) < 5:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _type_prefix(segment: str) -> str | None:
    """The resource-type part of an ARN's resource segment (``instance/``), if it has one."""
    match = re.match(r"^([^/:$]*(?:\$\{[^}]*\}[^/:$]*)*)[/:]", segment)
    return match.group(0) if match else None


def arn_like(
    pattern: str,
    arn: str,
    context: Mapping[str, ContextValue] | None = None,
    *,
    variables: bool = False,
    resource_element: bool = False,
) -> bool:
    """``ArnLike``/``ArnEquals`` and the ``Resource`` element: the six ARN parts matched one by one.

    In the ``Resource`` element a wildcard or variable in the resource-type part of a service whose ARNs
    have one matches nothing (AWS's "IAM identifiers" page: incorrect wildcard usage)."""
    if pattern == "*":
        return True
    pattern_parts, arn_parts = split_arn(pattern), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:  # a malformed ARN pattern matches no ARN
        return (
            len(pattern_parts) != 6
            and not pattern.startswith("arn:")
            and like_match(pattern, arn, context, variables=variables)
        )
    if resource_element:
        prefix = _type_prefix(pattern_parts[5])
        if prefix and re.search(r"[*?]|\$\{", prefix) and typed_resource_segment(arn_parts[2]):
            return False
    return all(
        like_match(p, a, context, variables=variables) for p, a in zip(pattern_parts, arn_parts, strict=True)
    )


def resource_pattern_matches(
    pattern: str, resource: str, context: Mapping[str, ContextValue], *, variables: bool = True
) -> bool:
    """Whether a ``Resource`` entry covers the requested resource."""
    if pattern == "*":
        return True
    return arn_like(pattern, resource, context, variables=variables, resource_element=True)


# --- principals --------------------------------------------------------------------------------


def _principal_applies(statement: Mapping[str, Any], principal: Principal | None) -> bool:
    """Identity policies have no Principal element; trust and resource policies name who they cover."""
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


# --- conditions --------------------------------------------------------------------------------
# Operators from AWS's "IAM JSON policy elements: Condition operators" page. A negated operator is the
# negation of its positive match, value by value; with the key absent it holds (as AWS documents).

_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
}

Matcher = Callable[[str, str, Mapping[str, ContextValue], bool], bool]


def _plain(compare: Callable[[str, str], bool]) -> Matcher:
    """A matcher on the policy value after variable substitution (no wildcards)."""

    def check(expected: str, actual: str, context: Mapping[str, ContextValue], variables: bool) -> bool:
        resolved = substitute(expected, context, variables=variables)
        return resolved is not None and compare(resolved, actual)

    return check


def _string_like(expected: str, actual: str, context: Mapping[str, ContextValue], variables: bool) -> bool:
    return like_match(expected, actual, context, variables=variables)


def _arn(expected: str, actual: str, context: Mapping[str, ContextValue], variables: bool) -> bool:
    return arn_like(expected, actual, context, variables=variables)


def _bool(expected: str, actual: str) -> bool:
    return expected.lower() in ("true", "false") and expected.lower() == actual.lower()


def _binary(expected: str, actual: str) -> bool:
    """``BinaryEquals``: both sides are base64; equal bytes match."""
    try:
        return base64.b64decode(expected, validate=True) == base64.b64decode(actual, validate=True)
    except (binascii.Error, ValueError):
        return False


def _compared(convert: Callable[[str], float], compare: Callable[[float, float], bool]) -> Matcher:
    """Compare (actual, expected) after ``convert``; a value that does not convert never matches."""

    def check(expected: str, actual: str, context: Mapping[str, ContextValue], variables: bool) -> bool:
        resolved = substitute(expected, context, variables=variables)
        try:
            return resolved is not None and bool(compare(convert(actual), convert(resolved)))
        except ValueError:
            return False

    return check


def _number(text: str) -> float:
    value = float(text)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(text)
    return value


def parse_date(text: str) -> float:
    """A condition date: ISO 8601 (``2026-01-01T00:00:00Z``, ``2026-01-01``) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


def _ip_address(expected: str, actual: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


_ORDERINGS: dict[str, Callable[[float, float], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
}

_MATCHERS: dict[str, Matcher] = {
    "StringEquals": _plain(operator.eq),
    "StringEqualsIgnoreCase": _plain(lambda e, a: e.casefold() == a.casefold()),
    "StringLike": _string_like,
    "ArnEquals": _arn,
    "ArnLike": _arn,
    "Bool": _plain(_bool),
    "BinaryEquals": _plain(_binary),
    "IpAddress": _plain(_ip_address),
    **{f"Numeric{name}": _compared(_number, compare) for name, compare in _ORDERINGS.items()},
    **{f"Date{name}": _compared(parse_date, compare) for name, compare in _ORDERINGS.items()},
}
CONDITION_OPERATORS = frozenset({*_MATCHERS, *_NEGATED, "Null"})
SET_OPERATORS = ("ForAllValues", "ForAnyValue")


def context_value(context: Mapping[str, ContextValue], key: str) -> ContextValue | None:
    """A key's value (keys are case-insensitive): a string, a list for a multivalued key, or None."""
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return value if isinstance(value, str) else [str(v) for v in value]
    return None


def _lookup(context: Mapping[str, ContextValue], key: str) -> list[str] | None:
    value = context_value(context, key)
    return None if value is None else [value] if isinstance(value, str) else list(value)


def _as_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def conditions_hold(
    conditions: Mapping[str, Mapping[str, Any]],
    context: Mapping[str, ContextValue],
    *,
    variables: bool = True,
) -> bool:
    """All operators, all keys within an operator must hold (AND); the values of one key are OR'd."""
    return all(
        condition_holds(op, key, [_as_text(v) for v in _as_list(expected)], context, variables=variables)
        for op, keys in conditions.items()
        for key, expected in keys.items()
    )


def parse_operator(name: str) -> tuple[str | None, str, bool] | None:
    """``ForAnyValue:StringLikeIfExists`` -> (``ForAnyValue``, ``StringLike``, True); None if unknown."""
    qualifier, _, base = name.rpartition(":")
    if qualifier and qualifier not in SET_OPERATORS:
        return None
    if_exists = base.endswith("IfExists") and base != "IfExists"
    base = base.removesuffix("IfExists") if if_exists else base
    if base not in CONDITION_OPERATORS or (base == "Null" and (if_exists or qualifier)):
        return None
    return (qualifier or None), base, if_exists


def condition_holds(
    operator_name: str,
    key: str,
    expected: list[str],
    context: Mapping[str, ContextValue],
    *,
    variables: bool = True,
) -> bool:
    """One operator on one key. An unknown operator never holds (policy validation reports it first)."""
    parsed = parse_operator(operator_name)
    if parsed is None:
        return False
    qualifier, base, if_exists = parsed
    value = context_value(context, key)
    if base == "Null":
        return any(e.lower() == ("true" if value is None else "false") for e in expected)
    negated = base in _NEGATED
    matcher = _MATCHERS[_NEGATED.get(base, base)]

    def one(actual: str) -> bool:
        hit = any(matcher(e, actual, context, variables) for e in expected)
        return not hit if negated else hit

    if qualifier is None:
        if value is None:
            return if_exists or negated
        if not isinstance(value, str):  # a single-valued operator on a multivalued key
            return False
        return one(value)
    if value is None and if_exists:
        return True
    values = [] if value is None else [value] if isinstance(value, str) else list(value)
    if qualifier == "ForAllValues":
        return all(one(v) for v in values)  # an absent or empty key: vacuously true, as AWS documents
    return any(one(v) for v in values)  # ForAnyValue: an absent or empty key never matches
