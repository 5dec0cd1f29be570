"""iam:SimulatePrincipalPolicy on the local runtime (moto has none), and ``preflight`` working offline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.documents.preflight import preflight
from tests.fixtures.local_runtime import SSM_TRUST, error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable

ACCOUNT = "123456789012"


def _decisions(iam: Any, source: str, actions: list[str], resources: list[str], **extra: Any) -> list[str]:
    results = iam.simulate_principal_policy(
        PolicySourceArn=source, ActionNames=actions, ResourceArns=resources, **extra
    )["EvaluationResults"]
    return [r["EvalDecision"] for r in results]


def test_simulation_evaluates_the_users_policies_with_context(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/Launch"
    user = new_user(
        [
            {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": role,
                "Condition": {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
            },
        ]
    )
    iam = boto_client("iam")
    source = boto_client("sts", user).get_caller_identity()["Arn"]

    assert _decisions(
        iam, source, ["ec2:DescribeInstances", "ec2:TerminateInstances", "ec2:RunInstances"], ["*"]
    ) == ["allowed", "explicitDeny", "implicitDeny"]
    to_ssm = [{"ContextKeyName": "iam:PassedToService", "ContextKeyValues": ["ssm.amazonaws.com"],
               "ContextKeyType": "string"}]  # fmt: skip
    assert _decisions(iam, source, ["iam:PassRole"], [role], ContextEntries=to_ssm) == ["allowed"]
    assert _decisions(iam, source, ["iam:PassRole"], [role]) == ["implicitDeny"]  # condition key absent


def test_simulating_a_missing_principal_is_no_such_entity(boto_client: Callable[..., Any]) -> None:
    error = error_of(
        lambda: boto_client("iam").simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/{unique('nobody')}", ActionNames=["s3:ListBucket"]
        )
    )
    assert error["Code"] == "NoSuchEntity"


def test_simulation_is_itself_authorised(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    nosy = new_user([{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}], prefix="nosy")
    error = error_of(
        lambda: boto_client("iam", nosy).simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/local-admin", ActionNames=["s3:ListBucket"]
        )
    )
    assert error["Code"] == "AccessDenied"
    assert "iam:SimulatePrincipalPolicy" in error["Message"]


def test_preflight_runs_offline_and_names_the_missing_permission(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]], new_role: Callable[..., str]
) -> None:
    document = unique("LaunchTaggedInstance")
    boto_client("ssm").create_document(
        Name=document,
        Content=runbook_path("LaunchTaggedInstance").read_text(encoding="utf-8"),
        DocumentType="Automation",
        DocumentFormat="YAML",
    )
    launch = ["ec2:RunInstances", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus"]
    untagging_role = new_role([SSM_TRUST], [{"Effect": "Allow", "Action": launch, "Resource": "*"}])
    operator = new_user(
        [
            {"Effect": "Allow", "Action": "ssm:StartAutomationExecution", "Resource": "*"},
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": untagging_role},
        ],
        prefix="operator",
    )
    checks = preflight(
        ssm=boto_client("ssm"),
        iam=boto_client("iam"),
        sts=boto_client("sts", operator),
        document_name=document,
        role_arn=untagging_role,
    )

    denied = {(c.principal, c.action) for c in checks if not c.allowed}
    assert denied == {(untagging_role, "ec2:CreateTags")}
    allowed = {c.action for c in checks if c.allowed}
    assert {"ec2:RunInstances", "ssm:StartAutomationExecution", "iam:PassRole"} <= allowed
