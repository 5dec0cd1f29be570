"""aws:executeScript: run the step's Python handler in a separate process.

From AWS's action reference (https://docs.aws.amazon.com/systems-manager/latest/userguide/
automation-action-executeScript.html): inputs ``Runtime``, ``Handler``, ``Script`` or ``Attachment``,
``InputPayload``; the handler is called as ``handler(events, context)`` with ``InputPayload`` as
``events``; its return value is the step's ``Payload`` (output Selectors read ``$.Payload.x``); a step runs
at most 600 seconds unless ``timeoutSeconds`` says otherwise. The script's AWS calls run as the
execution's service role, and without one "without any permissions" (the user guide's "Using scripts in
runbooks"), so the child gets credentials only when the execution has a service role.

Here: Python runtimes run on this Python (3.11, with boto3); PowerShell runtimes and Attachments are
refused by name (not emulated). The limit is in wall-clock seconds (see ``python_runner``).
"""

from __future__ import annotations

import json
from typing import Any

from airflow_ssm_delegate.local.actions.base import (
    Done,
    Outcome,
    StepContext,
    StepFailure,
    reject_unknown_inputs,
    require,
)
from airflow_ssm_delegate.local.actions.python_runner import PythonRun, failure_text, failure_type, wait_for

PYTHON_RUNTIMES = frozenset({f"python3.{minor}" for minor in range(6, 12)})
POWERSHELL_RUNTIMES = frozenset({"PowerShell Core 6.0", "PowerShell 7.0", "PowerShell 7.2", "PowerShell 7.4"})
MAX_SECONDS = 600  # AWS's limit for one aws:executeScript step
SCRIPT_MODULE = "automation_script"


def script_context(ctx: StepContext) -> dict[str, Any]:
    """The handler's ``context``: the runbook's global and automation variables by name (AWS's own
    runbooks read ``context['automation:EXECUTION_ID']``)."""
    return dict(ctx.variables())


def execute_script(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:executeScript")
    runtime = require(ctx.inputs, "Runtime", str)
    if runtime in POWERSHELL_RUNTIMES:
        raise StepFailure(
            f"Runtime {runtime!r}: PowerShell scripts are not run by the local runtime (only Python "
            f"runtimes {', '.join(sorted(PYTHON_RUNTIMES))}).",
            "Verification",
        )
    if runtime not in PYTHON_RUNTIMES:
        raise StepFailure(
            f"Runtime {runtime!r} is not a supported aws:executeScript runtime; use one of "
            f"{', '.join(sorted(PYTHON_RUNTIMES | POWERSHELL_RUNTIMES))}.",
            "Verification",
        )
    handler = require(ctx.inputs, "Handler", str)
    if "Attachment" in ctx.inputs:
        raise StepFailure(
            "Input Attachment: script attachments (the runbook's files) are not emulated by the local "
            "runtime; put the code in Script.",
            "Verification",
        )
    script = require(ctx.inputs, "Script", str)
    payload = ctx.inputs.get("InputPayload", {})
    if payload in (None, ""):
        payload = {}
    if not isinstance(payload, dict):
        raise StepFailure(
            f"Input InputPayload must be a map of names to values, got {type(payload).__name__}.",
            "Verification",
        )
    limit = float(ctx.step.timeout_seconds or MAX_SECONDS)
    run = PythonRun(
        {f"{SCRIPT_MODULE}.py": script.encode()},
        (SCRIPT_MODULE, handler),
        events=payload,
        context=script_context(ctx),
        environment=ctx.script_environment(),
        limit=limit,
    )

    def finish(result: dict[str, Any]) -> Outcome:
        if not result.get("ok"):
            if result.get("errorType") == "AttributeError" and handler in str(result.get("errorMessage")):
                raise StepFailure(
                    f"Handler {handler!r} is not a function defined in the step's Script.", "Verification"
                )
            raise StepFailure(f"The script failed: {failure_text(result)}", failure_type(result))
        value = result.get("payload")
        return Done({"OutputPayload": json.dumps({"Payload": value})}, response={"Payload": value})

    return wait_for(ctx, run, finish)
