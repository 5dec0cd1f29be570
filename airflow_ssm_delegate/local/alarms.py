"""CloudWatch alarm monitoring of executions (StartAutomationExecution's ``AlarmConfiguration``).

What AWS documents ("Configure Automation to monitor CloudWatch alarms",
https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-cw-alarm-monitoring.html, and
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_AlarmConfiguration.html):
- one alarm per execution; when it enters ALARM, Automation stops the execution, and the runbook's
  ``onCancel`` steps run before it ends (so it ends ``Cancelled``, as a StopAutomationExecution Cancel);
- the alarm is read with the execution's identity (its service role, else the caller), which needs
  ``cloudwatch:DescribeAlarms``;
- when the alarm state cannot be retrieved, the execution stops unless ``IgnorePollAlarmFailure`` is true;
  an alarm in OK or INSUFFICIENT_DATA never stops it.
The alarm that stopped an execution is listed in ``TriggeredAlarms`` as ``{Name, State}``; State is
``ALARM``, or ``UNKNOWN`` (the API's other ExternalAlarmState value) when the poll failed.

Chosen here, not documented by AWS: the poll interval (``POLL_SECONDS`` of simulated time); an alarm that
does not exist counts as a poll failure; the first poll happens before the first step runs, so an alarm
already in ALARM at start cancels the execution before any step; an execution waiting as ``Pending`` is not
polled until it begins; no FailureMessage is set (TriggeredAlarms says why it stopped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.clients import ClientCache
    from airflow_ssm_delegate.local.clock import SimulatedClock
    from airflow_ssm_delegate.local.execution import Execution
    from airflow_ssm_delegate.local.identity import Credentials
    from airflow_ssm_delegate.local.scheduler import TimerScheduler

log = logging.getLogger(__name__)

#: Simulated seconds between two polls of an execution's alarm (AWS does not publish its interval).
POLL_SECONDS = 10.0
ALARM = "ALARM"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class AlarmWatch:
    """The request's AlarmConfiguration (its shape already checked against the API model)."""

    name: str
    ignore_poll_failure: bool = False

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> AlarmWatch | None:
        config = request.get("AlarmConfiguration")
        if config is None:
            return None
        return cls(str(config["Alarms"][0]["Name"]), bool(config.get("IgnorePollAlarmFailure", False)))

    def to_api(self) -> dict[str, Any]:
        return {"Alarms": [{"Name": self.name}], "IgnorePollAlarmFailure": self.ignore_poll_failure}


def alarm_state(client: Any, name: str) -> str | None:
    """The alarm's state value (metric or composite alarm), or None when it cannot be retrieved."""
    try:
        found = client.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    except (ClientError, BotoCoreError) as error:
        log.info("alarm %s could not be read: %s", name, error)
        return None
    alarms = [*found.get("MetricAlarms", []), *found.get("CompositeAlarms", [])]
    return str(alarms[0]["StateValue"]) if alarms else None


def triggered(watch: AlarmWatch, state: str | None) -> str | None:
    """The TriggeredAlarms State if this poll result stops the execution, else None."""
    if state == ALARM:
        return ALARM
    if state is None and not watch.ignore_poll_failure:
        return UNKNOWN
    return None


class AlarmMonitor:
    """Polls each running execution's alarm on the simulated clock (one timer-heap entry per execution)."""

    def __init__(
        self,
        scheduler: TimerScheduler,
        clock: SimulatedClock,
        clients: ClientCache,
        stop: Callable[[Execution, str], None],
    ) -> None:
        self._scheduler = scheduler
        self._clock = clock
        self._clients = clients
        self._stop = stop

    def check(self, watch: AlarmWatch, credentials: Credentials) -> str | None:
        """Poll once with these credentials: the TriggeredAlarms State if the execution must stop."""
        return triggered(watch, alarm_state(self._clients.get(credentials, "cloudwatch"), watch.name))

    def watch(self, execution: Execution) -> None:
        """Poll ``execution``'s alarm every POLL_SECONDS until it ends (call with its lock held)."""
        when = self._clock.now() + timedelta(seconds=POLL_SECONDS)
        self._scheduler.call_at(when, lambda: self._poll(execution))

    def _poll(self, execution: Execution) -> None:
        with execution.lock:
            if execution.finished or execution.cancelling or execution.alarm is None:
                return
            watch, credentials = execution.alarm, execution.credentials or execution.caller.credentials
        state = self.check(watch, credentials)  # outside the lock: a call to the endpoint
        with execution.lock:
            if execution.finished or execution.cancelling:
                return
            if state is not None:
                self._stop(execution, state)
            else:
                self.watch(execution)
