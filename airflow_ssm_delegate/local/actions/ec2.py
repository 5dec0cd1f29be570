"""EC2 actions: aws:runInstances, aws:createTags, aws:changeInstanceState, aws:createImage, aws:copyImage,
aws:deleteImage.

Each makes the real EC2 calls (against the local endpoint) and waits, by polling on the simulated clock,
for the state AWS waits for: instances running (or the desired state), images available.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from airflow_ssm_delegate.local.actions.base import (
    Done,
    Outcome,
    StepContext,
    StepFailure,
    poll,
    reject_unknown_inputs,
    require,
    string_list,
)
from airflow_ssm_delegate.local.actions.shapes import coerce_request

#: aws:runInstances inputs that are not RunInstances request members under the same name
#: (https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-action-runinstance.html); every
#: other documented input is passed to RunInstances as written.
_RUN_INSTANCES_OWN = frozenset(
    {"MinInstanceCount", "MaxInstanceCount", "IamInstanceProfileArn", "IamInstanceProfileName"}
)
DESIRED_STATES = ("running", "stopped", "terminated")


def _count(inputs: dict[str, Any], name: str, default: int) -> int:
    value = inputs.get(name, default)
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise StepFailure(f"Input {name} must be an integer, got {value!r}.", "Verification") from None
    if count < 1:
        raise StepFailure(f"Input {name} must be at least 1, got {count}.", "Verification")
    return count


def _run_instances_request(inputs: dict[str, Any]) -> dict[str, Any]:
    reject_unknown_inputs(inputs, "aws:runInstances")
    request = {key: value for key, value in inputs.items() if key not in _RUN_INSTANCES_OWN}
    minimum = _count(inputs, "MinInstanceCount", inputs.get("MinCount", 1))
    request.update(
        ImageId=require(inputs, "ImageId", str),
        MinCount=minimum,
        MaxCount=_count(inputs, "MaxInstanceCount", inputs.get("MaxCount", minimum)),
    )
    if "IamInstanceProfileArn" in inputs:
        request["IamInstanceProfile"] = {"Arn": inputs["IamInstanceProfileArn"]}
    elif "IamInstanceProfileName" in inputs:
        request["IamInstanceProfile"] = {"Name": inputs["IamInstanceProfileName"]}
    if "Monitoring" in inputs and not isinstance(inputs["Monitoring"], dict):  # documented as a Boolean
        request["Monitoring"] = {"Enabled": _flag(inputs, "Monitoring")}
    if "UserData" in inputs:  # the input is base64 already; boto3 encodes again
        try:
            request["UserData"] = base64.b64decode(str(inputs["UserData"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise StepFailure("Input UserData must be base64-encoded text.", "Verification") from None
    return request


def _instance_states(ctx: StepContext, instance_ids: list[str]) -> dict[str, str]:
    response = ctx.client("ec2").describe_instances(InstanceIds=instance_ids)
    return {
        instance["InstanceId"]: instance["State"]["Name"]
        for reservation in response.get("Reservations", [])
        for instance in reservation.get("Instances", [])
    }


def _status_checks_pending(ctx: StepContext, instance_ids: list[str]) -> list[str]:
    """Instances whose instance or system status check is not ``ok`` yet (DescribeInstanceStatus)."""
    response = ctx.client("ec2").describe_instance_status(InstanceIds=instance_ids, IncludeAllInstances=True)
    ok = {
        status["InstanceId"]
        for status in response.get("InstanceStatuses", [])
        if status.get("InstanceStatus", {}).get("Status") == "ok"
        and status.get("SystemStatus", {}).get("Status") == "ok"
    }
    return [i for i in instance_ids if i not in ok]


def _wait_for_state(
    ctx: StepContext,
    instance_ids: list[str],
    desired: str,
    fail_on_stopped: bool = False,
    status_checks: bool = False,
) -> Outcome:
    """Poll until every instance is ``desired``; with ``status_checks``, until both checks are ok too."""

    def check(current: StepContext) -> Outcome | None:
        states = _instance_states(current, instance_ids)
        missing = [i for i in instance_ids if i not in states]
        if missing and desired != "terminated":
            raise StepFailure(f"Instance(s) {', '.join(missing)} not found.", "Action")
        stopped = [i for i in instance_ids if states.get(i) in ("stopping", "stopped")]
        if fail_on_stopped and stopped:
            raise StepFailure(
                f"Instance(s) {', '.join(stopped)} stopped while waiting for them to be {desired} "
                "(FailOnUnexpectedStopped).",
                "Action",
            )
        if all(states.get(i, "terminated") == desired for i in instance_ids):
            if status_checks and _status_checks_pending(current, instance_ids):
                return None
            return Done(
                {
                    "InstanceIds": instance_ids,
                    "InstanceStates": [states.get(i, desired) for i in instance_ids],
                }
            )
        return None

    checks = " with status checks ok" if status_checks else ""
    return poll(ctx, check, f"instance(s) {', '.join(instance_ids)} to be {desired}{checks}")


def run_instances(ctx: StepContext) -> Outcome:
    ec2 = ctx.client("ec2")
    response = ec2.run_instances(**coerce_request(ec2, "RunInstances", _run_instances_request(ctx.inputs)))
    instance_ids = [instance["InstanceId"] for instance in response.get("Instances", [])]
    return _wait_for_state(ctx, instance_ids, "running")


def create_tags(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:createTags")
    resource_ids = string_list(ctx.inputs, "ResourceIds")
    tags = require(ctx.inputs, "Tags", list)
    if not all(isinstance(tag, dict) and isinstance(tag.get("Key"), str) for tag in tags):
        raise StepFailure("Input Tags must be a list of {Key, Value} maps.", "Verification")
    tags = [{"Key": tag["Key"], "Value": str(tag.get("Value", ""))} for tag in tags]
    resource_type = str(ctx.inputs.get("ResourceType", "EC2"))
    if resource_type == "EC2":
        ctx.client("ec2").create_tags(Resources=resource_ids, Tags=tags)
    elif resource_type in ("ManagedInstance", "MaintenanceWindow", "Parameter"):
        ssm = ctx.client("ssm")
        for resource_id in resource_ids:
            ssm.add_tags_to_resource(ResourceType=resource_type, ResourceId=resource_id, Tags=tags)
    else:
        raise StepFailure(
            f"ResourceType {resource_type!r} is not one of EC2, ManagedInstance, MaintenanceWindow, "
            "Parameter.",
            "Verification",
        )
    return Done()


def _flag(inputs: dict[str, Any], name: str) -> bool:
    """A Boolean input, written as a boolean or as the text true/false (as AWS accepts it)."""
    value = inputs.get(name, False)
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise StepFailure(f"Input {name} must be true or false, got {value!r}.", "Verification")


def change_instance_state(ctx: StepContext) -> Outcome:
    """FailOnUnexpectedStopped (AWS's example pairs it with running): fail as soon as an instance is
    stopping/stopped while waiting, instead of waiting for the timeout.

    DesiredState running waits for the EC2 state Running and for the instance and system status checks
    to be OK, as AWS documents (automation-action-changestate.html), asserting or not; the role therefore
    needs ec2:DescribeInstanceStatus, which AWS's AmazonSSMAutomationRole grants.
    """
    reject_unknown_inputs(ctx.inputs, "aws:changeInstanceState")
    instance_ids = string_list(ctx.inputs, "InstanceIds")
    desired = require(ctx.inputs, "DesiredState", str)
    if desired not in DESIRED_STATES:
        raise StepFailure(
            f"DesiredState {desired!r} must be one of {', '.join(DESIRED_STATES)}.", "Verification"
        )
    fail_on_stopped = _flag(ctx.inputs, "FailOnUnexpectedStopped") and desired != "stopped"
    if not _flag(ctx.inputs, "CheckStateOnly"):
        ec2 = ctx.client("ec2")
        if desired == "running":
            extra = (
                {"AdditionalInfo": str(ctx.inputs["AdditionalInfo"])}
                if ctx.inputs.get("AdditionalInfo")
                else {}
            )
            ec2.start_instances(InstanceIds=instance_ids, **extra)
        elif desired == "stopped":
            ec2.stop_instances(InstanceIds=instance_ids, Force=_flag(ctx.inputs, "Force"))
        else:
            ec2.terminate_instances(InstanceIds=instance_ids)
    return _wait_for_state(ctx, instance_ids, desired, fail_on_stopped, status_checks=desired == "running")


#: aws:createImage/aws:copyImage inputs whose API member has another name (automation-action-create.html,
#: automation-action-copyimage.html); their other documented inputs are the API's members as written.
_IMAGE_RENAMES = {"ImageName": "Name", "ImageDescription": "Description"}


def _image_request(
    ctx: StepContext, action: str, operation: str, required: tuple[str, ...]
) -> dict[str, Any]:
    """The ``operation`` request of an image step, values converted to the API's types."""
    reject_unknown_inputs(ctx.inputs, action)
    for name in required:
        require(ctx.inputs, name, str)
    request = {_IMAGE_RENAMES.get(key, key): value for key, value in ctx.inputs.items()}
    return coerce_request(ctx.client("ec2"), operation, request)


def create_image(ctx: StepContext) -> Outcome:
    request = _image_request(ctx, "aws:createImage", "CreateImage", ("InstanceId", "ImageName"))
    return _wait_for_image(ctx, ctx.client("ec2").create_image(**request)["ImageId"])


def copy_image(ctx: StepContext) -> Outcome:
    required = ("SourceImageId", "SourceRegion", "ImageName")
    request = _image_request(ctx, "aws:copyImage", "CopyImage", required)
    return _wait_for_image(ctx, ctx.client("ec2").copy_image(**request)["ImageId"])


def _wait_for_image(ctx: StepContext, image_id: str) -> Outcome:
    """Poll until the image is available (outputs ImageId, ImageState); fail if it ends otherwise."""

    def check(current: StepContext) -> Outcome | None:
        images = current.client("ec2").describe_images(ImageIds=[image_id]).get("Images", [])
        state = images[0].get("State", "pending") if images else "pending"
        if state == "available":
            return Done({"ImageId": image_id, "ImageState": state})
        if state in ("failed", "error", "invalid", "deregistered"):
            raise StepFailure(f"Image {image_id} ended in state {state}.", "Action")
        return None

    return poll(ctx, check, f"image {image_id} to be available")


def delete_image(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:deleteImage")
    image_id = require(ctx.inputs, "ImageId", str)
    ec2 = ctx.client("ec2")
    images = ec2.describe_images(ImageIds=[image_id]).get("Images", [])
    snapshot_ids = [
        mapping["Ebs"]["SnapshotId"]
        for image in images
        for mapping in image.get("BlockDeviceMappings", [])
        if mapping.get("Ebs", {}).get("SnapshotId")
    ]
    ec2.deregister_image(ImageId=image_id)
    for snapshot_id in snapshot_ids:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    return Done()
