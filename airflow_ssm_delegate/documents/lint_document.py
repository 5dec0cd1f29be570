"""Lint rules about the document as a whole: parameter values, the service role, durations, 12 hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import isodate

from airflow_ssm_delegate.documents.actions import is_reference
from airflow_ssm_delegate.documents.lint_steps import loop_steps
from airflow_ssm_delegate.documents.model import Problem, parameter_spec
from airflow_ssm_delegate.documents.parameters import (
    PARAMETER_TYPES,
    ParameterSpec,
    base_type,
    check_value,
    default_value,
    from_api_items,
    pattern_problem,
)
from airflow_ssm_delegate.documents.references import REFERENCE, find_references
from airflow_ssm_delegate.documents.structure import LOOP_ACTION, unknown_parameter_keys
from airflow_ssm_delegate.documents.values import as_int

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.lint_steps import LintStep
    from airflow_ssm_delegate.documents.source import Path

SESSION_LIMIT = dt.timedelta(hours=12)
MAX_SLEEP = dt.timedelta(days=7)
#: aws:loop runs at most 100 iterations (automation-action-loop.html).
MAX_LOOP_ITERATIONS = 100
#: How long a step may wait when it declares no timeoutSeconds (AWS defaults).
DEFAULT_WAITS = {"aws:approve": dt.timedelta(days=7)}
UNBOUNDED = dt.timedelta.max


def unknown_key_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    """SSM021: parameter keys AWS does not document (the model ignores them)."""
    yield from unknown_parameter_keys(data.get("parameters"))


def pattern_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    """SSM013: an allowedPattern that Java's regex syntax (as ``javaregex`` reads it) cannot compile."""
    parameters = data.get("parameters")
    for name, declaration in parameters.items() if isinstance(parameters, Mapping) else []:
        pattern = declaration.get("allowedPattern") if isinstance(declaration, Mapping) else None
        problem = pattern_problem(pattern) if isinstance(pattern, str) else None
        if problem and isinstance(pattern, str):
            yield Problem(
                "SSM013",
                ("parameters", name, "allowedPattern"),
                f"parameter {name}: allowedPattern {pattern[:80]!r} is not a valid Java regular expression "
                f"({problem})",
            )


def parameter_value_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    parameters = data.get("parameters")
    for name, declaration in parameters.items() if isinstance(parameters, Mapping) else []:
        if not isinstance(declaration, Mapping) or declaration.get("type") not in PARAMETER_TYPES:
            continue  # reported as SSM011
        pattern = declaration.get("allowedPattern")
        if pattern is not None and (not isinstance(pattern, str) or pattern_problem(pattern)):
            continue  # reported as SSM011 / SSM013; values can't be checked against it
        try:
            spec = parameter_spec(name, declaration)
        except (TypeError, ValueError):
            continue  # malformed keys are reported as SSM011
        path: Path = ("parameters", name)
        allowed = declaration.get("allowedValues")
        if isinstance(allowed, list):
            if base_type(spec.type) in ("MapList", "StringMap"):
                yield Problem(
                    "SSM012",
                    (*path, "allowedValues"),
                    f"parameter {name}: allowedValues is not supported for type {spec.type}",
                )
            bare = _bare(spec)
            for value in allowed:
                _, problems = check_value(bare, _as_listed(bare, value))
                for problem in problems:
                    yield Problem(
                        "SSM012", (*path, "allowedValues"), f"parameter {problem} (in allowedValues)"
                    )
        if not spec.required and not find_references(spec.default):
            yield from _default_problems(spec, path)


def _default_problems(spec: ParameterSpec, path: Path) -> Iterator[Problem]:
    """SSM012 for a default of the wrong type; SSM026 (a warning) for one its own constraints reject,
    which AWS accepts and starts with (``default_value`` says where AWS does so)."""
    items, type_problems = default_value(spec)
    for problem in type_problems:
        yield Problem(
            "SSM012", (*path, "default"), f"parameter {problem} (the default); fix the default or the type"
        )
    if not type_problems:
        _, problems = check_value(spec, from_api_items(spec, items))
        for problem in problems:
            yield Problem(
                "SSM026",
                (*path, "default"),
                f"parameter {problem} (the default): AWS starts with it unchecked, but a caller could "
                "not pass it; fix the default or the constraint",
            )


#: One item of a list type, as allowedValues lists them (``List<AWS::EC2::Instance::Id>`` keeps its pattern).
LIST_ITEM_TYPES = {
    "StringList": "String",
    **{name: name[5:-1] for name in PARAMETER_TYPES if name.startswith("List<")},
}


def _as_listed(item_spec: ParameterSpec, value: Any) -> Any:
    """A number listed for a String item is its text, as AWS compares it (AWSConfigRemediation-
    EnableCloudFrontOriginFailover lists HTTP status codes ``[403, 404]`` for a StringList)."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return str(value) if numeric and base_type(item_spec.type) == "String" else value


def _bare(spec: ParameterSpec) -> ParameterSpec:
    """The declaration without constraints: checks one allowedValues item against the type only."""
    item_type = LIST_ITEM_TYPES.get(spec.type, spec.type)
    return replace(
        spec, type=item_type, allowed_values=None, allowed_pattern=None, min_items=None, max_items=None
    )


def _declaration(value: Any, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The declaration of the parameter ``value`` is exactly a reference to (``"{{ P }}"``), if declared."""
    match = REFERENCE.fullmatch(value.strip()) if isinstance(value, str) else None
    parameters = data.get("parameters")
    declaration = parameters.get(match.group(1)) if match and isinstance(parameters, Mapping) else None
    return declaration if isinstance(declaration, Mapping) else None


def role_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    role = data.get("assumeRole")
    if role is None:
        yield Problem(
            "SSM015",
            (),
            "no assumeRole: the runbook runs on the caller's session and rights; add "
            "assumeRole: '{{ AutomationAssumeRole }}' and that String parameter",
        )
        return
    declaration = _declaration(role, data)
    if declaration is None or base_type(str(declaration.get("type"))) != "String":
        yield Problem(
            "SSM015",
            ("assumeRole",),
            f"assumeRole {role!r} must be '{{{{ P }}}}' for a declared "
            "String parameter P, so the service role is chosen (and checked) per execution",
        )


def _duration(value: Any, data: Mapping[str, Any]) -> dt.timedelta | None:
    """A literal or parameter-default ISO-8601 duration; None when unknown or invalid."""
    if is_reference(value):
        declaration = _declaration(value, data)
        value = declaration.get("default") if declaration is not None else None
    if not isinstance(value, str):
        return None
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        return None
    if isinstance(parsed, isodate.Duration):
        parsed = parsed.totimedelta(start=dt.datetime(2000, 1, 1))
    return parsed if isinstance(parsed, dt.timedelta) else None


def sleep_problems(data: Mapping[str, Any], steps: list[LintStep]) -> Iterator[Problem]:
    for step in steps:
        duration = step.inputs.get("Duration")
        if step.action != "aws:sleep" or duration is None:
            continue
        parsed = _duration(duration, data)
        if parsed is None and not (is_reference(duration) and _duration_is_runtime_only(duration, data)):
            yield Problem(
                "SSM019",
                (*step.path, "inputs", "Duration"),
                f"step {step.name}: Duration {duration!r} is not an ISO-8601 duration such as PT30M or PT6H",
            )
        elif parsed is not None and parsed > MAX_SLEEP:
            yield Problem(
                "SSM019",
                (*step.path, "inputs", "Duration"),
                f"step {step.name}: Duration {duration!r} is longer than aws:sleep's maximum of 7 days",
            )


def _duration_is_runtime_only(value: str, data: Mapping[str, Any]) -> bool:
    """A reference to a parameter without a default: its length is only known at start."""
    declaration = _declaration(value, data)
    return declaration is None or "default" not in declaration


def _step_bound(step: LintStep, data: Mapping[str, Any]) -> dt.timedelta:
    timeout = as_int(step.raw.get("timeoutSeconds"))  # AWS reads '600' as 600
    attempts = as_int(step.raw.get("maxAttempts", 1))
    attempts = attempts if attempts is not None and attempts > 0 else 1
    if step.action == "aws:sleep":
        if "Timestamp" in step.inputs:
            return UNBOUNDED
        duration = _duration(step.inputs.get("Duration"), data)
        return UNBOUNDED if duration is None else duration
    if timeout is not None:
        return dt.timedelta(seconds=max(timeout, 0)) * attempts
    if step.action == "aws:pause":
        return UNBOUNDED
    if step.action == LOOP_ACTION:
        return _loop_bound(step, data)
    return DEFAULT_WAITS.get(step.action, dt.timedelta(0)) * attempts


def _loop_bound(step: LintStep, data: Mapping[str, Any]) -> dt.timedelta:
    """One pass over the loop's steps times its iterations (MaxIterations, else AWS's maximum of 100)."""
    iterations = as_int(step.inputs.get("MaxIterations"))
    iterators = step.inputs.get("Iterators")
    if iterations is None and isinstance(iterators, list):
        iterations = len(iterators)
    iterations = min(MAX_LOOP_ITERATIONS, iterations if iterations is not None and iterations > 0 else 100)
    once = dt.timedelta(0)
    for inner in loop_steps(step):
        bound = _step_bound(inner, data)
        if bound == UNBOUNDED or UNBOUNDED - once <= bound:
            return UNBOUNDED
        once += bound
    return UNBOUNDED if once and UNBOUNDED / once <= iterations else once * iterations


def _role_optional_because(data: Mapping[str, Any]) -> str | None:
    """Why the runbook may run without a service role (None: it always has one)."""
    role = data.get("assumeRole")
    if not role:
        return "without assumeRole the runbook runs"
    declaration = _declaration(role, data)
    if declaration is not None and declaration.get("default") == "":
        return f"assumeRole {role} defaults to '', so started without a role the runbook runs"
    return None


def session_problems(data: Mapping[str, Any], steps: list[LintStep]) -> Iterator[Problem]:
    because = _role_optional_because(data)
    if because is None:
        return
    total = dt.timedelta(0)
    for step in steps:
        bound = _step_bound(step, data)
        total = UNBOUNDED if UNBOUNDED - total <= bound else total + bound
        if total > SESSION_LIMIT:
            yield Problem(
                "SSM016",
                (*step.path, "name"),
                f"{because} on the caller's session, which expires 12 hours after the start; by step "
                f"{step.name} its sleeps and timeouts can exceed that — require a service role",
            )
            return
