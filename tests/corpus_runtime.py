"""Local-runtime helpers shared by the conformance tests: a service role and publishing a corpus runbook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tests.fixtures.local_runtime import SSM_TRUST, client_for, policy_document, unique

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.server import LocalAutomationServer
    from tests.corpus_support import CorpusEntry


def all_actions_role(server: LocalAutomationServer, prefix: str) -> str:
    """A service role SSM may assume that allows every action: conformance, not IAM, is under test."""
    iam = client_for(server, "iam")
    name = unique(prefix)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=policy_document([SSM_TRUST]))
    iam.put_role_policy(
        RoleName=name,
        PolicyName="all",
        PolicyDocument=policy_document([{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
    )
    return f"arn:aws:iam::{server.account_id}:role/{name}"


def publish(ssm: Any, entry: CorpusEntry, text: str) -> None:
    """CreateDocument under the runbook's name; already published this session (shared server) is fine."""
    try:
        ssm.create_document(
            Name=entry.document_name,
            Content=text,
            DocumentType="Automation",
            DocumentFormat=entry.document_format,
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "DocumentAlreadyExists":
            raise
