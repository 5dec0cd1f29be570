"""``publish`` and ``preflight``: AWS-facing commands, their output and exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from airflow_ssm_delegate import cli
from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.documents.preflight import preflight

if TYPE_CHECKING:
    from collections.abc import Iterator

LAUNCH = runbook_path("LaunchTaggedInstance")
ROLE = "arn:aws:iam::123456789012:role/LaunchRole"
CALLER = "arn:aws:sts::123456789012:assumed-role/Operator/session-1"


@pytest.fixture
def moto_aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_publish_prints_version_and_sha256_and_is_idempotent(
    moto_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["publish", str(LAUNCH), "--region", "us-east-1"]) == 0
    first = capsys.readouterr().out
    assert "LaunchTaggedInstance version 1 (created); default version set" in first
    assert cli.main(["publish", str(LAUNCH), "--region", "us-east-1", "--name", "LaunchTaggedInstance"]) == 0
    again = capsys.readouterr().out
    assert "version 1 (unchanged, no new version)" in again
    sha = [line for line in first.splitlines() if line.startswith("sha256 ")]
    assert sha and sha[0] in again


def test_publish_refusal_is_one_line_exit_2(moto_aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["publish", str(LAUNCH), "--region", "us-east-1", "--share", "All"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("airflow-ssm-delegate publish: error: cannot share with ['All']")
    assert "Traceback" not in err


def test_publish_shares_with_every_account_whether_listed_once_or_repeated(
    moto_aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["publish", str(LAUNCH), "--region", "us-east-1", "--share", "111111111111", "222222222222"]
    assert cli.main([*argv, "--share", "333333333333"]) == 0
    assert "shared with 111111111111, 222222222222, 333333333333" in capsys.readouterr().out
    permission = boto3.client("ssm", region_name="us-east-1").describe_document_permission(
        Name="LaunchTaggedInstance", PermissionType="Share"
    )
    assert sorted(permission["AccountIds"]) == ["111111111111", "222222222222", "333333333333"]


def test_aws_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 9: botocore's connection error, reported without a traceback.
    argv = ["publish", str(LAUNCH), "--region", "us-east-1", "--endpoint-url", "http://127.0.0.1:9"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Could not connect to the endpoint URL" in err
    assert "Traceback" not in err


def stubbed(service: str) -> tuple[object, Stubber]:
    client = boto3.client(service, region_name="us-east-1")
    return client, Stubber(client)


CONTEXT = {
    ("ec2:RunInstances", "arn:aws:ec2:us-east-1:123456789012:instance/*"): [
        {"ContextKeyName": "ec2:InstanceType", "ContextKeyValues": ["t3.medium"], "ContextKeyType": "string"}
    ],
    ("ec2:CreateTags", "arn:aws:ec2:us-east-1:123456789012:instance/*"): [
        {
            "ContextKeyName": "aws:TagKeys",
            "ContextKeyValues": ["CostCenter", "LaunchedBy", "ManagedBy", "Owner"],
            "ContextKeyType": "stringList",
        }
    ],
    ("ssm:StartAutomationExecution", "arn:aws:ssm:us-east-1:123456789012:automation-definition/Launch:4"): [
        {
            "ContextKeyName": f"aws:RequestTag/{key}",
            "ContextKeyValues": ["preflight"],
            "ContextKeyType": "string",
        }
        for key in ("airflow:dag_id", "airflow:run_id", "airflow:task_id")
    ],
    ("iam:PassRole", ROLE): [
        {
            "ContextKeyName": "iam:PassedToService",
            "ContextKeyValues": ["ssm.amazonaws.com"],
            "ContextKeyType": "string",
        }
    ],
}


def expect_simulation(stubber: Stubber, principal: str, action: str, resource: str, decision: str) -> None:
    stubber.add_response(
        "simulate_principal_policy",
        {"EvaluationResults": [{"EvalActionName": action, "EvalDecision": decision}]},
        {
            "PolicySourceArn": principal,
            "ActionNames": [action],
            "ResourceArns": [resource],
            "ContextEntries": CONTEXT.get((action, resource), []),
        },
    )


@pytest.fixture
def stubs() -> Iterator[tuple[dict[str, Any], Stubber]]:
    (ssm, ssm_stub), (iam, iam_stub), (sts, sts_stub) = stubbed("ssm"), stubbed("iam"), stubbed("sts")
    ssm_stub.add_response(
        "get_document",
        {"Name": "Launch", "DocumentVersion": "4", "Content": LAUNCH.read_text()},
        {"Name": "Launch"},
    )
    sts_stub.add_response("get_caller_identity", {"Arn": CALLER, "Account": "123456789012", "UserId": "x"})
    for stub in (ssm_stub, iam_stub, sts_stub):
        stub.activate()
    yield {"ssm": ssm, "iam": iam, "sts": sts}, iam_stub
    iam_stub.assert_no_pending_responses()


ROLE_CHECKS = [
    ("ec2:RunInstances", "arn:aws:ec2:us-east-1:123456789012:instance/*"),
    *(
        ("ec2:RunInstances", resource)
        for resource in [
            "arn:aws:ec2:us-east-1:123456789012:network-interface/*",
            "arn:aws:ec2:us-east-1:123456789012:security-group/*",
            "arn:aws:ec2:us-east-1:123456789012:subnet/*",
            "arn:aws:ec2:us-east-1:123456789012:volume/*",
            "arn:aws:ec2:us-east-1::image/*",
        ]
    ),
    ("ec2:DescribeInstances", "*"),
    ("ec2:CreateTags", "arn:aws:ec2:us-east-1:123456789012:instance/*"),
]


def expect_all(iam_stub: Stubber, denied: str | None = None) -> None:
    for action, resource in ROLE_CHECKS:
        expect_simulation(iam_stub, ROLE, action, resource, "implicitDeny" if action == denied else "allowed")
    caller_role = "arn:aws:iam::123456789012:role/Operator"
    definition = "arn:aws:ssm:us-east-1:123456789012:automation-definition/Launch:4"
    expect_simulation(iam_stub, caller_role, "ssm:StartAutomationExecution", definition, "allowed")
    expect_simulation(iam_stub, caller_role, "iam:PassRole", ROLE, "allowed")


def test_preflight_checks_every_permission_with_condition_context(
    stubs: tuple[dict[str, Any], Stubber],
) -> None:
    clients, iam_stub = stubs
    expect_all(iam_stub, denied="ec2:CreateTags")
    checks = preflight(**clients, document_name="Launch", role_arn=ROLE)
    assert [(c.action, c.resource) for c in checks][: len(ROLE_CHECKS)] == ROLE_CHECKS
    assert [c.action for c in checks if not c.allowed] == ["ec2:CreateTags"]


def test_preflight_command_prints_a_table_and_fails_on_denial(
    stubs: tuple[dict[str, Any], Stubber], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clients, iam_stub = stubs
    expect_all(iam_stub, denied="ec2:DescribeInstances")
    monkeypatch.setattr(cli, "_clients", lambda args, *services: [clients[s] for s in services])
    assert cli.main(["preflight", "--document", "Launch", "--role", ROLE]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["PRINCIPAL", "ACTION", "RESOURCE", "DECISION"]
    assert f"{ROLE}  ec2:DescribeInstances" in out and "implicitDeny <-- fix" in out
    assert "1 of 10 check(s) denied" in err


def test_preflight_refuses_a_role_that_is_not_a_role_arn() -> None:
    with pytest.raises(ValueError, match="is not an IAM role ARN"):
        preflight(ssm=None, iam=None, sts=None, document_name="Launch", role_arn="arn:aws:iam::1:user/x")


def test_definition_arn_of_a_shared_document() -> None:
    from airflow_ssm_delegate.documents.preflight import definition_arn
    from airflow_ssm_delegate.iam import Scope

    shared = "arn:aws:ssm:us-east-1:111122223333:document/Launch"
    assert definition_arn(Scope("123456789012", "us-east-1"), shared, "2") == (
        "arn:aws:ssm:us-east-1:111122223333:automation-definition/Launch:2"
    )


def test_unreadable_endpoint_response_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.parsers import ResponseParserError

    class Unimplemented:
        def get_document(self, **_: object) -> None:
            raise ResponseParserError(
                "Unable to parse response (syntax error), invalid XML received:\nb'<html>'"
            )

    monkeypatch.setattr(cli, "_clients", lambda args, *services: [Unimplemented() for _ in services])
    assert cli.main(["preflight", "--document", "Launch", "--role", ROLE]) == 2
    err = capsys.readouterr().err
    assert "moto has no iam:SimulatePrincipalPolicy" in err and "<html>" not in err
