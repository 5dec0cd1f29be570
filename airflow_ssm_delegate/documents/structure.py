"""Structural checks of a schema-0.3 runbook: what makes a document unusable, with the path to the key.

``parse_runbook`` refuses a document with any of these problems; lint reports them all with source lines.
Each problem carries its lint code (see ``lint.RULES``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.documents.parameters import BASE_TYPES, PARAMETER_TYPES
from airflow_ssm_delegate.documents.source import format_path
from airflow_ssm_delegate.documents.values import as_bool, as_int

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.source import Path

SCHEMA_VERSION = "0.3"
LOOP_ACTION = "aws:loop"
STEP_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")
TOP_LEVEL_KEYS = frozenset(
    {"schemaVersion", "description", "assumeRole", "parameters", "variables", "outputs", "mainSteps", "files"}
)
#: Keys of a Change Manager change template (type Automation.ChangeTemplate, AWS-HelloWorldChangeTemplate):
#: AWS starts it with StartChangeRequestExecution (API_StartChangeRequestExecution.html), not as a runbook.
CHANGE_TEMPLATE_KEYS = frozenset(
    {"templateInformation", "executableRunBooks", "emergencyChange", "autoApprovable"}
)
STEP_KEYS = frozenset(
    {
        "name",
        "action",
        "description",
        "inputs",
        "outputs",
        "maxAttempts",
        "timeoutSeconds",
        "onFailure",
        "onCancel",
        "isEnd",
        "nextStep",
        "isCritical",
    }
)
PARAMETER_KEYS = frozenset(
    {
        "type",
        "description",
        "default",
        "allowedValues",
        "allowedPattern",
        "displayType",
        "minItems",
        "maxItems",
        "minChars",
        "maxChars",
    }
)
OUTPUT_TYPES = frozenset(BASE_TYPES)
VARIABLE_KEYS = frozenset({"type", "default", "description"})
INT_PARAMETER_KEYS = {
    "minItems": "min_items",
    "maxItems": "max_items",
    "minChars": "min_chars",
    "maxChars": "max_chars",
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: lint ``code``, ``path`` to the key, and a message saying the fix."""

    code: str
    path: Path
    message: str


def _type_problem(
    path: Path, key: str, value: Any, expected: type | tuple[type, ...], wanted: str
) -> list[Problem]:
    """``value`` is not ``expected``; an int or bool may be written as AWS coerces it ("3", "true")."""
    if expected is int:
        ok = as_int(value) is not None
    elif expected is bool:
        ok = as_bool(value) is not None
    else:
        ok = isinstance(value, expected)
    if not ok:
        return [Problem("SSM001", path, f"{key} must be {wanted}, got {type(value).__name__} {value!r}")]
    return []


def unknown_parameter_keys(parameters: Any) -> Iterator[Problem]:
    """SSM021 (lint only): keys AWS does not document for a parameter; the model ignores them."""
    for name, declaration in parameters.items() if isinstance(parameters, Mapping) else ():
        for key in (
            sorted(set(declaration) - PARAMETER_KEYS, key=str) if isinstance(declaration, Mapping) else ()
        ):
            yield Problem(
                "SSM021",
                ("parameters", name, key),
                f"parameter {name}: unknown key {key!r} (ignored); documented: {sorted(PARAMETER_KEYS)}",
            )


def _declarations(section: str, label: str, declarations: Any, types: Sequence[str]) -> Iterator[Problem]:
    """The checks ``parameters`` and ``variables`` share: a mapping of name -> {type: one of ``types``}."""
    if not isinstance(declarations, Mapping):
        yield Problem("SSM001", (section,), f"{section} must be a mapping of name -> declaration")
        return
    for name, declaration in declarations.items():
        if not isinstance(declaration, Mapping):
            yield Problem(
                "SSM011", (section, name), f"{label} {name}: declaration must be a mapping with a type"
            )
        elif declaration.get("type") not in types:
            yield Problem(
                "SSM011",
                (section, name, "type"),
                f"{label} {name}: type {declaration.get('type')!r} is not one of {list(types)}",
            )


def _mappings(declarations: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The well-shaped (name, declaration) pairs, for the checks of one section only."""
    for name, declaration in declarations.items() if isinstance(declarations, Mapping) else ():
        if isinstance(declaration, Mapping):
            yield name, declaration


def _parameter_problems(parameters: Any) -> Iterator[Problem]:
    yield from _declarations("parameters", "parameter", parameters, PARAMETER_TYPES)
    for name, declaration in _mappings(parameters):
        path: Path = ("parameters", name)
        for key in INT_PARAMETER_KEYS:
            if key in declaration:
                for problem in _type_problem(
                    (*path, key), f"parameter {name}: {key}", declaration[key], int, "an integer"
                ):
                    yield Problem("SSM011", problem.path, problem.message)
        if "allowedValues" in declaration and not isinstance(declaration["allowedValues"], list):
            yield Problem(
                "SSM011", (*path, "allowedValues"), f"parameter {name}: allowedValues must be a list"
            )
        if "allowedPattern" in declaration and not isinstance(declaration["allowedPattern"], str):
            yield Problem(
                "SSM011", (*path, "allowedPattern"), f"parameter {name}: allowedPattern must be a string"
            )


def _variable_problems(variables: Any) -> Iterator[Problem]:
    """Top-level ``variables``: name -> {type, default, description}, read and set by aws:updateVariable."""
    if variables is None:
        return
    yield from _declarations("variables", "variable", variables, BASE_TYPES)
    for name, declaration in _mappings(variables):
        for key in sorted(set(declaration) - VARIABLE_KEYS, key=str):
            yield Problem(
                "SSM011",
                ("variables", name, key),
                f"variable {name}: unknown key {key!r}; allowed keys are {sorted(VARIABLE_KEYS)}",
            )


def _step_key_problems(path: Path, step: Mapping[str, Any]) -> Iterator[Problem]:
    label = format_path(path) + (f" ({step['name']})" if isinstance(step.get("name"), str) else "")
    for key in sorted(set(step) - STEP_KEYS, key=str):
        yield Problem(
            "SSM001", (*path, key), f"{label}: unknown step key {key!r}; allowed keys are {sorted(STEP_KEYS)}"
        )
    for key in ("name", "action"):
        if not isinstance(step.get(key), str):
            yield Problem("SSM001", path, f"{label}: '{key}' is required and must be a string")
    checks: list[tuple[str, type | tuple[type, ...], str]] = [
        ("inputs", Mapping, "a mapping"),
        ("outputs", list, "a list of {Name, Selector, Type}"),
        ("maxAttempts", int, "an integer"),
        ("timeoutSeconds", int, "an integer"),
        ("isEnd", bool, "a boolean"),
        ("isCritical", bool, "a boolean"),
        ("nextStep", str, "a step name"),
        ("onFailure", str, "a string"),
        ("onCancel", str, "a string"),
        ("description", str, "a string"),
    ]
    for key, expected, wanted in checks:
        if step.get(key) is not None or (key in step and key not in ("inputs", "outputs")):
            yield from _type_problem((*path, key), f"{label}: {key}", step[key], expected, wanted)
    for key in ("maxAttempts", "timeoutSeconds"):
        number = as_int(step.get(key))
        if number is not None and number < 1:
            yield Problem("SSM001", (*path, key), f"{label}: {key} must be at least 1, got {number}")
    outputs = step.get("outputs")
    for number, output in enumerate(outputs if isinstance(outputs, list) else []):
        # Type is optional and defaults to String (automation-action-outputs-inputs.html); AWS's own
        # runbooks (e.g. AWSSupport-* describe steps) leave it out.
        if not (
            isinstance(output, Mapping)
            and isinstance(output.get("Name"), str)
            and isinstance(output.get("Selector"), str)
            and output.get("Type", "String") in OUTPUT_TYPES
        ):
            yield Problem(
                "SSM001",
                (*path, "outputs", number),
                f"{label}: outputs[{number}] needs Name, "
                f"Selector (strings) and, if given, Type (one of {sorted(OUTPUT_TYPES)})",
            )


def _target_problems(path: Path, step: Mapping[str, Any], names: set[str]) -> Iterator[Problem]:
    label = f"step {step.get('name')!r}"

    def missing(target: str) -> bool:
        return target not in names

    for key, fixed in (("onFailure", ("Abort", "Continue")), ("onCancel", ("Abort",))):
        value = step.get(key)
        if not isinstance(value, str) or value in fixed:
            continue
        if not value.startswith("step:"):
            yield Problem(
                "SSM008",
                (*path, key),
                f"{label}: {key} {value!r} must be " + " or ".join(fixed) + " or step:<name>",
            )
        elif missing(value[5:]):
            yield Problem(
                "SSM008",
                (*path, key),
                f"{label}: {key} targets unknown step {value[5:]!r}; steps are {sorted(names)}",
            )
    next_step = step.get("nextStep")
    if isinstance(next_step, str) and missing(next_step):
        yield Problem(
            "SSM008",
            (*path, "nextStep"),
            f"{label}: nextStep targets unknown step {next_step!r}; steps are {sorted(names)}",
        )
    if step.get("action") == "aws:branch" and isinstance(step.get("inputs"), Mapping):
        yield from _branch_target_problems(path, label, step["inputs"], names)


def _branch_target_problems(
    path: Path, label: str, inputs: Mapping[str, Any], names: set[str]
) -> Iterator[Problem]:
    choices = inputs.get("Choices")
    for number, choice in enumerate(choices if isinstance(choices, list) else []):
        target = choice.get("NextStep") if isinstance(choice, Mapping) else None
        if not isinstance(target, str) or target not in names:
            yield Problem(
                "SSM008",
                (*path, "inputs", "Choices", number),
                f"{label}: Choices[{number}].NextStep {target!r} is not a step; steps are {sorted(names)}",
            )
    default = inputs.get("Default")
    if default is not None and default not in names:
        yield Problem(
            "SSM008",
            (*path, "inputs", "Default"),
            f"{label}: Default {default!r} is not a step; steps are {sorted(names)}",
        )


def _loop_body(step: Mapping[str, Any]) -> Any:
    inputs = step.get("inputs")
    return inputs.get("Steps") if step.get("action") == LOOP_ACTION and isinstance(inputs, Mapping) else None


def _all_names(steps: Any) -> set[str]:
    """Every step name in a step list and the loops nested in it."""
    names: set[str] = set()
    for step in steps if isinstance(steps, list) else ():
        if isinstance(step, Mapping):
            if isinstance(step.get("name"), str):
                names.add(step["name"])
            names |= _all_names(_loop_body(step))
    return names


def _step_problems(steps: Any, path: Path, seen: set[str], everything: set[str] | None) -> Iterator[Problem]:
    """Problems of a step list (``mainSteps`` or a loop's ``inputs.Steps``) and of loops nested in it.

    Step names are unique across the whole document (``seen``): outputs are referenced by step name, also
    out of a loop. A top-level step's targets are top-level steps; a loop's steps may also jump out of
    the loop (``everything``: every step; the aws-samples distribute-ami runbook branches out of one).
    """
    where = format_path(path)
    if not isinstance(steps, list) or not steps:
        yield Problem("SSM001", path, f"{where} is required and must be a non-empty list of steps")
        return
    names: set[str] = set()
    for index, step in enumerate(steps):
        step_path: Path = (*path, index)
        if not isinstance(step, Mapping):
            yield Problem("SSM001", step_path, f"{where}[{index}] must be a mapping")
            continue
        yield from _step_key_problems(step_path, step)
        name = step.get("name")
        if isinstance(name, str):
            if not STEP_NAME.fullmatch(name):
                yield Problem(
                    "SSM006",
                    (*step_path, "name"),
                    f"step name {name!r} is invalid: use 1-128 letters, digits and underscores",
                )
            if name in seen:
                yield Problem(
                    "SSM007",
                    (*step_path, "name"),
                    f"step name {name!r} is used twice; step names must be unique",
                )
            seen.add(name)
            names.add(name)
        if step.get("action") == LOOP_ACTION and isinstance(step.get("inputs"), Mapping):
            body = _loop_body(step)
            every = _all_names(steps) if everything is None else everything  # None: this is mainSteps
            yield from _step_problems(body, (*step_path, "inputs", "Steps"), seen, every)
    for index, step in enumerate(steps):
        if isinstance(step, Mapping):
            yield from _target_problems((*path, index), step, names if everything is None else everything)


def structural_problems(data: Any) -> list[Problem]:
    """Every problem that makes ``data`` unusable as a schema-0.3 runbook (empty list = structurally fine)."""
    if not isinstance(data, Mapping):
        return [Problem("SSM001", (), "a runbook must be a mapping with schemaVersion and mainSteps")]
    template_keys = sorted(set(data) & CHANGE_TEMPLATE_KEYS, key=str)
    problems = [
        Problem("SSM001", (key,), f"unknown top-level key {key!r}; allowed keys are {sorted(TOP_LEVEL_KEYS)}")
        for key in sorted(set(data) - TOP_LEVEL_KEYS - CHANGE_TEMPLATE_KEYS, key=str)
    ]
    if template_keys:
        problems.append(
            Problem(
                "SSM001",
                (template_keys[0],),
                f"a Change Manager change template (it has {', '.join(template_keys)}), not a runbook: AWS "
                "runs it with StartChangeRequestExecution, never StartAutomationExecution; start a runbook "
                "it lists under executableRunBooks instead",
            )
        )
    if str(data.get("schemaVersion")) != SCHEMA_VERSION:
        problems.append(
            Problem(
                "SSM002",
                ("schemaVersion",),
                f"schemaVersion must be '{SCHEMA_VERSION}' "
                f"(Automation runbook), got {data.get('schemaVersion')!r}",
            )
        )
    for key in ("description", "assumeRole"):
        if key in data and not isinstance(data[key], str):
            problems.append(Problem("SSM001", (key,), f"{key} must be a string"))
    outputs = data.get("outputs") or []  # an empty ``outputs:`` is null, and AWS accepts it
    if not isinstance(outputs, list) or not all(isinstance(item, str) for item in outputs):
        problems.append(Problem("SSM001", ("outputs",), "outputs must be a list of 'step.Output' strings"))
    problems.extend(_parameter_problems(data.get("parameters") or {}))
    problems.extend(_variable_problems(data.get("variables")))
    if data.get("files") is not None and not isinstance(data.get("files"), Mapping):
        problems.append(Problem("SSM001", ("files",), "files must be a mapping of file name -> {checksums}"))
    steps = data.get("mainSteps")
    problems.extend(_step_problems(steps, ("mainSteps",), set(), None))
    return problems
