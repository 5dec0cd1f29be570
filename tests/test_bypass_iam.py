"""Every way around the provider is denied by IAM: the operator's credentials, limited by the policy
``airflow-ssm-delegate iam --policy`` compiles, used directly with boto3 (as any DAG author can).

The local runtime enforces IAM. Each test calls AWS as the operator would from a task, without the
provider's Python checks, and expects AWS's error code; the positive controls show the same credentials
still do what Airflow needs (start the listed runbook with its tags, watch, stop and approve its own
executions).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.documents.publish import publish_document
from airflow_ssm_delegate.iam import Scope
from airflow_ssm_delegate.iam_compile import compile_operator_policy
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS, DelegationPolicy
from airflow_ssm_delegate.status import TERMINAL_STATUSES
from tests.fixtures.local_runtime import SSM_TRUST, client_for, error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer

# Waits for an approval, so an execution stays open long enough to be stopped or signalled.
APPROVAL_RUNBOOK = """\
schemaVersion: '0.3'
description: Waits for one approval ({variant}).
assumeRole: '{{{{ AutomationAssumeRole }}}}'
parameters:
  AutomationAssumeRole: {{type: String, default: ''}}
  Approver: {{type: String}}
mainSteps:
  - name: approve
    action: aws:approve
    timeoutSeconds: 3600
    inputs: {{Approvers: ['{{{{ Approver }}}}'], MinRequiredApprovals: 1}}
    isEnd: true
"""
# Calls AWS in its first step: without a role it runs on the caller's own credentials.
DESCRIBE_RUNBOOK = """\
schemaVersion: '0.3'
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole: {type: String, default: ''}
mainSteps:
  - name: look
    action: aws:executeAwsApi
    inputs: {Service: ec2, Api: DescribeInstances}
    isEnd: true
"""
REQUIRED_TAGS = {"CostCenter": "CC-1001"}


class Deployment:
    """Runbooks published by the administrator, a delegation policy, and the operator it compiles to."""

    def __init__(self, server: LocalAutomationServer, workdir: Path) -> None:
        self.server = server
        admin_ssm = client_for(server, "ssm")
        self.listed, self.unlisted, self.describe = unique("Listed"), unique("Unlisted"), unique("Describe")
        for name, variants in ((self.listed, ("v1", "v2")), (self.unlisted, ("v1",))):
            for variant in variants:
                path = workdir / f"{name}-{variant}.yaml"
                path.write_text(APPROVAL_RUNBOOK.format(variant=variant))
                publish_document(admin_ssm, path, name)
        describe = workdir / "describe.yaml"
        describe.write_text(DESCRIBE_RUNBOOK)
        publish_document(admin_ssm, describe, self.describe)
        iam = client_for(server, "iam")
        self.role = self._role(iam, unique("ListedRole"))
        describe_only = {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}
        iam.put_role_policy(
            RoleName=self.role.rsplit("/", 1)[1], PolicyName="describe", PolicyDocument=_json([describe_only])
        )
        self.other_role = self._role(iam, unique("OtherRole"))
        self.policy = DelegationPolicy.from_mapping(
            {
                "require_service_role": True,
                "documents": {
                    self.listed: {"roles": [self.role], "version": "1", "required_tags": REQUIRED_TAGS},
                    self.describe: {"roles": [self.role], "version": "1", "required_tags": REQUIRED_TAGS},
                },
            },
            "bypass-test-policy",
        )
        operator_policy, _ = compile_operator_policy(self.policy, Scope(server.account_id, server.region))
        name = unique("operator")
        iam.create_user(UserName=name)
        self.operator_arn = str(iam.get_user(UserName=name)["User"]["Arn"])
        iam.put_user_policy(UserName=name, PolicyName="compiled", PolicyDocument=_json(operator_policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self.operator = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }

    @staticmethod
    def _role(iam: Any, name: str) -> str:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=_json([SSM_TRUST]))["Role"]["Arn"])

    def client(self, service: str, *, admin: bool = False) -> Any:
        return client_for(self.server, service, None if admin else self.operator)

    def start(self, *, as_admin: bool = False, **overrides: Any) -> str:
        """StartAutomationExecution as Airflow makes it (listed runbook, pinned version, listed role, audit
        and required tags), with ``overrides`` replacing any argument (None drops it)."""
        arguments: dict[str, Any] = {
            "DocumentName": self.listed,
            "DocumentVersion": "1",
            "Parameters": {"AutomationAssumeRole": [self.role], "Approver": [self.operator_arn]},
            "Tags": tags(),
            **overrides,
        }
        arguments = {key: value for key, value in arguments.items() if value is not None}
        ssm = self.client("ssm", admin=as_admin)
        return str(ssm.start_automation_execution(**arguments)["AutomationExecutionId"])

    def wait_for(self, execution_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
        ssm = self.client("ssm", admin=True)
        deadline = time.monotonic() + timeout
        while True:
            execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)[
                "AutomationExecution"
            ]
            if execution["AutomationExecutionStatus"] in statuses or time.monotonic() > deadline:
                return dict(execution)
            time.sleep(0.05)


def _json(policy: Any) -> str:
    import json

    document = policy if isinstance(policy, dict) else {"Version": "2012-10-17", "Statement": policy}
    return json.dumps(document)


def tags(**extra: str) -> list[dict[str, str]]:
    """Airflow's audit tags, the policy's required tags, then ``extra`` (an empty value drops a tag)."""
    values: dict[str, str] = {key: "bypass-test" for key in AUDIT_TAG_KEYS}
    values.update(REQUIRED_TAGS)
    values.update(extra)
    return [{"Key": key, "Value": value} for key, value in values.items() if value]


@pytest.fixture(scope="module")
def deployment(local_server: LocalAutomationServer, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return Deployment(local_server, tmp_path_factory.mktemp("bypass"))


def denied(call: Callable[[], Any], code: str = "AccessDeniedException") -> str:
    """The message of AWS's refusal of ``call``, which must carry ``code``."""
    error = error_of(call)
    assert error["Code"] == code, error
    return error["Message"]


# --- positive controls: what Airflow does still works -----------------------------------------------


def test_the_listed_runbook_starts_and_the_operator_approves_its_own_execution(
    deployment: Deployment,
) -> None:
    execution_id = deployment.start()
    assert deployment.wait_for(execution_id, {"Waiting"})["AutomationExecutionStatus"] == "Waiting"
    ssm = deployment.client("ssm")
    ssm.get_automation_execution(AutomationExecutionId=execution_id)
    ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": [execution_id]}])
    ssm.send_automation_signal(AutomationExecutionId=execution_id, SignalType="Approve")
    assert deployment.wait_for(execution_id, set(TERMINAL_STATUSES))["AutomationExecutionStatus"] == "Success"


def test_the_operator_stops_its_own_execution(deployment: Deployment) -> None:
    execution_id = deployment.start()
    deployment.wait_for(execution_id, {"Waiting"})
    deployment.client("ssm").stop_automation_execution(AutomationExecutionId=execution_id)
    final = deployment.wait_for(execution_id, set(TERMINAL_STATUSES))
    assert final["AutomationExecutionStatus"] == "Cancelled"


# --- bypasses: each denied by IAM with AWS's error code ------------------------------------------------


def test_boto3_straight_to_ec2_is_denied(deployment: Deployment) -> None:
    ec2 = deployment.client("ec2")
    message = denied(
        lambda: ec2.run_instances(ImageId="ami-04681a1dbd79675a5", MinCount=1, MaxCount=1),
        "UnauthorizedOperation",
    )
    assert "ec2:RunInstances" in message
    denied(ec2.describe_instances, "UnauthorizedOperation")


def test_an_unlisted_runbook_is_denied(deployment: Deployment) -> None:
    message = denied(lambda: deployment.start(DocumentName=deployment.unlisted))
    assert f"automation-definition/{deployment.unlisted}:1" in message
    assert (
        deployment.client("ssm", admin=True).describe_automation_executions(
            Filters=[{"Key": "DocumentNamePrefix", "Values": [deployment.unlisted]}]
        )["AutomationExecutionMetadataList"]
        == []
    )


@pytest.mark.parametrize("version", ["2", "$LATEST", None])
def test_a_version_other_than_the_pin_is_denied(deployment: Deployment, version: str | None) -> None:
    # Version 2 is the default and the latest now; None asks for $DEFAULT.
    message = denied(lambda: deployment.start(DocumentVersion=version))
    assert f"automation-definition/{deployment.listed}:2" in message


def test_an_unlisted_role_is_denied(deployment: Deployment) -> None:
    parameters = {"AutomationAssumeRole": [deployment.other_role], "Approver": [deployment.operator_arn]}
    message = denied(lambda: deployment.start(Parameters=parameters))
    assert "iam:PassRole" in message and deployment.other_role in message


@pytest.mark.parametrize(
    "overrides",
    [
        {"Tags": None},
        {"Tags": tags(**{"airflow:dag_id": ""})},
        {"Tags": tags(CostCenter="")},
        {"Tags": tags(CostCenter="CC-9999")},
    ],
    ids=["no-tags", "no-audit-tag", "no-required-tag", "wrong-required-tag"],
)
def test_a_start_without_the_audit_or_required_tags_is_denied(
    deployment: Deployment, overrides: Mapping[str, Any]
) -> None:
    message = denied(lambda: deployment.start(**overrides))
    assert "ssm:StartAutomationExecution" in message


def test_stopping_or_signalling_an_execution_airflow_did_not_start_is_denied(deployment: Deployment) -> None:
    # Started by someone else (the administrator), without Airflow's audit tags.
    execution_id = deployment.start(as_admin=True, Tags=None)
    deployment.wait_for(execution_id, {"Waiting"})
    ssm = deployment.client("ssm")
    for call in (
        lambda: ssm.stop_automation_execution(AutomationExecutionId=execution_id),
        lambda: ssm.send_automation_signal(AutomationExecutionId=execution_id, SignalType="Approve"),
        lambda: ssm.send_automation_signal(AutomationExecutionId=execution_id, SignalType="Reject"),
        lambda: ssm.get_automation_execution(AutomationExecutionId=execution_id),
    ):
        assert f"automation-execution/{execution_id}" in denied(call)
    assert deployment.wait_for(execution_id, set())["AutomationExecutionStatus"] == "Waiting"  # untouched
    deployment.client("ssm", admin=True).stop_automation_execution(AutomationExecutionId=execution_id)


def test_a_listed_runbook_started_without_a_role_fails_at_its_first_aws_call(deployment: Deployment) -> None:
    """IAM cannot require the role (a gap `iam` reports); the operator's own rights cover it: none."""
    execution_id = deployment.start(DocumentName=deployment.describe, Parameters=None)
    final = deployment.wait_for(execution_id, set(TERMINAL_STATUSES))
    assert final["AutomationExecutionStatus"] == "Failed"
    (step,) = final["StepExecutions"]
    assert "ec2:DescribeInstances" in step["FailureMessage"], step
