"""Lint rules about steps: actions and inputs, reachability, references, outputs and Selectors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jsonpath_ng.ext import parse as parse_jsonpath

from airflow_ssm_delegate.documents.actions import (
    ACTIONS,
    AWS_INTERNAL_ACTIONS,
    api_operation,
    is_reference,
    operation_names,
    request_members,
)
from airflow_ssm_delegate.documents.model import Problem
from airflow_ssm_delegate.documents.references import find_references
from airflow_ssm_delegate.documents.structure import LOOP_ACTION
from airflow_ssm_delegate.documents.values import as_bool

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
    return [inner for step in steps for inner in _nested(step)]


def action_problems(step: LintStep) -> Iterator[Problem]:
    spec = ACTIONS.get(step.action)
    if spec is None and step.action in AWS_INTERNAL_ACTIONS:
        yield Problem(
            "SSM028",
            (*step.path, "action"),
            f"step {step.name}: {step.action} is an undocumented action only AWS's own runbooks use; AWS "
            "runs it, but its inputs cannot be checked and the local runtime refuses it",
        )
        return
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
        allowed = spec.accepted_inputs()
        for name in sorted(given - allowed, key=str):
            yield Problem(
                "SSM005",
                (*step.path, "inputs", name),
                f"step {step.name}: {step.action} has no input "
                f"{name!r}; accepted inputs are {sorted(allowed)}",
            )
    else:
        yield from _api_problems(step)


#: Inputs of executeAwsApi / assertAwsResourceProperty / waitForAwsResourceProperty that are not API ones.
_ACTION_KEYS = frozenset({"Service", "Api", "PropertySelector", "DesiredValues"})


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
    elif (operation := api_operation(service, api)) is None:
        yield Problem(
            "SSM017",
            (*step.path, "inputs", "Api"),
            f"step {step.name}: {api!r} is not an operation of "
            f"{service} (write it as in the API reference, e.g. DescribeInstances)",
        )
    else:
        members = request_members(service.lower(), operation)
        for name in sorted(set(step.inputs) - members - _ACTION_KEYS, key=str):
            yield Problem(
                "SSM005",
                (*step.path, "inputs", name),
                f"step {step.name}: {name!r} is not a parameter of {service} {operation} "
                f"(botocore's model; boto3 would refuse it); parameters are {sorted(members)}",
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
    elif as_bool(raw.get("isEnd")) is not True:
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


def loop_steps(step: LintStep) -> list[LintStep]:
    """The steps directly inside ``step`` when it is an aws:loop (none otherwise)."""
    if step.action != LOOP_ACTION:
        return []
    return _lint_steps(step.inputs.get("Steps"), (*step.path, "inputs", "Steps"))


def _nested(step: LintStep) -> list[LintStep]:
    """Every step inside ``step`` when it is an aws:loop (loops in loops included)."""
    inner = loop_steps(step)
    return inner + [deeper for body in inner for deeper in _nested(body)]


@dataclass
class _Scope:
    """What a reference may name at one point: parameters, variables, and steps that can have run."""

    data: Mapping[str, Any]
    steps: dict[str, LintStep]
    everywhere: set[str]  # every step name in the document, for a clearer message

    def problem(self, expr: str, where: str) -> tuple[str, str] | None:
        """(code, message) when ``{{ expr }}`` cannot resolve here; None when it can."""
        prefix, colon, rest = expr.partition(":")
        if colon:
            return self._prefixed(prefix, rest)
        name, _, output = expr.partition(".")
        if not output:
            if name in _mapping(self.data.get("parameters")):
                return None
            return "SSM010", f"{{{{ {expr} }}}} is not a declared parameter; declare it under parameters"
        if name == "variables" and name not in self.steps:
            return self._prefixed("variable", output)
        if name not in self.steps:
            if name in self.everywhere:
                return "SSM027", f"{{{{ {expr} }}}}: {name} is not a step that runs before {where}"
            return "SSM010", f"{{{{ {expr} }}}}: {name} is not a step of this runbook"
        outputs = _output_names(self.steps[name])
        if output.split(".")[0] not in outputs:
            return "SSM022", (
                f"{{{{ {expr} }}}}: step {name} declares no output {output!r} and {self.steps[name].action} "
                f"has no such built-in output; it has {sorted(outputs)}"
            )
        return None

    def _prefixed(self, prefix: str, rest: str) -> tuple[str, str] | None:
        known = {"global": GLOBALS, "automation": AUTOMATION_VARIABLES}.get(prefix)
        if known is not None:
            return None if rest in known else ("SSM010", f"{prefix}:{rest} is not one of {sorted(known)}")
        if prefix == "variable":
            if rest in _mapping(self.data.get("variables")):
                return None
            return "SSM010", f"variable {rest} is not declared under the top-level variables"
        if prefix == "ssm":
            return None
        return "SSM024", f"unknown reference prefix {prefix!r} (known: global, automation, variable, ssm)"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _input_problems(step: LintStep, scope: _Scope) -> Iterator[Problem]:
    for key, value in step.inputs.items():
        if step.action == LOOP_ACTION and key == "Steps":
            continue  # checked step by step, each in its own scope
        for expr in find_references(value):
            found = scope.problem(expr, step.name)
            if found:
                yield Problem(found[0], (*step.path, "inputs", key), f"step {step.name}: {found[1]}")


def reference_problems(data: Mapping[str, Any], steps: list[LintStep]) -> Iterator[Problem]:
    """SSM010/022/024 for every step, loops included.

    A step sees the steps before it in document order, and those the flow can run before it (a
    jump back or out of order). A loop's steps also see the loop (its
    CurrentIteration / CurrentIteratorValue) and every step of the loop (an earlier iteration ran them);
    the loop's own inputs (LoopCondition) see its steps; steps after the loop see the loop's steps too.
    """
    everywhere = {step.name for step in steps} | {inner.name for step in steps for inner in _nested(step)}
    ran_before = _flow_predecessors(steps)
    earlier: dict[str, LintStep] = {}
    for step in steps:
        before = {**earlier, **ran_before[step.name]}
        body = _nested(step)
        if body:
            inside = {**before, step.name: step, **{inner.name: inner for inner in body}}
            yield from _input_problems(step, _Scope(data, inside, everywhere))
            for inner in body:
                yield from _input_problems(inner, _Scope(data, inside, everywhere))
            earlier = {**earlier, step.name: step, **{inner.name: inner for inner in body}}
        else:
            yield from _input_problems(step, _Scope(data, before, everywhere))
        earlier[step.name] = step


def _flow_predecessors(steps: list[LintStep]) -> dict[str, dict[str, LintStep]]:
    """For each top-level step, the steps (loop bodies included) from which the flow can reach it.

    A jump (nextStep, onFailure, branch) can run a step written later before one written earlier:
    AWSSupport-CloneXenEC2WinInstanceAndMigrateToNitro's failure path reads an output of a step the
    document lists after it.
    """
    by_name = {step.name: step for step in steps}
    following = {step.name: steps[i + 1].name if i + 1 < len(steps) else None for i, step in enumerate(steps)}
    result: dict[str, dict[str, LintStep]] = {step.name: {} for step in steps}
    for source in steps:
        ran = {source.name: source, **{inner.name: inner for inner in _nested(source)}}
        seen: set[str] = set()
        todo = list(_successors(source, following[source.name]))
        while todo:
            name = todo.pop()
            if name in seen or name not in by_name:
                continue
            seen.add(name)
            result[name].update(ran)
            todo.extend(_successors(by_name[name], following[name]))
    return result


def unused_parameter_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    """SSM025: a declared parameter that nothing references (a leftover, or a typo in a reference)."""
    used = {
        expr.partition(".")[0]
        for key, value in data.items()
        if key != "parameters"
        for expr in find_references(value)
    }
    for name in _mapping(data.get("parameters")):
        if isinstance(name, str) and name not in used:
            yield Problem(
                "SSM025", ("parameters", name), f"parameter {name} is declared but never referenced"
            )


def output_problems(data: Mapping[str, Any], steps: list[LintStep]) -> Iterator[Problem]:
    every = [*steps, *(inner for step in steps for inner in _nested(step))]
    by_name = {step.name: step for step in every}
    outputs = data.get("outputs")
    for index, output in enumerate(outputs if isinstance(outputs, list) else []):
        if not isinstance(output, str):
            continue
        name, _, field = output.partition(".")
        if name not in by_name:
            yield Problem(
                "SSM014",
                ("outputs", index),
                f"output {output!r} does not name a step; write 'step.Output' with a step of this runbook",
            )
        elif field.split(".")[0] not in _output_names(by_name[name]):
            yield Problem(
                "SSM022",
                ("outputs", index),
                f"output {output!r}: step {name} declares no output {field!r} and {by_name[name].action} "
                f"has no such built-in output; it has {sorted(_output_names(by_name[name]))}",
            )
    for step in every:
        declared = step.raw.get("outputs")
        for index, output in enumerate(declared if isinstance(declared, list) else []):
            selector = output.get("Selector") if isinstance(output, Mapping) else None
            if isinstance(selector, str) and not _valid_selector(selector):
                yield Problem(
                    "SSM018",
                    (*step.path, "outputs", index),
                    f"step {step.name}: Selector {selector!r} "
                    "is not valid JSONPath (e.g. $.Reservations[0].Instances)",
                )


def _valid_selector(selector: str) -> bool:
    """AWS also accepts a Selector without the leading ``$`` (``Payload.InstanceId``): read it as ``$.``."""
    text = selector if selector.startswith("$") else "$." + selector
    try:
        parse_jsonpath(text)
    except Exception:  # JSONPathError, and jsonpath_ng's lexer raises plain Exception on some input
        return False
    return True
