"""Step inputs converted to the API's types, as AWS Automation converts them ("true" -> true, "5" -> 5)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from airflow_ssm_delegate.local.actions.shapes import coerce_request
from tests.local_engine_support import Harness, runbook, step

AMI = "ami-12c6146b"


def test_values_follow_the_operation_input_shape() -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    request = {
        "DocumentName": "AWS-RunShellScript",
        "TimeoutSeconds": "600",
        "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": "true", "CloudWatchLogGroupName": 7},
        "Parameters": {"commands": ["echo hi"]},
        "Comment": True,
    }
    assert coerce_request(ssm, "SendCommand", request) == {
        "DocumentName": "AWS-RunShellScript",
        "TimeoutSeconds": 600,
        "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": True, "CloudWatchLogGroupName": "7"},
        "Parameters": {"commands": ["echo hi"]},
        "Comment": "true",
    }


@pytest.mark.parametrize("value", ["soon", "1.5x"])
def test_what_does_not_convert_is_left_for_botocore_to_report(value: str) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    assert coerce_request(ssm, "SendCommand", {"TimeoutSeconds": value}) == {"TimeoutSeconds": value}


def test_execute_aws_api_and_run_command_take_text_for_booleans_and_numbers(
    h: Harness, moto_url: str
) -> None:
    ec2 = boto3.client("ec2", endpoint_url=moto_url, region_name="us-east-1")
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    stop = step(
        "Stop",
        "aws:executeAwsApi",
        inputs={"Service": "ec2", "Api": "StopInstances", "InstanceIds": [instance_id], "Force": "true"},
    )
    run = step(
        "Run",
        "aws:runCommand",
        inputs={
            "DocumentName": "AWS-RunShellScript",
            "InstanceIds": [instance_id],
            "Parameters": {"commands": ["echo hi"]},
            "TimeoutSeconds": "600",
            "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": "true"},
        },
    )
    execution = h.finish(h.run(runbook(run, stop)))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    state: Any = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] in ("stopping", "stopped")


def test_desired_values_match_booleans_written_as_python_text(h: Harness, moto_url: str) -> None:
    """AWS's own AWSConfigRemediation runbooks write ``DesiredValues: ["True"]`` for a boolean property."""
    ec2 = boto3.client("ec2", endpoint_url=moto_url, region_name="us-east-1")
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    check = {
        "Service": "ec2",
        "Api": "DescribeInstances",
        "InstanceIds": [instance_id],
        "PropertySelector": "$.Reservations[0].Instances[0].EbsOptimized",
    }
    passing = step("Check", "aws:assertAwsResourceProperty", inputs={**check, "DesiredValues": ["False"]})
    assert h.finish(h.run(runbook(passing)))["AutomationExecutionStatus"] == "Success"
    failing = step("Check", "aws:assertAwsResourceProperty", inputs={**check, "DesiredValues": ["True"]})
    assert h.finish(h.run(runbook(failing)))["AutomationExecutionStatus"] == "Failed"
