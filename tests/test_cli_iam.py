"""``airflow-ssm-delegate iam``: one JSON object with the four policies; bad input is a one-line error."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_ssm_delegate.cli import main
from airflow_ssm_delegate.documents.bundled import BUNDLED_RUNBOOKS, runbook_path

if TYPE_CHECKING:
    from pathlib import Path

ARGS = ["--role-name", "Runner", "--account", "123456789012", "--region", "eu-west-1"]


def test_prints_the_four_policies_for_the_runbooks(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(runbook_path(name)) for name in BUNDLED_RUNBOOKS]
    assert main(["iam", *files, *ARGS, "--pin", "LaunchTaggedInstance=2"]) == 0
    policies = json.loads(capsys.readouterr().out)
    assert list(policies) == [
        "service_role_trust_policy",
        "service_role_policy",
        "operator_policy",
        "author_policy",
    ]
    start = policies["operator_policy"]["Statement"][0]
    assert start["Resource"][:2] == [
        "arn:aws:ssm:eu-west-1:123456789012:automation-definition/LaunchTaggedInstance:2",
        "arn:aws:ssm:eu-west-1:123456789012:automation-definition/LongRunningMaintenance:*",
    ]
    actions = {
        action
        for statement in policies["service_role_policy"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert actions == {
        "ec2:RunInstances",
        "ec2:DescribeInstances",
        "ec2:CreateTags",
        "ec2:StopInstances",
        "ec2:StartInstances",
        "ec2:CreateImage",
        "ec2:DescribeImages",
    }


def test_document_names_can_differ_from_file_stems(capsys: pytest.CaptureFixture[str]) -> None:
    launch = str(runbook_path("LaunchTaggedInstance"))
    assert main(["iam", launch, *ARGS, "--name", f"{launch}=Launch", "--pin", "Launch=4"]) == 0
    start = json.loads(capsys.readouterr().out)["operator_policy"]["Statement"][0]
    assert start["Resource"] == "arn:aws:ssm:eu-west-1:123456789012:automation-definition/Launch:4"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "other.yaml=X"], "--name for ['other.yaml'], which are not among the FILE arguments"),
        (["--pin", "Launch"], "--pin 'Launch' must look like NAME=VERSION"),
        (["--pin", "Other=1"], "--pin names Other, which is not among the runbooks"),
        (["--pin", "LaunchTaggedInstance=$LATEST"], "a pinned version is a document version number"),
        (["--pin", "LaunchTaggedInstance=v1"], "--pin LaunchTaggedInstance=v1: a pinned version"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["iam", str(runbook_path("LaunchTaggedInstance")), *ARGS, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


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
    assert main(["iam", str(dynamic), *ARGS]) == 2
    assert "Service and Api must be literal" in capsys.readouterr().err


def test_runbook_with_an_unknown_action_is_refused_not_given_an_empty_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "Typo.yaml"
    launch = runbook_path("LaunchTaggedInstance").read_text()
    typo.write_text(launch.replace("action: aws:createTags", "action: aws:createTag"))
    assert main(["iam", str(typo), *ARGS]) == 2
    out, err = capsys.readouterr()
    assert "unknown action 'aws:createTag'" in err and "airflow-ssm-delegate lint" in err
    assert out == ""


def test_invalid_account_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["iam", "x.yaml", "--role-name", "R", "--account", "12", "--region", "us-east-1"])
    assert exited.value.code == 2
    assert "'12' is not a 12-digit AWS account id" in capsys.readouterr().err


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
    assert main(["iam", str(runbook), *ARGS]) == 0
    out, err = capsys.readouterr()
    statements = json.loads(out)["service_role_policy"]["Statement"]
    assert {s["Action"] for s in statements} == {"ec2:DescribeInstances", "ec2:StopInstances"}
    assert "note: " in err and "step report runs a script (aws:executeScript)" in err
