"""The bundled LongRunningMaintenance runbook on the local runtime, under the role ``iam`` generates.

It runs 12.5 simulated hours (two maintenance windows) after a person approves, and its cleanup path
starts the instance again when the execution is cancelled mid-window.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.documents.publish import publish_document
from airflow_ssm_delegate.iam import generate_policies
from airflow_ssm_delegate.status import TERMINAL_STATUSES
from tests.fixtures.local_runtime import client_for, policy_document, unique

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

MAINTENANCE = runbook_path("LongRunningMaintenance")
FAST = 20_000.0  # simulated seconds per second once the approval is given: 12.5 h in about 2 s


@pytest.fixture
def maintenance(local_server: LocalAutomationServer) -> Iterator[dict[str, Any]]:
    """A published maintenance runbook, its generated service role, an operator and a running instance."""
    role, document = unique("MaintenanceRole"), unique("Maintenance")
    policies = generate_policies(
        [MAINTENANCE],
        role_name=role,
        account=local_server.account_id,
        region=local_server.region,
        names={str(MAINTENANCE): document},
    )
    iam = client_for(local_server, "iam")
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=policy_document(policies["service_role_trust_policy"]["Statement"]),
    )
    iam.put_role_policy(
        RoleName=role,
        PolicyName="generated",
        PolicyDocument=policy_document(policies["service_role_policy"]["Statement"]),
    )
    operator = unique("operator")
    iam.create_user(UserName=operator)
    iam.put_user_policy(
        UserName=operator,
        PolicyName="generated",
        PolicyDocument=policy_document(policies["operator_policy"]["Statement"]),
    )
    key = iam.create_access_key(UserName=operator)["AccessKey"]
    publish_document(client_for(local_server, "ssm"), MAINTENANCE, document)
    ec2 = client_for(local_server, "ec2")
    instance = ec2.run_instances(ImageId="ami-04681a1dbd79675a5", MinCount=1, MaxCount=1)["Instances"][0]
    clock = local_server.clock
    assert clock is not None
    try:
        yield {
            "ssm": client_for(
                local_server,
                "ssm",
                {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]},
            ),
            "ec2": ec2,
            "clock": clock,
            "document": document,
            "operator": operator,
            "instance_id": instance["InstanceId"],
            "role_arn": f"arn:aws:iam::{local_server.account_id}:role/{role}",
        }
    finally:
        clock.time_scale = 1.0


def wait_for(ssm: Any, execution_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(1200):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if done(execution):
            return dict(execution)
        time.sleep(0.02)
    raise AssertionError(f"execution {execution_id} stuck in {execution['AutomationExecutionStatus']}")


def start_and_approve(env: dict[str, Any], *, fast: bool = True) -> str:
    ssm = env["ssm"]
    execution_id = ssm.start_automation_execution(
        DocumentName=env["document"],
        Parameters={
            "AutomationAssumeRole": [env["role_arn"]],
            "InstanceId": [env["instance_id"]],
            "Approvers": [env["operator"]],
        },
    )["AutomationExecutionId"]
    wait_for(
        ssm,
        execution_id,
        lambda e: (
            e.get("CurrentStepName") == "approveMaintenance" and e["AutomationExecutionStatus"] == "Waiting"
        ),
    )
    ssm.send_automation_signal(
        AutomationExecutionId=execution_id, SignalType="Approve", Payload={"Comment": ["go"]}
    )
    wait_for(ssm, execution_id, lambda e: e.get("CurrentStepName") == "firstWindow")
    if fast:
        env["clock"].time_scale = FAST
    return str(execution_id)


def instance_state(env: dict[str, Any]) -> str:
    reservations = env["ec2"].describe_instances(InstanceIds=[env["instance_id"]])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


@pytest.mark.slow
def test_maintenance_runs_over_12_hours_to_success(maintenance: dict[str, Any]) -> None:
    ssm = maintenance["ssm"]
    execution_id = start_and_approve(maintenance)
    execution = wait_for(ssm, execution_id, lambda e: e["AutomationExecutionStatus"] in TERMINAL_STATUSES)
    assert execution["AutomationExecutionStatus"] == "Success", execution.get("FailureMessage")
    ran = [step["StepName"] for step in execution["StepExecutions"]]
    assert ran == [
        "stopInstance",
        "backup",
        "approveMaintenance",
        "firstWindow",
        "secondWindow",
        "startInstance",
        "verify",
    ]
    assert (execution["ExecutionEndTime"] - execution["ExecutionStartTime"]).total_seconds() > 12.5 * 3600
    (image_id,) = execution["Outputs"]["backup.ImageId"]
    assert maintenance["ec2"].describe_images(ImageIds=[image_id])["Images"][0]["State"] == "available"
    assert instance_state(maintenance) == "running"


@pytest.mark.slow
def test_cancel_mid_window_runs_the_cleanup_and_restarts_the_instance(maintenance: dict[str, Any]) -> None:
    ssm = maintenance["ssm"]
    execution_id = start_and_approve(maintenance, fast=False)  # stay in the 6-hour window while cancelling
    assert instance_state(maintenance) == "stopped"
    ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")
    execution = wait_for(ssm, execution_id, lambda e: e["AutomationExecutionStatus"] in TERMINAL_STATUSES)
    assert execution["AutomationExecutionStatus"] == "Cancelled"
    steps = {step["StepName"]: step["StepStatus"] for step in execution["StepExecutions"]}
    assert steps["restartInstance"] == "Success"
    assert "startInstance" not in steps
    assert instance_state(maintenance) == "running"
