"""aws:runCommand: SendCommand (moto runs it at once) and wait for the command to finish."""

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
from airflow_ssm_delegate.local.actions.shapes import coerce_request

_DONE = frozenset({"Success"})
_FAILED = frozenset({"Failed", "Cancelled", "TimedOut", "Cancelling"})


def run_command(ctx: StepContext) -> Outcome:
    require(ctx.inputs, "DocumentName", str)
    reject_unknown_inputs(ctx.inputs, "aws:runCommand")  # SendCommand's members, as AWS documents
    request: dict[str, Any] = dict(ctx.inputs)
    if isinstance(request.get("Parameters"), dict):  # SendCommand wants every value as a list of strings
        request["Parameters"] = {
            k: [str(i) for i in v] if isinstance(v, list) else [str(v)]
            for k, v in request["Parameters"].items()
        }
    ssm = ctx.client("ssm")
    command_id = ssm.send_command(**coerce_request(ssm, "SendCommand", request))["Command"]["CommandId"]

    def check(current: StepContext) -> Outcome | None:
        commands = current.client("ssm").list_commands(CommandId=command_id).get("Commands", [])
        status = commands[0].get("Status", "Pending") if commands else "Pending"
        if status in _FAILED:
            raise StepFailure(f"Command {command_id} ended {status}.", "Action", {"CommandId": [command_id]})
        if status not in _DONE:
            return None
        output = ""
        instance_ids = ctx.inputs.get("InstanceIds") or []
        if isinstance(instance_ids, list) and len(instance_ids) == 1:
            invocation = current.client("ssm").get_command_invocation(
                CommandId=command_id, InstanceId=instance_ids[0]
            )
            output = str(invocation.get("StandardOutputContent", ""))
        return Done({"CommandId": command_id, "Status": status, "ResponseCode": 0, "Output": output})

    return poll(ctx, check, f"command {command_id} to finish")
