"""The hook's policy check reads runbooks with the one document model: AWS's own language is accepted.

An ``AWSConfigRemediation-*``-style runbook declares ``AutomationAssumeRole`` as ``AWS::IAM::Role::Arn``,
writes ``isEnd``/``isCritical`` as strings and uses Java regex classes; the hook must start it against
(stubbed) AWS, and refuse a value the AWS-specific type rejects before any start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.documents.lint import has_failures, lint_text
from airflow_ssm_delegate.policy import PolicyViolation

if TYPE_CHECKING:
    from botocore.stub import Stubber

    from airflow_ssm_delegate.hooks.automation import SsmAutomationHook

NAME = "AWSConfigRemediation-EnforceStyleExample"
ROLE = "arn:aws:iam::123456789012:role/RemediationRole"
EXECUTION_ID = "4c1b7bdc-0a0e-4d8e-9f65-5a1c3b6b8d10"
DIGEST = "a" * 64
RUNBOOK = r"""
schemaVersion: '0.3'
description: Enforce a setting on one instance (written as AWS writes its remediation runbooks).
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole:
    type: AWS::IAM::Role::Arn
    description: (Required) The role that allows Automation to act on your behalf.
  InstanceId:
    type: AWS::EC2::Instance::Id
    description: (Required) The instance.
  Label:
    type: String
    default: Ünïcode-label
    allowedPattern: '^[\p{L}\p{N}\-_ ]{1,64}$'
  DryRun:
    type: Boolean
    default: 'false'
    allowedValues: [true, false]
outputs:
mainSteps:
  - name: Describe
    action: aws:executeAwsApi
    isCritical: 'false'
    timeoutSeconds: '600'
    inputs:
      Service: ec2
      Api: DescribeInstances
      InstanceIds: ['{{ InstanceId }}']
    outputs:
      - Name: State
        Selector: Reservations[0].Instances[0].State.Name
        Type: String
  - name: Tag
    action: aws:createTags
    isEnd: 'true'
    inputs:
      ResourceIds: ['{{ InstanceId }}']
      Tags:
        - Key: Label
          Value: '{{ Label }} {{ DryRun }} {{ Describe.State }}'
"""


def expect_read(stubber: Stubber) -> None:
    stubber.add_response(
        "get_document",
        {"Name": NAME, "DocumentVersion": "1", "Content": RUNBOOK, "DocumentType": "Automation"},
        {"Name": NAME},
    )
    stubber.add_response(
        "describe_document",
        {"Document": {"Name": NAME, "DocumentVersion": "1", "Hash": DIGEST, "DocumentType": "Automation"}},
        {"Name": NAME, "DocumentVersion": "1"},
    )


@pytest.fixture(autouse=True)
def builtin_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """No policy file: the built-in delegation rule applies."""
    monkeypatch.delenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", raising=False)


def test_hook_starts_a_remediation_runbook_with_aws_specific_types(
    hook_and_stub: tuple[SsmAutomationHook, Stubber],
) -> None:
    hook, stubber = hook_and_stub
    expect_read(stubber)
    expected: dict[str, Any] = {
        "DocumentName": NAME,
        "DocumentVersion": "1",
        "Parameters": {
            "InstanceId": ["i-0123456789abcdef0"],
            "Label": ["Étiquette 7"],
            "DryRun": ["true"],
            "AutomationAssumeRole": [ROLE],
        },
        "Mode": "Auto",
    }
    stubber.add_response("start_automation_execution", {"AutomationExecutionId": EXECUTION_ID}, expected)
    execution_id = hook.start_automation_execution(
        NAME,
        {"InstanceId": "i-0123456789abcdef0", "Label": "Étiquette 7", "DryRun": "true"},
        service_role_arn=ROLE,
    )
    assert execution_id == EXECUTION_ID


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (
            {"InstanceId": "vol-0123456789abcdef0"},
            "InstanceId: 'vol-0123456789abcdef0' is not a valid AWS::EC2::Instance::Id",
        ),
        ({"InstanceId": "i-0123456789abcdef0", "Label": "semi;colon"}, "does not match the allowedPattern"),
    ],
)
def test_hook_refuses_values_the_runbook_rejects_before_any_start(
    hook_and_stub: tuple[SsmAutomationHook, Stubber], values: dict[str, str], named: str
) -> None:
    hook, stubber = hook_and_stub
    expect_read(stubber)
    with pytest.raises(PolicyViolation, match=named):
        hook.start_automation_execution(NAME, values, service_role_arn=ROLE)


def test_the_same_runbook_lints_without_error_or_policy_findings() -> None:
    findings = lint_text(RUNBOOK, "remediation.yaml")
    assert not has_failures(findings), [str(f) for f in findings]
