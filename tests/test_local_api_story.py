"""The delegated-administration story through boto3 against a started local runtime (IAM enforced).

(1) a user denied ec2:* cannot run an instance directly (also in test_local_iam); (2) the same user starts
the bundled LaunchTaggedInstance runbook under a service role and the instance runs with the tags; (3)
without iam:PassRole the start is refused and nothing starts; (4) a 13-hour runbook without a role fails
at hour 12 with the session message and succeeds with a role.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from airflow_ssm_delegate.documents.bundled import runbook_path
from tests.fixtures.local_runtime import unique

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

ACCOUNT = "123456789012"
TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "CompletedWithSuccess", "CompletedWithFailure"}
TRUST = {
    "Effect": "Allow",
    "Principal": {"Service": "ssm.amazonaws.com"},
    "Action": "sts:AssumeRole",
    "Condition": {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ssm:*:{ACCOUNT}:automation-execution/*"},
    },
}
LAUNCH_PERMISSIONS = {
    "Effect": "Allow",
    "Action": ["ec2:RunInstances", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:CreateTags"],
    "Resource": "*",
}
DENY_EC2 = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}
WATCH = {
    "Effect": "Allow",
    "Action": ["ssm:GetAutomationExecution", "ssm:DescribeAutomationExecutions"],
    "Resource": "*",
}


def start_permission(document: str) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "ssm:StartAutomationExecution",
        "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/{document}:*",
    }


def pass_role(role: str) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": role,
        "Condition": {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
    }


def wait_for_end(ssm: Any, execution_id: str, polls: int = 600) -> dict[str, Any]:
    """Poll until the execution ends (bounded by a poll count, not by time)."""
    for _ in range(polls):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] in TERMINAL:
            return dict(execution)
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} did not end: {execution['AutomationExecutionStatus']}")


@pytest.fixture
def launch_runbook(boto_client: Callable[..., Any]) -> str:
    name = unique("LaunchTaggedInstance")
    content = runbook_path("LaunchTaggedInstance").read_text()
    boto_client("ssm").create_document(
        Name=name, Content=content, DocumentType="Automation", DocumentFormat="YAML"
    )
    return name


def test_operator_launches_a_tagged_instance_under_the_service_role(
    boto_client: Callable[..., Any],
    new_user: Callable[..., dict[str, str]],
    new_role: Callable[..., str],
    launch_runbook: str,
) -> None:
    role = new_role([TRUST], [LAUNCH_PERMISSIONS])
    operator = new_user(
        [DENY_EC2, start_permission(launch_runbook), WATCH, pass_role(role)], prefix="operator"
    )
    ssm = boto_client("ssm", operator)
    with pytest.raises(ClientError):  # (1) no direct EC2 rights
        boto_client("ec2", operator).describe_instances()

    execution_id = ssm.start_automation_execution(
        DocumentName=launch_runbook,
        Parameters={"AutomationAssumeRole": [role], "Owner": ["alice"], "CostCenter": ["CC-2002"]},
    )["AutomationExecutionId"]
    execution = wait_for_end(ssm, execution_id)

    assert execution["AutomationExecutionStatus"] == "Success", execution.get("FailureMessage")
    [instance_id] = execution["Outputs"]["launch.InstanceIds"]
    instance = boto_client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    assert instance["State"]["Name"] == "running"
    tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
    assert tags == {
        "Owner": "alice",
        "CostCenter": "CC-2002",
        "ManagedBy": "airflow-ssm-delegate",
        "LaunchedBy": execution_id,
    }


def test_role_without_create_tags_fails_the_tag_step_with_a_permission_failure(
    boto_client: Callable[..., Any],
    new_user: Callable[..., dict[str, str]],
    new_role: Callable[..., str],
    launch_runbook: str,
) -> None:
    no_tagging = {
        **LAUNCH_PERMISSIONS,
        "Action": [a for a in LAUNCH_PERMISSIONS["Action"] if a != "ec2:CreateTags"],
    }
    role = new_role([TRUST], [no_tagging])
    operator = new_user([start_permission(launch_runbook), WATCH, pass_role(role)])
    ssm = boto_client("ssm", operator)
    execution_id = ssm.start_automation_execution(
        DocumentName=launch_runbook,
        Parameters={"AutomationAssumeRole": [role], "Owner": ["bob"], "CostCenter": ["CC-1001"]},
    )["AutomationExecutionId"]

    execution = wait_for_end(ssm, execution_id)

    assert execution["AutomationExecutionStatus"] == "Failed"
    steps = {step["StepName"]: step for step in execution["StepExecutions"]}
    assert steps["launch"]["StepStatus"] == "Success"
    assert steps["tag"]["StepStatus"] == "Failed"
    assert steps["tag"]["FailureDetails"]["FailureType"] == "Permission"
    assert "ec2:CreateTags" in steps["tag"]["FailureMessage"]


def test_without_pass_role_the_start_is_refused_and_nothing_starts(
    boto_client: Callable[..., Any],
    new_user: Callable[..., dict[str, str]],
    new_role: Callable[..., str],
    launch_runbook: str,
) -> None:
    role = new_role([TRUST], [LAUNCH_PERMISSIONS])
    operator = new_user([DENY_EC2, start_permission(launch_runbook), WATCH])
    ssm = boto_client("ssm", operator)

    with pytest.raises(ClientError) as refused:
        ssm.start_automation_execution(
            DocumentName=launch_runbook,
            Parameters={"AutomationAssumeRole": [role], "Owner": ["alice"], "CostCenter": ["CC-1001"]},
        )

    error = refused.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "iam:PassRole" in error["Message"] and role in error["Message"]
    started = boto_client("ssm").describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [launch_runbook]}]
    )["AutomationExecutionMetadataList"]
    assert started == []


THIRTEEN_HOURS = json.dumps(
    {
        "schemaVersion": "0.3",
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {"AutomationAssumeRole": {"type": "String", "default": ""}},
        "mainSteps": [
            {"name": "Window", "action": "aws:sleep", "inputs": {"Duration": "PT13H"}},
            {
                "name": "After",
                "action": "aws:executeAwsApi",
                "inputs": {"Service": "ec2", "Api": "DescribeInstances"},
            },
        ],
    }
)


@pytest.fixture
def fast_clock(local_server: LocalAutomationServer) -> Iterator[None]:
    """Ten simulated hours per second for this test only (the runbook makes no call before its sleep, so
    wall-clock latency under load cannot push a call past hour 12 by accident)."""
    assert local_server.clock is not None
    previous = local_server.clock.time_scale
    local_server.clock.time_scale = 36_000
    yield
    local_server.clock.time_scale = previous


@pytest.mark.usefixtures("fast_clock")
def test_thirteen_hours_need_a_service_role(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]], new_role: Callable[..., str]
) -> None:
    name = unique("ThirteenHours")
    boto_client("ssm").create_document(Name=name, Content=THIRTEEN_HOURS, DocumentType="Automation")
    describe = {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}
    role = new_role([TRUST], [describe])
    operator = new_user([describe, start_permission(name), WATCH, pass_role(role)])
    ssm = boto_client("ssm", operator)

    without_role = wait_for_end(
        ssm, ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"]
    )
    with_role = wait_for_end(
        ssm,
        ssm.start_automation_execution(DocumentName=name, Parameters={"AutomationAssumeRole": [role]})[
            "AutomationExecutionId"
        ],
    )

    assert without_role["AutomationExecutionStatus"] == "Failed"
    assert "expired 12 hours" in without_role["FailureMessage"]
    assert "service role" in without_role["FailureMessage"]
    steps = {step["StepName"]: step["StepStatus"] for step in without_role["StepExecutions"]}
    assert steps == {"Window": "Success", "After": "Failed"}
    assert with_role["AutomationExecutionStatus"] == "Success", with_role.get("FailureMessage")
