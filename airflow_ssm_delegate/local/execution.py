"""The state of one execution and its steps, and their API shapes (GetAutomationExecution & co).

Timestamps are kept as simulated ``datetime``s and reported as epoch seconds (floats), the JSON
protocol's timestamp form, so the API layer can serialise the dicts as they are.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.status import TERMINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from airflow_ssm_delegate.documents.model import Runbook, StepSpec
    from airflow_ssm_delegate.local.actions.base import Continuation, Signal, StepFailure, WaitForSignal
    from airflow_ssm_delegate.local.alarms import AlarmWatch
    from airflow_ssm_delegate.local.identity import Caller, Credentials
    from airflow_ssm_delegate.local.locations import LocationFanOut, Placement
    from airflow_ssm_delegate.local.ratecontrol import FanOut

ACTIVE_STEP_STATUSES = frozenset({"Pending", "InProgress", "Waiting"})
NOT_YET_AVAILABLE = "No output available yet because the step is not successfully executed"


def epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment else None


def api_strings(value: Any) -> list[str]:
    """A value in the API's Outputs form (a list of strings)."""
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else json.dumps(item) for item in items]


def _compact(shape: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in shape.items() if value is not None}


@dataclass
class StepRecord:
    """One step execution (a step run once; a retried attempt reuses its record)."""

    spec: StepSpec
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "Pending"
    started: datetime | None = None
    ended: datetime | None = None
    attempt: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)  # rendered values
    values: dict[str, Any] = field(default_factory=dict)  # outputs, typed (for {{ step.Output }})
    failure: StepFailure | None = None
    owner: Execution | None = field(default=None, repr=False, compare=False)  # set when it becomes current

    def __setattr__(self, name: str, value: Any) -> None:
        changed = name == "status" and getattr(self, name, None) != value
        object.__setattr__(self, name, value)
        owner = self.owner
        if changed and owner is not None and owner.observer is not None:
            owner.observer(owner, self)

    def to_api(self) -> dict[str, Any]:
        spec = self.spec
        shape: dict[str, Any] = {
            "StepName": spec.name,
            "Action": spec.action,
            "StepExecutionId": self.id,
            "StepStatus": self.status,
            "ExecutionStartTime": epoch(self.started),
            "ExecutionEndTime": epoch(self.ended),
            "Inputs": {name: json.dumps(value) for name, value in self.inputs.items()},
            "Outputs": {name: api_strings(value) for name, value in self.values.items()} or None,
            "OnFailure": spec.on_failure,
            "MaxAttempts": spec.max_attempts,
            "TimeoutSeconds": spec.timeout_seconds,
            "IsEnd": spec.is_end,
            "NextStep": spec.next_step,
            "IsCritical": spec.is_critical,
        }
        if self.failure is not None:
            shape["FailureMessage"] = self.failure.message
            shape["FailureDetails"] = _compact(
                {
                    "FailureStage": self.failure.stage,
                    "FailureType": self.failure.failure_type,
                    "Details": self.failure.details or None,
                }
            )
        return _compact(shape)


@dataclass
class Execution:
    """Mutable state of one execution; every field is guarded by ``lock``."""

    id: str
    sequence: int
    document_name: str
    document_version: str
    runbook: Runbook
    mode: str
    values: dict[str, Any]
    parameters: dict[str, list[str]]
    caller: Caller
    role_arn: str | None
    tags: list[dict[str, str]]
    started: datetime
    parent_id: str | None = None
    status: str = "Pending"
    ended: datetime | None = None
    failure_message: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    current: StepRecord | None = None
    credentials: Credentials | None = None
    identity_arn: str = ""
    session_expires: datetime | None = None
    # scheduling state
    lock: threading.RLock = field(default_factory=threading.RLock)
    done: threading.Event = field(default_factory=threading.Event)
    generation: int = 0  # bumped whenever a scheduled call or timer becomes stale
    next_call: Continuation | None = None
    busy: bool = False  # a worker runs one of this execution's calls right now
    waiting: WaitForSignal | None = None
    awaiting_start: bool = False  # Interactive mode: the current (Pending) step waits for StartStep
    buffered: list[Signal] = field(default_factory=list)  # internal signals that came before the wait
    deadline: datetime | None = None
    context: Any = None
    cancelling: bool = False
    stop_requested: str | None = None  # "Cancel" / "Complete" / "StopStep", seen when a busy call returns
    critical_failure: bool = False
    timed_out: bool = False
    children: list[str] = field(default_factory=list)
    alarm: AlarmWatch | None = None  # AlarmConfiguration (local.alarms)
    triggered_alarms: list[dict[str, str]] = field(default_factory=list)  # TriggeredAlarms [{Name, State}]
    fan_out: FanOut | None = None  # a rate-control parent's targets and children (local.ratecontrol)
    target: str | None = None  # a rate-control child's target value (its Target)
    placement: Placement | None = None  # a TargetLocations child's account, Region and role (local.locations)
    locations: LocationFanOut | None = None  # a TargetLocations parent's locations and children
    #: Told of every status change of the execution (step None) and of its steps, as it happens, under
    #: ``lock`` (the runtime's EventBridge events, ``local.events``); set by the engine.
    observer: Callable[[Execution, StepRecord | None], None] | None = field(
        default=None, repr=False, compare=False
    )

    def __setattr__(self, name: str, value: Any) -> None:
        changed = name == "status" and getattr(self, name, None) != value
        object.__setattr__(self, name, value)
        if name == "current" and value is not None:
            value.owner = self
        elif changed and self.observer is not None:
            self.observer(self, None)

    @property
    def finished(self) -> bool:
        """Ended as the provider's waiter sees it (one list of end statuses for runtime and provider)."""
        return self.status in TERMINAL_STATUSES

    def step_values(self) -> dict[str, dict[str, Any]]:
        """The latest successful outputs of each step, by step name."""
        return {record.spec.name: record.values for record in self.steps if record.status == "Success"}

    def outputs(self) -> dict[str, list[str]]:
        """The runbook's declared outputs (``step.Output``), as far as they are known."""
        values = self.step_values()
        result: dict[str, list[str]] = {}
        for reference in self.runbook.outputs:
            step, _, name = reference.partition(".")
            if name in values.get(step, {}):
                result[reference] = api_strings(values[step][name])
            else:
                result[reference] = [NOT_YET_AVAILABLE]
        return result

    def progress(self) -> dict[str, int]:
        count = lambda status: sum(1 for r in self.steps if r.status == status)  # noqa: E731
        return {
            "TotalSteps": len(self.steps),
            "SuccessSteps": count("Success"),
            "FailedSteps": count("Failed"),
            "CancelledSteps": count("Cancelled"),
            "TimedOutSteps": count("TimedOut"),
        }

    def metadata(self) -> dict[str, Any]:
        """The AutomationExecutionMetadata shape (DescribeAutomationExecutions)."""
        current = self.current if self.current and not self.finished else None
        return _compact(
            {
                "AutomationExecutionId": self.id,
                "DocumentName": self.document_name,
                "DocumentVersion": self.document_version,
                "AutomationExecutionStatus": self.status,
                "ExecutionStartTime": epoch(self.started),
                "ExecutionEndTime": epoch(self.ended),
                "ExecutedBy": self.caller.arn,
                "Outputs": self.outputs(),
                "Mode": self.mode,
                "ParentAutomationExecutionId": self.parent_id,
                "CurrentStepName": current.spec.name if current else None,
                "CurrentAction": current.spec.action if current else None,
                "FailureMessage": self.failure_message,
                "AlarmConfiguration": self.alarm.to_api() if self.alarm else None,
                "TriggeredAlarms": [dict(alarm) for alarm in self.triggered_alarms] or None,
                "AutomationType": "Local",
                "Target": self.target,
                **(self.fan_out.metadata() if self.fan_out is not None else {}),
                **(self.locations.metadata() if self.locations is not None else {}),
            }
        )

    def to_api(self, max_steps: int = 100) -> dict[str, Any]:
        """The AutomationExecution shape (GetAutomationExecution)."""
        shape = self.metadata()
        shape.pop("AutomationType", None)
        shape.update(
            {
                "Parameters": self.parameters,
                "StepExecutions": [record.to_api() for record in self.steps[:max_steps]],
                "StepExecutionsTruncated": len(self.steps) > max_steps,
                "ProgressCounters": self.progress(),
                "TargetsSummary": self.fan_out.summary() if self.fan_out is not None else None,
            }
        )
        return _compact(shape)
