"""``airflow-ssm-delegate iam``: the administration and execution roles of multi-account Automation.

Compiled from the delegation policy's ``fan_out`` (accounts, regions, execution role names), then used as
they are on the local runtime: a TargetLocations start over 2 accounts x 2 regions succeeds, and a location
whose execution role is missing or does not trust the administration role fails as on AWS (STS AccessDenied).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_ssm_delegate.cli import main
from tests.accounts_support import PROBE, child_of, client, create_role, new_account, wait
from tests.fixtures.local_runtime import new_alarm, unique

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer

HOME, REGION = "123456789012", "us-east-1"
REGIONS = ["us-east-1", "us-west-2"]


def compile_iam(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    document: str,
    fan_out: dict[str, Any],
    *extra: str,
    runbook: dict[str, Any] | None = PROBE,
    default_role: str | None = None,
    required_alarm: str | None = None,
) -> tuple[dict[str, Any], str]:
    rule: dict[str, Any] = {"roles": [f"arn:aws:iam::{HOME}:role/*"], "version": 1, "fan_out": fan_out}
    if default_role:
        rule["default_role"] = default_role
    if required_alarm:
        rule["required_alarm"] = required_alarm
    policy = tmp_path / "delegation-policy.yaml"
    policy.write_text(yaml.safe_dump({"documents": {document: rule}}))
    files: list[str] = []
    if runbook is not None:
        path = tmp_path / "probe.json"
        path.write_text(json.dumps(runbook))
        files = [str(path), "--name", f"{path}={document}"]
    code = main(["iam", "--policy", str(policy), "--account", HOME, "--region", REGION, *extra, *files])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def test_administration_role_may_assume_exactly_the_allowed_execution_roles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fan_out = {
        "accounts": ["111122223333", "444455556666"],
        "regions": REGIONS,
        "execution_role_names": ["Exec"],
    }
    policies, err = compile_iam(tmp_path, capsys, "Fleet", fan_out, "--administration-role-name", "Admin")

    assert policies["administration_role_trust_policy"]["Statement"] == [
        {
            "Sid": "SsmAutomationOfThisAccountOnly",
            "Effect": "Allow",
            "Principal": {"Service": "ssm.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": HOME},
                "ArnLike": {"aws:SourceArn": f"arn:aws:ssm:{REGION}:{HOME}:automation-execution/*"},
            },
        }
    ]
    assert policies["administration_role_policy"]["Statement"] == [
        {
            "Sid": "AssumeTheExecutionRoles",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": ["arn:aws:iam::111122223333:role/Exec", "arn:aws:iam::444455556666:role/Exec"],
        }
    ]
    assert policies["execution_role_trust_policy"]["Statement"] == [
        {
            "Sid": "TheAdministrationRoleOnly",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{HOME}:role/Admin"},
            "Action": "sts:AssumeRole",
        }
    ]
    assert "[fan-out-roles]" not in err


@pytest.mark.parametrize(
    ("option", "default_role", "expected"),
    [
        ((), None, "AWS-SystemsManager-AutomationAdministrationRole"),  # AWS's documented default
        ((), f"arn:aws:iam::{HOME}:role/Runner", "Runner"),  # the runbook's AutomationAssumeRole
        (("--administration-role-name", "Central"), f"arn:aws:iam::{HOME}:role/Runner", "Central"),
    ],
)
def test_the_administration_role_is_the_role_the_start_runs_as(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: tuple[str, ...],
    default_role: str | None,
    expected: str,
) -> None:
    fan_out = {"accounts": ["111122223333"]}
    policies, _ = compile_iam(tmp_path, capsys, "Fleet", fan_out, *option, default_role=default_role)
    trust = policies["execution_role_trust_policy"]["Statement"][0]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{HOME}:role/{expected}"}


def test_execution_role_policies_hold_the_steps_in_the_allowed_regions_per_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fan_out = {"accounts": ["111122223333", "444455556666"], "regions": REGIONS}
    policies, _ = compile_iam(tmp_path, capsys, "Fleet", fan_out)

    per_account = policies["execution_role_policies"]
    assert sorted(per_account) == ["111122223333", "444455556666"]
    statements = per_account["111122223333"]["Statement"]
    describe = next(s for s in statements if s["Sid"] == "Ec2DescribeInstances")  # the probe's steps
    assert describe["Action"] == ["ec2:DescribeInstances", "sts:GetCallerIdentity"]
    assert describe["Resource"] == "*"
    assert describe["Condition"] == {"StringEquals": {"aws:RequestedRegion": REGIONS}}
    resolve = next(s for s in statements if s["Sid"] == "ResolveTargets")
    assert "tag:GetResources" in resolve["Action"]
    assert resolve["Condition"] == {"StringEquals": {"aws:RequestedRegion": REGIONS}}
    # the default execution role name of TargetLocations
    assert policies["administration_role_policy"]["Statement"][0]["Resource"] == [
        "arn:aws:iam::111122223333:role/AWS-SystemsManager-AutomationExecutionRole",
        "arn:aws:iam::444455556666:role/AWS-SystemsManager-AutomationExecutionRole",
    ]


def test_any_account_or_organizational_units_are_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies, err = compile_iam(
        tmp_path, capsys, "Fleet", {"accounts": ["ou-ab12-cdef3456"], "regions": REGIONS}
    )
    assert policies["administration_role_policy"]["Statement"][0]["Resource"] == (
        "arn:aws:iam::*:role/AWS-SystemsManager-AutomationExecutionRole"
    )
    assert list(policies["execution_role_policies"]) == ["*"]
    assert "[fan-out-roles] Fleet: the fan_out rule allows any account or names organizational units" in err


def test_a_located_runbook_without_its_file_is_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies, err = compile_iam(tmp_path, capsys, "Fleet", {"accounts": ["111122223333"]}, runbook=None)
    statements = policies["execution_role_policies"]["111122223333"]["Statement"]
    assert [s["Sid"] for s in statements] == ["ResolveTargets"]  # nothing for the steps
    assert "[fan-out-roles] Fleet: no runbook file was given" in err


def test_rate_only_fan_out_adds_no_roles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies, _ = compile_iam(tmp_path, capsys, "Fleet", {"max_concurrency": "10%"})
    assert list(policies) == [
        "service_role_trust_policy",
        "service_role_policy",
        "operator_policy",
        "author_policy",
    ]


# --- the generated roles on the local runtime ---------------------------------------------------------


def deploy(
    server: LocalAutomationServer, policies: dict[str, Any], admin: str, execution: str, accounts: list[str]
) -> str:
    """The administration role (home) and the execution role in each of ``accounts``, as generated."""
    admin_arn = create_role(
        server,
        server.account_id,
        admin,
        json.dumps(policies["administration_role_trust_policy"]),
        json.dumps(policies["administration_role_policy"]),
    )
    for account_id in accounts:
        create_role(
            server,
            account_id,
            execution,
            json.dumps(policies["execution_role_trust_policy"]),
            json.dumps(policies["execution_role_policies"][account_id]),
        )
    return admin_arn


def start_everywhere(
    server: LocalAutomationServer,
    document: str,
    admin_arn: str,
    accounts: list[str],
    execution: str,
    **extra: Any,
) -> dict[str, Any]:
    ssm = client(server, "ssm", server.admin_credentials)
    ssm.create_document(
        Name=document, Content=json.dumps(PROBE), DocumentType="Automation", DocumentFormat="JSON"
    )
    execution_id = ssm.start_automation_execution(
        DocumentName=document,
        Parameters={"AutomationAssumeRole": [admin_arn]},
        TargetLocations=[
            {
                "Accounts": accounts,
                "Regions": REGIONS,
                "ExecutionRoleName": execution,
                "TargetLocationMaxConcurrency": "2",
                "TargetLocationMaxErrors": "100%",
            }
        ],
        **extra,
    )["AutomationExecutionId"]
    return wait(ssm, execution_id)


def test_the_administration_role_reads_the_required_alarm(
    local_server: LocalAutomationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts, document, alarm = [new_account()], unique("Fleet"), unique("fleet-errors")
    admin, execution = unique("Admin"), unique("Exec")
    fan_out = {"accounts": accounts, "regions": REGIONS, "execution_role_names": [execution]}
    policies, _ = compile_iam(
        tmp_path, capsys, document, fan_out, "--administration-role-name", admin, required_alarm=alarm
    )
    assert policies["administration_role_policy"]["Statement"][1] == {
        "Sid": "ReadTheRequiredAlarms",
        "Effect": "Allow",
        "Action": "cloudwatch:DescribeAlarms",
        "Resource": f"arn:aws:cloudwatch:{REGION}:{HOME}:alarm:{alarm}",
    }
    admin_arn = deploy(local_server, policies, admin, execution, accounts)
    new_alarm(client(local_server, "cloudwatch", local_server.admin_credentials), state=None, name=alarm)
    configuration = {
        "Alarms": [{"Name": alarm}]
    }  # polled as the administration role; unreadable would stop it
    parent = start_everywhere(
        local_server, document, admin_arn, accounts, execution, AlarmConfiguration=configuration
    )
    assert parent["AutomationExecutionStatus"] == "Success"
    assert "TriggeredAlarms" not in parent


@pytest.mark.parametrize("broken", [None, "missing", "untrusting"])
def test_generated_roles_run_target_locations_on_the_runtime(
    local_server: LocalAutomationServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    broken: str | None,
) -> None:
    accounts, document = [new_account(), new_account()], unique("Fleet")
    admin, execution = unique("Admin"), unique("Exec")
    fan_out = {"accounts": accounts, "regions": REGIONS, "execution_role_names": [execution]}
    policies, _ = compile_iam(tmp_path, capsys, document, fan_out, "--administration-role-name", admin)
    healthy = accounts if broken is None else accounts[:1]
    admin_arn = deploy(local_server, policies, admin, execution, healthy)
    if broken == "untrusting":  # trusts another account's administration role, not ours
        stranger = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{new_account()}:role/{admin}"}}
        create_role(
            local_server,
            accounts[1],
            execution,
            [{**stranger, "Action": "sts:AssumeRole"}],
            json.dumps(policies["execution_role_policies"][accounts[1]]),
        )
    parent = start_everywhere(local_server, document, admin_arn, accounts, execution)

    steps = {step["StepName"]: step for step in parent["StepExecutions"]}
    assert sorted(steps) == sorted(f"{a}_{r}" for a in accounts for r in REGIONS)
    for region in REGIONS:
        child = child_of(local_server, steps[f"{accounts[0]}_{region}"])
        assert child["AutomationExecutionStatus"] == "Success"
        assert child["Outputs"]["who.Account"] == [accounts[0]]
    if broken is None:
        assert parent["AutomationExecutionStatus"] == "Success"
        assert (
            child_of(local_server, steps[f"{accounts[1]}_us-west-2"])["AutomationExecutionStatus"]
            == "Success"
        )
        return
    assert parent["AutomationExecutionStatus"] == "Failed"
    assert parent["FailureMessage"].startswith("2 of 4 locations did not succeed")
    for region in REGIONS:
        step = steps[f"{accounts[1]}_{region}"]
        assert step["StepStatus"] == "Failed"
        assert step["FailureDetails"]["FailureType"] == "Permission"
        assert (
            f"is not authorized to perform: sts:AssumeRole on resource: "
            f"arn:aws:iam::{accounts[1]}:role/{execution}" in step["FailureMessage"]
        )
        assert "Outputs" not in step  # no child was started there
