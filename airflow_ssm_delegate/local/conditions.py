"""aws:branch choice rules: the documented operators, evaluated on already-rendered values."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any


class ChoiceError(ValueError):
    """A choice rule is malformed (the message names the rule and what to fix)."""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ChoiceError(f"{where}: expected a number, got the boolean {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ChoiceError(f"{where}: expected a number, got {value!r}") from None


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ChoiceError(f"{where}: expected true or false, got {value!r}")


def _contains(variable: Any, expected: Any) -> bool:
    if isinstance(variable, (list, tuple)):
        return expected in variable or str(expected) in [str(item) for item in variable]
    return str(expected) in str(variable)


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[Any, Any, str], bool]:
    return lambda variable, expected, where: compare(_number(variable, where), _number(expected, where))


_OPERATORS: dict[str, Callable[[Any, Any, str], bool]] = {
    "StringEquals": lambda v, e, _w: str(v) == str(e),
    "EqualsIgnoreCase": lambda v, e, _w: str(v).casefold() == str(e).casefold(),
    "StartsWith": lambda v, e, _w: str(v).startswith(str(e)),
    "EndsWith": lambda v, e, _w: str(v).endswith(str(e)),
    "Contains": lambda v, e, _w: _contains(v, e),
    "NumericEquals": _numeric(operator.eq),
    "NumericGreater": _numeric(operator.gt),
    "NumericLesser": _numeric(operator.lt),
    "NumericGreaterOrEquals": _numeric(operator.ge),
    "NumericLesserOrEquals": _numeric(operator.le),
    "BooleanEquals": lambda v, e, w: _boolean(v, w) == _boolean(e, w),
}


def evaluate(rule: Any, where: str = "Choices") -> bool:
    """True when the rule holds: ``{Variable, <Operator>: value}``, ``And``/``Or`` (lists) or ``Not``."""
    if not isinstance(rule, Mapping):
        raise ChoiceError(f"{where}: a choice rule must be a mapping, got {type(rule).__name__}")
    if "And" in rule or "Or" in rule:
        key = "And" if "And" in rule else "Or"
        parts = rule[key]
        if not isinstance(parts, list) or not parts:
            raise ChoiceError(f"{where}.{key}: expected a non-empty list of rules")
        results = (evaluate(part, f"{where}.{key}[{i}]") for i, part in enumerate(parts))
        return all(results) if key == "And" else any(results)
    if "Not" in rule:
        return not evaluate(rule["Not"], f"{where}.Not")
    found = [name for name in _OPERATORS if name in rule]
    if len(found) != 1:
        raise ChoiceError(
            f"{where}: expected exactly one operator of {', '.join(sorted(_OPERATORS))} (or And/Or/Not), "
            f"found {found or 'none'}"
        )
    if "Variable" not in rule:
        raise ChoiceError(f"{where}: missing Variable")
    name = found[0]
    return _OPERATORS[name](rule["Variable"], rule[name], f"{where}.{name}")


def choose(choices: Any, default: str | None) -> str | None:
    """The NextStep of the first matching choice, else ``default`` (None when nothing matches)."""
    if not isinstance(choices, list) or not choices:
        raise ChoiceError("Choices: expected a non-empty list of choice rules")
    for index, choice in enumerate(choices):
        where = f"Choices[{index}]"
        if not isinstance(choice, Mapping) or not isinstance(choice.get("NextStep"), str):
            raise ChoiceError(f"{where}: each choice needs a NextStep step name")
        rule = {key: value for key, value in choice.items() if key != "NextStep"}
        if evaluate(rule, where):
            return str(choice["NextStep"])
    return default
