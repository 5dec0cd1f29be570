"""aws:createStack and aws:deleteStack: CloudFormation calls against the runtime, waiting for the end state.

Inputs and outputs from AWS's action reference (https://docs.aws.amazon.com/systems-manager/latest/
userguide/automation-action-createstack.html and automation-action-deletestack.html): createStack takes
CreateStack's parameters (StackName, TemplateBody or TemplateURL, Parameters as ParameterKey/
ParameterValue maps, Capabilities, ...) and outputs StackId, StackStatus, StackStatusReason; deleteStack
takes StackName and RoleARN. Both wait for the stack's final status, polling DescribeStacks.
"""

from __future__ import annotations

from typing import Any

from airflow_ssm_delegate.local.actions.base import (
    Done,
    Outcome,
    StepContext,
    StepFailure,
    poll,
    reject_unknown_inputs,
    require,
)

_LIST_INPUTS = ("Capabilities", "NotificationARNs", "ResourceTypes")


def _create_request(inputs: dict[str, Any]) -> dict[str, Any]:
    reject_unknown_inputs(inputs, "aws:createStack")
    if ("TemplateBody" in inputs) == ("TemplateURL" in inputs):
        raise StepFailure("aws:createStack needs exactly one of TemplateBody or TemplateURL.", "Verification")
    request = {key: value for key, value in inputs.items() if value not in (None, "", [])}
    request["StackName"] = require(inputs, "StackName", str)
    for key in _LIST_INPUTS:
        if isinstance(request.get(key), str):
            request[key] = [request[key]]
    if "TimeoutInMinutes" in request:
        try:
            request["TimeoutInMinutes"] = int(request["TimeoutInMinutes"])
        except (TypeError, ValueError):
            raise StepFailure(
                f"Input TimeoutInMinutes must be an integer, got {request['TimeoutInMinutes']!r}.",
                "Verification",
            ) from None
    parameters = request.get("Parameters")
    if parameters is not None and not (
        isinstance(parameters, list)
        and all(isinstance(p, dict) and isinstance(p.get("ParameterKey"), str) for p in parameters)
    ):
        raise StepFailure(
            "Input Parameters must be a list of {ParameterKey, ParameterValue} maps.", "Verification"
        )
    if parameters:
        request["Parameters"] = [
            {**p, "ParameterValue": str(p["ParameterValue"])} if "ParameterValue" in p else p
            for p in parameters
        ]
    return request


def _stack(ctx: StepContext, stack: str) -> dict[str, Any] | None:
    cloudformation = ctx.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack).get("Stacks", [])
    except StepFailure as failure:
        if "does not exist" in failure.message:
            return None
        raise
    return dict(stacks[0]) if stacks else None


def _outputs(stack: dict[str, Any]) -> dict[str, Any]:
    return {
        "StackId": stack.get("StackId", ""),
        "StackStatus": stack.get("StackStatus", ""),
        "StackStatusReason": stack.get("StackStatusReason", ""),
    }


def create_stack(ctx: StepContext) -> Outcome:
    request = _create_request(ctx.inputs)
    stack_id = ctx.client("cloudformation").create_stack(**request)["StackId"]

    def check(current: StepContext) -> Outcome | None:
        stack = _stack(current, stack_id)
        status = stack.get("StackStatus", "") if stack else "DELETE_COMPLETE"
        if status == "CREATE_COMPLETE":
            return Done(_outputs(stack or {}))
        if status.endswith("_IN_PROGRESS"):
            return None
        reason = (stack or {}).get("StackStatusReason") or "no reason given"
        raise StepFailure(
            f"Stack {request['StackName']} ended {status}: {reason}", "Action", {"StackId": [stack_id]}
        )

    return poll(ctx, check, f"stack {request['StackName']} to be CREATE_COMPLETE")


def delete_stack(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:deleteStack")
    name = require(ctx.inputs, "StackName", str)
    request = {key: value for key, value in ctx.inputs.items() if value not in (None, "", [])}
    stack = _stack(ctx, name)
    stack_id = stack["StackId"] if stack else name  # deleting a stack that is gone succeeds, as on AWS
    ctx.client("cloudformation").delete_stack(**request)

    def check(current: StepContext) -> Outcome | None:
        found = _stack(current, stack_id)
        status = found.get("StackStatus", "") if found else "DELETE_COMPLETE"
        if status == "DELETE_COMPLETE":
            return Done()
        if status.endswith("_IN_PROGRESS"):
            return None
        reason = (found or {}).get("StackStatusReason") or "no reason given"
        raise StepFailure(f"Stack {name} ended {status}: {reason}", "Action", {"StackId": [stack_id]})

    return poll(ctx, check, f"stack {name} to be deleted")
