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
from typing import Any, Protocol

from airflow_ssm_delegate.documents.javaregex import PatternError, compile_java, java_search

BASE_TYPES = ("String", "StringList", "Integer", "Boolean", "MapList", "StringMap")
_EC2_INSTANCE_ID = r"^m?i-([a-z0-9]{8}|[a-z0-9]{17})$"
_S3_BUCKET_NAME = r"^[0-9a-z][a-z0-9\-\.]{3,63}$"
_IAM_ROLE_ARN = r"^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):iam::[0-9]{12}:role/.*$"
#: AWS-specific parameter types -> (the base type they take, the pattern a non-empty value must match).
#: Table and patterns: SSM user guide, "Creating input parameters that populate AWS resources"
#: (https://docs.aws.amazon.com/systems-manager/latest/userguide/populating-input-parameters.html).
#: An empty string passes: AWS's own example there declares ``AWS::IAM::Role::Arn`` with ``default: ''``.
AWS_TYPES: dict[str, tuple[str, str]] = {
    "AWS::EC2::Instance::Id": ("String", _EC2_INSTANCE_ID),
    "List<AWS::EC2::Instance::Id>": ("StringList", _EC2_INSTANCE_ID),
    "AWS::S3::Bucket::Name": ("String", _S3_BUCKET_NAME),
    "List<AWS::S3::Bucket::Name>": ("StringList", _S3_BUCKET_NAME),
    "AWS::IAM::Role::Arn": ("String", _IAM_ROLE_ARN),
    "List<AWS::IAM::Role::Arn>": ("StringList", _IAM_ROLE_ARN),
}
PARAMETER_TYPES = (*BASE_TYPES, *AWS_TYPES)
LIST_TYPES = frozenset(
    {"StringList", "MapList", *(name for name, (base, _) in AWS_TYPES.items() if base == "StringList")}
)
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


class HasParameters(Protocol):
    """What the conversions need of a runbook (``model.Runbook``): no import of the model here."""

    @property
    def parameters(self) -> Mapping[str, ParameterSpec]: ...


def base_type(type_name: str) -> str:
    """``List<AWS::EC2::Instance::Id>`` -> ``StringList``; a base type is itself."""
    return AWS_TYPES[type_name][0] if type_name in AWS_TYPES else type_name


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


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used as an allowedPattern (Java syntax), or None when it can."""
    try:
        compile_java(pattern)
    except PatternError as exc:
        return str(exc)
    return None


def matches_pattern(pattern: str, value: str) -> bool:
    """Does ``value`` match the allowedPattern (Java semantics, ``find``)? Raises ``PatternError``."""
    return java_search(pattern, value)


def _pattern_mismatch(pattern: str, item: str) -> str | None:
    """The single ``allowedPattern`` check used by the hook, the local runtime and lint (Java semantics)."""
    try:
        matched = java_search(pattern, item)
    except PatternError as exc:
        return f"cannot be checked against the allowedPattern {pattern!r}: {exc}"
    return None if matched else f"{_quoted(item)} does not match the allowedPattern {pattern!r}"


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
    scalar = {"Integer": _integer, "Boolean": _boolean}.get(base_type(spec.type))
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
    if spec.type in AWS_TYPES:
        type_pattern = AWS_TYPES[spec.type][1]
        problems.extend(
            f"{_quoted(item)} is not a valid {spec.type} (pattern {type_pattern})"
            for item in items
            if item and _pattern_mismatch(type_pattern, item)
        )
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
        mismatch = _pattern_mismatch(spec.allowed_pattern, item) if spec.allowed_pattern is not None else None
        if mismatch:
            problems.append(mismatch)
    return problems


def convert_value(spec: ParameterSpec, value: Any) -> tuple[list[str], list[str]]:
    """``value`` in the API form of ``spec``'s type, constraints unchecked: (api_items, type problems)."""
    converter = _TO_API.get(base_type(spec.type))
    if converter is None:
        return [], [f"{spec.name}: unknown parameter type {spec.type!r}; use one of {list(PARAMETER_TYPES)}"]
    try:
        return converter(value), []
    except _BadValue as exc:
        return [], [f"{spec.name}: {exc}"]


def check_value(spec: ParameterSpec, value: Any) -> tuple[list[str], list[str]]:
    """Convert ``value`` to the API form of ``spec``; returns (api_items, problems with the name prefixed)."""
    items, problems = convert_value(spec, value)
    if problems:
        return [], problems
    return items, [f"{spec.name}: {problem}" for problem in _constraint_problems(spec, items)]


def default_value(spec: ParameterSpec) -> tuple[list[str], list[str]]:
    """The declared default in API form, held to its type only, not to the parameter's constraints.

    AWS publishes runbooks whose defaults their own constraints reject and that start without the
    parameter: ``''`` under an allowedPattern that needs a value (AWSSupport-*, AWSResilienceHub-*),
    ``$LATEST`` as a snapshot id, a 601-character log format. So a default is used as written;
    a value the caller passes is checked in full. ``default: null`` (a YAML ``default:`` left empty)
    is an empty value.
    """
    if spec.default is None:
        return convert_value(spec, "" if base_type(spec.type) == "String" else [])
    return convert_value(spec, spec.default)


def from_api_items(spec: ParameterSpec, items: Sequence[str]) -> Any:
    """The typed Python value of already-checked API items (``check_value`` output)."""
    kind = base_type(spec.type)
    if kind == "String":
        return items[0]
    if kind == "Integer":
        return int(items[0])
    if kind == "Boolean":
        return items[0] == "true"
    if kind == "StringMap":
        return json.loads(items[0])
    if kind == "MapList":
        return [json.loads(item) for item in items]
    return list(items)


def _unknown_names(runbook: HasParameters, names: Sequence[str]) -> list[str]:
    declared = sorted(runbook.parameters)
    return [
        f"{name}: not a parameter of this runbook; declared parameters are {declared}"
        for name in names
        if name not in runbook.parameters
    ]


def to_api_parameters(runbook: HasParameters, values: Mapping[str, Any]) -> dict[str, list[str]]:
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


def resolve_parameters(runbook: HasParameters, api_parameters: Mapping[str, Sequence[str]]) -> dict[str, Any]:
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
            items, value_problems = default_value(spec)
            problems.extend(value_problems)
            if not value_problems:
                result[name] = from_api_items(spec, items)
            continue
        items, value_problems = check_value(spec, raw)
        if value_problems:
            problems.extend(value_problems)
            continue
        result[name] = from_api_items(spec, items)
    if problems:
        raise ParameterValidationError(problems)
    return result
