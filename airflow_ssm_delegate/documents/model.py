"""The one schema-0.3 runbook model shared by the hook's policy checks, the local engine, lint and iam.

``parse_runbook`` refuses documents the runtime could not execute safely (structure, schemaVersion, step
names and targets, parameter declarations) with a ``RunbookError`` naming the key. Lint reports the same
problems (``structural_problems``) with source lines, plus the semantic rules only an author needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from airflow_ssm_delegate.documents.parameters import (
    MISSING,
    PARAMETER_TYPES,
    ParameterSpec,
    ParameterValidationError,
    compile_pattern,
    resolve_parameters,
    to_api_parameters,
)
from airflow_ssm_delegate.documents.source import Path, SourceError, load_with_lines

__all__ = [
    "MISSING",
    "SCHEMA_VERSION",
    "ParameterSpec",
    "ParameterValidationError",
    "Problem",
    "Runbook",
    "RunbookError",
    "StepSpec",
    "load_runbook",
    "parse_runbook",
    "resolve_parameters",
    "structural_problems",
    "to_api_parameters",
]

SCHEMA_VERSION = "0.3"
STEP_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")
TOP_LEVEL_KEYS = frozenset(
    {"schemaVersion", "description", "assumeRole", "parameters", "variables", "outputs", "mainSteps", "files"}
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
OUTPUT_TYPES = frozenset(PARAMETER_TYPES)
_INT_PARAMETER_KEYS = {
    "minItems": "min_items",
    "maxItems": "max_items",
    "minChars": "min_chars",
    "maxChars": "max_chars",
}
_ROLE_REFERENCE = re.compile(r"^\{\{\s*([A-Za-z0-9_]+)\s*\}\}$")


class RunbookError(ValueError):
    """The document is not a valid schema-0.3 runbook; the message names each offending key."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problem.message for problem in problems))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: lint ``code``, ``path`` to the key, and a message saying the fix."""

    code: str
    path: Path
    message: str


@dataclass(frozen=True)
class StepSpec:
    """One entry of ``mainSteps``."""

    name: str
    action: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[dict[str, Any], ...] = ()
    on_failure: str = "Abort"
    on_cancel: str = "Abort"
    max_attempts: int = 1
    timeout_seconds: int | None = None
    is_end: bool = False
    next_step: str | None = None
    is_critical: bool = True
    line: int | None = None


@dataclass(frozen=True)
class Runbook:
    """A parsed runbook; ``raw`` is the document as loaded (for rendering and hashing callers)."""

    schema_version: str
    description: str | None
    assume_role: str | None
    parameters: dict[str, ParameterSpec]
    steps: tuple[StepSpec, ...]
    outputs: tuple[str, ...]
    raw: dict[str, Any]

    @property
    def assume_role_parameter(self) -> str | None:
        """``"{{ AutomationAssumeRole }}"`` -> ``"AutomationAssumeRole"``; None for a literal or no role."""
        match = _ROLE_REFERENCE.match(self.assume_role or "")
        return match.group(1) if match else None

    def step(self, name: str) -> StepSpec:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"runbook has no step {name!r}; steps are {[s.name for s in self.steps]}")


def _type_problem(
    path: Path, key: str, value: Any, expected: type | tuple[type, ...], wanted: str
) -> list[Problem]:
    if isinstance(value, bool) and expected is int:
        return [Problem("SSM001", path, f"{key} must be {wanted}, got {value!r}")]
    if not isinstance(value, expected):
        return [Problem("SSM001", path, f"{key} must be {wanted}, got {type(value).__name__} {value!r}")]
    return []


def _parameter_problems(parameters: Any) -> Iterator[Problem]:
    if not isinstance(parameters, Mapping):
        yield Problem("SSM001", ("parameters",), "parameters must be a mapping of name -> declaration")
        return
    for name, declaration in parameters.items():
        path: Path = ("parameters", name)
        if not isinstance(declaration, Mapping):
            yield Problem("SSM011", path, f"parameter {name}: declaration must be a mapping with a type")
            continue
        for key in sorted(set(declaration) - PARAMETER_KEYS, key=str):
            yield Problem(
                "SSM011",
                (*path, key),
                f"parameter {name}: unknown key {key!r}; allowed keys are {sorted(PARAMETER_KEYS)}",
            )
        if declaration.get("type") not in PARAMETER_TYPES:
            yield Problem(
                "SSM011",
                (*path, "type"),
                f"parameter {name}: type {declaration.get('type')!r} is not one of {list(PARAMETER_TYPES)}",
            )
        for key in _INT_PARAMETER_KEYS:
            if key in declaration:
                for problem in _type_problem(
                    (*path, key), f"parameter {name}: {key}", declaration[key], int, "an integer"
                ):
                    yield Problem("SSM011", problem.path, problem.message)
        if "allowedValues" in declaration and not isinstance(declaration["allowedValues"], list):
            yield Problem(
                "SSM011", (*path, "allowedValues"), f"parameter {name}: allowedValues must be a list"
            )
        pattern = declaration.get("allowedPattern")
        if pattern is not None:
            yield from _pattern_problems(name, (*path, "allowedPattern"), pattern)


def _pattern_problems(name: str, path: Path, pattern: Any) -> Iterator[Problem]:
    if not isinstance(pattern, str):
        yield Problem("SSM013", path, f"parameter {name}: allowedPattern must be a string")
        return
    try:
        compile_pattern(pattern)
    except re.error as exc:
        yield Problem(
            "SSM013",
            path,
            f"parameter {name}: allowedPattern {pattern!r} is not a valid regular "
            f"expression ({exc}); write it in the syntax shared by Java and Python",
        )


def _step_key_problems(index: int, step: Mapping[str, Any]) -> Iterator[Problem]:
    path: Path = ("mainSteps", index)
    label = f"mainSteps[{index}]" + (f" ({step['name']})" if isinstance(step.get("name"), str) else "")
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
        if key in step:
            yield from _type_problem((*path, key), f"{label}: {key}", step[key], expected, wanted)
    for key in ("maxAttempts", "timeoutSeconds"):
        value = step.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            yield Problem("SSM001", (*path, key), f"{label}: {key} must be at least 1, got {value}")
    outputs = step.get("outputs")
    for number, output in enumerate(outputs if isinstance(outputs, list) else []):
        if not (
            isinstance(output, Mapping)
            and isinstance(output.get("Name"), str)
            and isinstance(output.get("Selector"), str)
            and output.get("Type") in OUTPUT_TYPES
        ):
            yield Problem(
                "SSM001",
                (*path, "outputs", number),
                f"{label}: outputs[{number}] needs Name, "
                f"Selector (strings) and Type (one of {sorted(OUTPUT_TYPES)})",
            )


def _target_problems(index: int, step: Mapping[str, Any], names: set[str]) -> Iterator[Problem]:
    path: Path = ("mainSteps", index)
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


def _step_problems(steps: Any) -> Iterator[Problem]:
    if not isinstance(steps, list) or not steps:
        yield Problem("SSM001", ("mainSteps",), "mainSteps is required and must be a non-empty list of steps")
        return
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            yield Problem("SSM001", ("mainSteps", index), f"mainSteps[{index}] must be a mapping")
            continue
        yield from _step_key_problems(index, step)
        name = step.get("name")
        if isinstance(name, str):
            if not STEP_NAME.fullmatch(name):
                yield Problem(
                    "SSM006",
                    ("mainSteps", index, "name"),
                    f"step name {name!r} is invalid: use 1-128 letters, digits and underscores",
                )
            if name in seen:
                yield Problem(
                    "SSM007",
                    ("mainSteps", index, "name"),
                    f"step name {name!r} is used twice; step names must be unique",
                )
            seen.add(name)
    for index, step in enumerate(steps):
        if isinstance(step, Mapping):
            yield from _target_problems(index, step, seen)


def structural_problems(data: Any) -> list[Problem]:
    """Every problem that makes ``data`` unusable as a schema-0.3 runbook (empty list = structurally fine)."""
    if not isinstance(data, Mapping):
        return [Problem("SSM001", (), "a runbook must be a mapping with schemaVersion and mainSteps")]
    problems = [
        Problem("SSM001", (key,), f"unknown top-level key {key!r}; allowed keys are {sorted(TOP_LEVEL_KEYS)}")
        for key in sorted(set(data) - TOP_LEVEL_KEYS, key=str)
    ]
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
    outputs = data.get("outputs", [])
    if not isinstance(outputs, list) or not all(isinstance(item, str) for item in outputs):
        problems.append(Problem("SSM001", ("outputs",), "outputs must be a list of 'step.Output' strings"))
    problems.extend(_parameter_problems(data.get("parameters", {})))
    problems.extend(_step_problems(data.get("mainSteps")))
    return problems


def parameter_spec(name: str, declaration: Mapping[str, Any]) -> ParameterSpec:
    allowed = declaration.get("allowedValues")
    return ParameterSpec(
        name=name,
        type=declaration["type"],
        default=declaration.get("default", MISSING),
        allowed_values=tuple(allowed) if allowed is not None else None,
        allowed_pattern=declaration.get("allowedPattern"),
        description=declaration.get("description"),
        **{attr: declaration.get(key) for key, attr in _INT_PARAMETER_KEYS.items()},
    )


def _step_spec(step: Mapping[str, Any], line: int | None) -> StepSpec:
    return StepSpec(
        name=step["name"],
        action=step["action"],
        inputs=dict(step.get("inputs") or {}),
        outputs=tuple(step.get("outputs") or ()),
        on_failure=step.get("onFailure", "Abort"),
        on_cancel=step.get("onCancel", "Abort"),
        max_attempts=step.get("maxAttempts", 1),
        timeout_seconds=step.get("timeoutSeconds"),
        is_end=step.get("isEnd", False),
        next_step=step.get("nextStep"),
        is_critical=step.get("isCritical", True),
        line=line,
    )


def build_runbook(data: Mapping[str, Any], lines: Mapping[Path, int], source: str = "<runbook>") -> Runbook:
    """The model of already-loaded ``data``; raises ``RunbookError`` listing every structural problem."""
    problems = structural_problems(data)
    if problems:
        raise RunbookError(source, problems)
    return Runbook(
        schema_version=SCHEMA_VERSION,
        description=data.get("description"),
        assume_role=data.get("assumeRole"),
        parameters={
            name: parameter_spec(name, decl) for name, decl in (data.get("parameters") or {}).items()
        },
        steps=tuple(
            _step_spec(step, lines.get(("mainSteps", i))) for i, step in enumerate(data["mainSteps"])
        ),
        outputs=tuple(data.get("outputs") or ()),
        raw=dict(data),
    )


def parse_runbook(content: str | bytes | Mapping[str, Any], source: str = "<runbook>") -> Runbook:
    """Parse YAML or JSON text (or an already-loaded mapping) into a ``Runbook``."""
    if isinstance(content, Mapping):
        return build_runbook(content, {}, source)
    try:
        data, lines = load_with_lines(content)
    except SourceError as exc:
        raise RunbookError(source, [Problem("SSM001", (), str(exc))]) from exc
    return build_runbook(data, lines, source)


def load_runbook(path: str | FilePath) -> Runbook:
    """Parse the runbook file at ``path`` (YAML or JSON)."""
    file_path = FilePath(path)
    return parse_runbook(file_path.read_text(encoding="utf-8"), source=str(file_path))
