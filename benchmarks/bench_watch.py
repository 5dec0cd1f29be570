"""Watching one 13-hour runbook: how many AWS calls the trigger makes, and how late it notices the end.

The runbook (about 13 simulated hours): a short API step, a 4 h maintenance window, a short check, an
``aws:pause`` a person answers 2 h late, a 3 h window, a check, a 3 h 50 min window, a final check. It runs
on the local runtime with a high ``time_scale``, and the trigger's waits run on the same simulated clock
(``polling.use_clock``). Every SSM call the trigger's hook sends is counted (a botocore ``before-send``
handler); the person's Resume and the benchmark's own set-up calls are not.

- ``watch_13h_api_calls``: calls made by the trigger from its first poll to its event (target <= 60;
  a fixed 30 s poll costs ~1,560, a fixed 20 s poll ~2,340). The trigger runs with ``waiter_delay=20``:
  the end is noticed within waiter_delay + one call's latency, and step-aware polling makes the call
  count almost independent of waiter_delay.
- ``watch_13h_detect_delay_s``: simulated seconds between the execution's end (ExecutionEndTime) and the
  trigger's event (target <= 30). At ``TIME_SCALE`` each wall millisecond of call latency counts as
  ``TIME_SCALE / 1000`` simulated seconds here, so this figure is pessimistic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from airflow_ssm_delegate.clocks import use_clock
from airflow_ssm_delegate.connection import ConnectionSettings
from airflow_ssm_delegate.local.server import LocalAutomationServer
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TIME_SCALE = 600.0
WAITER_DELAY = 20.0  # the user's knob for detection latency; calls barely depend on it (see README)
PAUSE_ANSWERED_AFTER_S = 2 * 3600
SSM_TRUST = {"Effect": "Allow", "Principal": {"Service": "ssm.amazonaws.com"}, "Action": "sts:AssumeRole"}
DESCRIBE = {"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}


def _check(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "action": "aws:executeAwsApi",
        "inputs": {"Service": "ec2", "Api": "DescribeInstances"},
    }


def _window(name: str, duration: str) -> dict[str, Any]:
    return {"name": name, "action": "aws:sleep", "inputs": {"Duration": duration}}


RUNBOOK_13H = {
    "schemaVersion": "0.3",
    "description": "Benchmark: about 13 hours of maintenance windows around a late-answered pause.",
    "assumeRole": "{{ AutomationAssumeRole }}",
    "parameters": {"AutomationAssumeRole": {"type": "String"}},
    "mainSteps": [
        _check("prepare"),
        _window("window1", "PT4H"),
        _check("check1"),
        {"name": "approval", "action": "aws:pause", "inputs": {}},
        _window("window2", "PT3H"),
        _check("check2"),
        _window("window3", "PT3H50M"),
        _check("verify"),
    ],
}


def client(server: LocalAutomationServer, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        **server.admin_credentials,
    )


def use_airflow_connection(server: LocalAutomationServer) -> None:
    """The ``aws_default`` Airflow connection the triggers' hooks use: the runtime, as its admin."""
    creds = server.admin_credentials
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": creds["aws_access_key_id"],
            "password": creds["aws_secret_access_key"],
            "extra": {"region_name": server.region, "endpoint_url": server.endpoint_url},
        }
    )


def service_role(server: LocalAutomationServer) -> str:
    iam = client(server, "iam")
    name = f"bench-role-{uuid.uuid4().hex[:8]}"
    document = json.dumps({"Version": "2012-10-17", "Statement": [SSM_TRUST]})
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=document)["Role"]["Arn"])
    policy = json.dumps({"Version": "2012-10-17", "Statement": [DESCRIBE]})
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=policy)
    return arn


def publish(server: LocalAutomationServer, content: dict[str, Any]) -> str:
    name = f"Bench-{uuid.uuid4().hex[:8]}"
    client(server, "ssm").create_document(
        Name=name, Content=json.dumps(content), DocumentType="Automation", DocumentFormat="JSON"
    )
    return name


class CallCounter:
    """Counts the SSM requests the triggers' hooks send (installed on every hook the pollers build)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, **_: Any) -> None:
        with self._lock:
            self.calls += 1

    @contextlib.contextmanager
    def installed(self) -> Iterator[CallCounter]:
        original: Callable[[ConnectionSettings], Any] = ConnectionSettings.build_hook

        def build(settings: ConnectionSettings) -> Any:
            hook = original(settings)
            hook.conn.meta.events.register("before-send.ssm", self)
            return hook

        ConnectionSettings.build_hook = build  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            ConnectionSettings.build_hook = original  # type: ignore[method-assign,assignment]


def answer_pause_late(server: LocalAutomationServer, execution_id: str, stop: threading.Event) -> None:
    """A person who resumes the pause ``PAUSE_ANSWERED_AFTER_S`` (simulated) after it began waiting."""
    ssm = client(server, "ssm")
    assert server.clock is not None
    while not stop.is_set():
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution.get("CurrentStepName") == "approval":
            break
        server.clock.wait(60, stop)
    if not server.clock.wait(PAUSE_ANSWERED_AFTER_S, stop):
        ssm.send_automation_signal(AutomationExecutionId=execution_id, SignalType="Resume")


async def first_event(trigger: SsmAutomationExecutionTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("the trigger ended without an event")


def run() -> dict[str, float]:
    with LocalAutomationServer(time_scale=TIME_SCALE, enforce_iam=True) as server:
        assert server.clock is not None
        use_airflow_connection(server)
        role = service_role(server)
        document = publish(server, RUNBOOK_13H)
        ssm = client(server, "ssm")
        execution_id = ssm.start_automation_execution(
            DocumentName=document, Parameters={"AutomationAssumeRole": [role]}
        )["AutomationExecutionId"]
        stop = threading.Event()
        person = threading.Thread(target=answer_pause_late, args=(server, execution_id, stop), daemon=True)
        person.start()
        trigger = SsmAutomationExecutionTrigger(execution_id, waiter_delay=WAITER_DELAY)
        with CallCounter().installed() as counter, use_clock(server.clock):
            event = asyncio.run(first_event(trigger))
            noticed = server.clock.now()
        stop.set()
        person.join()
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if event["status"] != "success":
            raise RuntimeError(
                f"the 13-hour execution did not succeed: {event} / {execution.get('FailureMessage')}"
            )
        ran_for = execution["ExecutionEndTime"] - execution["ExecutionStartTime"]
        return {
            "watch_13h_api_calls": float(counter.calls),
            "watch_13h_detect_delay_s": round((noticed - execution["ExecutionEndTime"]).total_seconds(), 1),
            "watch_13h_simulated_hours": round(ran_for.total_seconds() / 3600, 2),
            "watch_13h_waiter_delay_s": WAITER_DELAY,
        }


if __name__ == "__main__":
    print(run())
