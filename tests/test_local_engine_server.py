"""The engine inside the real ``LocalAutomationServer``: the delegated-administration stories through
boto3, with IAM enforced on every step call (issue 3's stories 2 and 4, and a Permission failure)."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_ssm_delegate.documents.bundled import runbook_path
from tests.fixtures.local_runtime import SSM_TRUST
from tests.local_engine_support import role_runbook, step

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

EXECUTION_APIS = [
    "ssm:StartAutomationExecution",
    "ssm:GetAutomationExecution",
    "ssm:DescribeAutomationExecutions",
    "ssm:DescribeAutomationStepExecutions",
    "ssm:SendAutomationSignal",
    "ssm:StopAutomationExecution",
]
LAUNCH_AND_TAG = ["ec2:RunInstances", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:CreateTags"]


def allow(actions: list[str] | str, resource: str = "*", **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def operator_statements(role_arn: str | None) -> list[dict[str, Any]]:
    """The operator persona: may start runbooks and pass the role, is denied every EC2 action."""
    statements = [allow(EXECUTION_APIS), {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}]
    if role_arn:
        statements.append(
            allow("iam:PassRole", role_arn, StringEquals={"iam:PassedToService": "ssm.amazonaws.com"})
        )
    return statements


@dataclass
class Runtime:
    """The session's local server and the helpers that provision it (users, roles, documents)."""

    server: LocalAutomationServer
    client: Callable[..., Any]
    new_user: Callable[..., dict[str, str]]
    new_role: Callable[..., str]

    def publish(self, content: Any) -> str:
        """Create an Automation document (YAML text or a mapping) as the admin; its name."""
        name = f"Runbook-{uuid.uuid4().hex[:10]}"
        text = content if isinstance(content, str) else json.dumps(content)
        self.client("ssm").create_document(
            Name=name,
            Content=text,
            DocumentType="Automation",
            DocumentFormat="YAML" if isinstance(content, str) else "JSON",
        )
        return name

    def arn_of(self, creds: dict[str, str]) -> str:
        """The ARN the runtime sees for these credentials (e.g. to name them among Approvers)."""
        return str(self.client("sts", creds).get_caller_identity()["Arn"])

    def ami(self) -> str:
        images = self.client("ec2").describe_images()["Images"]
        return str(next(i["ImageId"] for i in images if len(i["ImageId"]) in (12, 21)))


@pytest.fixture
def rt(
    local_server: LocalAutomationServer,
    boto_client: Callable[..., Any],
    new_user: Callable[..., dict[str, str]],
    new_role: Callable[..., str],
) -> Runtime:
    return Runtime(local_server, boto_client, new_user, new_role)


@contextmanager
def time_scale(server: LocalAutomationServer, scale: float) -> Iterator[None]:
    assert server.clock is not None
    previous = server.clock.time_scale
    server.clock.time_scale = scale
    try:
        yield
    finally:
        server.clock.time_scale = previous


def finish(server: LocalAutomationServer, ssm: Any, execution_id: str) -> dict[str, Any]:
    """Wait for the end, then read the execution back through the API as the operator."""
    assert server.engine is not None
    server.engine.wait(execution_id, timeout=60)
    execution: dict[str, Any] = ssm.get_automation_execution(AutomationExecutionId=execution_id)[
        "AutomationExecution"
    ]
    assert execution["AutomationExecutionStatus"] not in ("InProgress", "Waiting", "Pending"), execution
    return execution


def launch_parameters(role_arn: str, ami: str) -> dict[str, list[str]]:
    return {
        "AutomationAssumeRole": [role_arn],
        "ImageId": [ami],
        "InstanceType": ["t3.small"],
        "Owner": ["jane.doe@example.com"],
        "CostCenter": ["CC-2002"],
    }


def launch_as_operator(
    rt: Runtime, role_statements: list[dict[str, Any]], role_prefix: str
) -> tuple[str, dict[str, Any]]:
    """Run the bundled LaunchTaggedInstance to its end as the operator persona (denied ec2:*), under a
    new service role granted ``role_statements``; (execution id, the execution as the operator reads it)."""
    role_arn = rt.new_role([SSM_TRUST], role_statements, prefix=role_prefix)
    operator = rt.new_user(operator_statements(role_arn), prefix="operator")
    document = rt.publish(runbook_path("LaunchTaggedInstance").read_text(encoding="utf-8"))
    ssm = rt.client("ssm", operator)
    execution_id = ssm.start_automation_execution(
        DocumentName=document, Parameters=launch_parameters(role_arn, rt.ami())
    )["AutomationExecutionId"]
    return execution_id, finish(rt.server, ssm, execution_id)


def test_operator_denied_ec2_launches_a_tagged_instance_through_the_service_role(
    rt: Runtime,
) -> None:
    execution_id, execution = launch_as_operator(rt, [allow(LAUNCH_AND_TAG)], role_prefix="launch-role")

    assert execution["AutomationExecutionStatus"] == "Success", execution.get("FailureMessage")
    assert execution["ExecutedBy"].endswith(":user/" + execution["ExecutedBy"].rsplit("/", 1)[-1])
    [instance_id] = execution["Outputs"]["launch.InstanceIds"]
    instance = rt.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][
        0
    ]
    assert instance["State"]["Name"] == "running"
    assert instance["InstanceType"] == "t3.small"
    tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
    assert tags == {
        "Owner": "jane.doe@example.com",
        "CostCenter": "CC-2002",
        "ManagedBy": "airflow-ssm-delegate",
        "LaunchedBy": execution_id,
    }


def test_role_without_create_tags_fails_the_tag_step_with_a_permission_failure(
    rt: Runtime,
) -> None:
    _, execution = launch_as_operator(rt, [allow(LAUNCH_AND_TAG[:3])], role_prefix="no-tags-role")

    assert execution["AutomationExecutionStatus"] == "Failed"
    steps = {s["StepName"]: s for s in execution["StepExecutions"]}
    assert steps["launch"]["StepStatus"] == "Success"
    tag = steps["tag"]
    assert tag["StepStatus"] == "Failed"
    assert tag["FailureDetails"]["FailureType"] == "Permission"
    assert "ec2:CreateTags" in tag["FailureMessage"]
    assert "ec2:CreateTags" in execution["FailureMessage"]


THIRTEEN_HOURS = role_runbook(
    step("Before", "aws:executeAwsApi", inputs={"Service": "ec2", "Api": "DescribeInstances"}),
    step("FirstWindow", "aws:sleep", inputs={"Duration": "PT6H"}),
    step("SecondWindow", "aws:sleep", inputs={"Duration": "PT7H"}),
    step("After", "aws:executeAwsApi", inputs={"Service": "ec2", "Api": "DescribeInstances"}),
    role_default="",
)


def test_thirteen_hour_runbook_fails_at_hour_twelve_without_a_role_and_succeeds_with_one(
    rt: Runtime,
) -> None:
    role_arn = rt.new_role([SSM_TRUST], [allow("ec2:DescribeInstances")], prefix="long-role")
    caller = rt.new_user(
        [allow(EXECUTION_APIS), allow("ec2:DescribeInstances"), allow("iam:PassRole", role_arn)],
        prefix="caller",
    )
    document = rt.publish(THIRTEEN_HOURS)
    ssm = rt.client("ssm", caller)

    def run(**parameters: list[str]) -> dict[str, Any]:
        """Real time for the first call, then 13 simulated hours in ~1.3 s while the windows sleep."""
        assert rt.server.engine is not None
        with time_scale(rt.server, 1.0):
            request: dict[str, Any] = {"Parameters": parameters} if parameters else {}
            execution_id = ssm.start_automation_execution(DocumentName=document, **request)[
                "AutomationExecutionId"
            ]
            while rt.server.engine.get(execution_id).get("CurrentStepName") in (None, "Before"):
                rt.server.engine._execution(execution_id).done.wait(0.01)
            with time_scale(rt.server, 36000):
                return finish(rt.server, ssm, execution_id)

    without_role = run()
    with_role = run(AutomationAssumeRole=[role_arn])

    assert without_role["AutomationExecutionStatus"] == "Failed"
    message = without_role["FailureMessage"]
    assert "session" in message and "expired 12 hours" in message
    assert "over 12 hours need a service role" in message and "AutomationAssumeRole" in message
    after = {s["StepName"]: s for s in without_role["StepExecutions"]}["After"]
    assert after["StepStatus"] == "Failed"
    elapsed = after["ExecutionEndTime"] - without_role["ExecutionStartTime"]
    assert elapsed.total_seconds() >= 12 * 3600
    assert with_role["AutomationExecutionStatus"] == "Success", with_role.get("FailureMessage")
    assert (with_role["ExecutionEndTime"] - with_role["ExecutionStartTime"]).total_seconds() >= 13 * 3600


def test_every_action_runs_through_the_server_under_a_role(
    rt: Runtime,
) -> None:
    """Pause and approval answered through SendAutomationSignal; a child started with the role's rights."""
    child = rt.publish(
        {
            "schemaVersion": "0.3",
            "mainSteps": [{"name": "Nap", "action": "aws:sleep", "inputs": {"Duration": "PT1M"}}],
        }
    )
    role_arn = rt.new_role(
        [SSM_TRUST],
        [
            allow(["ec2:*", "ssm:SendCommand", "ssm:ListCommands", "ssm:GetCommandInvocation"]),
            allow(["ssm:StartAutomationExecution", "ssm:GetAutomationExecution"]),
        ],
        prefix="all-actions-role",
    )
    operator = rt.new_user(operator_statements(role_arn), prefix="operator")
    operator_arn = rt.arn_of(operator)  # the one who answers the approval
    instance = {"Service": "ec2", "Api": "DescribeInstances", "InstanceIds": "{{ Launch.InstanceIds }}"}
    state = "$.Reservations[0].Instances[0].State.Name"
    content = yaml.safe_dump(
        {
            "schemaVersion": "0.3",
            "assumeRole": "{{ AutomationAssumeRole }}",
            "parameters": {"AutomationAssumeRole": {"type": "String"}, "ImageId": {"type": "String"}},
            "mainSteps": [
                {"name": "Launch", "action": "aws:runInstances", "inputs": {"ImageId": "{{ ImageId }}"}},
                {
                    "name": "Tag",
                    "action": "aws:createTags",
                    "inputs": {
                        "ResourceIds": "{{ Launch.InstanceIds }}",
                        "Tags": [{"Key": "k", "Value": "v"}],
                    },
                },
                {
                    "name": "Running",
                    "action": "aws:waitForAwsResourceProperty",
                    "inputs": {**instance, "PropertySelector": state, "DesiredValues": ["running"]},
                },
                {
                    "name": "Describe",
                    "action": "aws:executeAwsApi",
                    "inputs": instance,
                    "outputs": [
                        {"Name": "State", "Selector": state, "Type": "String"},
                        {
                            "Name": "Id",
                            "Selector": "$.Reservations[0].Instances[0].InstanceId",
                            "Type": "String",
                        },
                    ],
                },
                {
                    "name": "Pick",
                    "action": "aws:branch",
                    "inputs": {
                        "Choices": [
                            {
                                "NextStep": "Hold",
                                "Variable": "{{ Describe.State }}",
                                "StringEquals": "running",
                            }
                        ],
                        "Default": "Stop",
                    },
                },
                {"name": "Hold", "action": "aws:pause", "inputs": {}},
                {"name": "Approve", "action": "aws:approve", "inputs": {"Approvers": [operator_arn]}},
                {
                    "name": "Command",
                    "action": "aws:runCommand",
                    "inputs": {
                        "DocumentName": "AWS-RunShellScript",
                        "InstanceIds": "{{ Launch.InstanceIds }}",
                        "Parameters": {"commands": ["date"]},
                    },
                },
                {
                    "name": "Stop",
                    "action": "aws:changeInstanceState",
                    "inputs": {"InstanceIds": "{{ Launch.InstanceIds }}", "DesiredState": "stopped"},
                },
                {
                    "name": "Stopped",
                    "action": "aws:assertAwsResourceProperty",
                    "inputs": {**instance, "PropertySelector": state, "DesiredValues": ["stopped"]},
                },
                {
                    "name": "Image",
                    "action": "aws:createImage",
                    "inputs": {
                        "InstanceId": "{{ Describe.Id }}",
                        "ImageName": "img-{{ automation:EXECUTION_ID }}",
                    },
                },
                {
                    "name": "DeleteImage",
                    "action": "aws:deleteImage",
                    "inputs": {"ImageId": "{{ Image.ImageId }}"},
                },
                {"name": "Child", "action": "aws:executeAutomation", "inputs": {"DocumentName": child}},
                {"name": "Nap", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}},
            ],
        }
    )
    document = rt.publish(content)
    ssm = rt.client("ssm", operator)
    assert rt.server.engine is not None
    with time_scale(rt.server, 3600):
        execution_id = ssm.start_automation_execution(
            DocumentName=document, Parameters={"AutomationAssumeRole": [role_arn], "ImageId": [rt.ami()]}
        )["AutomationExecutionId"]
        for signal, step in (("Resume", "Hold"), ("Approve", "Approve")):
            while True:  # wait (without a timed assertion) until the step waits for its signal
                current = ssm.get_automation_execution(AutomationExecutionId=execution_id)[
                    "AutomationExecution"
                ]
                assert current["AutomationExecutionStatus"] in ("Pending", "InProgress", "Waiting"), current
                if (
                    current["AutomationExecutionStatus"] == "Waiting"
                    and current.get("CurrentStepName") == step
                ):
                    break
                rt.server.engine._execution(execution_id).done.wait(0.02)
            ssm.send_automation_signal(
                AutomationExecutionId=execution_id, SignalType=signal, Payload={"Comment": ["ok"]}
            )
        execution = finish(rt.server, ssm, execution_id)

    assert execution["AutomationExecutionStatus"] == "Success", execution.get("FailureMessage")
    ran = [s["StepName"] for s in execution["StepExecutions"]]
    assert ran == [
        "Launch", "Tag", "Running", "Describe", "Pick", "Hold", "Approve", "Command", "Stop", "Stopped",
        "Image", "DeleteImage", "Child", "Nap",
    ]  # fmt: skip
    [child_step] = ssm.describe_automation_step_executions(
        AutomationExecutionId=execution_id, Filters=[{"Key": "StepName", "Values": ["Child"]}]
    )["StepExecutions"]
    [child_id] = child_step["Outputs"]["ExecutionId"]
    child_execution = ssm.get_automation_execution(AutomationExecutionId=child_id)["AutomationExecution"]
    assert child_execution["ParentAutomationExecutionId"] == execution_id
    assert child_execution["AutomationExecutionStatus"] == "Success"


MAINTENANCE_RIGHTS = [
    "ec2:StopInstances",
    "ec2:StartInstances",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:CreateImage",
    "ec2:DescribeImages",
]


def start_maintenance(rt: Runtime) -> tuple[Any, str, str]:
    """An operator starts the bundled 12.5-hour maintenance on a new instance: (ssm, execution, instance)."""
    role_arn = rt.new_role([SSM_TRUST], [allow(MAINTENANCE_RIGHTS)], prefix="maintenance-role")
    operator = rt.new_user(operator_statements(role_arn), prefix="operator")
    document = rt.publish(runbook_path("LongRunningMaintenance").read_text(encoding="utf-8"))
    reservation = rt.client("ec2").run_instances(ImageId=rt.ami(), MinCount=1, MaxCount=1)
    instance_id = reservation["Instances"][0]["InstanceId"]
    ssm = rt.client("ssm", operator)
    parameters = {
        "AutomationAssumeRole": [role_arn],
        "InstanceId": [instance_id],
        "Approvers": [rt.arn_of(operator).rsplit("/", 1)[-1]],  # by user name: the operator approves
    }
    execution_id = ssm.start_automation_execution(DocumentName=document, Parameters=parameters)[
        "AutomationExecutionId"
    ]
    return ssm, execution_id, instance_id


def wait_for_step(rt: Runtime, execution_id: str, step: str, status: str) -> None:
    """Block (no timed assertion) until the execution's current step is ``step`` in ``status``."""
    assert rt.server.engine is not None
    while True:
        execution = rt.server.engine.get(execution_id)
        assert execution["AutomationExecutionStatus"] in ("Pending", "InProgress", "Waiting"), execution
        if execution.get("CurrentStepName") == step and execution["AutomationExecutionStatus"] == status:
            return
        rt.server.engine._execution(execution_id).done.wait(0.01)


def instance_state(rt: Runtime, instance_id: str) -> str:
    reservations = rt.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def test_bundled_long_maintenance_runs_past_twelve_hours_under_its_role(rt: Runtime) -> None:
    with time_scale(rt.server, 1.0):
        ssm, execution_id, instance_id = start_maintenance(rt)
        wait_for_step(rt, execution_id, "approveMaintenance", "Waiting")
        assert instance_state(rt, instance_id) == "stopped"
        ssm.send_automation_signal(
            AutomationExecutionId=execution_id, SignalType="Approve", Payload={"Comment": ["go"]}
        )
        wait_for_step(rt, execution_id, "firstWindow", "InProgress")
        # An hour a second: the 12.5 h of windows take ~12 s, and startInstance's timeoutSeconds (1800)
        # still leaves it half a real second for its calls (at 36000x it had 50 ms and timed out in CI).
        with time_scale(rt.server, 3600):
            execution = finish(rt.server, ssm, execution_id)

    assert execution["AutomationExecutionStatus"] == "Success", execution.get("FailureMessage")
    assert (execution["ExecutionEndTime"] - execution["ExecutionStartTime"]).total_seconds() > 12.5 * 3600
    assert execution["Outputs"]["approveMaintenance.ApprovalStatus"] == ["Approved"]
    [image_id] = execution["Outputs"]["backup.ImageId"]
    assert rt.client("ec2").describe_images(ImageIds=[image_id])["Images"][0]["State"] == "available"
    assert instance_state(rt, instance_id) == "running"
    assert "restartInstance" not in [s["StepName"] for s in execution["StepExecutions"]]


def test_cancelling_the_maintenance_runs_its_cleanup_and_restarts_the_instance(rt: Runtime) -> None:
    with time_scale(rt.server, 1.0):
        ssm, execution_id, instance_id = start_maintenance(rt)
        wait_for_step(rt, execution_id, "approveMaintenance", "Waiting")
        ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")
        execution = finish(rt.server, ssm, execution_id)

    assert execution["AutomationExecutionStatus"] == "Cancelled"
    steps = {s["StepName"]: s["StepStatus"] for s in execution["StepExecutions"]}
    assert steps["approveMaintenance"] == "Cancelled"
    assert steps["restartInstance"] == "Success"
    assert instance_state(rt, instance_id) == "running"
