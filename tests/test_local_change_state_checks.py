"""aws:changeInstanceState with DesiredState running waits for the status checks, as AWS documents.

"When set to running, this action waits for the Amazon EC2 state to be Running, the Instance Status to
be OK, and the System Status to be OK before completing" (automation-action-changestate.html). Through
boto3 against the local runtime with IAM enforced: the role's ec2:DescribeInstanceStatus is needed (in
assert mode too), and an instance that runs but whose checks never pass keeps the step waiting until it
gives up. moto reports every running instance as ok; the impaired instance is moto's own instance
object answering "initializing" for its checks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from moto.ec2.models.instances import Instance

from tests.fixtures.local_runtime import SSM_TRUST
from tests.local_engine_support import role_runbook, start_as_role, step

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

AMI = "ami-12c6146b"  # in moto's default image list
STATE_RIGHTS = ["ec2:DescribeInstances", "ec2:StartInstances"]


@pytest.fixture
def fast(local_server: LocalAutomationServer) -> Iterator[None]:
    """Simulated time at 600x for this test (the 5-second polls and the step's timeout)."""
    local_server.time_scale = 600
    yield
    local_server.time_scale = 1.0


def start_step(
    boto_client: Callable[..., Any], role_arn: str, instance_id: str, **inputs: Any
) -> tuple[Any, str]:
    """Run a one-step runbook changing ``instance_id`` to running under ``role_arn``: (ssm, execution id)."""
    ssm = boto_client("ssm")
    content = role_runbook(
        step(
            "start",
            "aws:changeInstanceState",
            timeoutSeconds=120,
            inputs={"InstanceIds": [instance_id], "DesiredState": "running", **inputs},
        )
    )
    return ssm, start_as_role(ssm, "StartChecks", content, role_arn)


def finished_step(ssm: Any, execution_id: str) -> dict[str, Any]:
    for _ in range(2000):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] not in ("Pending", "InProgress"):
            return dict(execution["StepExecutions"][0])
        time.sleep(0.02)
    raise AssertionError(f"execution {execution_id} did not end")


def new_instance(boto_client: Callable[..., Any], stopped: bool) -> str:
    ec2 = boto_client("ec2")
    instance_id = str(ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    if stopped:
        ec2.stop_instances(InstanceIds=[instance_id])
    return instance_id


def role(new_role: Callable[..., str], actions: list[str]) -> str:
    return new_role([SSM_TRUST], [{"Effect": "Allow", "Action": actions, "Resource": "*"}], prefix="checks")


@pytest.mark.parametrize("check_state_only", [False, True], ids=["start", "assert"])
def test_the_role_needs_describe_instance_status(
    boto_client: Callable[..., Any], new_role: Callable[..., str], check_state_only: bool, fast: None
) -> None:
    instance_id = new_instance(boto_client, stopped=not check_state_only)
    inputs = {"CheckStateOnly": True} if check_state_only else {}
    ssm, execution_id = start_step(boto_client, role(new_role, STATE_RIGHTS), instance_id, **inputs)
    step = finished_step(ssm, execution_id)
    assert step["StepStatus"] == "Failed"
    assert step["FailureDetails"]["FailureType"] == "Permission"
    assert "ec2:DescribeInstanceStatus" in step["FailureMessage"]


def test_with_both_checks_ok_the_step_succeeds(
    boto_client: Callable[..., Any], new_role: Callable[..., str], fast: None
) -> None:
    instance_id = new_instance(boto_client, stopped=True)
    rights = [*STATE_RIGHTS, "ec2:DescribeInstanceStatus"]
    ssm, execution_id = start_step(boto_client, role(new_role, rights), instance_id)
    assert finished_step(ssm, execution_id)["StepStatus"] == "Success"


def test_a_running_instance_whose_checks_do_not_pass_keeps_the_step_waiting(
    boto_client: Callable[..., Any],
    new_role: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    fast: None,
) -> None:
    instance_id = new_instance(boto_client, stopped=True)
    ok_status = Instance.instance_status.fget  # type: ignore[attr-defined]

    def initializing(instance: Instance) -> dict[str, Any]:
        return {"Status": "initializing"} if instance.id == instance_id else dict(ok_status(instance))

    monkeypatch.setattr(Instance, "instance_status", property(initializing))
    rights = [*STATE_RIGHTS, "ec2:DescribeInstanceStatus"]
    ssm, execution_id = start_step(boto_client, role(new_role, rights), instance_id)
    step = finished_step(ssm, execution_id)
    ec2 = boto_client("ec2")
    [reservation] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] == "running"  # started: only the checks are missing
    assert step["StepStatus"] == "TimedOut"
