"""Deferred waiting for an SSM Automation execution, in the triggerer.

The trigger's whole state is its kwargs (execution id + connection settings + polling settings) and
AWS itself, so a triggerer restart or redistribution simply re-runs :meth:`run` from scratch: the first
poll reports wherever the execution is now, and an execution that ended while nobody watched is reported
at once. All AWS I/O goes through the process's shared :class:`~.poller.BatchedPoller`, which runs the
synchronous boto3 hook in worker threads — see that module for why not aiobotocore.

Killing: :meth:`on_kill` (Airflow 3.3 calls it only when a user clears or marks the deferred task)
cancels the execution, so the runbook's onCancel steps run. ``cleanup`` is deliberately not overridden:
it also runs on every triggerer restart, where cancelling would kill healthy long runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.compat import BaseTrigger, TriggerEvent
from airflow_ssm_delegate.connection import ConnectionSettings
from airflow_ssm_delegate.polling import DEFAULT_MAX_POLL_INTERVAL, PollSchedule, execution_status
from airflow_ssm_delegate.retry import ALREADY_ENDED_CODES, error_code
from airflow_ssm_delegate.status import SUCCESS_STATUSES
from airflow_ssm_delegate.triggers.events import get_feed, queue_url_from_connection
from airflow_ssm_delegate.triggers.monitor import ExecutionMonitor, GaveUp, MonitorSettings
from airflow_ssm_delegate.triggers.poller import get_poller

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_ssm_delegate.triggers.events import EventFeed

log = logging.getLogger(__name__)

EVENT_SUCCESS = "success"
EVENT_FAILURE = "failure"
EVENT_ERROR = "error"
ON_KILL_TIMEOUT_S = 30.0
#: With events, the safety-net poll runs at most this often (seconds, like waiter_delay): lost events
#: delay noticing the end by at most this much after the runbook could first have ended.
DEFAULT_EVENTS_SAFETY_DELAY = 600.0


class SsmAutomationExecutionTrigger(BaseTrigger):
    """Fires once the execution ends: ``{"status": "success"|"failure"|"error", "execution_id", ...}``.

    :param execution_id: the AutomationExecutionId to watch.
    :param waiter_delay: seconds between polls when nothing is known about the time left (and the
        longest the end can go unnoticed).
    :param max_poll_interval: the longest wait between two polls, even inside a long sleep.
    :param step_aware: poll rarely while the runbook provably cannot end (see ``polling``).
    :param cancel_on_kill: stop the execution (Cancel) when a user clears or marks the deferred task.
    :param waiter_max_attempts: give up (an ``error`` event; the execution keeps running) after this many
        status checks; ``None`` watches as long as the execution runs. Operators bound the wait with the
        deferral timeout instead; this is for triggers built the Amazon provider's way.
    :param events_queue_url: an SQS queue an EventBridge rule feeds with Automation's events: the watch
        then learns of each step and of the end by event, and polls only as a safety net. None: the AWS
        connection's ``events_queue_url`` extra, if set; "": never (polling only).
    :param events_safety_delay: with events, the shortest time between two safety-net polls.
    """

    def __init__(
        self,
        execution_id: str,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        waiter_delay: float = 30,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        step_aware: bool = True,
        cancel_on_kill: bool = True,
        waiter_max_attempts: int | None = None,
        events_queue_url: str | None = None,
        events_safety_delay: float = DEFAULT_EVENTS_SAFETY_DELAY,
    ) -> None:
        super().__init__()
        if not execution_id:
            raise ValueError("SsmAutomationExecutionTrigger needs the execution_id of the execution to watch")
        self.execution_id = execution_id
        self.connection = ConnectionSettings(aws_conn_id, region_name, verify, botocore_config)
        self.schedule = PollSchedule(waiter_delay=waiter_delay, max_poll_interval=max_poll_interval)
        self.step_aware = step_aware
        self.cancel_on_kill = cancel_on_kill
        if waiter_max_attempts is not None and waiter_max_attempts < 1:
            raise ValueError(f"waiter_max_attempts must be at least 1 (or None), got {waiter_max_attempts!r}")
        self.waiter_max_attempts = waiter_max_attempts
        self.events_queue_url = events_queue_url
        if not (events_safety_delay > 0):
            raise ValueError(
                f"events_safety_delay must be a positive number of seconds, got {events_safety_delay!r}"
            )
        self.events_safety_delay = float(events_safety_delay)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "execution_id": self.execution_id,
                **self.connection.as_kwargs(),
                "waiter_delay": self.schedule.waiter_delay,
                "max_poll_interval": self.schedule.max_poll_interval,
                "step_aware": self.step_aware,
                "cancel_on_kill": self.cancel_on_kill,
                "waiter_max_attempts": self.waiter_max_attempts,
                "events_queue_url": self.events_queue_url,
                "events_safety_delay": self.events_safety_delay,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        poller = get_poller(self.connection)
        settings = MonitorSettings(
            self.schedule, self.step_aware, self.events_safety_delay, self.waiter_max_attempts
        )
        try:
            feed = await self._feed()
            execution = await ExecutionMonitor(self.execution_id, poller, feed, settings, self.log).run()
        except GaveUp as gave_up:
            yield TriggerEvent(self._gave_up(gave_up.status, gave_up.checks))
            return
        except Exception as exc:
            log.exception("Lost track of automation execution %s", self.execution_id)
            yield TriggerEvent(
                self._event(EVENT_ERROR, None, message=f"{type(exc).__name__}: {exc}", code=error_code(exc))
            )
            return
        status = execution_status(execution, self.execution_id)
        yield TriggerEvent(
            self._event(EVENT_SUCCESS if status in SUCCESS_STATUSES else EVENT_FAILURE, status)
        )

    async def _feed(self) -> EventFeed | None:
        """The shared events feed: ``events_queue_url``, else the connection's ``events_queue_url`` extra."""
        if self.events_queue_url == "":
            return None  # explicitly off
        queue_url = self.events_queue_url or await queue_url_from_connection(self.connection)
        return get_feed(queue_url, self.connection) if queue_url else None

    def _gave_up(self, status: str, checks: int) -> dict[str, Any]:
        message = (
            f"still {status} after {checks} status checks (waiter_max_attempts); the execution keeps "
            "running: stop it or watch it again with SsmAutomationExecutionSensor"
        )
        return self._event(EVENT_ERROR, status, message=message, code="WaiterMaxAttemptsExceeded")

    def _event(self, outcome: str, execution_status: str | None, **extra: Any) -> dict[str, Any]:
        return {
            "status": outcome,
            "execution_id": self.execution_id,
            "execution_status": execution_status,
            **extra,
        }

    async def on_kill(self) -> None:
        """Cancel the execution when the user kills the deferred task (never on triggerer restarts)."""
        if not self.cancel_on_kill:
            return
        poller = get_poller(self.connection)
        try:
            # Airflow gives on_kill a bounded time; ours is shorter, so a slow AWS cannot eat it all.
            await asyncio.wait_for(
                poller.call("stop_automation_execution", self.execution_id, "Cancel"),
                timeout=ON_KILL_TIMEOUT_S,
            )
        except Exception as exc:
            if error_code(exc) in ALREADY_ENDED_CODES:
                log.info("Execution %s had already ended; nothing to cancel.", self.execution_id)
                return
            raise
        log.info("Cancelled automation execution %s because its task was killed.", self.execution_id)
