"""The inputs AWS documents for the EC2 actions, beyond the basics (issue 9: AWS-StartEC2Instance's
FailOnUnexpectedStopped, aws:runInstances MetadataOptions)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.local_engine_support import Harness, runbook, step, steps_by_name

AMI = "ami-12c6146b"  # in moto's default image list


@pytest.fixture
def ec2(moto_url: str) -> Any:
    return boto3.client("ec2", endpoint_url=moto_url, region_name="us-east-1")


def stopped_instance(ec2: Any) -> str:
    instance_id = str(ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    ec2.stop_instances(InstanceIds=[instance_id])
    return instance_id


def instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    return dict(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def test_start_ec2_instance_steps_as_aws_writes_them(h: Harness, ec2: Any) -> None:
    """AWS-StartEC2Instance's two steps: start with FailOnUnexpectedStopped, then assert running."""
    instance_id = stopped_instance(ec2)
    inputs = {"InstanceIds": [instance_id], "DesiredState": "running", "FailOnUnexpectedStopped": "true"}
    document = runbook(
        step("startInstances", "aws:changeInstanceState", inputs={**inputs, "AdditionalInfo": "x"}),
        step(
            "forceStart", "aws:changeInstanceState", inputs={**inputs, "CheckStateOnly": True, "Force": True}
        ),
    )
    execution = h.finish(h.run(document))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert instance(ec2, instance_id)["State"]["Name"] == "running"


def test_fail_on_unexpected_stopped_fails_at_once_instead_of_waiting(h: Harness, ec2: Any) -> None:
    instance_id = stopped_instance(ec2)
    inputs = {
        "InstanceIds": [instance_id],
        "DesiredState": "running",
        "CheckStateOnly": True,
        "FailOnUnexpectedStopped": True,
    }
    execution = h.finish(h.run(runbook(step("Assert", "aws:changeInstanceState", inputs=inputs))))
    failed = steps_by_name(execution)["Assert"]
    assert failed["StepStatus"] == "Failed"
    assert "FailOnUnexpectedStopped" in failed["FailureMessage"]
    assert instance(ec2, instance_id)["State"]["Name"] == "stopped"


def test_a_flag_that_is_not_a_boolean_is_refused_by_name(h: Harness, ec2: Any) -> None:
    inputs = {"InstanceIds": [stopped_instance(ec2)], "DesiredState": "running", "Force": "maybe"}
    inputs["DesiredState"] = "stopped"
    execution = h.finish(h.run(runbook(step("Stop", "aws:changeInstanceState", inputs=inputs))))
    assert "Input Force must be true or false" in steps_by_name(execution)["Stop"]["FailureMessage"]


def test_run_instances_passes_metadata_options(h: Harness, ec2: Any) -> None:
    inputs = {"ImageId": AMI, "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"}}
    execution = h.finish(
        h.run(runbook(step("Launch", "aws:runInstances", inputs=inputs), outputs=["Launch.InstanceIds"]))
    )
    assert execution["AutomationExecutionStatus"] == "Success", execution
    [instance_id] = execution["Outputs"]["Launch.InstanceIds"]
    assert instance(ec2, instance_id)["MetadataOptions"]["HttpTokens"] == "required"


def test_copy_image_copies_and_waits_for_the_copy(h: Harness, ec2: Any) -> None:
    inputs = {
        "SourceImageId": AMI,
        "SourceRegion": "us-east-1",
        "ImageName": "copied-image",
        "ImageDescription": "a copy",
        "Encrypted": "false",
    }
    document = runbook(
        step("Copy", "aws:copyImage", inputs=inputs), outputs=["Copy.ImageId", "Copy.ImageState"]
    )
    execution = h.finish(h.run(document))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    [image_id] = execution["Outputs"]["Copy.ImageId"]
    assert image_id != AMI
    assert execution["Outputs"]["Copy.ImageState"] == ["available"]
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert (image["Name"], image["Description"]) == ("copied-image", "a copy")


def test_execute_automation_passes_rate_control_inputs_to_the_child_start(h: Harness) -> None:
    h.documents.add("Child", runbook(step("Nap", "aws:sleep", inputs={"Duration": "PT1S"})))
    inputs = {
        "DocumentName": "Child",
        "TargetParameterName": "InstanceId",
        "Targets": [{"Key": "tag:A", "Values": ["b"]}],
    }
    execution = h.finish(h.run(runbook(step("Child", "aws:executeAutomation", inputs=inputs))))
    failed = steps_by_name(execution)["Child"]
    assert failed["StepStatus"] == "Failed"
    assert "TargetParameterName 'InstanceId' is not a parameter of the runbook" in failed["FailureMessage"]


def test_a_list_reference_inside_a_list_is_spliced_as_aws_does(h: Harness, ec2: Any) -> None:
    """Published runbooks write ``InstanceIds: ["{{ find.InstanceIds }}"]`` for a StringList."""
    ids = [stopped_instance(ec2), stopped_instance(ec2)]
    inputs = {"InstanceIds": ["{{ Ids }}"], "DesiredState": "running"}
    document = runbook(
        step("Start", "aws:changeInstanceState", inputs=inputs), parameters={"Ids": {"type": "StringList"}}
    )
    execution = h.finish(h.run(document, {"Ids": ids}))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert [instance(ec2, i)["State"]["Name"] for i in ids] == ["running", "running"]


def test_run_instances_takes_text_booleans_and_create_image_the_api_members(h: Harness, ec2: Any) -> None:
    launch = step(
        "Launch",
        "aws:runInstances",
        inputs={"ImageId": AMI, "EbsOptimized": "true", "Monitoring": "false"},
        outputs=[{"Name": "InstanceId", "Selector": "$.InstanceIds[0]", "Type": "String"}],
    )
    image = step(
        "Image",
        "aws:createImage",
        inputs={
            "InstanceId": "{{ Launch.InstanceId }}",
            "ImageName": "tagged-image",
            "NoReboot": "true",
            "TagSpecifications": [{"ResourceType": "image", "Tags": [{"Key": "Team", "Value": "a"}]}],
        },
    )
    execution = h.finish(h.run(runbook(launch, image, outputs=["Launch.InstanceIds", "Image.ImageId"])))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    [instance_id] = execution["Outputs"]["Launch.InstanceIds"]
    described = instance(ec2, instance_id)
    assert described["EbsOptimized"] is True
    assert described["Monitoring"]["State"] == "disabled"
    [image_id] = execution["Outputs"]["Image.ImageId"]
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["Tags"] == [{"Key": "Team", "Value": "a"}]


def test_flow_actions_refuse_inputs_aws_does_not_document(h: Harness) -> None:
    for action, inputs in (
        ("aws:sleep", {"Duration": "PT1S", "Until": "x"}),
        ("aws:approve", {"Approvers": ["arn:aws:iam::123456789012:user/x"], "Deadline": "x"}),
    ):
        execution = h.finish(h.run(runbook(step("S", action, inputs=inputs))))
        failed = steps_by_name(execution)["S"]
        assert failed["FailureDetails"]["FailureType"] == "Verification", failed
        assert "does not take input(s)" in failed["FailureMessage"]


def test_pause_takes_the_message_aws_published_runbooks_give_it(h: Harness) -> None:
    execution_id = h.run(runbook(step("Wait", "aws:pause", inputs={"Message": "Resume when traffic moved"})))
    h.until(execution_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    h.engine.signal(execution_id, "Resume", None)
    assert h.finish(execution_id)["AutomationExecutionStatus"] == "Success"
