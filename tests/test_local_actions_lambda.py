"""aws:invokeLambdaFunction on the local server: the function's Python handler runs from its zip, as its
execution role, and the step's Invoke call is authorised as the automation's service role."""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.local_runtime import SSM_TRUST
from tests.local_engine_support import steps_by_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.server import LocalAutomationServer

AMI = "ami-12c6146b"
LAMBDA_TRUST = {
    "Effect": "Allow",
    "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole",
}
HANDLER = """
import boto3

def handler(event, context):
    if event.get("Fail"):
        raise RuntimeError("asked to fail")
    boto3.client("ec2").create_tags(
        Resources=[event["InstanceId"]], Tags=[{"Key": "TaggedBy", "Value": context.function_name}]
    )
    print("tagged", event["InstanceId"])
    return {"Retry": False, "Tagged": event["InstanceId"], "Left": context.get_remaining_time_in_millis() > 0}
"""


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class LambdaRig:
    def __init__(
        self, server: LocalAutomationServer, client: Callable[..., Any], new_role: Callable[..., str]
    ) -> None:
        self.server, self.client, self.new_role = server, client, new_role
        function_role = new_role(
            [LAMBDA_TRUST], [{"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*"}]
        )
        self.function = f"fn-{uuid.uuid4().hex[:8]}"
        client("lambda").create_function(
            FunctionName=self.function,
            Runtime="python3.11",
            Role=function_role,
            Handler="index.handler",
            Code={"ZipFile": zipped({"index.py": HANDLER})},
            Timeout=30,
        )
        self.document = f"Invoke-{uuid.uuid4().hex[:8]}"
        runbook = {
            "schemaVersion": "0.3",
            "assumeRole": "{{ AutomationAssumeRole }}",
            "parameters": {
                "AutomationAssumeRole": {"type": "String"},
                "FunctionName": {"type": "String"},
                "InstanceId": {"type": "String"},
                "Fail": {"type": "Boolean", "default": False},
            },
            "mainSteps": [
                {
                    "name": "invoke",
                    "action": "aws:invokeLambdaFunction",
                    "inputs": {
                        "FunctionName": "{{ FunctionName }}",
                        "InputPayload": {"InstanceId": "{{ InstanceId }}", "Fail": "{{ Fail }}"},
                        "LogType": "Tail",
                    },
                    "outputs": [{"Name": "Tagged", "Selector": "$.Tagged", "Type": "String"}],
                }
            ],
            "outputs": ["invoke.Tagged", "invoke.StatusCode", "invoke.LogResult"],
        }
        client("ssm").create_document(
            Name=self.document, Content=json.dumps(runbook), DocumentType="Automation"
        )
        self.instance = client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1)["Instances"][0][
            "InstanceId"
        ]

    def run(self, role: str, function: str | None = None, fail: bool = False) -> dict[str, Any]:
        parameters = {
            "AutomationAssumeRole": [role],
            "FunctionName": [function or self.function],
            "InstanceId": [self.instance],
            "Fail": [str(fail).lower()],
        }
        execution_id = self.client("ssm").start_automation_execution(
            DocumentName=self.document, Parameters=parameters
        )["AutomationExecutionId"]
        assert self.server.engine is not None
        return self.server.engine.wait(execution_id, timeout=60)

    def tags(self) -> dict[str, str]:
        found = self.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [self.instance]}])
        return {t["Key"]: t["Value"] for t in found["Tags"]}

    def automation_role(self, allowed: bool) -> str:
        statements = (
            [{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}] if allowed else []
        )
        return self.new_role([SSM_TRUST], statements, prefix="invoke-role")


@pytest.fixture
def rig(
    local_server: LocalAutomationServer, boto_client: Callable[..., Any], new_role: Callable[..., str]
) -> LambdaRig:
    return LambdaRig(local_server, boto_client, new_role)


def test_the_handler_runs_as_the_function_role_and_its_result_is_the_payload(rig: LambdaRig) -> None:
    execution = rig.run(rig.automation_role(allowed=True))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"]["invoke.Tagged"] == [rig.instance]
    assert execution["Outputs"]["invoke.StatusCode"] == ["200"]
    assert "tagged " + rig.instance in base64.b64decode(execution["Outputs"]["invoke.LogResult"][0]).decode()
    payload = json.loads(steps_by_name(execution)["invoke"]["Outputs"]["Payload"][0])
    assert payload == {"Retry": False, "Tagged": rig.instance, "Left": True}
    assert rig.tags() == {"TaggedBy": rig.function}


def test_a_role_without_lambda_invoke_function_fails_with_a_permission_failure(rig: LambdaRig) -> None:
    execution = rig.run(rig.automation_role(allowed=False))
    assert execution["AutomationExecutionStatus"] == "Failed"
    step = steps_by_name(execution)["invoke"]
    assert step["FailureDetails"]["FailureType"] == "Permission"
    assert "lambda:InvokeFunction" in step["FailureMessage"]
    assert rig.tags() == {}


def test_a_function_error_fails_the_step_with_its_message(rig: LambdaRig) -> None:
    execution = rig.run(rig.automation_role(allowed=True), fail=True)
    assert execution["AutomationExecutionStatus"] == "Failed"
    assert "RuntimeError: asked to fail" in steps_by_name(execution)["invoke"]["FailureMessage"]


def test_other_runtimes_are_refused_by_name(rig: LambdaRig) -> None:
    name = f"node-{uuid.uuid4().hex[:8]}"
    role = rig.new_role([LAMBDA_TRUST])
    rig.client("lambda").create_function(
        FunctionName=name, Runtime="nodejs20.x", Role=role, Handler="index.handler",
        Code={"ZipFile": zipped({"index.js": "exports.handler = async () => 1;"})},
    )  # fmt: skip
    execution = rig.run(rig.automation_role(allowed=True), function=name)
    assert execution["AutomationExecutionStatus"] == "Failed"
    assert "runtime 'nodejs20.x' are not emulated" in steps_by_name(execution)["invoke"]["FailureMessage"]
