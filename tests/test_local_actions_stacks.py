"""aws:createStack, aws:deleteStack and aws:executeStateMachine on the local runtime (moto's CloudFormation
and Step Functions), checked on the emulated resources."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests

from tests.fixtures.local_runtime import SSM_TRUST
from tests.local_engine_support import Harness, runbook, step, steps_by_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.server import LocalAutomationServer

TEMPLATE = json.dumps(
    {
        "Parameters": {"QueueName": {"Type": "String"}},
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "QueueName"}}}
        },
    }
)
PASS_MACHINE = json.dumps(
    {"StartAt": "Greet", "States": {"Greet": {"Type": "Pass", "Result": {"hello": "world"}, "End": True}}}
)
FAIL_MACHINE = json.dumps(
    {"StartAt": "Stop", "States": {"Stop": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}}
)


def client(moto_url: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto_url, region_name="us-east-1")


def queue_names(moto_url: str) -> set[str]:
    urls = client(moto_url, "sqs").list_queues().get("QueueUrls", [])
    return {url.rsplit("/", 1)[-1] for url in urls}


def test_create_stack_creates_the_resources_and_delete_stack_removes_them(h: Harness, moto_url: str) -> None:
    name, queue = f"stack-{uuid.uuid4().hex[:8]}", f"queue-{uuid.uuid4().hex[:8]}"
    create = step(
        "Create",
        "aws:createStack",
        inputs={
            "StackName": name,
            "TemplateBody": TEMPLATE,
            "Parameters": [{"ParameterKey": "QueueName", "ParameterValue": queue}],
            "Capabilities": ["CAPABILITY_IAM"],
            "TimeoutInMinutes": "5",
            "Tags": [{"Key": "Owner", "Value": "team-a"}],
        },
    )
    execution = h.finish(h.run(runbook(create, outputs=["Create.StackId", "Create.StackStatus"])))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"]["Create.StackStatus"] == ["CREATE_COMPLETE"]
    stack = client(moto_url, "cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    assert execution["Outputs"]["Create.StackId"] == [stack["StackId"]]
    assert stack["Tags"] == [{"Key": "Owner", "Value": "team-a"}]
    assert queue in queue_names(moto_url)

    execution = h.finish(h.run(runbook(step("Delete", "aws:deleteStack", inputs={"StackName": name}))))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert queue not in queue_names(moto_url)


def test_create_stack_needs_one_template_and_refuses_what_aws_does_not_document(h: Harness) -> None:
    both = h.finish(h.run(runbook(step("C", "aws:createStack", inputs={"StackName": "s"}))))
    assert "exactly one of TemplateBody or TemplateURL" in steps_by_name(both)["C"]["FailureMessage"]
    unknown = h.finish(
        h.run(
            runbook(step("C", "aws:createStack", inputs={"StackName": "s", "TemplateBody": "{}", "Size": 1}))
        )
    )
    assert "Size" in steps_by_name(unknown)["C"]["FailureMessage"]


def test_a_stack_that_fails_to_create_fails_the_step(h: Harness) -> None:
    broken = json.dumps(
        {"Resources": {"X": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "Nope"}}}}}
    )
    name = f"stack-{uuid.uuid4().hex[:8]}"
    execution = h.finish(
        h.run(runbook(step("C", "aws:createStack", inputs={"StackName": name, "TemplateBody": broken})))
    )
    assert execution["AutomationExecutionStatus"] == "Failed"
    assert steps_by_name(execution)["C"]["StepStatus"] == "Failed"


@pytest.fixture
def state_machines(moto_url: str) -> Any:
    """Step Functions with moto's interpreter on (the local server turns it on when it starts)."""
    requests.post(
        f"{moto_url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=5
    )
    sfn = client(moto_url, "stepfunctions")

    def make(definition: str) -> str:
        return str(
            sfn.create_state_machine(
                name=f"m-{uuid.uuid4().hex[:8]}",
                definition=definition,
                roleArn="arn:aws:iam::123456789012:role/sfn",
            )["stateMachineArn"]
        )

    return make


def test_execute_state_machine_runs_it_and_reports_aws_outputs(
    h: Harness, moto_url: str, state_machines: Any
) -> None:
    arn = state_machines(PASS_MACHINE)
    run = step(
        "Run",
        "aws:executeStateMachine",
        inputs={"stateMachineArn": arn, "name": "run-1", "input": '{"a": 1}'},
    )
    execution = h.finish(h.run(runbook(run, outputs=["Run.status", "Run.output", "Run.executionArn"])))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"]["Run.status"] == ["SUCCEEDED"]
    assert json.loads(execution["Outputs"]["Run.output"][0]) == {"hello": "world"}
    [execution_arn] = execution["Outputs"]["Run.executionArn"]
    described = client(moto_url, "stepfunctions").describe_execution(executionArn=execution_arn)
    assert described["name"] == "run-1"
    assert json.loads(described["input"]) == {"a": 1}


def test_a_failed_state_machine_run_fails_the_step(h: Harness, state_machines: Any) -> None:
    arn = state_machines(FAIL_MACHINE)
    execution = h.finish(
        h.run(runbook(step("Run", "aws:executeStateMachine", inputs={"stateMachineArn": arn})))
    )
    assert execution["AutomationExecutionStatus"] == "Failed"
    assert "FAILED" in steps_by_name(execution)["Run"]["FailureMessage"]


@pytest.mark.parametrize(
    ("step_", "denied_action"),
    [
        (
            step("Create", "aws:createStack", inputs={"StackName": "denied-stack", "TemplateBody": TEMPLATE}),
            "cloudformation:CreateStack",
        ),
        (
            step("Delete", "aws:deleteStack", inputs={"StackName": "denied-stack"}),
            "cloudformation:DescribeStacks",
        ),
        (
            step(
                "Run",
                "aws:executeStateMachine",
                inputs={"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:m"},
            ),
            "states:StartExecution",
        ),
    ],
)
def test_a_role_lacking_the_permission_fails_the_step_with_a_permission_failure(
    local_server: LocalAutomationServer,
    boto_client: Callable[..., Any],
    new_role: Callable[..., str],
    step_: dict[str, Any],
    denied_action: str,
) -> None:
    role = new_role([SSM_TRUST], [], "no-stacks-role")
    name = f"Denied-{uuid.uuid4().hex[:8]}"
    document = runbook(
        step_,
        assumeRole="{{ AutomationAssumeRole }}",
        parameters={"AutomationAssumeRole": {"type": "String"}},
    )
    ssm = boto_client("ssm")
    ssm.create_document(Name=name, Content=json.dumps(document), DocumentType="Automation")
    execution_id = ssm.start_automation_execution(
        DocumentName=name, Parameters={"AutomationAssumeRole": [role]}
    )["AutomationExecutionId"]
    assert local_server.engine is not None
    execution = local_server.engine.wait(execution_id, timeout=60)
    assert execution["AutomationExecutionStatus"] == "Failed"
    failed = steps_by_name(execution)[step_["name"]]
    assert failed["FailureDetails"]["FailureType"] == "Permission"
    assert denied_action in failed["FailureMessage"]


def test_deleting_a_stack_that_is_gone_succeeds(h: Harness) -> None:
    delete = step("Delete", "aws:deleteStack", inputs={"StackName": "never-created"})
    execution = h.finish(h.run(runbook(delete)))
    assert execution["AutomationExecutionStatus"] == "Success", execution
