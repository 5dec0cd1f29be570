"""A role's permissions boundary: enforced on its sessions and used by SimulatePrincipalPolicy."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.fixtures.local_runtime import error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable

ACCOUNT = "123456789012"


def test_a_role_session_is_limited_by_the_roles_permissions_boundary(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], new_role: Callable[..., str]
) -> None:
    iam = boto_client("iam")
    trust = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "sts:AssumeRole",
    }
    role = new_role([trust], [{"Effect": "Allow", "Action": ["ssm:*", "ec2:*"], "Resource": "*"}])
    boundary = iam.create_policy(
        PolicyName=unique("boundary"),
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]}
        ),
    )["Policy"]["Arn"]
    iam.put_role_permissions_boundary(RoleName=role.rsplit("/", 1)[-1], PermissionsBoundary=boundary)

    simulated = iam.simulate_principal_policy(
        PolicySourceArn=role, ActionNames=["ssm:ListDocuments", "ec2:DescribeInstances"]
    )["EvaluationResults"]
    assert [(r["EvalDecision"], r["PermissionsBoundaryDecisionDetail"]["AllowedByPermissionsBoundary"])
            for r in simulated] == [("allowed", True), ("implicitDeny", False)]  # fmt: skip

    user = new_user([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}])
    session = boto_client("sts", user).assume_role(RoleArn=role, RoleSessionName="bounded")["Credentials"]
    creds = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }
    boto_client("ssm", creds).list_documents()
    assert error_of(lambda: boto_client("ec2", creds).describe_instances())["Code"] == "UnauthorizedOperation"
