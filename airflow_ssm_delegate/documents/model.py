"""The one schema-0.3 runbook model shared by the hook's policy checks, the local engine, lint and iam.

``parse_runbook`` refuses documents the runtime could not execute safely (structure, schemaVersion, step
names and targets, parameter declarations: ``structure``) with a ``RunbookError`` naming the key. Lint
reports the same problems with source lines, plus the semantic rules only an author needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from airflow_ssm_delegate.documents.parameters import (
    MISSING,
    ParameterSpec,
    ParameterValidationError,
    resolve_parameters,
    to_api_parameters,
)
from airflow_ssm_delegate.documents.source import Path, SourceError, load_source
from airflow_ssm_delegate.documents.structure import (
    INT_PARAMETER_KEYS,
    LOOP_ACTION,
    SCHEMA_VERSION,
    Problem,
    structural_problems,
)
from airflow_ssm_delegate.documents.values import as_bool, as_int

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

_ROLE_REFERENCE = re.compile(r"^\{\{\s*([A-Za-z0-9_]+)\s*\}\}$")


class RunbookError(ValueError):
    """The document is not a valid schema-0.3 runbook; the message names each offending key."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problem.message for problem in problems))


@dataclass(frozen=True)
class StepSpec:
    """One entry of ``mainSteps`` (or of an ``aws:loop``'s ``inputs.Steps``).

    Scalars are already coerced as AWS reads them (``isEnd: 'true'`` is True, ``maxAttempts: '3'`` is 3).
    For ``aws:loop`` the nested steps are parsed into ``steps`` and removed from ``inputs``: they are
    rendered per iteration (``{{ loop.CurrentIteratorValue }}``), never once at the loop's start.
    """

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
    steps: tuple[StepSpec, ...] = ()
    description: str | None = None

    def walk(self) -> Iterator[StepSpec]:
        """This step, then every step nested in it (loops in loops), depth first."""
        yield self
        for inner in self.steps:
            yield from inner.walk()


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
    #: Top-level ``variables`` (type, default, description), read and changed by aws:updateVariable.
    variables: dict[str, ParameterSpec] = field(default_factory=dict)
    #: Top-level ``files`` (attachments of aws:executeScript), as written.
    files: dict[str, Any] = field(default_factory=dict)

    @property
    def assume_role_parameter(self) -> str | None:
        """``"{{ AutomationAssumeRole }}"`` -> ``"AutomationAssumeRole"``; None for a literal or no role."""
        match = _ROLE_REFERENCE.match(self.assume_role or "")
        return match.group(1) if match else None

    def all_steps(self) -> Iterator[StepSpec]:
        """Every step, including those nested in aws:loop steps (for permissions and lookups)."""
        for step in self.steps:
            yield from step.walk()

    def step(self, name: str) -> StepSpec:
        """The step called ``name``, at top level or nested in a loop."""
        for step in self.all_steps():
            if step.name == name:
                return step
        raise KeyError(f"runbook has no step {name!r}; steps are {[s.name for s in self.all_steps()]}")


def parameter_spec(name: str, declaration: Mapping[str, Any]) -> ParameterSpec:
    allowed = declaration.get("allowedValues")
    return ParameterSpec(
        name=name,
        type=declaration.get("type", "String"),
        default=declaration.get("default", MISSING),
        allowed_values=tuple(allowed) if allowed is not None else None,
        allowed_pattern=declaration.get("allowedPattern"),
        description=declaration.get("description"),
        **{attr: as_int(declaration.get(key)) for key, attr in INT_PARAMETER_KEYS.items()},
    )


def _flag(step: Mapping[str, Any], key: str, default: bool) -> bool:
    value = as_bool(step.get(key, default))
    return default if value is None else value


def _step_spec(step: Mapping[str, Any], path: Path, lines: Mapping[Path, int]) -> StepSpec:
    inputs = dict(step.get("inputs") or {})
    nested: tuple[StepSpec, ...] = ()
    if step["action"] == LOOP_ACTION:
        body = inputs.pop("Steps", None) or []
        nested = tuple(
            _step_spec(inner, (*path, "inputs", "Steps", i), lines) for i, inner in enumerate(body)
        )
    timeout = step.get("timeoutSeconds")
    return StepSpec(
        name=step["name"],
        action=step["action"],
        inputs=inputs,
        outputs=tuple(step.get("outputs") or ()),
        on_failure=step.get("onFailure", "Abort"),
        on_cancel=step.get("onCancel", "Abort"),
        max_attempts=as_int(step.get("maxAttempts", 1)) or 1,
        timeout_seconds=None if timeout is None else as_int(timeout),
        is_end=_flag(step, "isEnd", False),
        next_step=step.get("nextStep"),
        is_critical=_flag(step, "isCritical", True),
        line=lines.get(path),
        steps=nested,
        description=step.get("description"),
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
        steps=tuple(_step_spec(step, ("mainSteps", i), lines) for i, step in enumerate(data["mainSteps"])),
        outputs=tuple(data.get("outputs") or ()),
        raw=dict(data),
        variables={name: parameter_spec(name, decl) for name, decl in (data.get("variables") or {}).items()},
        files=dict(data.get("files") or {}),
    )


def parse_runbook(content: str | bytes | Mapping[str, Any], source: str = "<runbook>") -> Runbook:
    """Parse YAML or JSON text (or an already-loaded mapping) into a ``Runbook``."""
    if isinstance(content, Mapping):
        return build_runbook(content, {}, source)
    try:
        loaded = load_source(content)
    except SourceError as exc:
        raise RunbookError(source, [Problem("SSM001", (), str(exc))]) from exc
    return build_runbook(loaded.data, loaded.lines, source)


def load_runbook(path: str | FilePath) -> Runbook:
    """Parse the runbook file at ``path`` (YAML or JSON)."""
    file_path = FilePath(path)
    return parse_runbook(file_path.read_text(encoding="utf-8"), source=str(file_path))
