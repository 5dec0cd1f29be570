"""Lint rules about steps: actions and inputs, reachability, references, outputs and Selectors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext import parse as parse_jsonpath

from airflow_ssm_delegate.documents.actions import ACTIONS, api_operation, is_reference, operation_names
from airflow_ssm_delegate.documents.model import Problem
from airflow_ssm_delegate.documents.references import find_references

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.source import Path

GLOBALS = frozenset({"ACCOUNT_ID", "REGION", "DATE", "DATE_TIME", "AWS_PARTITION"})
AUTOMATION_VARIABLES = frozenset({"EXECUTION_ID"})


@dataclass(frozen=True)
class LintStep:
    """A step as lint sees it: only steps with a string name and action are checked semantically."""

    path: Path  # ("mainSteps", 3), or inside an aws:loop ("mainSteps", 3, "inputs", "Steps", 0)
    name: str
    action: str
    inputs: Mapping[str, Any]
    raw: Mapping[str, Any]


def _lint_steps(items: Any, path: Path) -> list[LintStep]:
    result = []
    for index, step in enumerate(items if isinstance(items, list) else []):
        if (
            isinstance(step, Mapping)
            and isinstance(step.get("name"), str)
            and isinstance(step.get("action"), str)
        ):
            inputs = step.get("inputs")
            inputs = inputs if isinstance(inputs, Mapping) else {}
            result.append(LintStep((*path, index), step["name"], step["action"], inputs, step))
    return result


def steps_of(data: Mapping[str, Any]) -> list[LintStep]:
    """The runbook's mainSteps."""
    return _lint_steps(data.get("mainSteps"), ("mainSteps",))


def loop_bodies(steps: list[LintStep]) -> list[LintStep]:
    """The steps inside aws:loop steps (``inputs.Steps``), recursively: their actions are checked too."""
    inner = [
        body
        for step in steps
        if step.action == "aws:loop"
        for body in _lint_steps(step.inputs.get("Steps"), (*step.path, "inputs", "Steps"))
    ]
    return inner + loop_bodies(inner) if inner else []


def action_problems(step: LintStep) -> Iterator[Problem]:
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


def _api_problems(step: LintStep) -> Iterator[Problem]:
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


def _successors(step: LintStep, following: str | None) -> set[str]:
    """Steps that may run right after ``step``: on success, on failure (Continue: the next), on cancel."""
    raw = step.raw
    targets = {_target(raw.get("onFailure")), _target(raw.get("onCancel"))}
    if raw.get("onFailure") == "Continue":
        targets.add(following)
    if step.action == "aws:branch":
        choices = step.inputs.get("Choices")
        if isinstance(choices, list):
            targets |= {choice.get("NextStep") for choice in choices if isinstance(choice, Mapping)}
        targets.add(step.inputs.get("Default"))
    elif isinstance(raw.get("nextStep"), str):
        targets.add(raw["nextStep"])
    elif raw.get("isEnd") is not True:
        targets.add(following)
    return {target for target in targets if isinstance(target, str)}


def reachability_problems(steps: list[LintStep]) -> Iterator[Problem]:
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


def _output_names(step: LintStep) -> set[str]:
    spec = ACTIONS.get(step.action)
    declared = step.raw.get("outputs")
    names = (
        {o.get("Name") for o in declared if isinstance(o, Mapping)} if isinstance(declared, list) else set()
    )
    return set(spec.outputs if spec else ()) | {name for name in names if isinstance(name, str)}


def _reference_problem(
    expr: str, step: LintStep, data: Mapping[str, Any], earlier: dict[str, LintStep]
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


def reference_problems(data: Mapping[str, Any], steps: list[LintStep]) -> Iterator[Problem]:
    earlier: dict[str, LintStep] = {}
    for step in steps:
        if step.action == "aws:loop":
            earlier[step.name] = step  # a loop's inner steps read its CurrentIteratorValue
        for key, value in step.inputs.items():
            for expr in find_references(value):
                message = _reference_problem(expr, step, data, earlier)
                if message:
                    yield Problem("SSM010", (*step.path, "inputs", key), f"step {step.name}: {message}")
        earlier[step.name] = step


def output_problems(data: Mapping[str, Any], steps: list[LintStep]) -> Iterator[Problem]:
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
    except JSONPathError:  # the parser the local runtime's selectors use too (jsonpath_ng.ext)
        return False
    return True
