"""aws:executeStateMachine: a Step Functions execution against the runtime, waited for to its end.

From AWS's action reference (https://docs.aws.amazon.com/systems-manager/latest/userguide/
automation-action-executeStateMachine.html): inputs ``stateMachineArn`` (required), ``name``, ``input``
("most parameters" of StartExecution: ``traceHeader`` too); predefined outputs ``executionArn``,
``input``, ``name``, ``output``, ``startDate``, ``stateMachineArn``, ``status``, ``stopDate``. A run
that does not end SUCCEEDED fails the step. The local server runs state machines with moto's
interpreter; on a plain moto server executions stay RUNNING and the step times out.
"""

from __future__ import annotations

import json
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
from airflow_ssm_delegate.local.selectors import json_safe

_OUTPUTS = ("executionArn", "input", "name", "output", "startDate", "stateMachineArn", "status", "stopDate")


def execute_state_machine(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:executeStateMachine")
    request: dict[str, Any] = {"stateMachineArn": require(ctx.inputs, "stateMachineArn", str)}
    for key, value in ctx.inputs.items():  # the other StartExecution members, as given
        if key not in ("stateMachineArn", "input") and value not in (None, ""):
            request[key] = value
    if ctx.inputs.get("input") not in (None, ""):
        value = ctx.inputs["input"]
        request["input"] = value if isinstance(value, str) else json.dumps(value)
    execution_arn = ctx.client("stepfunctions").start_execution(**request)["executionArn"]

    def check(current: StepContext) -> Outcome | None:
        described = json_safe(current.client("stepfunctions").describe_execution(executionArn=execution_arn))
        status = described.get("status")
        if status in {"RUNNING", "PENDING_REDRIVE"}:
            return None
        outputs = {key: "" if described.get(key) is None else str(described[key]) for key in _OUTPUTS}
        if status != "SUCCEEDED":
            cause = described.get("cause") or described.get("error") or "no cause given"
            raise StepFailure(
                f"State machine execution {execution_arn} ended {status}: {cause}",
                "Action",
                {"executionArn": [execution_arn]},
            )
        return Done(outputs)

    return poll(ctx, check, f"state machine execution {execution_arn} to end")
