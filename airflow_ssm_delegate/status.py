"""How an Automation execution ends, read from the one place it is written down: the waiter file.

``waiters/ssm_automation.json`` drives the hook's botocore waiter; the status sets below come from the
same acceptors, so the sync waiter, the trigger and the operator can never disagree about what is done.
Only the standard library is imported: the operator and trigger modules use this at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

WAITER_FILE = Path(__file__).parent / "waiters" / "ssm_automation.json"
WAITER_NAME = "automation_execution_complete"
FAILED_STEP_STATUSES = ("Failed", "TimedOut", "Cancelled")  # most telling first


def _terminal_statuses() -> tuple[frozenset[str], frozenset[str]]:
    waiter = json.loads(WAITER_FILE.read_text(encoding="utf-8"))["waiters"][WAITER_NAME]
    by_state: dict[str, set[str]] = {"success": set(), "failure": set()}
    for acceptor in waiter["acceptors"]:
        if acceptor["matcher"] == "path":
            by_state[acceptor["state"]].add(acceptor["expected"])
    return frozenset(by_state["success"]), frozenset(by_state["failure"])


SUCCESS_STATUSES, FAILURE_STATUSES = _terminal_statuses()
TERMINAL_STATUSES = SUCCESS_STATUSES | FAILURE_STATUSES


def failure_message(
    execution: Mapping[str, Any], step_executions: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """Say why an execution failed: the failed step, its action and AWS's message.

    ``execution`` is GetAutomationExecution's output (the whole response or its ``AutomationExecution``);
    pass ``step_executions`` when the response's ``StepExecutionsTruncated`` is true.
    """
    execution = execution.get("AutomationExecution", execution)
    head = (
        f"Automation execution {execution.get('AutomationExecutionId', '?')} of runbook "
        f"{execution.get('DocumentName', '?')} ended {execution.get('AutomationExecutionStatus', '?')}"
    )
    steps = step_executions if step_executions is not None else execution.get("StepExecutions") or []
    step = _failed_step(steps)
    if step is None:
        reason = execution.get("FailureMessage") or "no step reported a failure"
        return f"{head}: {reason}"
    details = step.get("FailureDetails") or {}
    message = step.get("FailureMessage") or execution.get("FailureMessage") or "no failure message"
    text = (
        f"{head}: step {step.get('StepName', '?')!r} ({step.get('Action', '?')}) "
        f"{step.get('StepStatus', 'failed')}: {message}"
    )
    if details.get("FailureType"):
        text += f" [failure type {details['FailureType']}]"
    if details.get("FailureType") == "Permission":
        text += ". The service role lacks a permission this step needs: grant it to the role, not to Airflow."
    return text


def _failed_step(steps: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for status in FAILED_STEP_STATUSES:
        for step in steps:
            if step.get("StepStatus") == status:
                return step
    return None
