"""Offline runbook lint: the mistakes AWS would otherwise report only when the runbook runs.

Structural rules come from the model (the same checks that make the runtime refuse a document); the
rules here are the semantic ones only an author needs: actions and inputs, reachability, references,
parameter defaults, outputs, the service role and the 12-hour session limit. Every finding has a code
(``RULES``) and the source line, printed as ``file:line: CODE message``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path as FilePath
from typing import Any

import isodate
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

from airflow_ssm_delegate.documents.actions import ACTIONS, api_operation, is_reference, operation_names
from airflow_ssm_delegate.documents.model import Problem, parameter_spec, structural_problems
from airflow_ssm_delegate.documents.parameters import PARAMETER_TYPES, ParameterSpec, check_value
from airflow_ssm_delegate.documents.references import REFERENCE, find_references
from airflow_ssm_delegate.documents.source import Path, SourceError, line_of, load_with_lines

RULES: dict[str, str] = {
    "SSM001": "document structure (keys, types, required fields)",
    "SSM002": "schemaVersion is '0.3'",
    "SSM003": "action is a documented aws:* action",
    "SSM004": "required inputs of the action are present",
    "SSM005": "inputs are ones the action accepts",
    "SSM006": "step names are valid",
    "SSM007": "step names are unique",
    "SSM008": "nextStep / onFailure / onCancel / branch targets exist",
    "SSM009": "every step is reachable",
    "SSM010": "every {{ }} reference resolves",
    "SSM011": "parameter declarations are well-formed",
    "SSM012": "defaults and allowedValues are consistent with the parameter's type and constraints",
    "SSM013": "allowedPattern is a valid regular expression",
    "SSM014": "runbook outputs name real step outputs",
    "SSM015": "assumeRole is a reference to a declared String parameter",
    "SSM016": "a runbook that can run over 12 hours has a service role",
    "SSM017": "executeAwsApi / assert / waitFor name a real Service and Api",
    "SSM018": "step output Selectors are valid JSONPath",
    "SSM019": "aws:sleep Duration is ISO-8601 (at most 7 days) or Timestamp",
}
GLOBALS = frozenset({"ACCOUNT_ID", "REGION", "DATE", "DATE_TIME", "AWS_PARTITION"})
AUTOMATION_VARIABLES = frozenset({"EXECUTION_ID"})
SESSION_LIMIT = dt.timedelta(hours=12)
MAX_SLEEP = dt.timedelta(days=7)
#: How long a step may wait when it declares no timeoutSeconds (AWS defaults).
DEFAULT_WAITS = {"aws:approve": dt.timedelta(days=7)}
UNBOUNDED = dt.timedelta.max


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Step:
    """A step as lint sees it: only steps with a string name and action are checked semantically."""

    index: int
    name: str
    action: str
    inputs: Mapping[str, Any]
    raw: Mapping[str, Any]

    @property
    def path(self) -> Path:
        return ("mainSteps", self.index)


def _steps(data: Mapping[str, Any]) -> list[_Step]:
    steps = data.get("mainSteps")
    result = []
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if (
            isinstance(step, Mapping)
            and isinstance(step.get("name"), str)
            and isinstance(step.get("action"), str)
        ):
            inputs = step.get("inputs")
            result.append(
                _Step(
                    index, step["name"], step["action"], inputs if isinstance(inputs, Mapping) else {}, step
                )
            )

    return result


def _action_problems(step: _Step) -> Iterator[Problem]:
    spec = ACTIONS.get(step.action)
    if spec is None:
        yield Problem(
            "SSM003",
            (*step.path, "action"),
            f"step {step.name}: unknown action {step.action!r}; "
            "see the schema-0.3 action reference (e.g. aws:executeAwsApi)",
        )
        return
    given = set(step.inputs)
    for name in sorted(spec.required - given):
        yield Problem(
            "SSM004", (*step.path, "inputs"), f"step {step.name}: {step.action} requires input {name}"
        )
    for group in spec.one_of:
        if len(group & given) != 1:
            yield Problem(
                "SSM004" if not group & given else "SSM005",
                (*step.path, "inputs"),
                f"step {step.name}: {step.action} takes exactly one of {sorted(group)}",
            )
    if not spec.api_parameters:
        allowed = spec.required | spec.optional | frozenset().union(*spec.one_of)
        for name in sorted(given - allowed, key=str):
            yield Problem(
                "SSM005",
                (*step.path, "inputs", name),
                f"step {step.name}: {step.action} has no input "
                f"{name!r}; accepted inputs are {sorted(allowed)}",
            )
    else:
        yield from _api_problems(step)


def _api_problems(step: _Step) -> Iterator[Problem]:
    service, api = step.inputs.get("Service"), step.inputs.get("Api")
    if not isinstance(service, str) or not isinstance(api, str) or is_reference(service) or is_reference(api):
        return
    if operation_names(service.lower()) is None:
        yield Problem(
            "SSM017",
            (*step.path, "inputs", "Service"),
            f"step {step.name}: {service!r} is not an AWS "
            "service name as boto3 spells it (e.g. ec2, ssm, s3)",
        )
    elif api_operation(service, api) is None:
        yield Problem(
            "SSM017",
            (*step.path, "inputs", "Api"),
            f"step {step.name}: {api!r} is not an operation of "
            f"{service} (write it as in the API reference, e.g. DescribeInstances)",
        )


def _target(value: Any) -> str | None:
    return value[5:] if isinstance(value, str) and value.startswith("step:") else None


def _successors(step: _Step, following: str | None) -> set[str]:
    raw = step.raw
    targets = {_target(raw.get("onFailure")), _target(raw.get("onCancel"))}
    if step.action == "aws:branch":
        choices = step.inputs.get("Choices")
        targets |= (
            {c.get("NextStep") for c in choices if isinstance(c, Mapping)}
            if isinstance(choices, list)
            else set()
        )
        targets.add(step.inputs.get("Default"))
    elif isinstance(raw.get("nextStep"), str):
        targets.add(raw["nextStep"])
    elif raw.get("isEnd") is not True:
        targets.add(following)
    return {target for target in targets if isinstance(target, str)}


def _reachability_problems(steps: list[_Step]) -> Iterator[Problem]:
    if not steps:
        return
    by_name = {step.name: step for step in steps}
    following = {step.name: steps[i + 1].name if i + 1 < len(steps) else None for i, step in enumerate(steps)}
    seen, todo = set(), [steps[0].name]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(_successors(by_name[name], following[name]))
    for step in steps:
        if step.name not in seen:
            yield Problem(
                "SSM009",
                (*step.path, "name"),
                f"step {step.name} can never run: no step leads to it "
                "(add a nextStep/onFailure/branch to it, or remove isEnd before it)",
            )


def _output_names(step: _Step) -> set[str]:
    spec = ACTIONS.get(step.action)
    declared = step.raw.get("outputs")
    names = (
        {o.get("Name") for o in declared if isinstance(o, Mapping)} if isinstance(declared, list) else set()
    )
    return set(spec.outputs if spec else ()) | {name for name in names if isinstance(name, str)}


def _reference_problem(
    expr: str, step: _Step, data: Mapping[str, Any], earlier: dict[str, _Step]
) -> str | None:
    prefix, _, rest = expr.partition(":")
    if rest:
        known = {"global": GLOBALS, "automation": AUTOMATION_VARIABLES}.get(prefix)
        if known is not None:
            return None if rest in known else f"{prefix}:{rest} is not one of {sorted(known)}"
        if prefix == "variable":
            variables = data.get("variables")
            return (
                None
                if isinstance(variables, Mapping) and rest in variables
                else f"variable {rest} is not declared"
            )
        return None if prefix == "ssm" else f"unknown reference prefix {prefix!r}"
    name, _, output = expr.partition(".")
    if not output:
        parameters = data.get("parameters")
        if isinstance(parameters, Mapping) and name in parameters:
            return None
        return f"{{{{ {expr} }}}} is not a declared parameter; declare it under parameters"
    if name not in earlier:
        return f"{{{{ {expr} }}}}: {name} is not a step that runs before {step.name}"
    outputs = _output_names(earlier[name])
    if output not in outputs:
        return f"{{{{ {expr} }}}}: step {name} has no output {output!r}; it has {sorted(outputs)}"
    return None


def _reference_problems(data: Mapping[str, Any], steps: list[_Step]) -> Iterator[Problem]:
    earlier: dict[str, _Step] = {}
    for step in steps:
        if step.action == "aws:loop":
            earlier[step.name] = step  # a loop's inner steps read its CurrentIteratorValue
        for key, value in step.inputs.items():
            for expr in find_references(value):
                message = _reference_problem(expr, step, data, earlier)
                if message:
                    yield Problem("SSM010", (*step.path, "inputs", key), f"step {step.name}: {message}")
        earlier[step.name] = step


def _parameter_value_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    parameters = data.get("parameters")
    for name, declaration in parameters.items() if isinstance(parameters, Mapping) else []:
        if not isinstance(declaration, Mapping) or declaration.get("type") not in PARAMETER_TYPES:
            continue  # reported as SSM011
        try:
            spec = parameter_spec(name, declaration)
        except (TypeError, ValueError):
            continue  # malformed keys are reported as SSM011
        path: Path = ("parameters", name)
        allowed = declaration.get("allowedValues")
        if isinstance(allowed, list):
            if spec.type in ("Boolean", "MapList", "StringMap"):
                yield Problem(
                    "SSM012",
                    (*path, "allowedValues"),
                    f"parameter {name}: allowedValues is not supported for type {spec.type}",
                )
            for value in allowed:
                _, problems = check_value(_bare(spec), value)
                for problem in problems:
                    yield Problem(
                        "SSM012", (*path, "allowedValues"), f"parameter {problem} (in allowedValues)"
                    )
        if not spec.required and not find_references(spec.default):
            _, problems = check_value(spec, spec.default)
            for problem in problems:
                yield Problem(
                    "SSM012",
                    (*path, "default"),
                    f"parameter {problem} (the default); fix the default or the constraint",
                )


def _bare(spec: ParameterSpec) -> ParameterSpec:
    """The declaration without constraints: checks one allowedValues item against the type only."""
    item_type = "String" if spec.type == "StringList" else spec.type
    return replace(
        spec, type=item_type, allowed_values=None, allowed_pattern=None, min_items=None, max_items=None
    )


def _output_problems(data: Mapping[str, Any], steps: list[_Step]) -> Iterator[Problem]:
    by_name = {step.name: step for step in steps}
    outputs = data.get("outputs")
    for index, output in enumerate(outputs if isinstance(outputs, list) else []):
        if not isinstance(output, str):
            continue
        name, _, field = output.partition(".")
        if name not in by_name or field not in _output_names(by_name[name]):
            yield Problem(
                "SSM014",
                ("outputs", index),
                f"output {output!r} is not an output of a step; write "
                "'step.Output' with a step's declared or built-in output",
            )
    for step in steps:
        declared = step.raw.get("outputs")
        for index, output in enumerate(declared if isinstance(declared, list) else []):
            selector = output.get("Selector") if isinstance(output, Mapping) else None
            if isinstance(selector, str) and not _valid_selector(selector):
                yield Problem(
                    "SSM018",
                    (*step.path, "outputs", index),
                    f"step {step.name}: Selector {selector!r} "
                    "is not valid JSONPath (start with $, e.g. $.Reservations[0].Instances)",
                )


def _valid_selector(selector: str) -> bool:
    if not selector.startswith("$"):
        return False
    try:
        parse_jsonpath(selector)
    except (JsonPathLexerError, JsonPathParserError, Exception):  # jsonpath-ng raises bare Exception too
        return False
    return True


def _role_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    role = data.get("assumeRole")
    if role is None:
        yield Problem(
            "SSM015",
            (),
            "no assumeRole: the runbook runs on the caller's session and rights; add "
            "assumeRole: '{{ AutomationAssumeRole }}' and that String parameter",
        )
        return
    match = REFERENCE.fullmatch(role.strip()) if isinstance(role, str) else None
    parameters = data.get("parameters")
    declaration = parameters.get(match.group(1)) if match and isinstance(parameters, Mapping) else None
    if not isinstance(declaration, Mapping) or declaration.get("type") != "String":
        yield Problem(
            "SSM015",
            ("assumeRole",),
            f"assumeRole {role!r} must be '{{{{ P }}}}' for a declared "
            "String parameter P, so the service role is chosen (and checked) per execution",
        )


def _duration(value: Any, data: Mapping[str, Any]) -> dt.timedelta | None:
    """A literal or parameter-default ISO-8601 duration; None when unknown or invalid."""
    match = REFERENCE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match:
        parameters = data.get("parameters")
        declaration = parameters.get(match.group(1)) if isinstance(parameters, Mapping) else None
        value = declaration.get("default") if isinstance(declaration, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        return None
    if isinstance(parsed, isodate.Duration):
        parsed = parsed.totimedelta(start=dt.datetime(2000, 1, 1))
    return parsed if isinstance(parsed, dt.timedelta) else None


def _sleep_problems(data: Mapping[str, Any], steps: list[_Step]) -> Iterator[Problem]:
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
    match = REFERENCE.fullmatch(value.strip())
    parameters = data.get("parameters")
    declaration = parameters.get(match.group(1)) if match and isinstance(parameters, Mapping) else None
    return not isinstance(declaration, Mapping) or "default" not in declaration


def _step_bound(step: _Step, data: Mapping[str, Any]) -> dt.timedelta:
    timeout = step.raw.get("timeoutSeconds")
    attempts = step.raw.get("maxAttempts", 1)
    attempts = attempts if isinstance(attempts, int) and attempts > 0 else 1
    if step.action == "aws:sleep":
        if "Timestamp" in step.inputs:
            return UNBOUNDED
        duration = _duration(step.inputs.get("Duration"), data)
        return UNBOUNDED if duration is None else duration
    if isinstance(timeout, int) and not isinstance(timeout, bool):
        return dt.timedelta(seconds=timeout) * attempts
    if step.action == "aws:pause":
        return UNBOUNDED
    return DEFAULT_WAITS.get(step.action, dt.timedelta(0)) * attempts


def _session_problems(data: Mapping[str, Any], steps: list[_Step]) -> Iterator[Problem]:
    if data.get("assumeRole"):
        return
    total = dt.timedelta(0)
    for step in steps:
        bound = _step_bound(step, data)
        total = UNBOUNDED if UNBOUNDED - total <= bound else total + bound
        if total > SESSION_LIMIT:
            yield Problem(
                "SSM016",
                (*step.path, "name"),
                f"without assumeRole the runbook runs on the caller's "
                f"session, which expires 12 hours after the start; by step {step.name} its sleeps and "
                "timeouts can exceed that — add a service role (assumeRole)",
            )
            return


def lint_data(data: Any, lines: Mapping[Path, int], filename: str) -> list[Finding]:
    """Every finding for already-loaded runbook ``data``, in source order."""
    problems = structural_problems(data)
    if isinstance(data, Mapping):
        steps = _steps(data)
        for step in steps:
            problems.extend(_action_problems(step))
        problems.extend(_reachability_problems(steps))
        problems.extend(_reference_problems(data, steps))
        problems.extend(_parameter_value_problems(data))
        problems.extend(_output_problems(data, steps))
        problems.extend(_role_problems(data))
        problems.extend(_sleep_problems(data, steps))
        problems.extend(_session_problems(data, steps))
    findings = [Finding(filename, line_of(dict(lines), p.path) or 1, p.code, p.message) for p in problems]
    return sorted(findings, key=lambda finding: (finding.line, finding.code))


def lint_text(content: str | bytes, filename: str = "<runbook>") -> list[Finding]:
    """Lint runbook text (YAML or JSON)."""
    try:
        data, lines = load_with_lines(content)
    except SourceError as exc:
        return [Finding(filename, exc.line or 1, "SSM001", str(exc))]
    return lint_data(data, lines, filename)


def lint_file(path: str | FilePath) -> list[Finding]:
    """Lint the runbook file at ``path``; an unreadable file is a finding, not a crash."""
    try:
        content = FilePath(path).read_bytes()
    except OSError as exc:
        return [Finding(str(path), 1, "SSM001", f"cannot read the file: {exc.strerror or exc}")]
    return lint_text(content, str(path))


__all__ = ["RULES", "Finding", "lint_data", "lint_file", "lint_text"]
