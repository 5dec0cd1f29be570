"""Step-aware polling: how long to wait before asking AWS about an execution again.

A fixed 30-second poll of a 13-hour runbook costs ~1,560 calls, most of them while the runbook sleeps
in a maintenance window. The runbook itself says when the execution *cannot* have ended yet: a running
``aws:sleep`` ends at its start + Duration (or at its Timestamp), and every path from the current step
to an end passes through the sleeps (and signal waits) ahead of it. So the next poll waits

    max(waiter_delay, lower bound of the time left before the execution can end)   (capped)

which notices the end within ``waiter_delay`` whatever happens, and polls rarely while nothing can
happen. The lower bound is a shortest path over the step graph: success edges (nextStep, the next step,
branch choices, isEnd) and failure edges (onFailure) for steps that can fail at once; sleeps add their
duration, a Timestamp sleep cannot finish before its timestamp, everything else counts as zero.

What the bound cannot see: someone stopping the execution (StopAutomationExecution) or rejecting an
approval from outside. Those are noticed within ``max_poll_interval`` (default one hour) — the cap.
Everything here is pure (no I/O, time passed in), so it is tested directly; ``clocks`` says what "now" is.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from airflow_ssm_delegate.documents.model import Runbook, StepSpec

END = "<end>"
SLEEP = "aws:sleep"
PAUSE = "aws:pause"
BRANCH = "aws:branch"
DEFAULT_MAX_POLL_INTERVAL = 3600.0
DEFAULT_CLOCK_SKEW_MARGIN = 5.0


def _decode(value: Any) -> Any:
    """Step inputs reported by AWS are JSON-encoded strings (``'"PT1H"'``); runbook inputs are plain."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and "{{" not in value:
        import isodate  # lazily: the operator module imports this one at DAG-parse time

        try:
            return isodate.parse_datetime(value)
        except (ValueError, isodate.ISO8601Error):
            return None
    return None


def sleep_duration_seconds(inputs: Mapping[str, Any]) -> float | None:
    """An ``aws:sleep`` Duration in seconds, or None when it is templated/absent/invalid."""
    duration = _decode(inputs.get("Duration"))
    if not isinstance(duration, str) or "{{" in duration:
        return None
    import isodate

    try:
        parsed = isodate.parse_duration(duration)
    except (ValueError, isodate.ISO8601Error):
        return None
    if isinstance(parsed, timedelta):
        return parsed.total_seconds()
    return None  # a year/month duration (isodate.Duration): no fixed length, assume nothing


def sleep_until(inputs: Mapping[str, Any]) -> datetime | None:
    """An ``aws:sleep`` Timestamp, or None."""
    return _parse_time(_decode(inputs.get("Timestamp")))


def _success_targets(runbook: Runbook, index: int) -> list[str]:
    step = runbook.steps[index]
    if step.action == BRANCH:
        targets = [str(choice.get("NextStep")) for choice in step.inputs.get("Choices", []) or []]
        default = step.inputs.get("Default")
        targets.append(str(default) if default else END)  # no match and no default: the execution ends
        return targets
    if step.is_end:
        return [END]
    if step.next_step:
        return [step.next_step]
    return [runbook.steps[index + 1].name] if index + 1 < len(runbook.steps) else [END]


def _failure_target(runbook: Runbook, index: int) -> str | None:
    """Where the execution goes if the step fails at once (None: the step cannot fail by itself)."""
    step = runbook.steps[index]
    if step.action == BRANCH:
        return None  # "no choice matches and no Default" is already an END edge of its own
    if step.action in (SLEEP, PAUSE) and step.timeout_seconds is None:
        return None
    on_failure = step.on_failure or "Abort"
    if on_failure.startswith("step:"):
        return on_failure.removeprefix("step:")
    if on_failure == "Continue":
        return _success_targets(runbook, index)[0]
    return END


@dataclass(frozen=True)
class _StepTiming:
    """Earliest finish of a step, in seconds from now, given its earliest start."""

    fixed_duration: float = 0.0
    not_before: float = 0.0
    timeout: float | None = None

    def finish(self, start: float) -> float:
        finish = max(start + self.fixed_duration, self.not_before)
        return min(finish, start + self.timeout) if self.timeout is not None else finish


def _timing(step: StepSpec, now: datetime) -> _StepTiming:
    if step.action != SLEEP:
        return _StepTiming(timeout=None)
    until = sleep_until(step.inputs)
    return _StepTiming(
        fixed_duration=sleep_duration_seconds(step.inputs) or 0.0,
        not_before=max(0.0, (until - now).total_seconds()) if until else 0.0,
        timeout=float(step.timeout_seconds) if step.timeout_seconds else None,
    )


def time_to_end_lower_bound(
    runbook: Runbook,
    current_step: str | None,
    now: datetime,
    *,
    current_step_started: datetime | None = None,
    current_step_inputs: Mapping[str, Any] | None = None,
) -> float:
    """Seconds before the execution can possibly end, seen from ``current_step`` at ``now`` (>= 0).

    ``current_step_inputs`` are the step's resolved inputs as AWS reports them (so a templated
    Duration is known); without a start time a running sleep counts from ``now`` only if it has a
    Timestamp — otherwise nothing is assumed about it.
    """
    names = {step.name: index for index, step in enumerate(runbook.steps)}
    if current_step not in names:
        return 0.0
    index = names[current_step]
    first_finish = _current_step_remaining(
        runbook.steps[index], now, current_step_started, current_step_inputs or {}
    )
    # Dijkstra over "earliest time this step can start"; END's label is the answer.
    earliest: dict[str, float] = {}
    queue: list[tuple[float, str]] = []
    _relax_edges(runbook, index, 0.0, first_finish, queue)
    while queue:
        start, name = heapq.heappop(queue)
        if name == END:
            return start
        if name in earliest or name not in names:
            continue
        earliest[name] = start
        step_index = names[name]
        finish = _timing(runbook.steps[step_index], now).finish(start)
        _relax_edges(runbook, step_index, start, finish, queue)
    return 0.0  # no end reachable in the model (e.g. a step we cannot follow): assume the worst


def _relax_edges(
    runbook: Runbook, index: int, start: float, finish: float, queue: list[tuple[float, str]]
) -> None:
    for target in _success_targets(runbook, index):
        heapq.heappush(queue, (finish, target))
    failure = _failure_target(runbook, index)
    if failure is not None:
        step = runbook.steps[index]
        # a sleep/pause only fails by timing out; any other step may fail the moment it starts
        fails_at = (
            start + step.timeout_seconds if step.action in (SLEEP, PAUSE) and step.timeout_seconds else start
        )
        heapq.heappush(queue, (min(fails_at, finish), failure))


def _current_step_remaining(
    step: StepSpec, now: datetime, started: datetime | None, inputs: Mapping[str, Any]
) -> float:
    if step.action != SLEEP:
        return 0.0
    merged = {**step.inputs, **inputs}
    remaining = 0.0
    duration = sleep_duration_seconds(merged)
    if duration is not None and started is not None:
        remaining = max(remaining, duration - (now - started).total_seconds())
    until = sleep_until(merged)
    if until is not None:
        remaining = max(remaining, (until - now).total_seconds())
    if step.timeout_seconds and started is not None:
        remaining = min(remaining, step.timeout_seconds - (now - started).total_seconds())
    return max(0.0, remaining)


@dataclass(frozen=True)
class PollSchedule:
    """Turns the lower bound into the next delay: never below ``waiter_delay``, never above the cap."""

    waiter_delay: float
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    clock_skew_margin: float = DEFAULT_CLOCK_SKEW_MARGIN

    def __post_init__(self) -> None:
        if not (self.waiter_delay > 0 and math.isfinite(self.waiter_delay)):
            raise ValueError(f"waiter_delay must be a positive number of seconds, got {self.waiter_delay!r}")
        if self.max_poll_interval < self.waiter_delay:
            raise ValueError(
                f"max_poll_interval ({self.max_poll_interval}) must be at least "
                f"waiter_delay ({self.waiter_delay})"
            )

    def next_delay(self, lower_bound: float, settings_scale: float = 1.0) -> float:
        """Clock seconds until the next poll, given the time (clock seconds) the execution cannot end before.

        ``settings_scale`` converts ``waiter_delay``/``max_poll_interval`` into clock seconds: 1 when they
        are meant in the clock's own units, the runtime's time scale when they are wall seconds on a
        simulated clock (see ``clocks.ServerClock``).
        """
        floor, cap = self.waiter_delay * settings_scale, self.max_poll_interval * settings_scale
        return min(cap, max(floor, lower_bound - self.clock_skew_margin))


def current_step_record(
    step_executions: Iterable[Mapping[str, Any]], step_name: str
) -> Mapping[str, Any] | None:
    """The latest StepExecution of ``step_name`` (a step may run again after a loop or a retry)."""
    latest: Mapping[str, Any] | None = None
    for record in step_executions:
        if record.get("StepName") == step_name:
            latest = record
    return latest


class MalformedResponseError(ValueError):
    """AWS (or something posing as it) answered without the fields every answer must have."""


def execution_status(execution: Mapping[str, Any], execution_id: str) -> str:
    """The AutomationExecutionStatus of a Get/Describe answer; a clear error if it is missing."""
    status = execution.get("AutomationExecutionStatus")
    if not isinstance(status, str) or not status:
        raise MalformedResponseError(
            f"The answer about automation execution {execution_id} has no AutomationExecutionStatus "
            f"(got keys {sorted(execution)}): is the endpoint really SSM?"
        )
    return status


def read_execution(get: Callable[[str], Mapping[str, Any]], execution_id: str) -> dict[str, Any]:
    """``get(execution_id)`` (the hook's GetAutomationExecution), naming a malformed answer as such."""
    try:
        execution = dict(get(execution_id))
    except (KeyError, TypeError) as exc:  # the hook indexes into the response: a field was missing
        raise MalformedResponseError(
            f"The answer about automation execution {execution_id} lacks {exc}: is the endpoint really SSM?"
        ) from exc
    execution_status(execution, execution_id)
    return execution


@dataclass
class ExecutionWatch:
    """The per-execution state of a watch loop, shared by the operator's blocking loop and the trigger.

    The loop asks AWS for the execution's status (metadata: status, CurrentStepName, DocumentName...),
    then: ``needs_step_records`` says whether to fetch step executions (only when the current step
    changed to a sleep — its start time and resolved Duration are needed), and ``next_delay`` says how
    long to wait. ``step_aware=False`` polls every ``waiter_delay`` like the Amazon provider's waiters.
    """

    schedule: PollSchedule
    step_aware: bool = True
    _step_name: str | None = None
    _step_record: Mapping[str, Any] | None = None

    def needs_step_records(self, metadata: Mapping[str, Any], runbook: Runbook | None) -> bool:
        step_name = metadata.get("CurrentStepName")
        if not self.step_aware or runbook is None or not step_name or step_name == self._step_name:
            return False
        return any(step.name == step_name and step.action == SLEEP for step in runbook.steps)

    def next_delay(
        self,
        metadata: Mapping[str, Any],
        runbook: Runbook | None,
        now: datetime,
        step_executions: Iterable[Mapping[str, Any]] | None = None,
        settings_scale: float = 1.0,
    ) -> float:
        """Clock seconds to wait before the next poll, after observing ``metadata`` at ``now``."""
        step_name = metadata.get("CurrentStepName")
        if step_name != self._step_name:
            self._step_name = step_name
            self._step_record = None
        if step_executions is not None and step_name:
            self._step_record = current_step_record(step_executions, step_name)
        if not self.step_aware or runbook is None:
            return self.schedule.waiter_delay * settings_scale
        record = self._step_record or {}
        bound = time_to_end_lower_bound(
            runbook,
            step_name,
            now,
            current_step_started=_parse_time(record.get("ExecutionStartTime")),
            current_step_inputs=record.get("Inputs") or {},
        )
        return self.schedule.next_delay(bound, settings_scale)
