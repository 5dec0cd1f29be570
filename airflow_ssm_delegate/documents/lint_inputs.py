"""Lint rule SSM020: literal input values the action accepts (a reference is checked at run time).

Only the values AWS rejects up front or the step fails on at once: enumerations (DesiredState,
ResourceType), list-shaped inputs given as scalars, tag lists, instance counts and approval counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.documents.actions import is_reference
from airflow_ssm_delegate.documents.model import Problem

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.lint_steps import LintStep

DESIRED_STATES = ("running", "stopped", "terminated")
TAG_RESOURCE_TYPES = ("EC2", "ManagedInstance", "MaintenanceWindow", "Parameter")

Issue = tuple[str, str]  # (input name, what is wrong and what to write)


def _literal(inputs: Mapping[str, Any], name: str) -> Any:
    """The input's value unless absent or a reference (None then: nothing to check before run time)."""
    value = inputs.get(name)
    return None if value is None or (isinstance(value, str) and is_reference(value)) else value


def _one_of(inputs: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> Iterator[Issue]:
    value = _literal(inputs, name)
    if value is not None and value not in allowed:
        yield name, f"{value!r} is not one of {list(allowed)}"


def _list(inputs: Mapping[str, Any], name: str, what: str) -> Iterator[Issue]:
    value = _literal(inputs, name)
    if value is not None and (not isinstance(value, list) or not value):
        yield name, f"must be a non-empty list of {what} (or one reference to a list), got {value!r}"


def _count(inputs: Mapping[str, Any], name: str) -> int | None:
    value = _literal(inputs, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _positive(inputs: Mapping[str, Any], *names: str) -> Iterator[Issue]:
    for name in names:
        value = _literal(inputs, name)
        if value is not None and (_count(inputs, name) is None or value < 1):
            yield name, f"must be a positive integer, got {value!r}"


def _change_instance_state(inputs: Mapping[str, Any]) -> Iterator[Issue]:
    yield from _one_of(inputs, "DesiredState", DESIRED_STATES)
    yield from _list(inputs, "InstanceIds", "instance ids")


def _create_tags(inputs: Mapping[str, Any]) -> Iterator[Issue]:
    yield from _one_of(inputs, "ResourceType", TAG_RESOURCE_TYPES)
    yield from _list(inputs, "ResourceIds", "resource ids")
    tags = _literal(inputs, "Tags")
    if tags is not None and not (
        isinstance(tags, list)
        and tags
        and all(isinstance(t, Mapping) and set(t) == {"Key", "Value"} for t in tags)
    ):
        yield "Tags", "must be a non-empty list of {Key: ..., Value: ...} mappings"


def _run_instances(inputs: Mapping[str, Any]) -> Iterator[Issue]:
    yield from _positive(inputs, "MinInstanceCount", "MaxInstanceCount")
    low, high = _count(inputs, "MinInstanceCount"), _count(inputs, "MaxInstanceCount")
    if low is not None and high is not None and low > high:
        yield "MinInstanceCount", f"{low} is more than MaxInstanceCount {high}"


def _approve(inputs: Mapping[str, Any]) -> Iterator[Issue]:
    yield from _list(inputs, "Approvers", "IAM user or role names/ARNs")
    yield from _positive(inputs, "MinRequiredApprovals")
    approvers, needed = _literal(inputs, "Approvers"), _count(inputs, "MinRequiredApprovals")
    if isinstance(approvers, list) and approvers and needed is not None and needed > len(approvers):
        yield "MinRequiredApprovals", f"{needed} is more than the {len(approvers)} Approvers"


def _property_check(inputs: Mapping[str, Any]) -> Iterator[Issue]:
    yield from _list(inputs, "DesiredValues", "values")


_CHECKS: dict[str, Callable[[Mapping[str, Any]], Iterator[Issue]]] = {
    "aws:changeInstanceState": _change_instance_state,
    "aws:createTags": _create_tags,
    "aws:runInstances": _run_instances,
    "aws:approve": _approve,
    "aws:assertAwsResourceProperty": _property_check,
    "aws:waitForAwsResourceProperty": _property_check,
}


def input_value_problems(step: LintStep) -> Iterator[Problem]:
    check = _CHECKS.get(step.action)
    for name, message in check(step.inputs) if check else ():
        yield Problem(
            "SSM020", (*step.path, "inputs", name), f"step {step.name}: {step.action} input {name} {message}"
        )
