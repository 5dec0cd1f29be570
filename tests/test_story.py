"""The delegated-administration story provisioned on the local runtime holds together.

Each persona can do its job and nothing more, and the files written for Airflow (delegation policy,
connection, variables) let the provider's hook start the runbook under the service role the policy names.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.examples import EXAMPLES_DIR, FLEET_ACCOUNTS, FLEET_ALARM, FLEET_REGIONS
from airflow_ssm_delegate.fanout import DEFAULT_EXECUTION_ROLE_NAME
from airflow_ssm_delegate.local.story import (
    AIRFLOW_CONN_ID,
    OPERATOR_USER,
    STORY_RUNBOOKS,
    Story,
    StoryError,
    provision_on_server,
    provision_story,
)
from airflow_ssm_delegate.local.story_fleet import (
    ADMINISTRATION_POLICY_NAME,
    EXECUTION_POLICY_NAME,
    FLEET_PATCH_GROUP,
    FLEET_TAGGED_PER_LOCATION,
)
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS, DelegationPolicy
from tests.fixtures.local_runtime import unique

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.server import LocalAutomationServer


@pytest.fixture(scope="module")
def story_prefix() -> str:
    return unique("story") + "-"


@pytest.fixture(scope="module")
def story(
    local_server: LocalAutomationServer, tmp_path_factory: pytest.TempPathFactory, story_prefix: str
) -> Story:
    return provision_on_server(local_server, tmp_path_factory.mktemp("story"), name_prefix=story_prefix)


def _code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


def test_operator_cannot_launch_an_instance_directly(story: Story) -> None:
    ec2 = story.client("ec2", story.operator)
    with pytest.raises(ClientError) as refused:
        ec2.run_instances(ImageId="ami-04681a1dbd79675a5", MinCount=1, MaxCount=1)
    assert _code(refused) in {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}


def test_operator_can_only_pass_the_service_role(story: Story, local_server: LocalAutomationServer) -> None:
    iam = story.client("iam")
    other = unique("OtherRole")
    iam.create_role(
        RoleName=other,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": "ssm.amazonaws.com"},
                    }
                ],
            }
        ),
    )
    ssm = story.client("ssm", story.operator)
    with pytest.raises(ClientError) as refused:
        ssm.start_automation_execution(
            DocumentName="LaunchTaggedInstance",
            Parameters={
                "AutomationAssumeRole": [f"arn:aws:iam::{story.account_id}:role/{other}"],
                "Owner": ["someone"],
                "CostCenter": ["CC-1001"],
            },
            # Airflow's audit tags, which the operator's policy requires on every start.
            Tags=[{"Key": key, "Value": "x"} for key in AUDIT_TAG_KEYS],
        )
    assert _code(refused) == "AccessDeniedException"
    assert "iam:PassRole" in str(refused.value)


def test_author_publishes_only_the_approved_runbooks(story: Story) -> None:
    ssm = story.client("ssm", story.author)
    content = runbook_path("LaunchTaggedInstance").read_text()
    with pytest.raises(ClientError) as refused:
        ssm.create_document(Name=unique("Unapproved"), Content=content, DocumentType="Automation",
                            DocumentFormat="YAML")  # fmt: skip
    assert "AccessDenied" in _code(refused)
    operator_ssm = story.client("ssm", story.operator)
    with pytest.raises(ClientError) as operator_refused:
        operator_ssm.update_document(Name="LaunchTaggedInstance", Content=content, DocumentVersion="$LATEST")
    assert "AccessDenied" in _code(operator_refused)


def test_the_delegation_policy_pins_what_the_author_published(story: Story) -> None:
    policy = yaml.safe_load(story.files.policy_file.read_text())
    DelegationPolicy.from_file(story.files.policy_file)  # the provider accepts it
    assert policy["require_service_role"] is True
    assert set(policy["documents"]) == set(STORY_RUNBOOKS)
    admin_ssm = story.client("ssm")
    for name in STORY_RUNBOOKS:
        entry, published = policy["documents"][name], story.runbooks[name]
        described = admin_ssm.describe_document(Name=name)["Document"]
        assert entry["version"] == published.version == described["DefaultVersion"]
        assert entry["sha256"] == published.sha256 == described["Hash"]
        assert published.sha256 == hashlib.sha256(runbook_path(name).read_bytes()).hexdigest()
        assert entry["roles"] == [story.service_role_arn] and entry["default_role"] == story.service_role_arn


def test_the_example_policy_is_the_one_the_story_writes(story: Story, story_prefix: str) -> None:
    example = yaml.safe_load((EXAMPLES_DIR / "delegation-policy.yaml").read_text())
    written = yaml.safe_load(story.files.policy_file.read_text().replace(f"role/{story_prefix}", "role/"))
    for name, entry in example["documents"].items():
        # The pins of a first publication of the bundled runbook (other tests may publish more versions).
        assert entry["version"] == "1"
        assert entry["sha256"] == hashlib.sha256(runbook_path(name).read_bytes()).hexdigest()
        written["documents"][name].update(version=entry["version"], sha256=entry["sha256"])
    assert written == example


def test_the_operator_has_the_example_operator_policy(story: Story, story_prefix: str) -> None:
    """`make demo` provisions the operator with the policy compiled from the example delegation policy."""
    document = story.client("iam").get_user_policy(
        UserName=story.operator.user_name, PolicyName="RunApprovedRunbooks"
    )["PolicyDocument"]
    provisioned = document if isinstance(document, dict) else json.loads(document)
    provisioned = json.loads(json.dumps(provisioned).replace(f"role/{story_prefix}", "role/"))
    example = json.loads((EXAMPLES_DIR / "iam-policies.json").read_text())["operator_policy"]
    # The pins of a first publication (other tests may publish more versions of the bundled runbooks).
    for statement in provisioned["Statement"]:
        if statement["Sid"] == "StartListedRunbooks":
            statement["Resource"] = [arn.rsplit(":", 1)[0] + ":1" for arn in statement["Resource"]]
    assert provisioned == example


def test_airflow_files_carry_the_operator_identity_and_no_admin_secret(story: Story) -> None:
    connection = json.loads(story.files.connections_file.read_text())[AIRFLOW_CONN_ID]
    assert connection["conn_type"] == "aws"
    assert connection["login"] == story.operator.access_key_id
    assert connection["extra"]["endpoint_url"] == story.endpoint_url
    assert json.loads(story.airflow_env["AIRFLOW_CONN_AWS_DEFAULT"]) == connection
    assert story.airflow_env["AIRFLOW__SSM_DELEGATE__POLICY_FILE"] == str(story.files.policy_file)
    variables = json.loads(story.files.variables_file.read_text())
    assert variables == {
        "maintenance_instance_id": story.maintenance_instance_id,
        "maintenance_approver": story.operator.arn,
    }
    for secret_file in (story.files.connections_file, story.files.env_file):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    for written in story.files.__dict__.values():
        assert story.admin.secret_access_key not in Path(written).read_text()
    assert story.operator.secret_access_key not in repr(story)


def _document(document: Any) -> Any:
    return document if isinstance(document, dict) else json.loads(document)


def test_the_fleet_accounts_are_set_up_as_iam_compiles_the_policy(
    story: Story, story_prefix: str, local_server: LocalAutomationServer
) -> None:
    """What fleet_patch_maintenance needs: exactly what `iam --policy` prints for the example policy."""
    example = json.loads((EXAMPLES_DIR / "iam-policies.json").read_text())

    def unprefixed(document: Any) -> Any:
        return json.loads(json.dumps(_document(document)).replace(f"role/{story_prefix}", "role/"))

    administration = story.client("iam").get_role_policy(
        RoleName=story.service_role_arn.rsplit("/", 1)[1], PolicyName=ADMINISTRATION_POLICY_NAME
    )["PolicyDocument"]
    assert unprefixed(administration) == example["administration_role_policy"]
    assert story.client("cloudwatch").describe_alarms(AlarmNames=[FLEET_ALARM])["MetricAlarms"]
    assert story.fleet is not None
    assert set(story.fleet.tagged) == {(a, r) for a in FLEET_ACCOUNTS for r in FLEET_REGIONS}
    for account in FLEET_ACCOUNTS:
        admin = local_server.admin_credentials_for(account)
        iam = boto3.client("iam", endpoint_url=local_server.endpoint_url, region_name="us-east-1", **admin)
        role = iam.get_role(RoleName=DEFAULT_EXECUTION_ROLE_NAME)["Role"]
        assert role["Arn"] == story.fleet.execution_role_arns[account]
        assert unprefixed(role["AssumeRolePolicyDocument"]) == example["execution_role_trust_policy"]
        policy = iam.get_role_policy(RoleName=DEFAULT_EXECUTION_ROLE_NAME, PolicyName=EXECUTION_POLICY_NAME)
        assert _document(policy["PolicyDocument"]) == example["execution_role_policies"][account]
        for region in FLEET_REGIONS:
            ec2 = boto3.client("ec2", endpoint_url=local_server.endpoint_url, region_name=region, **admin)
            patch_group = [{"Name": "tag:PatchGroup", "Values": [FLEET_PATCH_GROUP]}]
            found = {
                instance["InstanceId"]
                for reservation in ec2.describe_instances(Filters=patch_group)["Reservations"]
                for instance in reservation["Instances"]
            }
            assert found == set(story.fleet.tagged[(account, region)])
            assert len(found) == FLEET_TAGGED_PER_LOCATION
            assert story.fleet.untagged[(account, region)] not in found


def test_fleet_admins_must_cover_every_fleet_account(
    story: Story, local_server: LocalAutomationServer, tmp_path: Path
) -> None:
    prefix = unique("partial") + "-"
    only_one = {FLEET_ACCOUNTS[0]: local_server.admin_credentials_for(FLEET_ACCOUNTS[0])}
    with pytest.raises(
        StoryError, match=rf"fleet account\(s\) {FLEET_ACCOUNTS[1]}: start ssm-delegate-local"
    ):
        provision_story(
            local_server.endpoint_url,
            local_server.admin_credentials,
            tmp_path,
            name_prefix=prefix,
            account_admins=only_one,
        )
    with pytest.raises(ClientError, match="NoSuchEntity"):  # refused before anything was made
        story.client("iam").get_user(UserName=prefix + OPERATOR_USER)


def test_reprovisioning_the_same_names_fails_clearly(
    story: Story, local_server: LocalAutomationServer, tmp_path: Path, story_prefix: str
) -> None:
    with pytest.raises(StoryError, match=r"already exists — this runtime was provisioned before \(name"):
        provision_on_server(local_server, tmp_path, name_prefix=story_prefix)


def _start_through_the_hook(story: Story, monkeypatch: pytest.MonkeyPatch, **parameters: Any) -> str:
    from airflow_ssm_delegate.hooks.automation import SsmAutomationHook

    for name, value in story.airflow_env.items():
        monkeypatch.setenv(name, value)
    # Outside a task the hook has no audit tags, and the operator's IAM policy refuses a start without
    # them: the tags a task's context gives.
    monkeypatch.setattr(
        "airflow_ssm_delegate.hooks.automation.current_audit_tags",
        lambda: {key: "story-test" for key in AUDIT_TAG_KEYS},
    )
    return SsmAutomationHook().start_automation_execution("LaunchTaggedInstance", parameters)


def test_the_hook_launches_a_tagged_instance_as_the_operator(
    story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's view: the operator's connection + the policy file start the runbook under the role."""
    import time

    execution_id = _start_through_the_hook(story, monkeypatch, Owner="alice", CostCenter="CC-3003")
    ssm = story.client("ssm", story.operator)
    for _ in range(600):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] not in {"Pending", "InProgress", "Waiting"}:
            break
        time.sleep(0.1)
    assert execution["AutomationExecutionStatus"] == "Success", execution.get("FailureMessage")
    assert execution["Parameters"]["AutomationAssumeRole"] == [story.service_role_arn]
    assert execution["ExecutedBy"] == story.operator.arn
    (instance_id,) = execution["Outputs"]["launch.InstanceIds"]
    tags = story.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])[
        "Tags"
    ]
    assert {(t["Key"], t["Value"]) for t in tags} >= {("Owner", "alice"), ("CostCenter", "CC-3003")}


def test_the_command_line_provisions_from_an_admin_credentials_file(
    local_server: LocalAutomationServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What docker-compose's airflow-init runs against the ssm-delegate-local service."""
    from airflow_ssm_delegate.local.story import main

    credentials = tmp_path / "admin.json"
    credentials.write_text(json.dumps(local_server.admin_credentials))
    output = tmp_path / "out"
    prefix = unique("cli") + "-"
    argv = ["--endpoint-url", local_server.endpoint_url, "--admin-credentials-file", str(credentials)]
    assert main([*argv, "--output-dir", str(output), "--name-prefix", prefix]) == 0
    printed = capsys.readouterr().out
    assert f"user/{prefix}airflow-operator (denied ec2:*)" in printed
    # No other accounts in the file (ssm-delegate-local without --account): no fleet, and it says so.
    assert "fleet accounts not provisioned" in printed and "--account 111122223333" in printed
    assert {p.name for p in output.iterdir()} == {
        "delegation-policy.yaml",
        "connections.json",
        "variables.json",
        "airflow.env",
    }
    credentials.write_text(json.dumps({"aws_access_key_id": "x"}))
    assert main([*argv, "--output-dir", str(output)]) == 1
    assert "lacks aws_secret_access_key" in capsys.readouterr().err
    credentials.write_text(json.dumps({**local_server.admin_credentials, "accounts": {"111122223333": {}}}))
    assert main([*argv, "--output-dir", str(output)]) == 1
    assert "'accounts' must map account ids to admin keys" in capsys.readouterr().err
