"""EC2 changes AWS refuses in the instance's current state are refused on the local runtime too.

The instance type changes only on a stopped instance; AWS answers ``IncorrectInstanceState`` otherwise
(airflow_ssm_delegate/local/ec2_states.py cites the pages). Through boto3 against the runtime (IAM
enforced), and through an aws:executeAwsApi step, as AWS-ResizeInstance calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.corpus_runtime import all_actions_role
from tests.fixtures.local_runtime import client_for, error_of
from tests.local_engine_support import role_runbook, start_as_role, step

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.server import LocalAutomationServer

AMI = "ami-04681a1dbd79675a5"  # one of moto's stock images


@pytest.fixture
def ec2(local_server: LocalAutomationServer) -> Any:
    return client_for(local_server, "ec2")


def launched(ec2: Any, state: str = "running") -> str:
    instance_id = str(ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    if state == "stopped":
        ec2.stop_instances(InstanceIds=[instance_id])
    return instance_id


def instance_type(ec2: Any, instance_id: str) -> str:
    return str(
        ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["InstanceType"]
    )


@pytest.mark.parametrize(
    "change",
    [{"InstanceType": {"Value": "t3.large"}}, {"Attribute": "instanceType", "Value": "t3.large"}],
    ids=["InstanceType", "Attribute"],
)
def test_the_type_of_a_running_instance_is_not_changed(ec2: Any, change: dict[str, Any]) -> None:
    instance_id = launched(ec2)
    before = instance_type(ec2, instance_id)
    error = error_of(lambda: ec2.modify_instance_attribute(InstanceId=instance_id, **change))
    assert error == {
        "Code": "IncorrectInstanceState",
        "Message": f"The instance '{instance_id}' is not in the 'stopped' state.",
    }
    assert instance_type(ec2, instance_id) == before


def test_the_type_of_a_stopped_instance_changes(ec2: Any) -> None:
    instance_id = launched(ec2, state="stopped")
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.large"})
    assert instance_type(ec2, instance_id) == "t3.large"


def test_other_attributes_of_a_running_instance_still_change(ec2: Any) -> None:
    instance_id = launched(ec2)
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    assert attribute["DisableApiTermination"]["Value"] is True


def test_an_unknown_instance_is_not_found_as_before(ec2: Any) -> None:
    error = error_of(
        lambda: ec2.modify_instance_attribute(
            InstanceId="i-0123456789abcdef0", InstanceType={"Value": "t3.large"}
        )
    )
    assert error["Code"] == "InvalidInstanceID.NotFound"


def test_a_step_resizing_a_running_instance_fails_with_aws_error(
    local_server: LocalAutomationServer, ec2: Any
) -> None:
    instance_id = launched(ec2)
    content = role_runbook(
        step(
            "resizeInstance",
            "aws:executeAwsApi",
            inputs={
                "Service": "EC2",
                "Api": "ModifyInstanceAttribute",
                "InstanceId": instance_id,
                "InstanceType": {"Value": "t3.large"},
            },
        )
    )
    ssm = client_for(local_server, "ssm")
    execution_id = start_as_role(ssm, "ResizeRunning", content, all_actions_role(local_server, "resize"))
    assert local_server.engine is not None
    local_server.engine.wait(execution_id, timeout=60)
    execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
    assert execution["AutomationExecutionStatus"] == "Failed"
    [resize] = execution["StepExecutions"]
    assert "(IncorrectInstanceState)" in resize["FailureMessage"]
    assert f"The instance '{instance_id}' is not in the 'stopped' state." in resize["FailureMessage"]
