"""Provision the delegated-administration story on a local Automation runtime.

Three personas, as the package's README describes them:

- the **administrator** (the runtime's bootstrap admin) creates the identities and the delegation policy;
- the **author** publishes the bundled runbooks (``LaunchTaggedInstance``, ``LongRunningMaintenance``) and
  nothing else;
- the **operator** — the identity Airflow's ``aws_default`` connection uses — is explicitly denied
  ``ec2:*``; it may only start the approved runbooks and pass the one service role, which is trusted by
  ``ssm.amazonaws.com`` alone and holds the least privilege the runbooks need.

The IAM policies are the ones ``airflow-ssm-delegate iam --policy`` prints: the operator's is compiled from
the very delegation policy written for Airflow (only the pinned runbooks, only the service role, only
executions carrying Airflow's audit tags), so what the demo shows is what an administrator would deploy.
Given the admins of the fleet example's target accounts, it also sets those up for
``fleet_patch_maintenance`` (:mod:`airflow_ssm_delegate.local.story_fleet`, from the same compilation).
``make demo``/``make airflow``, the docker-compose ``airflow-init`` and the end-to-end tests all start from
:func:`provision_story`.

Command line (used by docker-compose; the fleet accounts' admins come from FILE's ``accounts``, which
``ssm-delegate-local --account`` writes)::

    python -m airflow_ssm_delegate.local.story --endpoint-url URL \\
        --admin-credentials-file FILE --output-dir DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.documents.publish import PublishError, publish_document
from airflow_ssm_delegate.examples import (
    EXAMPLE_ROLE_NAME,
    FLEET_ACCOUNTS,
    FLEET_ALARM,
    FLEET_REGIONS,
    FLEET_RUNBOOK,
)
from airflow_ssm_delegate.fanout import DEFAULT_EXECUTION_ROLE_NAME
from airflow_ssm_delegate.iam import Scope as IamScope
from airflow_ssm_delegate.iam import generate_policies
from airflow_ssm_delegate.iam_compile import compile_operator_policy
from airflow_ssm_delegate.local.story_fleet import (
    FLEET_PATCH_GROUP,
    Fleet,
    launch_instances,
    missing_fleet_admins,
    provision_fleet,
)
from airflow_ssm_delegate.policy import DelegationPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_ssm_delegate.local.server import LocalAutomationServer

STORY_RUNBOOKS = ("LaunchTaggedInstance", "LongRunningMaintenance", FLEET_RUNBOOK)
OPERATOR_USER = "airflow-operator"
AUTHOR_USER = "runbook-author"
SERVICE_ROLE = EXAMPLE_ROLE_NAME  # the example policies name it
POLICY_FILE_NAME = "delegation-policy.yaml"
CONNECTIONS_FILE_NAME = "connections.json"
VARIABLES_FILE_NAME = "variables.json"
ENV_FILE_NAME = "airflow.env"
AIRFLOW_CONN_ID = "aws_default"
# Any AMI id works on the local runtime (moto does not validate it); on AWS use a real one.
LOCAL_AMI_ID = "ami-04681a1dbd79675a5"
MAINTENANCE_TARGET_NAME = "maintenance-target"
MAINTENANCE_INSTANCE_VARIABLE = "maintenance_instance_id"
MAINTENANCE_APPROVER_VARIABLE = "maintenance_approver"
DENY_DIRECT_EC2 = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "NoDirectEc2", "Effect": "Deny", "Action": "ec2:*", "Resource": "*"}],
}


# The fleet runbook may reach only these accounts and Regions, through the default execution role, a few
# instances and locations at a time, and only under the required alarm (the example policy says the same).
FAN_OUT_RULES: dict[str, dict[str, Any]] = {
    FLEET_RUNBOOK: {
        "fan_out": {
            "accounts": list(FLEET_ACCOUNTS),
            "regions": list(FLEET_REGIONS),
            "execution_role_names": [DEFAULT_EXECUTION_ROLE_NAME],
            "max_concurrency": [5, "20%"],
            "max_errors": [1, "10%"],
            "target_location_max_concurrency": 2,
            "target_location_max_errors": 0,
        },
        "required_alarm": FLEET_ALARM,
    }
}


class StoryError(RuntimeError):
    """Provisioning failed; the message says which step and what to do."""


@dataclass(frozen=True)
class Persona:
    """An IAM user of the story with its access key (the secret never appears in repr or logs)."""

    user_name: str
    arn: str
    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class PublishedRunbook:
    """What the author published and the delegation policy pins."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class AdminAccess:
    """The runtime's endpoint and its administrator's keys (the secret never appears in repr or logs)."""

    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    def client(self, service: str, persona: Persona | None = None) -> Any:
        """A boto3 client on the runtime as ``persona`` (the administrator when None)."""
        key, secret = (
            (persona.access_key_id, persona.secret_access_key)
            if persona
            else (self.access_key_id, self.secret_access_key)
        )
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )


@dataclass(frozen=True)
class StoryFiles:
    """What provisioning writes for Airflow (``airflow connections import`` / ``variables import``)."""

    policy_file: Path
    connections_file: Path
    variables_file: Path
    env_file: Path


@dataclass(frozen=True)
class Story:
    """Everything provisioned, for the demo's report, docker-compose and the end-to-end tests."""

    admin: AdminAccess
    account_id: str
    operator: Persona
    author: Persona
    service_role_arn: str
    runbooks: Mapping[str, PublishedRunbook]
    maintenance_instance_id: str
    files: StoryFiles
    # The environment Airflow needs: AIRFLOW_CONN_AWS_DEFAULT (operator keys), the policy file, the variables.
    airflow_env: Mapping[str, str] = field(repr=False)
    fleet: Fleet | None = None  # the fleet accounts, when provisioned (``account_admins``)

    @property
    def endpoint_url(self) -> str:
        return self.admin.endpoint_url

    def client(self, service: str, persona: Persona | None = None) -> Any:
        """A boto3 client on the runtime as ``persona`` (the administrator when None)."""
        return self.admin.client(service, persona)


def _create_user(iam: Any, user_name: str, policies: Mapping[str, Mapping[str, Any]]) -> Persona:
    """Create ``user_name`` with inline ``policies`` and one access key."""
    arn = iam.create_user(UserName=user_name)["User"]["Arn"]
    for policy_name, document in policies.items():
        iam.put_user_policy(UserName=user_name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return Persona(user_name, arn, key["AccessKeyId"], key["SecretAccessKey"])


def _create_service_role(iam: Any, role_name: str, policies: Mapping[str, Any]) -> str:
    role = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps(policies["service_role_trust_policy"]),
        Description="Runs the approved SSM Automation runbooks; only ssm.amazonaws.com may assume it.",
    )["Role"]
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="RunbookLeastPrivilege",
        PolicyDocument=json.dumps(policies["service_role_policy"]),
    )
    return str(role["Arn"])


def _launch_maintenance_target(ec2: Any) -> str:
    """The instance the maintenance DAG works on (launched by the administrator, not the operator)."""
    [instance_id] = launch_instances(ec2, LOCAL_AMI_ID, 1, {"Name": MAINTENANCE_TARGET_NAME})
    return instance_id


def delegation_policy(role_arn: str, runbooks: Mapping[str, PublishedRunbook]) -> dict[str, Any]:
    """The administrator's delegation policy: each runbook pinned, runnable under the one service role."""
    return {
        "require_service_role": True,
        "documents": {
            runbook.name: {
                "roles": [role_arn],
                "default_role": role_arn,
                "version": runbook.version,
                "sha256": runbook.sha256,
                **FAN_OUT_RULES.get(runbook.name, {}),
            }
            for runbook in runbooks.values()
        },
    }


def airflow_connection(endpoint_url: str, region: str, operator: Persona) -> dict[str, Any]:
    """The ``aws_default`` connection: the operator's keys on the local runtime's endpoint."""
    return {
        "conn_type": "aws",
        "login": operator.access_key_id,
        "password": operator.secret_access_key,
        "extra": {"endpoint_url": endpoint_url, "region_name": region},
    }


def _write_files(
    output_dir: Path,
    policy: Mapping[str, Any],
    connection: Mapping[str, Any],
    variables: Mapping[str, str],
    env: Mapping[str, str],
) -> StoryFiles:
    output_dir.mkdir(parents=True, exist_ok=True)
    files = StoryFiles(
        output_dir / POLICY_FILE_NAME,
        output_dir / CONNECTIONS_FILE_NAME,
        output_dir / VARIABLES_FILE_NAME,
        output_dir / ENV_FILE_NAME,
    )
    files.policy_file.write_text(
        "# Delegation policy provisioned by airflow_ssm_delegate.local.story (versions and SHA-256 pinned).\n"
        + yaml.safe_dump(dict(policy), sort_keys=False)
    )
    files.variables_file.write_text(json.dumps(dict(variables), indent=2) + "\n")
    # These two hold the operator's secret key: readable by their owner only.
    for secret_file, text in (
        (files.connections_file, json.dumps({AIRFLOW_CONN_ID: connection}, indent=2) + "\n"),
        (files.env_file, "".join(f"{name}={json.dumps(value)}\n" for name, value in env.items())),
    ):
        secret_file.touch(mode=0o600, exist_ok=True)
        secret_file.chmod(0o600)
        secret_file.write_text(text)
    return files


def provision_story(
    endpoint_url: str,
    admin_credentials: Mapping[str, str],
    output_dir: Path,
    *,
    region: str = "us-east-1",
    name_prefix: str = "",
    extra_runbooks: Sequence[Path] = (),
    account_admins: Mapping[str, Mapping[str, str]] | None = None,
) -> Story:
    """Provision the story on the runtime at ``endpoint_url`` and write its files into ``output_dir``.

    ``name_prefix`` goes in front of the IAM user and role names, so several stories can share one runtime
    (tests do; the runbooks are published once and re-publishing unchanged content makes no new version).
    ``extra_runbooks`` (files named ``<DocumentName>.yaml``) join the bundled ones everywhere: published by
    the author, approved in the delegation policy, covered by the service role's and operator's policies.

    Writes the delegation policy, ``connections.json`` and ``variables.json`` (for ``airflow connections
    import`` / ``airflow variables import``) and ``airflow.env`` (the same as environment variables, for
    ``set -a; . airflow.env``). The connection and env files hold the operator's secret key: mode 0600.

    ``account_admins`` (account id -> its bootstrap admin's keys, e.g. what ``ssm-delegate-local --account``
    writes) lets it also set up the fleet accounts (:mod:`~airflow_ssm_delegate.local.story_fleet`) so
    ``fleet_patch_maintenance`` runs; it must then hold every fleet account. Their execution role names are
    fixed by the policy: one fleet per runtime.
    """
    missing = missing_fleet_admins(account_admins) if account_admins else []
    if missing:
        raise StoryError(
            f"no admin keys for fleet account(s) {', '.join(missing)}: start ssm-delegate-local with "
            + " ".join(f"--account {account}" for account in FLEET_ACCOUNTS)
            + " (or give no other accounts to provision the story without the fleet)."
        )
    admin = AdminAccess(
        endpoint_url,
        region,
        admin_credentials["aws_access_key_id"],
        admin_credentials["aws_secret_access_key"],
    )
    try:
        account_id = str(admin.client("sts").get_caller_identity()["Account"])
        iam = admin.client("iam")
        paths = [runbook_path(name) for name in STORY_RUNBOOKS] + [Path(p) for p in extra_runbooks]
        role_name = name_prefix + SERVICE_ROLE
        policies = generate_policies(paths, role_name=role_name, account=account_id, region=region)
        role_arn = _create_service_role(iam, role_name, policies)
        author = _create_user(
            iam, name_prefix + AUTHOR_USER, {"PublishApprovedRunbooks": policies["author_policy"]}
        )
        author_ssm = admin.client("ssm", author)
        runbooks = {}
        for path in paths:
            result = publish_document(author_ssm, path, path.stem)
            runbooks[result.name] = PublishedRunbook(result.name, str(result.version), result.sha256)
        # The operator's IAM policy is compiled from the delegation policy Airflow reads (one source of
        # truth, as `airflow-ssm-delegate iam --policy` does): exactly the published, pinned versions.
        policy = DelegationPolicy.from_mapping(delegation_policy(role_arn, runbooks), POLICY_FILE_NAME)
        scope = IamScope(account=account_id, region=region)
        operator_policy, _ = compile_operator_policy(policy, scope)
        operator = _create_user(
            iam,
            name_prefix + OPERATOR_USER,
            {"RunApprovedRunbooks": operator_policy, "DenyDirectEc2": DENY_DIRECT_EC2},
        )
        instance_id = _launch_maintenance_target(admin.client("ec2"))
        fleet = (
            provision_fleet(
                endpoint_url,
                {**account_admins, account_id: admin_credentials},
                scope=scope,
                policy=policy,
                runbook_files=paths,
                service_role_name=role_name,
                image_id=LOCAL_AMI_ID,
            )
            if account_admins
            else None
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "EntityAlreadyExists":
            raise StoryError(
                f"{error.response['Error']['Message'].rstrip('.')} — this runtime was provisioned before "
                f"(name prefix {name_prefix!r}). Restart the local runtime (it keeps no state) or use "
                "another name prefix."
            ) from error
        raise StoryError(f"provisioning the story on {endpoint_url} failed: {error}") from error
    except (BotoCoreError, PublishError) as error:
        raise StoryError(f"provisioning the story on {endpoint_url} failed: {error}") from error

    output_dir = output_dir.resolve()
    connection = airflow_connection(endpoint_url, region, operator)
    variables = {MAINTENANCE_INSTANCE_VARIABLE: instance_id, MAINTENANCE_APPROVER_VARIABLE: operator.arn}
    env = {
        f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}": json.dumps(connection),
        "AIRFLOW__SSM_DELEGATE__POLICY_FILE": str(output_dir / POLICY_FILE_NAME),
        **{f"AIRFLOW_VAR_{name.upper()}": value for name, value in variables.items()},
    }
    files = _write_files(output_dir, delegation_policy(role_arn, runbooks), connection, variables, env)
    return Story(
        admin=admin,
        account_id=account_id,
        operator=operator,
        author=author,
        service_role_arn=role_arn,
        runbooks=runbooks,
        maintenance_instance_id=instance_id,
        files=files,
        airflow_env=env,
        fleet=fleet,
    )


def provision_on_server(server: LocalAutomationServer, output_dir: Path, name_prefix: str = "") -> Story:
    """:func:`provision_story` on a running in-process :class:`LocalAutomationServer`, fleet included."""
    return provision_story(
        server.endpoint_url,
        server.admin_credentials,
        output_dir,
        region=server.region,
        name_prefix=name_prefix,
        account_admins={account: server.admin_credentials_for(account) for account in FLEET_ACCOUNTS},
    )


def fleet_summary(story: Story) -> str:
    """One line on the fleet accounts: what was set up, or how to get it."""
    if story.fleet is None:
        return (
            f"fleet accounts not provisioned: {FLEET_RUNBOOK} would fail at its first location (start "
            "ssm-delegate-local with " + " ".join(f"--account {a}" for a in FLEET_ACCOUNTS) + ")"
        )
    instances = sum(len(ids) for ids in story.fleet.tagged.values())
    return (
        f"fleet: execution role {DEFAULT_EXECUTION_ROLE_NAME} in accounts "
        f"{', '.join(story.fleet.execution_role_arns)}; "
        f"{instances} instances tagged PatchGroup={FLEET_PATCH_GROUP} in {len(story.fleet.tagged)} "
        f"account/Region locations; alarm {FLEET_ALARM}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_ssm_delegate.local.story",
        description="Provision the delegated-administration story on a running ssm-delegate-local.",
    )
    parser.add_argument("--endpoint-url", required=True, help="the local runtime, e.g. http://localhost:4566")
    parser.add_argument(
        "--admin-credentials-file",
        required=True,
        type=Path,
        help="JSON with aws_access_key_id and aws_secret_access_key of the runtime's administrator",
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="where the policy and connection go")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--name-prefix", default="", help="prefix of the IAM user and role names")
    return parser


ADMIN_KEYS = ("aws_access_key_id", "aws_secret_access_key")


def _read_admin_credentials(path: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The runtime's admin keys; other accounts' under ``accounts`` (``ssm-delegate-local --account``)."""
    try:
        credentials = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StoryError(f"cannot read admin credentials from {path}: {error}") from error
    missing = [k for k in ADMIN_KEYS if k not in credentials]
    if missing:
        raise StoryError(f"{path} lacks {', '.join(missing)}: write the runtime's admin credentials there")
    others = credentials.get("accounts") or {}
    if not isinstance(others, dict) or not all(
        isinstance(keys, dict) and all(k in keys for k in ADMIN_KEYS) for keys in others.values()
    ):
        raise StoryError(
            f"{path}: 'accounts' must map account ids to admin keys ({', '.join(ADMIN_KEYS)}), as "
            "ssm-delegate-local --account writes them"
        )
    return {k: credentials[k] for k in ADMIN_KEYS}, {
        account: {k: keys[k] for k in ADMIN_KEYS} for account, keys in others.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        admin_credentials, account_admins = _read_admin_credentials(args.admin_credentials_file)
        story = provision_story(
            args.endpoint_url,
            admin_credentials,
            args.output_dir,
            region=args.region,
            name_prefix=args.name_prefix,
            account_admins=account_admins,
        )
    except StoryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"operator {story.operator.arn} (denied ec2:*), service role {story.service_role_arn}")
    for runbook in story.runbooks.values():
        print(f"published {runbook.name} version {runbook.version} sha256 {runbook.sha256}")
    print(fleet_summary(story))
    print(
        f"delegation policy {story.files.policy_file}; Airflow connection and variables in {args.output_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
