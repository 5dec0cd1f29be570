"""What a deferred task's log says while its runbook runs: each step transition, then a summary.

In Airflow 3 a trigger's log lines go to the deferred task's log, so the person watching a 13-hour
maintenance sees which step runs, since when, and — for an ``aws:approve`` step — who may approve and how,
without leaving Airflow. Transitions come from events (exact times) or from the safety-net poll (the
time the poll saw it). Duplicated and out-of-order events are dropped here: per step, a change older
than the last one applied, or already reported, is not logged again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping

    from airflow_ssm_delegate.documents.model import Runbook

APPROVE = "aws:approve"
_ENDED = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})
_RANKS = {"Pending": 0, "InProgress": 1, "Waiting": 2}


def _rank(status: str) -> int:
    """Order of two statuses of one step reported in the same second (event times have no fraction)."""
    return _RANKS.get(status, 3)


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, timezone.utc)
    return None


def _clock_text(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "?"


def duration_text(seconds: float | None) -> str:
    """``4h 00m 02s`` / ``12m 03s`` / ``1.2s``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def approval_instructions(execution_id: str, approvers: Iterable[str] | None) -> str:
    """Who may approve an ``aws:approve`` step and how."""
    who = ", ".join(approvers) if approvers else "the Approvers the runbook names"
    return (
        f"approval needed from {who}: approve or reject in Airflow (SsmAutomationApprovalOperator), in the "
        f"Systems Manager console, or with `aws ssm send-automation-signal --automation-execution-id "
        f"{execution_id} --signal-type Approve` (or Reject) as one of them"
    )


@dataclass
class StepProgress:
    """Logs step transitions once each, in order, for one execution."""

    log: logging.Logger | logging.LoggerAdapter[Any]
    execution_id: str
    runbook: Runbook | None = None
    clock: Any = None  # the watch's clock: times are marked "(simulated)" when it runs faster than real
    _seen: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    _reported: set[tuple[str, str]] = field(default_factory=set)
    current_step: str | None = None
    current_started: datetime | None = None

    def action_of(self, step_name: str) -> str:
        if self.runbook is not None:
            for step in self.runbook.steps:
                if step.name == step_name:
                    return step.action
        return "?"

    def step_changed(
        self,
        step_name: str,
        action: str | None,
        status: str,
        when: datetime,
        *,
        started: datetime | None = None,
        source: str = "event",
        approvers: Iterable[str] | None = None,
    ) -> bool:
        """Record (and log) one step status; False if it is a duplicate or older than what is known."""
        key = (step_name, status)
        if source == "event":  # events are ordered by their own times (duplicates have the same)
            previous = self._seen.get(step_name)
            if previous is not None and (when, _rank(status)) <= (previous[0], _rank(previous[1])):
                return False
            self._seen[step_name] = (when, status)
            already_told = previous is None and key in self._reported  # a poll saw it first
        else:  # a poll only says what it saw, and when it looked
            already_told = key in self._reported
        self._reported.add(key)
        if status not in _ENDED:
            self.current_step, self.current_started = step_name, started
        if already_told:
            return False
        action = action or self.action_of(step_name)
        clock = " (simulated)" if float(getattr(self.clock, "time_scale", 1.0)) != 1.0 else ""
        how = f" [{source}]" if source != "event" else ""
        line = f"Step {step_name} ({action}): {status} at {_clock_text(when)}{clock}{how}"
        if action == APPROVE and status in ("Waiting", "Pending"):
            line += f" - {approval_instructions(self.execution_id, approvers)}"
        self.log.info(line)
        return True

    def summary(self, execution: Mapping[str, Any], steps: Iterable[Mapping[str, Any]] | None = None) -> None:
        """The final log: every step with its status and duration, then the execution's."""
        records = list(steps if steps is not None else execution.get("StepExecutions", []))
        lines = [f"Automation execution {self.execution_id}: {execution.get('AutomationExecutionStatus')}"]
        for record in records:
            start, end = _moment(record.get("ExecutionStartTime")), _moment(record.get("ExecutionEndTime"))
            seconds = (end - start).total_seconds() if start and end else None
            lines.append(
                f"  {record.get('StepName')} ({record.get('Action')}): {record.get('StepStatus')}, "
                f"{duration_text(seconds)}"
            )
        start = _moment(execution.get("ExecutionStartTime"))
        end = _moment(execution.get("ExecutionEndTime"))
        total = (end - start).total_seconds() if start and end else None
        lines.append(f"  total: {duration_text(total)}")
        self.log.info("\n".join(lines))
