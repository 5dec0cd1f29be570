"""aws:executeScript on the local runtime: a real Python process calling the runtime as the service role."""

from __future__ import annotations

import json
import textwrap
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.fixtures.local_runtime import SSM_TRUST
from tests.local_engine_support import ROLE_ARN, Harness, runbook, step, steps_by_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.server import LocalAutomationServer

AMI = "ami-12c6146b"  # in moto's default image list

TAG_SCRIPT = textwrap.dedent(
    """
    import boto3

    def tag_them(events, context):
        ec2 = boto3.client("ec2")
        ec2.create_tags(Resources=events["InstanceIds"], Tags=[{"Key": "Touched", "Value": events["By"]}])
        return {"Count": len(events["InstanceIds"]), "Execution": context["automation:EXECUTION_ID"]}
    """
)


def script_step(name: str, script: str, handler: str, payload: Any = None, **keys: Any) -> dict[str, Any]:
    inputs: dict[str, Any] = {"Runtime": "python3.11", "Handler": handler, "Script": script}
    if payload is not None:
        inputs["InputPayload"] = payload
    return step(name, "aws:executeScript", inputs=inputs, **keys)


def launch(endpoint: str) -> str:
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1")
    return str(ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])


def tags_of(endpoint: str, instance_id: str, **creds: str) -> dict[str, str]:
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", **creds)
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}


def test_script_calls_the_runtime_as_the_role_and_its_return_value_is_the_payload(
    h: Harness, moto_url: str
) -> None:
    instance_id = launch(moto_url)
    payload = {"InstanceIds": ["{{ InstanceId }}"], "By": "script"}
    document = runbook(
        script_step(
            "Tag",
            TAG_SCRIPT,
            "tag_them",
            payload,
            outputs=[
                {"Name": "Count", "Selector": "$.Payload.Count", "Type": "Integer"},
                {"Name": "Execution", "Selector": "$.Payload.Execution", "Type": "String"},
            ],
        ),
        assumeRole=ROLE_ARN,
        parameters={"InstanceId": {"type": "String"}},
        outputs=["Tag.Count", "Tag.Execution"],
    )
    execution_id = h.run(document, {"InstanceId": instance_id})
    execution = h.finish(execution_id)
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"] == {"Tag.Count": ["1"], "Tag.Execution": [execution_id]}
    assert tags_of(moto_url, instance_id) == {"Touched": "script"}
    outputs = steps_by_name(execution)["Tag"]["Outputs"]
    assert outputs["OutputPayload"] == ['{"Payload": {"Count": 1, "Execution": "' + execution_id + '"}}']


def test_an_exception_in_the_script_fails_the_step_with_its_message(h: Harness) -> None:
    script = "def boom(events, context):\n    raise ValueError('disk ' + events['Disk'] + ' is full')\n"
    execution = h.finish(h.run(runbook(script_step("Boom", script, "boom", {"Disk": "sda1"}))))
    assert execution["AutomationExecutionStatus"] == "Failed"
    failed = steps_by_name(execution)["Boom"]
    assert "ValueError: disk sda1 is full" in failed["FailureMessage"]
    assert failed["FailureDetails"]["FailureType"] == "Action"


def test_a_script_past_its_timeout_is_stopped_and_the_step_times_out(h: Harness) -> None:
    script = "import time\n\ndef slow(events, context):\n    time.sleep(60)\n"
    started = time.monotonic()
    execution = h.finish(h.run(runbook(script_step("Slow", script, "slow", timeoutSeconds=1))), timeout=30)
    assert time.monotonic() - started < 20
    assert execution["AutomationExecutionStatus"] == "TimedOut"
    assert steps_by_name(execution)["Slow"]["StepStatus"] == "TimedOut"


def test_without_a_service_role_the_script_has_no_credentials(h: Harness, moto_url: str) -> None:
    """AWS: with no service role the script runs "without any permissions"."""
    instance_id = launch(moto_url)
    document = runbook(script_step("Tag", TAG_SCRIPT, "tag_them", {"InstanceIds": [instance_id], "By": "x"}))
    execution = h.finish(h.run(document))
    assert execution["AutomationExecutionStatus"] == "Failed"
    assert "NoCredentialsError" in steps_by_name(execution)["Tag"]["FailureMessage"]
    assert tags_of(moto_url, instance_id) == {}


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"Runtime": "PowerShell 7.4", "Handler": "x", "Script": "Write-Host hi"}, "PowerShell"),
        ({"Runtime": "nodejs18.x", "Handler": "x", "Script": "x"}, "not a supported"),
        ({"Runtime": "python3.11", "Handler": "h", "Attachment": "code.zip"}, "Attachment"),
        ({"Runtime": "python3.11", "Handler": "missing", "Script": "def h(e, c):\n  pass\n"}, "missing"),
        ({"Runtime": "python3.11", "Handler": "h", "Script": "x", "Colour": "red"}, "Colour"),
        ({"Runtime": "python3.11", "Handler": "h", "Script": "x", "InputPayload": "text"}, "InputPayload"),
    ],
)
def test_what_is_not_run_is_refused_by_name(h: Harness, inputs: dict[str, Any], expected: str) -> None:
    execution = h.finish(h.run(runbook(step("Script", "aws:executeScript", inputs=inputs))))
    failed = steps_by_name(execution)["Script"]
    assert failed["StepStatus"] == "Failed"
    assert expected in failed["FailureMessage"]
    assert failed["FailureDetails"]["FailureType"] == "Verification"


def test_a_non_json_return_value_fails_the_step(h: Harness) -> None:
    script = "import datetime\n\ndef when(events, context):\n    return {'At': datetime.datetime.now()}\n"
    execution = h.finish(h.run(runbook(script_step("When", script, "when"))))
    assert "Unable to marshal" in steps_by_name(execution)["When"]["FailureMessage"]


def test_a_role_lacking_the_permission_fails_the_script_step_with_a_permission_failure(
    local_server: LocalAutomationServer,
    boto_client: Callable[..., Any],
    new_role: Callable[..., str],
) -> None:
    allowed = new_role(
        [SSM_TRUST], [{"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*"}], "script-role"
    )
    denied = new_role([SSM_TRUST], [], "script-no-tags")
    ec2 = boto_client("ec2")
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    document = runbook(
        script_step("Tag", TAG_SCRIPT, "tag_them", {"InstanceIds": [instance_id], "By": "{{ By }}"}),
        assumeRole="{{ AutomationAssumeRole }}",
        parameters={"AutomationAssumeRole": {"type": "String"}, "By": {"type": "String"}},
    )
    ssm = boto_client("ssm")
    name = f"Script-{instance_id}"
    ssm.create_document(Name=name, Content=json.dumps(document), DocumentType="Automation")
    assert local_server.engine is not None

    def run(role: str, by: str) -> dict[str, Any]:
        execution_id = ssm.start_automation_execution(
            DocumentName=name, Parameters={"AutomationAssumeRole": [role], "By": [by]}
        )["AutomationExecutionId"]
        return local_server.engine.wait(execution_id, timeout=60)  # type: ignore[union-attr]

    refused = run(denied, "denied")
    assert refused["AutomationExecutionStatus"] == "Failed", refused
    failed = steps_by_name(refused)["Tag"]
    assert failed["FailureDetails"]["FailureType"] == "Permission"
    assert "CreateTags" in failed["FailureMessage"]
    assert "Touched" not in {t["Key"] for t in ec2.describe_tags()["Tags"] if t["ResourceId"] == instance_id}

    ran = run(allowed, "allowed")
    assert ran["AutomationExecutionStatus"] == "Success", ran
    tags = {t["Key"]: t["Value"] for t in ec2.describe_tags()["Tags"] if t["ResourceId"] == instance_id}
    assert tags["Touched"] == "allowed"
