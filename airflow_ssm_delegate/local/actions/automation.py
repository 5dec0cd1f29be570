"""aws:executeAutomation: run another runbook as a child execution of the same engine, and wait for it."""

from __future__ import annotations

import json
from typing import Any

from airflow_ssm_delegate.local.actions.base import (
    CHILD_FINISHED,
    Done,
    Outcome,
    Signal,
    StepContext,
    StepFailure,
    WaitForSignal,
    reject_unknown_inputs,
    require,
)

#: https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-executeAutomation.html
#: Rate control and multi-account inputs are passed on to the child's start (local.ratecontrol runs rate
#: control as AWS does; what the runtime does not implement, it refuses by name).
_RATE_CONTROL = (
    "MaxConcurrency",
    "MaxErrors",
    "TargetLocations",
    "TargetLocationsURL",
    "TargetMaps",
    "TargetParameterName",
    "Targets",
)


def _api_value(value: Any) -> list[str]:
    """A runtime parameter in the API's list-of-strings form (the child validates it against its runbook)."""
    items = value if isinstance(value, list) else [value]
    return [
        json.dumps(item)
        if isinstance(item, (dict, list))
        else str(item).lower()
        if isinstance(item, bool)
        else str(item)
        for item in items
    ]


def execute_automation(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:executeAutomation")
    runtime = ctx.inputs.get("RuntimeParameters") or {}
    if not isinstance(runtime, dict):
        raise StepFailure("Input RuntimeParameters must be a map of parameter name to value.", "Verification")
    request: dict[str, Any] = {
        "DocumentName": require(ctx.inputs, "DocumentName", str),
        "Parameters": {str(name): _api_value(value) for name, value in runtime.items()},
    }
    if ctx.inputs.get("DocumentVersion"):
        request["DocumentVersion"] = str(ctx.inputs["DocumentVersion"])
    if ctx.inputs.get("Tags"):
        request["Tags"] = ctx.inputs["Tags"]
    request.update(
        {key: ctx.inputs[key] for key in _RATE_CONTROL if ctx.inputs.get(key) not in (None, "", [])}
    )
    child_id = ctx.start_child(request)

    def on_finished(current: StepContext, _signal: Signal) -> Outcome:
        child = current.child(child_id)
        status = child.get("AutomationExecutionStatus")
        outputs = {"ExecutionId": child_id, "Status": status, "Output": json.dumps(child.get("Outputs", {}))}
        if status != "Success":
            reason = child.get("FailureMessage") or "no failure message"
            raise StepFailure(
                f"Child execution {child_id} ended {status}: {reason}", "Action", {"ExecutionId": [child_id]}
            )
        return Done(outputs)

    return WaitForSignal(frozenset({CHILD_FINISHED}), on_finished, status="InProgress")
