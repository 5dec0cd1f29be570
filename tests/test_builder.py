"""The runbook builder renders runbooks passing lint: the bundled LaunchTaggedInstance, rebuilt in Python."""

from __future__ import annotations

import pytest
import yaml

from airflow_ssm_delegate.documents.builder import Runbook, RunbookBuildError, ref
from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.documents.lint import lint_text
from airflow_ssm_delegate.documents.model import parse_runbook


def launch_tagged_instance() -> Runbook:
    bundled = yaml.safe_load(runbook_path("LaunchTaggedInstance").read_text())
    declared = bundled["parameters"]
    return (
        Runbook("LaunchTaggedInstance", description=bundled["description"])
        .parameter(
            "AutomationAssumeRole",
            description=declared["AutomationAssumeRole"]["description"],
            allowed_pattern=declared["AutomationAssumeRole"]["allowedPattern"],
        )
        .parameter(
            "ImageId",
            description=declared["ImageId"]["description"],
            default="ami-04681a1dbd79675a5",
            allowed_pattern=r"^ami-[0-9a-f]{8,17}$",
        )
        .parameter(
            "InstanceType",
            description="Instance type, limited to the approved sizes.",
            default="t3.micro",
            allowed_values=["t3.micro", "t3.small", "t3.medium"],
        )
        .parameter(
            "Owner",
            description=declared["Owner"]["description"],
            allowed_pattern=declared["Owner"]["allowedPattern"],
        )
        .parameter(
            "CostCenter",
            description="Cost center the instance is billed to.",
            allowed_values=["CC-1001", "CC-2002", "CC-3003"],
        )
        .run_instances(
            "launch",
            image_id=ref("ImageId"),
            instance_type=ref("InstanceType"),
            description="Launch exactly one instance and wait until it is running.",
            timeout_seconds=900,
            on_failure="Abort",
        )
        .create_tags(
            "tag",
            resource_type="EC2",
            resource_ids=ref("launch.InstanceIds"),
            tags={
                "Owner": ref("Owner"),
                "CostCenter": ref("CostCenter"),
                "ManagedBy": "airflow-ssm-delegate",
                "LaunchedBy": ref("automation:EXECUTION_ID"),
            },
            description="Apply the corporate tags.",
            timeout_seconds=300,
            on_failure="Abort",
            is_end=True,
        )
        .output("launch.InstanceIds")
    )


def test_builder_reproduces_the_bundled_launch_runbook() -> None:
    built = launch_tagged_instance()
    assert built.build() == yaml.safe_load(runbook_path("LaunchTaggedInstance").read_text())
    text = built.to_yaml()
    assert lint_text(text) == []
    model = parse_runbook(text)
    assert [step.action for step in model.steps] == ["aws:runInstances", "aws:createTags"]
    assert model.assume_role_parameter == "AutomationAssumeRole"


def test_long_runbook_with_cleanup_passes_lint() -> None:
    runbook = (
        Runbook("Maintain", description="Stop, wait, start")
        .parameter("InstanceId", allowed_pattern=r"^i-[0-9a-f]{8,17}$")
        .parameter("Approvers", "StringList", min_items=1)
        .change_instance_state(
            "stop",
            instance_ids=[ref("InstanceId")],
            desired_state="stopped",
            on_failure="step:restart",
            on_cancel="step:restart",
        )
        .approve("approve", approvers=ref("Approvers"), message="Go?", on_failure="step:restart")
        .sleep("window", "PT13H", on_cancel="step:restart")
        .execute_aws_api(
            "check",
            service="ec2",
            api="DescribeInstances",
            parameters={"InstanceIds": [ref("InstanceId")]},
            outputs=[
                {"Name": "State", "Selector": "$.Reservations[0].Instances[0].State.Name", "Type": "String"}
            ],
        )
        .change_instance_state(
            "restart", instance_ids=[ref("InstanceId")], desired_state="running", is_end=True
        )
        .output("check.State")
    )
    assert runbook.lint() == []
    assert runbook.build()["mainSteps"][2] == {
        "name": "window",
        "action": "aws:sleep",
        "onCancel": "step:restart",
        "inputs": {"Duration": "PT13H"},
    }


def test_a_runbook_failing_lint_is_not_rendered() -> None:
    broken = Runbook("Broken").create_tags(
        "tag", resource_ids=ref("launch.InstanceIds"), tags={"Owner": "me"}
    )
    with pytest.raises(RunbookBuildError) as caught:
        broken.to_yaml()
    assert [finding.code for finding in caught.value.findings] == ["SSM010"]
    assert "launch is not a step of this runbook" in str(caught.value)
    assert "launch.InstanceIds" in broken.to_yaml(check=False)
