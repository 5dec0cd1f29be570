"""Runbook parameters: declarations and the one conversion between Python values and the API's form.

The StartAutomationExecution API takes every parameter as a list of strings. Callers (operators, the
local runtime, lint) all convert and check through this module so a value accepted in one place is
accepted everywhere. ``to_api_parameters``/``resolve_parameters`` are re-exported by ``model``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.model import Runbook

PARAMETER_TYPES = ("String", "StringList", "Integer", "Boolean", "MapList", "StringMap")
LIST_TYPES = frozenset({"StringList", "MapList"})
#: API limits of StartAutomationExecution (AutomationParameterValueList / AutomationParameterValue).
MAX_VALUES_PER_PARAMETER = 50
MAX_VALUE_CHARS = 512


class _Missing:
    """Sentinel type: a parameter declared without ``default`` (so it is required)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class ParameterValidationError(ValueError):
    """Parameter values rejected; ``problems`` has one line per bad parameter, naming it and the fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid runbook parameters: " + "; ".join(self.problems))


@dataclass(frozen=True)
class ParameterSpec:
    """One entry of a runbook's ``parameters`` section."""

    name: str
    type: str
    default: Any = MISSING
    allowed_values: tuple[Any, ...] | None = None
    allowed_pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    description: str | None = None

    @property
    def required(self) -> bool:
        return self.default is MISSING


class _BadValue(ValueError):
    """A value that cannot be converted; the message is phrased to follow ``'<name>: '``."""


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile an ``allowedPattern`` (raises ``re.error`` when Python cannot read it)."""
    return re.compile(pattern)


def matches_pattern(pattern: str, value: str) -> bool:
    """The single ``allowedPattern`` matcher used by the hook, the local runtime and lint.

    AWS evaluates allowedPattern as a Java regular expression. We use Python's ``re.search``: patterns
    carry their own ``^``/``$`` anchors (as every AWS-published runbook does), and the common syntax
    (classes, quantifiers, alternation, ``\\d``/``\\w``) means the same in both dialects. Java-only
    constructs (possessive quantifiers, ``\\p{javaLowerCase}``) are rejected by lint as uncompilable.
    """
    return compile_pattern(pattern).search(value) is not None


def _shown(value: Any) -> str:
    """A value as an error message quotes it: its type and a bounded repr."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _quoted(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def _single(value: Any) -> Any:
    """Scalar types also accept the API's one-item list form (``["t3.micro"]``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise _BadValue(f"expected one value, got a list of {len(value)}")
        return value[0]
    return value


def _string(value: Any) -> list[str]:
    value = _single(value)
    if not isinstance(value, str):
        raise _BadValue(f"expected a string, got {_shown(value)}")
    return [value]


_TEMPLATED_LIST_HINT = (
    "; a Jinja-templated list renders to text unless the DAG sets render_template_as_native_obj=True"
)


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        raise _BadValue(f"expected a list of strings, got {_shown(value)}{_TEMPLATED_LIST_HINT}")
    if not isinstance(value, (list, tuple)):
        raise _BadValue(f"expected a list of strings, got {_shown(value)}")
    bad = [item for item in value if not isinstance(item, str)]
    if bad:
        raise _BadValue(f"expected a list of strings, found non-string item {_shown(bad[0])}")
    return list(value)


def _integer(value: Any) -> list[str]:
    value = _single(value)
    if isinstance(value, bool):
        raise _BadValue(f"expected an integer, got boolean {value!r}")
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return [str(int(value))]
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return [str(int(value))]
    raise _BadValue(f"expected an integer, got {_shown(value)}")


def _boolean(value: Any) -> list[str]:
    value = _single(value)
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return [value.strip().lower()]
    raise _BadValue(f"expected a boolean (true/false), got {_shown(value)}")


def _json_object(item: Any) -> str:
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except ValueError as exc:
            raise _BadValue(f"expected a JSON object, got unparsable string {item[:60]!r}") from exc
    if not isinstance(item, Mapping):
        raise _BadValue(f"expected a JSON object (mapping), got {_shown(item)}")
    return json.dumps(dict(item), separators=(",", ":"), sort_keys=True)


def _map_list(value: Any) -> list[str]:
    if isinstance(value, str):
        raise _BadValue(f"expected a list of mappings, got a string{_TEMPLATED_LIST_HINT}")
    if isinstance(value, Mapping) or not isinstance(value, (list, tuple)):
        raise _BadValue(f"expected a list of mappings, got {type(value).__name__}")
    return [_json_object(item) for item in value]


def _string_map(value: Any) -> list[str]:
    return [_json_object(_single(value))]


_TO_API = {
    "String": _string,
    "StringList": _string_list,
    "Integer": _integer,
    "Boolean": _boolean,
    "MapList": _map_list,
    "StringMap": _string_map,
}


def _allowed_as_strings(spec: ParameterSpec) -> list[str]:
    """allowedValues in the API's string form, so ``5`` and ``"5"`` compare equal for an Integer."""
    scalar = {"Integer": _integer, "Boolean": _boolean}.get(spec.type)
    result: list[str] = []
    for allowed in spec.allowed_values or ():
        try:
            result.extend(scalar(allowed) if scalar else [str(allowed)])
        except _BadValue:
            result.append(str(allowed))
    return result


def _constraint_problems(spec: ParameterSpec, items: list[str]) -> list[str]:
    """Everything wrong with an already-converted value, each phrased to follow ``'<name>: '``."""
    problems: list[str] = []
    if len(items) > MAX_VALUES_PER_PARAMETER:
        problems.append(f"{len(items)} values exceed the API limit of {MAX_VALUES_PER_PARAMETER}")
    if spec.min_items is not None and len(items) < spec.min_items:
        problems.append(f"{len(items)} items, fewer than minItems {spec.min_items}")
    if spec.max_items is not None and len(items) > spec.max_items:
        problems.append(f"{len(items)} items, more than maxItems {spec.max_items}")
    allowed = _allowed_as_strings(spec) if spec.allowed_values is not None else None
    for item in items:
        if len(item) > MAX_VALUE_CHARS:
            problems.append(f"a value of {len(item)} characters exceeds the API limit of {MAX_VALUE_CHARS}")
        if spec.min_chars is not None and len(item) < spec.min_chars:
            problems.append(f"{_quoted(item)} is shorter than minChars {spec.min_chars}")
        if spec.max_chars is not None and len(item) > spec.max_chars:
            problems.append(f"{_quoted(item)} is longer than maxChars {spec.max_chars}")
        if allowed is not None and item not in allowed:
            problems.append(f"{_quoted(item)} is not one of the allowedValues {allowed}")
        if spec.allowed_pattern is not None and not matches_pattern(spec.allowed_pattern, item):
            problems.append(f"{_quoted(item)} does not match the allowedPattern {spec.allowed_pattern!r}")
    return problems


def check_value(spec: ParameterSpec, value: Any) -> tuple[list[str], list[str]]:
    """Convert ``value`` to the API form of ``spec``; returns (api_items, problems with the name prefixed)."""
    converter = _TO_API.get(spec.type)
    if converter is None:
        return [], [f"{spec.name}: unknown parameter type {spec.type!r}; use one of {list(PARAMETER_TYPES)}"]
    try:
        items = converter(value)
    except _BadValue as exc:
        return [], [f"{spec.name}: {exc}"]
    return items, [f"{spec.name}: {problem}" for problem in _constraint_problems(spec, items)]


def from_api_items(spec: ParameterSpec, items: Sequence[str]) -> Any:
    """The typed Python value of already-checked API items (``check_value`` output)."""
    if spec.type == "String":
        return items[0]
    if spec.type == "Integer":
        return int(items[0])
    if spec.type == "Boolean":
        return items[0] == "true"
    if spec.type == "StringMap":
        return json.loads(items[0])
    if spec.type == "MapList":
        return [json.loads(item) for item in items]
    return list(items)


def _unknown_names(runbook: Runbook, names: Sequence[str]) -> list[str]:
    declared = sorted(runbook.parameters)
    return [
        f"{name}: not a parameter of this runbook; declared parameters are {declared}"
        for name in names
        if name not in runbook.parameters
    ]


def to_api_parameters(runbook: Runbook, values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Python values -> the API's ``{name: [str, ...]}``, checked against the declarations.

    Only the given values are returned (AWS fills defaults itself). Raises ``ParameterValidationError``
    listing every problem: unknown names, wrong types, allowedValues/allowedPattern, item and character
    limits, and required parameters (no default) that are missing.
    """
    problems = _unknown_names(runbook, list(values))
    result: dict[str, list[str]] = {}
    for name, spec in runbook.parameters.items():
        if name not in values:
            if spec.required:
                problems.append(f"{name}: required (the runbook declares no default); pass a value")
            continue
        items, value_problems = check_value(spec, values[name])
        problems.extend(value_problems)
        result[name] = items
    if problems:
        raise ParameterValidationError(problems)
    return result


def resolve_parameters(runbook: Runbook, api_parameters: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """API form -> typed values for every declared parameter, defaults filled, same checks as above."""
    problems = _unknown_names(runbook, list(api_parameters))
    result: dict[str, Any] = {}
    for name, spec in runbook.parameters.items():
        if name in api_parameters:
            raw: Any = api_parameters[name]
            if spec.type not in LIST_TYPES and isinstance(raw, (list, tuple)) and len(raw) != 1:
                problems.append(f"{name}: a {spec.type} parameter takes exactly one value, got {len(raw)}")
                continue
        elif spec.required:
            problems.append(f"{name}: required (the runbook declares no default); pass a value")
            continue
        else:
            raw = spec.default
        items, value_problems = check_value(spec, raw)
        if value_problems:
            problems.extend(value_problems)
            continue
        result[name] = from_api_items(spec, items)
    if problems:
        raise ParameterValidationError(problems)
    return result
