"""AlarmConfiguration on the local runtime, through boto3: a CloudWatch alarm in ALARM stops the execution."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.local.alarms import POLL_SECONDS
from tests.fixtures.local_runtime import SSM_TRUST, new_alarm, unique

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

HOLD = {"name": "hold", "action": "aws:pause", "inputs": {}, "onCancel": "step:cleanup"}
CLEANUP = {"name": "cleanup", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}, "isEnd": True}
ENDED = ("Cancelled", "Success", "Failed")


@pytest.fixture
def ssm(boto_client: Callable[..., Any]) -> Any:
    return boto_client("ssm")


@pytest.fixture
def cloudwatch(boto_client: Callable[..., Any]) -> Any:
    return boto_client("cloudwatch")


@contextmanager
def fast_clock(server: LocalAutomationServer, scale: float = 100.0) -> Iterator[None]:
    """Polls every POLL_SECONDS of simulated time: speed the clock so a poll comes within a wall second."""
    original = server.time_scale
    server.time_scale = scale
    try:
        yield
    finally:
        server.time_scale = original


def publish(ssm: Any, steps: list[dict[str, Any]], assume_role: str | None = None) -> str:
    name = unique("Alarmed")
    body: dict[str, Any] = {"schemaVersion": "0.3", "mainSteps": steps}
    if assume_role:
        body["assumeRole"] = assume_role
    ssm.create_document(Name=name, Content=json.dumps(body), DocumentType="Automation", DocumentFormat="JSON")
    return name


def start(ssm: Any, document: str, alarm: str, ignore: bool | None = None) -> str:
    config: dict[str, Any] = {"Alarms": [{"Name": alarm}]}
    if ignore is not None:
        config["IgnorePollAlarmFailure"] = ignore
    return str(
        ssm.start_automation_execution(DocumentName=document, AlarmConfiguration=config)[
            "AutomationExecutionId"
        ]
    )


def execution(ssm: Any, execution_id: str) -> dict[str, Any]:
    return dict(ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"])


def until(ssm: Any, execution_id: str, statuses: tuple[str, ...], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (found := execution(ssm, execution_id))["AutomationExecutionStatus"] not in statuses:
        if time.monotonic() > deadline:
            return found
        time.sleep(0.02)
    return found


def step_statuses(found: dict[str, Any]) -> dict[str, str]:
    return {step["StepName"]: step["StepStatus"] for step in found["StepExecutions"]}


def test_an_alarm_going_into_alarm_cancels_the_running_execution_and_runs_on_cancel(
    local_server: LocalAutomationServer, ssm: Any, cloudwatch: Any
) -> None:
    alarm = new_alarm(cloudwatch)
    document = publish(ssm, [HOLD, CLEANUP])
    with fast_clock(local_server):
        execution_id = start(ssm, document, alarm)
        waiting = until(ssm, execution_id, ("Waiting",))
        time.sleep(2 * POLL_SECONDS / 100)  # polls at OK leave it running
        assert execution(ssm, execution_id)["AutomationExecutionStatus"] == "Waiting"
        assert waiting["AlarmConfiguration"] == {"Alarms": [{"Name": alarm}], "IgnorePollAlarmFailure": False}
        assert "TriggeredAlarms" not in waiting
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="errors")
        ended = until(ssm, execution_id, ENDED)
    assert ended["AutomationExecutionStatus"] == "Cancelled"
    assert ended["TriggeredAlarms"] == [{"Name": alarm, "State": "ALARM"}]
    assert step_statuses(ended) == {"hold": "Cancelled", "cleanup": "Success"}
    listed = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": [execution_id]}])
    (metadata,) = listed["AutomationExecutionMetadataList"]
    assert metadata["TriggeredAlarms"] == [{"Name": alarm, "State": "ALARM"}]
    assert metadata["AlarmConfiguration"]["Alarms"] == [{"Name": alarm}]


def test_an_alarm_already_in_alarm_cancels_before_the_first_step(ssm: Any, cloudwatch: Any) -> None:
    alarm = new_alarm(cloudwatch, "ALARM")
    execution_id = start(ssm, publish(ssm, [HOLD, CLEANUP]), alarm)
    ended = until(ssm, execution_id, ENDED)
    assert ended["AutomationExecutionStatus"] == "Cancelled"
    assert ended["StepExecutions"] == []
    assert ended["TriggeredAlarms"] == [{"Name": alarm, "State": "ALARM"}]


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_ok_or_insufficient_data_never_stops_it(ssm: Any, cloudwatch: Any, state: str) -> None:
    alarm = new_alarm(cloudwatch, state)
    steps = [{"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}]
    ended = until(ssm, start(ssm, publish(ssm, steps), alarm), ENDED)
    assert ended["AutomationExecutionStatus"] == "Success"
    assert "TriggeredAlarms" not in ended


def test_a_missing_alarm_stops_it_unless_poll_failures_are_ignored(ssm: Any) -> None:
    document = publish(ssm, [{"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}])
    missing = unique("no-such-alarm")
    stopped = until(ssm, start(ssm, document, missing), ENDED)
    assert stopped["AutomationExecutionStatus"] == "Cancelled"
    assert stopped["TriggeredAlarms"] == [{"Name": missing, "State": "UNKNOWN"}]
    ignored = until(ssm, start(ssm, document, missing, ignore=True), ENDED)
    assert ignored["AutomationExecutionStatus"] == "Success"
    assert "TriggeredAlarms" not in ignored


def test_the_alarm_is_read_with_the_execution_role_which_needs_describe_alarms(
    ssm: Any, cloudwatch: Any, new_role: Callable[..., str]
) -> None:
    alarm = new_alarm(cloudwatch)
    steps = [{"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}]
    without = new_role([SSM_TRUST], [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}])
    denied = until(ssm, start(ssm, publish(ssm, steps, without), alarm), ENDED)
    assert denied["AutomationExecutionStatus"] == "Cancelled"
    assert denied["TriggeredAlarms"] == [{"Name": alarm, "State": "UNKNOWN"}]
    allowed_role = new_role(
        [SSM_TRUST], [{"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": "*"}]
    )
    allowed = until(ssm, start(ssm, publish(ssm, steps, allowed_role), alarm), ENDED)
    assert allowed["AutomationExecutionStatus"] == "Success"


def test_a_malformed_alarm_configuration_is_a_validation_error(local_server: LocalAutomationServer) -> None:
    import boto3
    from botocore.config import Config

    raw = boto3.client(
        "ssm",
        endpoint_url=local_server.endpoint_url,
        region_name=local_server.region,
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
        **dict(local_server.admin_credentials),
    )
    with pytest.raises(raw.exceptions.ClientError) as raised:
        raw.start_automation_execution(DocumentName="Any", AlarmConfiguration={"Alarms": []})
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "alarmConfiguration.alarms" in raised.value.response["Error"]["Message"]


def test_the_alarm_stop_cascades_to_a_running_child_execution(
    local_server: LocalAutomationServer, ssm: Any, cloudwatch: Any
) -> None:
    alarm = new_alarm(cloudwatch)
    child_document = publish(ssm, [{"name": "hold", "action": "aws:pause", "inputs": {}}])
    run_child = {"name": "run", "action": "aws:executeAutomation", "inputs": {"DocumentName": child_document}}
    with fast_clock(local_server):
        parent_id = start(ssm, publish(ssm, [run_child]), alarm)
        listed: list[Any] = []
        deadline = time.monotonic() + 10
        while not listed and time.monotonic() < deadline:
            found = ssm.describe_automation_executions(
                Filters=[{"Key": "ParentExecutionId", "Values": [parent_id]}]
            )
            listed = found["AutomationExecutionMetadataList"]
        (child,) = listed
        assert (
            until(ssm, child["AutomationExecutionId"], ("Waiting",))["AutomationExecutionStatus"] == "Waiting"
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="errors")
        parent = until(ssm, parent_id, ENDED)
        stopped_child = until(ssm, child["AutomationExecutionId"], ENDED)
    assert parent["AutomationExecutionStatus"] == "Cancelled"
    assert parent["TriggeredAlarms"] == [{"Name": alarm, "State": "ALARM"}]
    assert stopped_child["AutomationExecutionStatus"] == "Cancelled"
