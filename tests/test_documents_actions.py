"""The action catalogue, bundled runbooks, and the service-role permissions derived per step."""

from __future__ import annotations

import pytest

from airflow_ssm_delegate.documents.actions import (
    ACTIONS,
    UnresolvablePermissionError,
    api_operation,
    iam_actions_for_step,
)
from airflow_ssm_delegate.documents.bundled import BUNDLED_RUNBOOKS, runbook_path
from airflow_ssm_delegate.documents.model import StepSpec, load_runbook, to_api_parameters


def step(action: str, **inputs: object) -> StepSpec:
    return StepSpec(name="s", action=action, inputs=dict(inputs))


@pytest.mark.parametrize(
    ("the_step", "expected"),
    [
        (step("aws:runInstances", ImageId="ami-1"), ["ec2:DescribeInstances", "ec2:RunInstances"]),
        (
            step("aws:runInstances", ImageId="ami-1", TagSpecifications=[], IamInstanceProfileName="p"),
            ["ec2:CreateTags", "ec2:DescribeInstances", "ec2:RunInstances", "iam:PassRole"],
        ),
        (step("aws:createTags", ResourceIds=[], Tags=[]), ["ec2:CreateTags"]),
        (step("aws:createTags", ResourceType="Parameter"), ["ssm:AddTagsToResource"]),
        (
            step("aws:changeInstanceState", DesiredState="stopped"),
            ["ec2:DescribeInstances", "ec2:StopInstances"],
        ),
        (
            step("aws:changeInstanceState", DesiredState="running", CheckStateOnly=True),
            ["ec2:DescribeInstanceStatus", "ec2:DescribeInstances"],
        ),
        (
            step("aws:changeInstanceState", DesiredState="{{ State }}"),
            [
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeInstances",
                "ec2:StartInstances",
                "ec2:StopInstances",
                "ec2:TerminateInstances",
            ],
        ),
        (step("aws:executeAwsApi", Service="ec2", Api="describe_volumes"), ["ec2:DescribeVolumes"]),
        (
            step("aws:executeAwsApi", Service="stepfunctions", Api="ListStateMachines"),
            ["states:ListStateMachines"],
        ),
        (step("aws:approve", Approvers=["a"]), []),
        (step("aws:approve", Approvers=["a"], NotificationArn="arn:aws:sns:x"), ["sns:Publish"]),
        (step("aws:sleep", Duration="PT1H"), []),
    ],
)
def test_iam_actions_for_step(the_step: StepSpec, expected: list[str]) -> None:
    assert iam_actions_for_step(the_step) == expected


@pytest.mark.parametrize(
    ("the_step", "message"),
    [
        (step("aws:executeAwsApi", Service="ec2", Api="{{ Api }}"), "must be literal"),
        (step("aws:executeAwsApi", Service="ec2", Api="NoSuchCall"), "not an operation of service 'ec2'"),
        (step("aws:changeInstanceState", DesiredState="rebooted"), "DesiredState 'rebooted'"),
    ],
)
def test_unresolvable_permissions_are_refused(the_step: StepSpec, message: str) -> None:
    with pytest.raises(UnresolvablePermissionError, match=message):
        iam_actions_for_step(the_step)


def test_catalogue_knows_documented_actions_and_outputs() -> None:
    assert ACTIONS["aws:runInstances"].outputs == {
        "InstanceIds": "StringList",
        "InstanceStates": "StringList",
    }
    assert "ImageId" in ACTIONS["aws:runInstances"].required
    assert ACTIONS["aws:executeAwsApi"].api_parameters
    documented = """approve assertAwsResourceProperty branch changeInstanceState copyImage createImage
        createStack
        createTags deleteImage deleteStack executeAutomation executeAwsApi executeScript executeStateMachine
        invokeLambdaFunction invokeWebhook loop pause runCommand runInstances sleep updateVariable
        waitForAwsResourceProperty"""  # the schema-0.3 action reference
    assert set(ACTIONS) == {f"aws:{name}" for name in documented.split()}
    assert api_operation("nosuchservice", "X") is None


@pytest.mark.parametrize("name", BUNDLED_RUNBOOKS)
def test_bundled_runbooks_parse_and_take_a_service_role(name: str) -> None:
    runbook = load_runbook(runbook_path(name))
    assert runbook.assume_role_parameter == "AutomationAssumeRole"
    assert all(step.action in ACTIONS for step in runbook.steps)


def test_launch_defaults_validate_and_bad_values_are_named() -> None:
    runbook = load_runbook(runbook_path("LaunchTaggedInstance"))
    values = {
        "AutomationAssumeRole": "arn:aws:iam::123456789012:role/LaunchRole",
        "Owner": "jane.doe@example.com",
        "CostCenter": "CC-2002",
    }
    assert to_api_parameters(runbook, values)["CostCenter"] == ["CC-2002"]
    with pytest.raises(ValueError, match=r"InstanceType: 't3\.huge' is not one of the allowedValues"):
        to_api_parameters(runbook, {**values, "InstanceType": "t3.huge"})


def test_unknown_bundled_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no bundled runbook 'Nope'"):
        runbook_path("Nope")
