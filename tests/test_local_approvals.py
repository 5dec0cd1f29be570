"""aws:approve through boto3: only the step's Approvers decide, one vote per principal.

AWS lists Approvers as "user name, user ARN, IAM role ARN, or IAM assume role ARN" and documents no
error for anyone else; the local runtime refuses such a SendAutomationSignal with
InvalidAutomationSignalException (the API's error for a signal the execution cannot take) and the
decision does not count.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from airflow_ssm_delegate.local.actions.flow import is_approver

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.server import LocalAutomationServer

ACCOUNT = "123456789012"
SIGNAL = {"Effect": "Allow", "Action": "ssm:SendAutomationSignal", "Resource": "*"}


def _arn(boto_client: Callable[..., Any], creds: dict[str, str]) -> str:
    return str(boto_client("sts", creds).get_caller_identity()["Arn"])


def _session(
    boto_client: Callable[..., Any], creds: dict[str, str], role_arn: str, session_name: str
) -> dict[str, str]:
    """Keys of a session of ``role_arn`` that ``creds`` assume under a session name of their choice."""
    keys = boto_client("sts", creds).assume_role(RoleArn=role_arn, RoleSessionName=session_name)[
        "Credentials"
    ]
    return {
        "aws_access_key_id": keys["AccessKeyId"],
        "aws_secret_access_key": keys["SecretAccessKey"],
        "aws_session_token": keys["SessionToken"],
    }


def _wait_for_approval(local_server: LocalAutomationServer, execution_id: str) -> None:
    """Block (no timed assertion) until the approval step waits for a decision again."""
    assert local_server.engine is not None
    while True:
        execution = local_server.engine.get(execution_id)
        assert execution["AutomationExecutionStatus"] in ("Pending", "InProgress", "Waiting"), execution
        if execution["AutomationExecutionStatus"] == "Waiting":
            return
        local_server.engine._execution(execution_id).done.wait(0.01)


def test_only_the_steps_approvers_decide_and_each_principal_counts_once(
    local_server: LocalAutomationServer,
    boto_client: Callable[..., Any],
    new_user: Callable[..., dict[str, str]],
    new_role: Callable[..., str],
) -> None:
    stranger = new_user(
        [SIGNAL, {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}], "stranger"
    )
    alice = new_user([SIGNAL], "alice")
    alice_arn, stranger_arn = _arn(boto_client, alice), _arn(boto_client, stranger)
    trust = [{"Effect": "Allow", "Principal": {"AWS": stranger_arn}, "Action": "sts:AssumeRole"}]
    approving_role = new_role(trust, [SIGNAL], "approving-role")
    other_role = new_role(trust, [SIGNAL], "other-role")
    name = f"Approval-{uuid.uuid4().hex[:10]}"
    content = {
        "schemaVersion": "0.3",
        "outputs": ["Approve.ApprovalStatus", "Approve.ApproverDecisions"],
        "mainSteps": [
            {
                "name": "Approve",
                "action": "aws:approve",
                "inputs": {"Approvers": [alice_arn, approving_role], "MinRequiredApprovals": 2},
            }
        ],
    }
    admin_ssm = boto_client("ssm")
    admin_ssm.create_document(Name=name, Content=json.dumps(content), DocumentType="Automation")
    execution_id = admin_ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"]
    _wait_for_approval(local_server, execution_id)

    def approve(creds: dict[str, str]) -> None:
        boto_client("ssm", creds).send_automation_signal(
            AutomationExecutionId=execution_id, SignalType="Approve", Payload={"Comment": ["ok"]}
        )

    alice_name = alice_arn.rsplit("/", 1)[-1]
    spoofing = _session(boto_client, stranger, other_role, session_name=alice_name)
    for outsider, named in ((stranger, stranger_arn), (spoofing, alice_name)):
        with pytest.raises(ClientError) as refused:
            approve(outsider)
        assert refused.value.response["Error"]["Code"] == "InvalidAutomationSignalException"
        assert named in refused.value.response["Error"]["Message"]
        assert "not one of the step's Approvers" in refused.value.response["Error"]["Message"]

    approve(alice)
    _wait_for_approval(local_server, execution_id)
    approve(alice)  # a second vote by the same principal does not make two approvals
    _wait_for_approval(local_server, execution_id)
    approve(_session(boto_client, stranger, approving_role, session_name="any-session"))
    assert local_server.engine is not None
    execution = local_server.engine.wait(execution_id, timeout=60)

    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"]["Approve.ApprovalStatus"] == ["Approved"]
    [decisions] = execution["Outputs"]["Approve.ApproverDecisions"]
    assert json.loads(decisions) == {alice_arn: "Approved", approving_role: "Approved"}


def test_with_iam_off_an_unidentified_caller_may_approve(
    local_server: LocalAutomationServer, boto_client: Callable[..., Any]
) -> None:
    """--no-iam allows every request: a key the runtime does not know is held to no Approvers list."""
    name = f"Approval-{uuid.uuid4().hex[:10]}"
    content = {
        "schemaVersion": "0.3",
        "mainSteps": [{"name": "Approve", "action": "aws:approve", "inputs": {"Approvers": ["someone"]}}],
    }
    admin_ssm = boto_client("ssm")
    admin_ssm.create_document(Name=name, Content=json.dumps(content), DocumentType="Automation")
    execution_id = admin_ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"]
    _wait_for_approval(local_server, execution_id)
    unknown = {"aws_access_key_id": "AKIAUNKNOWN000000000", "aws_secret_access_key": "x" * 40}
    local_server.enforce_iam = False
    try:
        boto_client("ssm", unknown).send_automation_signal(
            AutomationExecutionId=execution_id, SignalType="Approve"
        )
    finally:
        local_server.enforce_iam = True
    assert local_server.engine is not None
    assert local_server.engine.wait(execution_id, timeout=60)["AutomationExecutionStatus"] == "Success"


@pytest.mark.parametrize(
    ("sender", "approvers", "expected"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/alice", ["alice"], True),
        (f"arn:aws:iam::{ACCOUNT}:user/team/alice", [f"arn:aws:iam::{ACCOUNT}:user/alice"], True),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", [f"arn:aws:iam::{ACCOUNT}:role/alice"], False),
        ("arn:aws:iam::999999999999:user/alice", [f"arn:aws:iam::{ACCOUNT}:user/alice"], False),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/s1", [f"arn:aws:iam::{ACCOUNT}:role/Ops"], True),
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/s1",
            [f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/s2"],
            False,
        ),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/Ops/alice", ["alice"], False),  # session names are chosen
        (f"arn:aws:iam::{ACCOUNT}:root", ["root"], False),
    ],
)
def test_approver_matching(sender: str, approvers: list[str], expected: bool) -> None:
    assert is_approver(sender, approvers) is expected
