"""SsmAutomationExecutionTrigger: serialization, events, step-aware waits, retries, on_kill (Stubber)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.connection import ConnectionSettings
from airflow_ssm_delegate.status import TERMINAL_STATUSES
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger
from tests.fixtures.stubbed_ssm import stubbed_hook

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from botocore.stub import Stubber

    from tests.fixtures.stubbed_ssm import FastClock

SLEEP_RUNBOOK = """
schemaVersion: '0.3'
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole: {type: String}
mainSteps:
  - name: window
    action: aws:sleep
    inputs: {Duration: PT2H}
  - name: verify
    action: aws:executeAwsApi
    inputs: {Service: ec2, Api: DescribeInstances}
"""


def new_id() -> str:
    return str(uuid.uuid4())


def metadata(execution_id: str, status: str, step: str | None = None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"AutomationExecutionId": execution_id, "AutomationExecutionStatus": status}
    if step:
        item["CurrentStepName"] = step
    return {**item, **extra}


def add_describe(stubber: Stubber, ids: list[str], *items: dict[str, Any]) -> None:
    stubber.add_response(
        "describe_automation_executions",
        {"AutomationExecutionMetadataList": list(items)},
        {"Filters": [{"Key": "ExecutionId", "Values": ids}]},
    )


def add_poll(stubber: Stubber, ids: list[str], *items: dict[str, Any]) -> None:
    """A trigger's status poll; an execution it reports ended is then read once more (the final Get)."""
    add_describe(stubber, ids, *items)
    for item in items:
        if item["AutomationExecutionStatus"] in TERMINAL_STATUSES:
            add_final_get(stubber, item)


def add_final_get(stubber: Stubber, item: dict[str, Any]) -> None:
    """The watch's one GetAutomationExecution at the end (outputs, step records for the summary log)."""
    stubber.add_response(
        "get_automation_execution",
        {"AutomationExecution": item},
        {"AutomationExecutionId": item["AutomationExecutionId"]},
    )


def add_sleep_runbook(
    stubber: Stubber, answer: Callable[[dict[str, Any]], dict[str, Any]] = lambda response: response
) -> None:
    """Stub the step-aware schedule's read of runbook "Maintenance" v1 (``SLEEP_RUNBOOK``): one GetDocument;
    ``answer`` may decorate each response (e.g. with the runtime's clock headers)."""
    version = {"Name": "Maintenance", "DocumentVersion": "1"}
    stubber.add_response(
        "get_document", answer({**version, "Content": SLEEP_RUNBOOK, "DocumentFormat": "YAML"}), version
    )


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """Every poller built in this test talks to one stubbed client."""
    hook, stubber = stubbed_hook()
    monkeypatch.setattr(ConnectionSettings, "build_hook", lambda self: hook)
    yield stubber
    stubber.assert_no_pending_responses()


async def first_event(trigger: SsmAutomationExecutionTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_serialization_round_trip_keeps_every_setting() -> None:
    trigger = SsmAutomationExecutionTrigger(
        "11111111-2222-3333-4444-555555555555",
        aws_conn_id="ops",
        region_name="eu-west-1",
        verify="/etc/ca.pem",
        botocore_config={"read_timeout": 30},
        waiter_delay=15,
        max_poll_interval=600,
        step_aware=False,
        cancel_on_kill=False,
        waiter_max_attempts=40,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_ssm_delegate.triggers.automation.SsmAutomationExecutionTrigger"
    module_name, class_name = classpath.rsplit(".", 1)
    cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    rebuilt = cls(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["verify"] == "/etc/ca.pem"
    assert kwargs["botocore_config"] == {"read_timeout": 30}
    assert kwargs["cancel_on_kill"] is False
    assert kwargs["waiter_max_attempts"] == 40


def test_trigger_requires_an_execution_id() -> None:
    with pytest.raises(ValueError, match="needs the execution_id"):
        SsmAutomationExecutionTrigger("")


async def test_success_after_polls(stub: Stubber, clock: FastClock) -> None:
    execution_id = new_id()
    add_poll(stub, [execution_id], metadata(execution_id, "InProgress"))
    add_poll(stub, [execution_id], metadata(execution_id, "Success"))
    trigger = SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None, waiter_delay=30, step_aware=False)
    started = clock.now()
    event = await first_event(trigger)
    assert event == {"status": "success", "execution_id": execution_id, "execution_status": "Success"}
    assert clock.now() - started == timedelta(seconds=30)


async def test_waiter_max_attempts_gives_up_with_an_error_event(stub: Stubber, clock: FastClock) -> None:
    execution_id = new_id()
    add_poll(stub, [execution_id], metadata(execution_id, "InProgress"))
    add_poll(stub, [execution_id], metadata(execution_id, "InProgress"))
    trigger = SsmAutomationExecutionTrigger(
        execution_id, aws_conn_id=None, waiter_delay=30, step_aware=False, waiter_max_attempts=2
    )
    event = await first_event(trigger)
    assert event["status"] == "error"
    assert event["code"] == "WaiterMaxAttemptsExceeded"
    assert event["message"].startswith("still InProgress after 2 status checks (waiter_max_attempts)")
    with pytest.raises(ValueError, match="waiter_max_attempts must be at least 1"):
        SsmAutomationExecutionTrigger(execution_id, waiter_max_attempts=0)


@pytest.mark.parametrize("status", ["Failed", "Cancelled", "TimedOut", "Rejected", "CompletedWithFailure"])
async def test_failure_statuses_fire_a_failure_event(stub: Stubber, clock: FastClock, status: str) -> None:
    execution_id = new_id()
    add_poll(stub, [execution_id], metadata(execution_id, status))
    event = await first_event(SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None, step_aware=False))
    assert event["status"] == "failure"
    assert event["execution_status"] == status


async def test_waits_through_a_sleep_with_few_calls(stub: Stubber, clock: FastClock) -> None:
    """A 2-hour aws:sleep with a 30 s waiter_delay and a 1 h cap: 3 status calls instead of 240."""
    execution_id = new_id()
    meta = {"DocumentName": "Maintenance", "DocumentVersion": "1"}
    add_poll(stub, [execution_id], metadata(execution_id, "InProgress", "window", **meta))
    add_sleep_runbook(stub)
    stub.add_response(
        "describe_automation_step_executions",
        {
            "StepExecutions": [
                {
                    "StepName": "window",
                    "Action": "aws:sleep",
                    "StepStatus": "InProgress",
                    "ExecutionStartTime": clock.now(),
                    "Inputs": {"Duration": '"PT2H"'},
                }
            ]
        },
        {"AutomationExecutionId": execution_id},
    )
    add_poll(stub, [execution_id], metadata(execution_id, "InProgress", "window", **meta))
    add_poll(stub, [execution_id], metadata(execution_id, "Success", **meta))
    started = clock.now()
    trigger = SsmAutomationExecutionTrigger(
        execution_id, aws_conn_id=None, waiter_delay=30, max_poll_interval=3600
    )
    event = await first_event(trigger)
    assert event["status"] == "success"
    # Polled at 0, 1 h (cap) and 2 h - margin: it never looked during the sleep more than the cap allows.
    assert timedelta(hours=1, minutes=59) <= clock.now() - started <= timedelta(hours=2)


async def test_throttling_is_retried_without_failing(stub: Stubber, clock: FastClock) -> None:
    execution_id = new_id()
    stub.add_client_error(
        "describe_automation_executions", "ThrottlingException", "Rate exceeded", http_status_code=400
    )
    stub.add_client_error(
        "describe_automation_executions", "InternalServerError", "oops", http_status_code=500
    )
    add_poll(stub, [execution_id], metadata(execution_id, "Success"))
    trigger = SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None, step_aware=False)
    assert (await first_event(trigger))["status"] == "success"


async def test_a_permanent_error_fires_an_error_event(stub: Stubber, clock: FastClock) -> None:
    execution_id = new_id()
    stub.add_client_error(
        "describe_automation_executions", "AccessDeniedException", "no batch for you", http_status_code=400
    )
    stub.add_client_error(
        "get_automation_execution", "AccessDeniedException", "not allowed", http_status_code=400
    )
    event = await first_event(SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None, step_aware=False))
    assert event["status"] == "error"
    assert event["code"] == "AccessDeniedException"
    assert "not allowed" in event["message"]


async def test_on_kill_cancels_the_execution(stub: Stubber, clock: FastClock) -> None:
    execution_id = new_id()
    stub.add_response(
        "stop_automation_execution", {}, {"AutomationExecutionId": execution_id, "Type": "Cancel"}
    )
    await SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None).on_kill()


async def test_on_kill_of_an_ended_execution_is_quiet(stub: Stubber, clock: FastClock) -> None:
    execution_id = new_id()
    stub.add_client_error(
        "stop_automation_execution", "InvalidAutomationStatusUpdateException", "already Success"
    )
    await SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None).on_kill()


async def test_no_cancel_when_disabled_nor_on_cleanup(stub: Stubber, clock: FastClock) -> None:
    # No stubbed response: any AWS call here would raise.
    trigger = SsmAutomationExecutionTrigger(new_id(), aws_conn_id=None, cancel_on_kill=False)
    await trigger.on_kill()
    await SsmAutomationExecutionTrigger(new_id(), aws_conn_id=None).cleanup()


async def test_restarted_trigger_reports_an_execution_that_ended_meanwhile(
    stub: Stubber, clock: FastClock
) -> None:
    """A triggerer restart rebuilds the trigger from its kwargs; the first poll finds the end at once."""
    execution_id = new_id()
    original = SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None, step_aware=False)
    _, kwargs = original.serialize()
    add_poll(stub, [execution_id], metadata(execution_id, "Success"))
    started = clock.now()
    event = await first_event(SsmAutomationExecutionTrigger(**kwargs))
    assert event["status"] == "success"
    assert clock.now() == started


async def test_step_aware_waits_follow_the_endpoint_clock(
    stub: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No clock installed: the runtime's headers say simulated time runs 3600x, so a 2 h sleep is 2 wall s."""
    from airflow_ssm_delegate.simclock import SIM_TIME_HEADER, TIME_SCALE_HEADER

    execution_id = new_id()
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def at(moment: datetime, response: dict[str, Any]) -> dict[str, Any]:
        headers = {SIM_TIME_HEADER: str(moment.timestamp()), TIME_SCALE_HEADER: "3600"}
        return {**response, "ResponseMetadata": {"HTTPHeaders": headers, "HTTPStatusCode": 200}}

    meta = {"DocumentName": "Maintenance", "DocumentVersion": "1"}
    in_window = metadata(execution_id, "InProgress", "window", **meta)
    describe = {"Filters": [{"Key": "ExecutionId", "Values": [execution_id]}]}
    stub.add_response(
        "describe_automation_executions",
        at(start, {"AutomationExecutionMetadataList": [in_window]}),
        describe,
    )
    add_sleep_runbook(stub, lambda response: at(start, response))
    step = {
        "StepName": "window",
        "Action": "aws:sleep",
        "ExecutionStartTime": start,
        "Inputs": {"Duration": '"PT2H"'},
    }
    stub.add_response(
        "describe_automation_step_executions",
        at(start, {"StepExecutions": [step]}),
        {"AutomationExecutionId": execution_id},
    )
    done = metadata(execution_id, "Success", **meta)
    stub.add_response(
        "describe_automation_executions",
        at(start + timedelta(hours=2), {"AutomationExecutionMetadataList": [done]}),
        describe,
    )
    add_final_get(stub, done)
    from airflow_ssm_delegate.clocks import ServerClock

    waits: list[float] = []
    real_wall_seconds = ServerClock.wall_seconds

    def record(self: ServerClock, sim_seconds: float) -> float:
        wall = real_wall_seconds(self, sim_seconds)
        if wall >= 0.5:  # the leftovers of a finished wait are tiny
            waits.append(round(wall, 1))
        return wall

    monkeypatch.setattr(ServerClock, "wall_seconds", record)
    trigger = SsmAutomationExecutionTrigger(
        execution_id, aws_conn_id=None, waiter_delay=1, max_poll_interval=600
    )
    event = await first_event(trigger)
    assert event["status"] == "success"
    # One wait of ~2 simulated hours = ~2 wall seconds at 3600x (not 2 wall hours, not waiter_delay polls).
    assert len(waits) == 1
    assert 1.9 <= waits[0] <= 2.0


async def test_unreadable_step_records_only_cost_the_optimisation(stub: Stubber, clock: FastClock) -> None:
    execution_id = new_id()
    meta = {"DocumentName": "Maintenance", "DocumentVersion": "1"}
    add_poll(stub, [execution_id], metadata(execution_id, "InProgress", "window", **meta))
    add_sleep_runbook(stub)
    stub.add_client_error("describe_automation_step_executions", "AccessDeniedException", "no")
    add_poll(stub, [execution_id], metadata(execution_id, "Success", **meta))
    started = clock.now()
    event = await first_event(SsmAutomationExecutionTrigger(execution_id, aws_conn_id=None, waiter_delay=30))
    assert event["status"] == "success"
    assert clock.now() - started == timedelta(seconds=30)  # fell back to waiter_delay


async def test_a_poller_failure_reaches_the_waiting_triggers(
    monkeypatch: pytest.MonkeyPatch, clock: FastClock
) -> None:
    from airflow_ssm_delegate.triggers.poller import BatchedPoller

    def broken(self: BatchedPoller) -> list[Any]:
        raise RuntimeError("bug in batching")

    monkeypatch.setattr(BatchedPoller, "_take_batch", broken)
    hook, _ = stubbed_hook()
    poller = BatchedPoller(lambda: hook)
    with pytest.raises(RuntimeError, match="bug in batching"):
        await poller.status(new_id(), poller.due_in(0))
