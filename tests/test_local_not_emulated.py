"""What moto does not implement is refused by name (UnsupportedOperation, HTTP 400), never an HTML 500.

A 500 reads "the server is overloaded" and boto3 retries it as transient; a step calling it would fail
only after the retries, with nothing saying why. Through boto3 against the local runtime (IAM enforced),
with the retrying client configuration the runtime's own steps use.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from tests.corpus_runtime import all_actions_role
from tests.fixtures.local_runtime import error_of
from tests.local_engine_support import role_runbook, start_as_role
from tests.local_engine_support import step as runbook_step

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.server import LocalAutomationServer

RETRYING = Config(retries={"max_attempts": 3, "mode": "standard"})
AMI = "ami-12c6146b"  # one of moto's built-in images


def retrying_client(server: LocalAutomationServer, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        config=RETRYING,
        **dict(server.admin_credentials),
    )


def refused(
    server: LocalAutomationServer, service: str, call: str, **arguments: Any
) -> tuple[dict[str, Any], int]:
    """The error and the number of retries boto3 made for a call the runtime refuses."""
    client = retrying_client(server, service)
    retries: list[int] = []
    client.meta.events.register("needs-retry.*", lambda attempts, **_: retries.append(attempts))
    error = error_of(lambda: getattr(client, call)(**arguments))
    return error, len(retries) - 1  # botocore asks needs-retry once per attempt, the last one says no


def test_an_ec2_filter_moto_lacks_is_named_and_not_retried(local_server: LocalAutomationServer) -> None:
    retrying_client(local_server, "ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)
    error, retries = refused(
        local_server, "ec2", "describe_instances", Filters=[{"Name": "tenancy", "Values": ["default"]}]
    )
    assert error["Code"] == "UnsupportedOperation"
    assert "does not emulate ec2:DescribeInstances with the filter 'tenancy'" in error["Message"]
    assert retries == 0


def test_an_action_moto_lacks_is_named_in_the_json_protocol(local_server: LocalAutomationServer) -> None:
    error, retries = refused(
        local_server, "ssm", "describe_instance_patches", InstanceId="i-0123456789abcdef0"
    )
    assert error["Code"] == "UnsupportedOperation"
    assert "does not emulate ssm:DescribeInstancePatches" in error["Message"]
    assert retries == 0


def test_a_step_calling_it_fails_with_the_refusal_in_its_message(local_server: LocalAutomationServer) -> None:
    ssm = retrying_client(local_server, "ssm")
    retrying_client(local_server, "ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)
    content = role_runbook(
        runbook_step(
            "describe",
            "aws:executeAwsApi",
            inputs={
                "Service": "ec2",
                "Api": "DescribeInstances",
                "Filters": [{"Name": "tenancy", "Values": ["default"]}],
            },
        )
    )
    role = all_actions_role(local_server, "not-emulated")
    execution_id = start_as_role(ssm, "NotEmulated", content, role)
    execution: dict[str, Any] = {}
    for _ in range(1500):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] not in ("Pending", "InProgress"):
            break
        time.sleep(0.02)
    assert execution["AutomationExecutionStatus"] == "Failed"
    step = execution["StepExecutions"][0]
    assert step["StepStatus"] == "Failed"
    assert "(UnsupportedOperation)" in step["FailureMessage"]
    assert "does not emulate ec2:DescribeInstances with the filter 'tenancy'" in step["FailureMessage"]
