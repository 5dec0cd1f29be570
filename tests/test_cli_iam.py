"""``airflow-ssm-delegate iam --policy``: the IAM policies compiled from the delegation policy file.

The operator's policy says in IAM what the delegation policy says (listed runbooks, pinned versions,
listed roles, required and audit tags, only Airflow's executions); what IAM cannot say is listed on stderr.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_ssm_delegate.cli import main
from airflow_ssm_delegate.documents.bundled import BUNDLED_RUNBOOKS, runbook_path
from airflow_ssm_delegate.examples import EXAMPLE_ACCOUNT, EXAMPLE_REGION, EXAMPLES_DIR

if TYPE_CHECKING:
    from pathlib import Path

ACCOUNT, REGION = "123456789012", "eu-west-1"
WHERE = ["--account", ACCOUNT, "--region", REGION]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Runner"
PREFIX = f"arn:aws:ssm:{REGION}:{ACCOUNT}"
EXAMPLE_POLICY = EXAMPLES_DIR / "delegation-policy.yaml"


def write_policy(tmp_path: Path, documents: dict[str, Any], require_service_role: bool = True) -> str:
    path = tmp_path / "delegation-policy.yaml"
    path.write_text(yaml.safe_dump({"require_service_role": require_service_role, "documents": documents}))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["iam", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def by_sid(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in policy["Statement"]}


def test_the_example_iam_policies_are_compiled_from_the_example_delegation_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = [str(runbook_path(name)) for name in BUNDLED_RUNBOOKS]
    where = ["--account", EXAMPLE_ACCOUNT, "--region", EXAMPLE_REGION]
    code, out, _ = run(capsys, "--policy", str(EXAMPLE_POLICY), *where, *files)
    assert code == 0
    assert json.loads(out) == json.loads((EXAMPLES_DIR / "iam-policies.json").read_text())


def test_operator_policy_says_the_delegation_policy_in_iam(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(
        tmp_path,
        {
            "Launch": {"roles": [ROLE], "version": "4", "required_tags": {"CostCenter": "CC-1"}},
            "Patch": {"roles": [ROLE], "version": "2", "required_tags": {"CostCenter": "CC-1"}},
        },
    )
    code, out, _ = run(capsys, "--policy", policy, *WHERE)
    assert code == 0
    policies = json.loads(out)
    assert list(policies) == ["operator_policy", "author_policy"]  # no runbook files: no service role
    statements = by_sid(policies["operator_policy"])
    audit_requested = {
        "aws:RequestTag/airflow:dag_id": "false",
        "aws:RequestTag/airflow:run_id": "false",
        "aws:RequestTag/airflow:task_id": "false",
    }
    assert statements["StartListedRunbooks"] == {
        "Sid": "StartListedRunbooks",
        "Effect": "Allow",
        "Action": "ssm:StartAutomationExecution",
        "Resource": [f"{PREFIX}:automation-definition/Launch:4", f"{PREFIX}:automation-definition/Patch:2"],
        "Condition": {"Null": audit_requested, "StringEquals": {"aws:RequestTag/CostCenter": "CC-1"}},
    }
    assert statements["StartOnlyExecutionsWithAuditTags"]["Resource"] == f"{PREFIX}:automation-execution/*"
    assert statements["StartOnlyExecutionsWithAuditTags"]["Condition"] == {"Null": audit_requested}
    control = statements["WatchAndControlAirflowExecutionsOnly"]
    assert control["Action"] == [
        "ssm:GetAutomationExecution",
        "ssm:SendAutomationSignal",
        "ssm:StopAutomationExecution",
    ]
    assert control["Condition"] == {
        "Null": {key.replace("RequestTag", "ResourceTag"): "false" for key in audit_requested}
    }
    assert statements["PassListedRolesToSsmOnly"]["Resource"] == ROLE
    assert statements["PassListedRolesToSsmOnly"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}
    }
    assert set(by_sid(policies["author_policy"])["PublishApprovedRunbooks"]["Resource"]) == {
        f"{PREFIX}:document/Launch",
        f"{PREFIX}:document/Patch",
    }


def test_runbooks_with_different_required_tags_get_a_statement_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(
        tmp_path,
        {
            "Launch": {"roles": [ROLE], "version": "1", "required_tags": {"CostCenter": "CC-1"}},
            "Patch": {"roles": [ROLE]},
        },
    )
    code, out, err = run(capsys, "--policy", policy, *WHERE)
    assert code == 0
    statements = by_sid(json.loads(out)["operator_policy"])
    assert statements["StartListedRunbooks1"]["Resource"] == f"{PREFIX}:automation-definition/Launch:1"
    assert statements["StartListedRunbooks1"]["Condition"]["StringEquals"] == {
        "aws:RequestTag/CostCenter": "CC-1"
    }
    assert statements["StartListedRunbooks2"]["Resource"] == f"{PREFIX}:automation-definition/Patch:*"
    assert "StringEquals" not in statements["StartListedRunbooks2"]["Condition"]
    assert "[version-pin] Patch: no version pin" in err


def test_what_iam_cannot_say_is_listed_on_stderr_with_what_covers_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = f"arn:aws:iam::{ACCOUNT}:role/Other*"
    policy = write_policy(
        tmp_path,
        {
            "Launch": {"roles": [ROLE], "version": "1", "sha256": "a" * 64},
            "Patch": {"roles": [other], "sha256": "b" * 64},
        },
    )
    code, out, err = run(capsys, "--policy", policy, *WHERE)
    assert code == 0
    assert by_sid(json.loads(out)["operator_policy"])["PassListedRolesToSsmOnly"]["Resource"] == [other, ROLE]
    lines = [line for line in err.splitlines() if line.startswith("not enforced by IAM: ")]
    rules = [line.split("[", 1)[1].split("]", 1)[0] for line in lines]
    assert rules == [
        "service-role-required",
        "role-allowed",
        "sha256-pin",
        "version-pin",
        "sha256-pin",
        "parameters",
        "audit-tags",
        "read-executions",
    ]
    assert all("Covered instead by: " in line for line in lines)
    assert "Launch: IAM cannot check a document's content hash. Covered instead by: the version pin 1" in err
    assert "Patch: IAM cannot check a document's content hash. Covered instead by: only the provider" in err
    assert "a role-less execution fails at its first step" in err


def test_without_a_service_role_requirement_that_gap_is_not_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, {"Launch": {"version": "1"}}, require_service_role=False)
    code, out, err = run(capsys, "--policy", policy, *WHERE)
    assert code == 0
    assert "service-role-required" not in err
    assert "PassListedRolesToSsmOnly" not in by_sid(json.loads(out)["operator_policy"])  # no role to pass


def test_runbook_files_add_the_service_role_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    launch = str(runbook_path("LaunchTaggedInstance"))
    policy = write_policy(tmp_path, {"Launch": {"roles": [ROLE], "version": "3"}})
    code, out, _ = run(capsys, "--policy", policy, *WHERE, launch, "--name", f"{launch}=Launch")
    assert code == 0
    policies = json.loads(out)
    assert list(policies) == [
        "service_role_trust_policy",
        "service_role_policy",
        "operator_policy",
        "author_policy",
    ]
    actions = {
        action
        for statement in policies["service_role_policy"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert actions == {"ec2:RunInstances", "ec2:DescribeInstances", "ec2:CreateTags"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role-name", "Runner"], "--role-name and --pin are gone"),
        (["--pin", "LaunchTaggedInstance=1"], "Pass --policy POLICY_FILE"),
        ([], "--policy POLICY_FILE is required"),
        (["--policy", "/nonexistent/policy.yaml"], "cannot read the file"),
    ],
)
def test_old_flags_and_missing_policy_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv, *WHERE, str(runbook_path("LaunchTaggedInstance")))
    assert code == 2
    assert message in err and "Traceback" not in err and out == ""


def test_a_runbook_file_the_policy_does_not_list_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, {"Launch": {"roles": [ROLE]}})
    code, out, err = run(capsys, "--policy", policy, *WHERE, str(runbook_path("LongRunningMaintenance")))
    assert code == 2 and out == ""
    assert "runbook file(s) for LongRunningMaintenance, which" in err and "(listed: Launch)" in err


def test_a_policy_file_with_a_mistake_is_refused_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, {"Launch": {"roles": [ROLE], "version": "$LATEST"}})
    code, _, err = run(capsys, "--policy", policy, *WHERE)
    assert code == 2
    assert "key 'documents.Launch.version'" in err and "Traceback" not in err


def test_a_shared_runbook_listed_by_arn_is_started_by_its_definition_arn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = f"arn:aws:ssm:{REGION}:210987654321:document/SharedPatch"
    policy = write_policy(tmp_path, {shared: {"roles": [ROLE], "version": "2"}})
    code, out, _ = run(capsys, "--policy", policy, *WHERE)
    assert code == 0
    policies = json.loads(out)
    statements = by_sid(policies["operator_policy"])
    assert statements["StartListedRunbooks"]["Resource"] == (
        f"arn:aws:ssm:{REGION}:210987654321:automation-definition/SharedPatch:2"
    )
    assert statements["ReadListedRunbooks"]["Resource"] == shared
    assert policies["author_policy"]["Statement"] == []  # another account's document: not ours to publish


def test_runbook_whose_permissions_depend_on_parameters_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dynamic = tmp_path / "Dynamic.yaml"
    dynamic.write_text(
        runbook_path("LaunchTaggedInstance")
        .read_text()
        .replace("action: aws:createTags", "action: aws:executeAwsApi")
        .replace("      ResourceType: EC2\n", "      Service: ec2\n      Api: '{{ Owner }}'\n")
    )
    policy = write_policy(tmp_path, {"Dynamic": {"roles": [ROLE]}})
    code, _, err = run(capsys, "--policy", policy, *WHERE, str(dynamic))
    assert code == 2
    assert "Service and Api must be literal" in err


def test_runbook_with_an_unknown_action_is_refused_not_given_an_empty_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "Typo.yaml"
    typo.write_text(
        runbook_path("LaunchTaggedInstance")
        .read_text()
        .replace("action: aws:createTags", "action: aws:createTag")
    )
    policy = write_policy(tmp_path, {"Typo": {"roles": [ROLE]}})
    code, out, err = run(capsys, "--policy", policy, *WHERE, str(typo))
    assert code == 2 and out == ""
    assert "unknown action 'aws:createTag'" in err and "airflow-ssm-delegate lint" in err


def test_invalid_account_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["iam", "--policy", str(EXAMPLE_POLICY), "--account", "12", "--region", "us-east-1"])
    assert exited.value.code == 2
    assert "'12' is not a 12-digit AWS account id" in capsys.readouterr().err


def test_a_policy_listing_no_runbooks_gives_the_operator_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--policy", write_policy(tmp_path, {}), *WHERE)
    assert code == 0
    assert json.loads(out)["operator_policy"] == {"Version": "2012-10-17", "Statement": []}


def test_built_in_rule_cannot_be_compiled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_ssm_delegate.iam import Scope
    from airflow_ssm_delegate.iam_compile import CompileError, compile_policies
    from airflow_ssm_delegate.policy import DelegationPolicy

    with pytest.raises(CompileError, match=r"lists no runbooks .* Write a delegation policy file"):
        compile_policies(DelegationPolicy(), Scope(ACCOUNT, REGION))


def test_loop_bodies_count_and_scripts_are_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runbook = tmp_path / "Loop.yaml"
    runbook.write_text(
        """\
schemaVersion: '0.3'
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole: {type: String}
  InstanceIds: {type: StringList}
mainSteps:
  - name: each
    action: aws:loop
    inputs:
      Iterators: '{{ InstanceIds }}'
      Steps:
        - name: stop
          action: aws:changeInstanceState
          inputs: {InstanceIds: ['{{ each.CurrentIteratorValue }}'], DesiredState: stopped}
  - name: report
    action: aws:executeScript
    inputs: {Runtime: python3.11, Handler: handler, Script: 'def handler(e, c): return {}'}
"""
    )
    policy = write_policy(tmp_path, {"Loop": {"roles": [ROLE]}})
    code, out, err = run(capsys, "--policy", policy, *WHERE, str(runbook))
    assert code == 0
    statements = json.loads(out)["service_role_policy"]["Statement"]
    assert {s["Action"] for s in statements} == {"ec2:DescribeInstances", "ec2:StopInstances"}
    assert "note: " in err and "step report runs a script (aws:executeScript)" in err


def test_the_events_queue_adds_what_the_event_consumer_calls(capsys: pytest.CaptureFixture[str]) -> None:
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:automation-events"
    code, out, _ = run(capsys, "--policy", str(EXAMPLE_POLICY), *WHERE, "--events-queue-arn", queue)
    assert code == 0
    assert by_sid(json.loads(out)["operator_policy"])["WatchAutomationEvents"] == {
        "Sid": "WatchAutomationEvents",
        "Effect": "Allow",
        "Action": ["sqs:DeleteMessage", "sqs:ReceiveMessage"],
        "Resource": queue,
    }
    code, out, _ = run(capsys, "--policy", str(EXAMPLE_POLICY), *WHERE)
    assert "WatchAutomationEvents" not in by_sid(json.loads(out)["operator_policy"])


def test_an_events_queue_that_is_not_an_sqs_arn_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/automation-events"
    code, out, err = run(capsys, "--policy", str(EXAMPLE_POLICY), *WHERE, "--events-queue-arn", url)
    assert code != 0
    assert out == ""
    assert f"{url!r} is not an SQS queue ARN" in err
    assert "Traceback" not in err


def test_fan_out_bounds_and_required_alarm_are_listed_as_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(
        tmp_path,
        {
            "Fleet": {
                "roles": [ROLE],
                "version": 1,
                "fan_out": {"accounts": ["111122223333"], "regions": ["us-east-1"], "max_errors": 1},
                "required_alarm": "fleet-errors",
            },
            "Plain": {"roles": [ROLE], "version": 1},
        },
    )
    code, _, err = run(capsys, "--policy", policy, *WHERE)
    assert code == 0
    fan_out = [line for line in err.splitlines() if "[fan-out]" in line]
    assert fan_out == [
        "not enforced by IAM: [fan-out] Fleet: IAM has no condition key for the fan-out of a start "
        "(accounts, regions, max_errors). Covered instead by: the provider's check before the start (rule "
        "names as in its refusal); for accounts and execution role names also the Automation administration "
        "role's sts:AssumeRole, limited to arn:aws:iam::ACCOUNT:role/NAME of the allowed accounts and names "
        "(administration_role_policy, compiled here when fan_out lists them)."
    ]
    assert "[alarm-required] Fleet: IAM cannot require AlarmConfiguration (alarm fleet-errors)" in err
    assert "Plain: IAM has no condition key for the fan-out" not in err
