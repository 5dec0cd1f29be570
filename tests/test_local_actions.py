"""Each action of the local runtime making its real calls against a moto server (engine + actions)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from airflow_ssm_delegate.local.actions import REGISTRY
from airflow_ssm_delegate.local.actions.base import StepFailure
from airflow_ssm_delegate.local.actions.flow import sleep_end
from airflow_ssm_delegate.local.conditions import ChoiceError, choose, evaluate
from tests.local_engine_support import Harness, runbook, step, steps_by_name

AMI = "ami-12c6146b"  # in moto's default image list


@pytest.fixture
def ec2(moto_url: str) -> Any:
    return boto3.client("ec2", endpoint_url=moto_url, region_name="us-east-1")


def launch(ec2: Any, count: int = 1) -> list[str]:
    reservation = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, InstanceType="t3.micro")
    return [i["InstanceId"] for i in reservation["Instances"]]


def state(ec2: Any, instance_id: str) -> str:
    return str(
        ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    )


def succeed(h: Harness, *steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    execution = h.finish(h.run(runbook(*steps, **top)))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    return execution


def fail(h: Harness, *steps: dict[str, Any]) -> dict[str, Any]:
    execution = h.finish(h.run(runbook(*steps)))
    assert execution["AutomationExecutionStatus"] == "Failed", execution
    return next(s for s in execution["StepExecutions"] if s["StepStatus"] == "Failed")


def test_registry_is_the_supported_set() -> None:
    assert set(REGISTRY) == {
        "aws:runInstances", "aws:createTags", "aws:changeInstanceState", "aws:createImage", "aws:deleteImage",
        "aws:copyImage",
        "aws:executeAwsApi", "aws:waitForAwsResourceProperty", "aws:assertAwsResourceProperty", "aws:branch",
        "aws:sleep", "aws:pause", "aws:approve", "aws:executeAutomation", "aws:runCommand",
        "aws:executeScript", "aws:createStack", "aws:deleteStack", "aws:executeStateMachine", "aws:loop",
        "aws:updateVariable", "aws:invokeLambdaFunction",
    }  # fmt: skip


def test_run_instances_waits_for_running_and_create_tags_tags_them(h: Harness, ec2: Any) -> None:
    execution = succeed(
        h,
        step(
            "Launch",
            "aws:runInstances",
            inputs={"ImageId": AMI, "InstanceType": "t3.micro", "MinInstanceCount": 2},
        ),
        step(
            "Tag",
            "aws:createTags",
            inputs={"ResourceIds": "{{ Launch.InstanceIds }}", "Tags": [{"Key": "Owner", "Value": "team-a"}]},
        ),
        outputs=["Launch.InstanceIds", "Launch.InstanceStates"],
    )
    instance_ids = execution["Outputs"]["Launch.InstanceIds"]
    assert len(instance_ids) == 2
    assert execution["Outputs"]["Launch.InstanceStates"] == ["running", "running"]
    for instance_id in instance_ids:
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])["Tags"]
        assert {(t["Key"], t["Value"]) for t in tags} == {("Owner", "team-a")}
        assert state(ec2, instance_id) == "running"


def test_run_instances_rejects_unknown_and_missing_inputs(h: Harness) -> None:
    unknown = fail(h, step("Launch", "aws:runInstances", inputs={"ImageId": AMI, "Colour": "blue"}))
    assert "Colour" in unknown["FailureMessage"]
    assert unknown["FailureDetails"]["FailureType"] == "Verification"
    missing = fail(h, step("Launch", "aws:runInstances", inputs={"InstanceType": "t3.micro"}))
    assert "ImageId" in missing["FailureMessage"]


def test_change_instance_state_stops_checks_starts_and_terminates(h: Harness, ec2: Any) -> None:
    [instance_id] = launch(ec2)

    def change(desired: str, name: str = "Change", **extra: Any) -> dict[str, Any]:
        inputs = {"InstanceIds": [instance_id], "DesiredState": desired, **extra}
        return step(name, "aws:changeInstanceState", inputs=inputs)

    succeed(h, change("stopped"), change("stopped", "Check", CheckStateOnly=True))
    assert state(ec2, instance_id) == "stopped"
    succeed(h, change("running"))
    assert state(ec2, instance_id) == "running"
    succeed(h, change("terminated"))
    assert state(ec2, instance_id) == "terminated"
    bad = fail(h, change("sleeping"))
    assert "DesiredState" in bad["FailureMessage"]


def test_check_state_only_does_not_change_the_instance(h: Harness, ec2: Any) -> None:
    [instance_id] = launch(ec2)
    inputs = {"InstanceIds": [instance_id], "DesiredState": "stopped", "CheckStateOnly": True}
    checking = step("Check", "aws:changeInstanceState", inputs=inputs, timeoutSeconds=30)
    execution = h.finish(h.run(runbook(checking)))
    assert execution["AutomationExecutionStatus"] == "TimedOut"
    assert state(ec2, instance_id) == "running"


def test_create_image_waits_for_available_and_delete_image_removes_it(h: Harness, ec2: Any) -> None:
    [instance_id] = launch(ec2)
    execution = succeed(
        h,
        step(
            "Image",
            "aws:createImage",
            inputs={"InstanceId": instance_id, "ImageName": "nightly-{{ global:DATE }}"},
        ),
        step("Delete", "aws:deleteImage", inputs={"ImageId": "{{ Image.ImageId }}"}),
        outputs=["Image.ImageId", "Image.ImageState"],
    )
    image_id = execution["Outputs"]["Image.ImageId"][0]
    assert execution["Outputs"]["Image.ImageState"] == ["available"]
    assert ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image_id]}])["Images"] == []


def test_execute_aws_api_outputs_by_selector_and_type(h: Harness, ec2: Any) -> None:
    [instance_id] = launch(ec2)
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "Team", "Value": "a"}])
    outputs = [
        {"Name": "State", "Selector": "$.Reservations[0].Instances[0].State.Name", "Type": "String"},
        {"Name": "Code", "Selector": "$.Reservations[0].Instances[0].State.Code", "Type": "Integer"},
        {"Name": "Ids", "Selector": "$.Reservations[*].Instances[*].InstanceId", "Type": "StringList"},
        {"Name": "StateMap", "Selector": "$.Reservations[0].Instances[0].State", "Type": "StringMap"},
        {"Name": "Tags", "Selector": "$.Reservations[0].Instances[0].Tags", "Type": "MapList"},
        {"Name": "Ebs", "Selector": "$.Reservations[0].Instances[0].EbsOptimized", "Type": "Boolean"},
    ]
    execution = succeed(
        h,
        step(
            "Describe",
            "aws:executeAwsApi",
            inputs={"Service": "ec2", "Api": "describe_instances", "InstanceIds": [instance_id]},
            outputs=outputs,
        ),
    )
    values = steps_by_name(execution)["Describe"]["Outputs"]
    assert values["State"] == ["running"]
    assert values["Code"] == ["16"]
    assert values["Ids"] == [instance_id]
    assert json.loads(values["StateMap"][0]) == {"Code": 16, "Name": "running"}
    assert json.loads(values["Tags"][0]) == {"Key": "Team", "Value": "a"}
    assert values["Ebs"] == ["false"]


def test_execute_aws_api_refuses_unknown_api_and_bad_parameters(h: Harness) -> None:
    unknown = fail(h, step("Call", "aws:executeAwsApi", inputs={"Service": "ec2", "Api": "LaunchRocket"}))
    assert "LaunchRocket" in unknown["FailureMessage"]
    service = fail(h, step("Call", "aws:executeAwsApi", inputs={"Service": "nosuch", "Api": "X"}))
    assert "nosuch" in service["FailureMessage"]
    params = fail(
        h,
        step("Call", "aws:executeAwsApi", inputs={"Service": "ec2", "Api": "DescribeInstances", "Bogus": 1}),
    )
    assert "Bogus" in params["FailureMessage"]
    selector = fail(
        h,
        step(
            "Call",
            "aws:executeAwsApi",
            inputs={"Service": "ec2", "Api": "DescribeRegions"},
            outputs=[{"Name": "X", "Selector": "$.NoSuchKey", "Type": "String"}],
        ),
    )
    assert selector["FailureDetails"]["FailureStage"] == "Outputs"


def test_wait_for_and_assert_resource_property(h: Harness, ec2: Any) -> None:
    [instance_id] = launch(ec2)
    query = {
        "Service": "ec2",
        "Api": "DescribeInstances",
        "InstanceIds": [instance_id],
        "PropertySelector": "$.Reservations[0].Instances[0].State.Name",
    }
    succeed(
        h,
        step("Wait", "aws:waitForAwsResourceProperty", inputs={**query, "DesiredValues": ["running"]}),
        step(
            "Assert",
            "aws:assertAwsResourceProperty",
            inputs={**query, "DesiredValues": ["pending", "running"]},
        ),
    )
    wrong = fail(
        h, step("Assert", "aws:assertAwsResourceProperty", inputs={**query, "DesiredValues": ["stopped"]})
    )
    assert "running" in wrong["FailureMessage"] and "stopped" in wrong["FailureMessage"]
    waiting = step(
        "Wait",
        "aws:waitForAwsResourceProperty",
        inputs={**query, "DesiredValues": ["stopped"]},
        timeoutSeconds=20,
    )
    timed_out = h.finish(h.run(runbook(waiting)))
    assert timed_out["AutomationExecutionStatus"] == "TimedOut"


def test_run_command_sends_and_waits(h: Harness, ec2: Any) -> None:
    [instance_id] = launch(ec2)
    execution = succeed(
        h,
        step(
            "Command",
            "aws:runCommand",
            inputs={
                "DocumentName": "AWS-RunShellScript",
                "InstanceIds": [instance_id],
                "Parameters": {"commands": ["uptime"]},
            },
        ),
        outputs=["Command.CommandId", "Command.Status"],
    )
    assert execution["Outputs"]["Command.Status"] == ["Success"]
    ssm = boto3.client("ssm", endpoint_url=h.engine.clients.endpoint_url, region_name="us-east-1")
    command_id = execution["Outputs"]["Command.CommandId"][0]
    [command] = ssm.list_commands(CommandId=command_id)["Commands"]
    assert command["DocumentName"] == "AWS-RunShellScript"
    assert command["Parameters"] == {"commands": ["uptime"]}


def test_execute_automation_runs_a_child_and_reports_it(h: Harness) -> None:
    h.documents.add(
        "Child",
        runbook(
            step("Nap", "aws:sleep", inputs={"Duration": "PT{{ Minutes }}M"}),
            parameters={"Minutes": {"type": "Integer"}},
        ),
    )
    execution = succeed(
        h,
        step(
            "Run",
            "aws:executeAutomation",
            inputs={"DocumentName": "Child", "RuntimeParameters": {"Minutes": 5}},
        ),
        outputs=["Run.ExecutionId", "Run.Status"],
    )
    child_id = execution["Outputs"]["Run.ExecutionId"][0]
    assert execution["Outputs"]["Run.Status"] == ["Success"]
    child = h.engine.get(child_id)
    assert child["ParentAutomationExecutionId"] == execution["AutomationExecutionId"]
    assert child["Parameters"] == {"Minutes": ["5"]}

    bad = fail(
        h,
        step(
            "Run",
            "aws:executeAutomation",
            inputs={"DocumentName": "Child", "RuntimeParameters": {"Minutes": "x"}},
        ),
    )
    assert "InvalidAutomationExecutionParametersException" in bad["FailureMessage"]
    h.documents.add("FailingChild", runbook(step("Nap", "aws:sleep", inputs={"Duration": "soon"})))
    failed_child = fail(h, step("Run", "aws:executeAutomation", inputs={"DocumentName": "FailingChild"}))
    assert "ended Failed" in failed_child["FailureMessage"]


def test_sleep_accepts_duration_or_timestamp_and_refuses_bad_ones(h: Harness) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert sleep_end({"Duration": "PT1H30M"}, start) == start + timedelta(minutes=90)
    assert sleep_end({"Timestamp": "2026-01-01T02:00:00Z"}, start) == start + timedelta(hours=2)
    assert sleep_end({"Timestamp": "2025-01-01T00:00:00Z"}, start) == start
    for inputs in ({}, {"Duration": "PT1H", "Timestamp": "2026-01-01T00:00:00Z"}, {"Duration": "an hour"},
                   {"Duration": "P8D"}, {"Duration": "P1M"}, {"Timestamp": "tomorrow"}):  # fmt: skip
        with pytest.raises(StepFailure):
            sleep_end(inputs, start)
    later = (h.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    execution = succeed(h, step("Until", "aws:sleep", inputs={"Timestamp": later}))
    assert (
        execution["StepExecutions"][0]["ExecutionEndTime"]
        >= datetime.fromisoformat(later.replace("Z", "+00:00")).timestamp()
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "Linux", "StringEquals": "Linux"}, True),
        ({"Variable": "LINUX", "EqualsIgnoreCase": "linux"}, True),
        ({"Variable": "ami-123", "StartsWith": "ami-"}, True),
        ({"Variable": "file.txt", "EndsWith": ".log"}, False),
        ({"Variable": ["a", "b"], "Contains": "b"}, True),
        ({"Variable": "abc", "Contains": "z"}, False),
        ({"Variable": "3", "NumericEquals": 3}, True),
        ({"Variable": 4, "NumericGreater": 3}, True),
        ({"Variable": 2, "NumericLesser": 3}, True),
        ({"Variable": 3, "NumericGreaterOrEquals": 3}, True),
        ({"Variable": 4, "NumericLesserOrEquals": 3}, False),
        ({"Variable": "true", "BooleanEquals": True}, True),
        ({"And": [{"Variable": 1, "NumericEquals": 1}, {"Variable": "a", "StringEquals": "b"}]}, False),
        ({"Or": [{"Variable": 1, "NumericEquals": 1}, {"Variable": "a", "StringEquals": "b"}]}, True),
        ({"Not": {"Variable": "a", "StringEquals": "b"}}, True),
    ],
)
def test_branch_operators(rule: dict[str, Any], expected: bool) -> None:
    assert evaluate(rule) is expected


def test_branch_rules_that_make_no_sense_are_errors() -> None:
    nonsense: tuple[Any, ...] = (
        {"Variable": "x"},
        {"Variable": "x", "StringEquals": "x", "EndsWith": "x"},
        {"StringEquals": "x"},
        {"Variable": "x", "NumericEquals": 1},
        {"And": []},
        "text",
    )
    for rule in nonsense:
        with pytest.raises(ChoiceError):
            evaluate(rule)
    assert choose([{"NextStep": "A", "Variable": "1", "NumericGreater": 5}], "B") == "B"
    with pytest.raises(ChoiceError):
        choose([{"Variable": "1", "NumericGreater": 0}], None)


def test_branch_goes_to_the_chosen_step_or_fails_without_default(h: Harness) -> None:
    choices = [{"NextStep": "Windows", "Variable": "{{ Os }}", "StringEquals": "windows"}]
    parameters = {"Os": {"type": "String"}}
    content = runbook(
        step("Pick", "aws:branch", inputs={"Choices": choices, "Default": "Linux"}),
        step("Windows", "aws:sleep", inputs={"Duration": "PT1S"}, isEnd=True),
        step("Linux", "aws:sleep", inputs={"Duration": "PT1S"}),
        parameters=parameters,
    )
    windows = h.finish(h.run(content, {"Os": "windows"}))
    assert [s["StepName"] for s in windows["StepExecutions"]] == ["Pick", "Windows"]
    linux = h.finish(h.run(content, {"Os": "linux"}))
    assert [s["StepName"] for s in linux["StepExecutions"]] == ["Pick", "Linux"]
    no_default = runbook(
        step("Pick", "aws:branch", inputs={"Choices": choices}),
        step("Windows", "aws:pause"),
        parameters=parameters,
    )
    stuck = h.finish(h.run(no_default, {"Os": "linux"}))
    assert stuck["AutomationExecutionStatus"] == "Failed"
    assert "no Default" in stuck["StepExecutions"][0]["FailureMessage"]
