"""The fleet example's accounts on the local runtime, set up as a platform team would for them.

``dags/fleet_patch_maintenance.py`` starts ``FleetPatchInstance`` with TargetLocations in the fleet accounts
and Regions of the example policy. What that needs besides the story comes from ``airflow-ssm-delegate iam
--policy``'s compilation of the story's own delegation policy (one source of truth, as for the operator):

- the administration role's policy on the service role (the fleet runbook's ``default_role``, which a
  TargetLocations start runs as): it may assume the execution roles and read the required alarm;
- in each fleet account, the execution role (AWS's default name) with the compiled trust and per-account
  policy;
- the CloudWatch alarm the policy requires on every fleet execution (new, so INSUFFICIENT_DATA: only ALARM
  stops an execution);
- in each account and Region, instances tagged ``PatchGroup`` (the DAG's default group) and one that is not,
  which the fleet leaves alone.

It needs the bootstrap admin of every fleet account: ``ssm-delegate-local --account ID`` writes them to its
admin credentials file, an in-process server hands them out (``admin_credentials_for``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from airflow_ssm_delegate.examples import FLEET_ACCOUNTS, FLEET_ALARM, FLEET_REGIONS, FLEET_RUNBOOK
from airflow_ssm_delegate.fanout import DEFAULT_EXECUTION_ROLE_NAME
from airflow_ssm_delegate.iam_compile import compile_policies

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from airflow_ssm_delegate.iam import Scope
    from airflow_ssm_delegate.policy import DelegationPolicy

FLEET_PATCH_GROUP = "web"  # the DAG form's default patch group
FLEET_TAGGED_PER_LOCATION = 3
INSTANCE_TYPE = "t3.micro"
ADMINISTRATION_POLICY_NAME = "AutomationAdministration"
EXECUTION_POLICY_NAME = "FleetPatch"
Location = tuple[str, str]  # (account id, Region)


@dataclass(frozen=True)
class Fleet:
    """What :func:`provision_fleet` made: per location, the tagged instances and the one left untagged."""

    execution_role_arns: Mapping[str, str]
    tagged: Mapping[Location, tuple[str, ...]]
    untagged: Mapping[Location, str]


def missing_fleet_admins(account_admins: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The fleet accounts ``account_admins`` has no keys for."""
    return [account for account in FLEET_ACCOUNTS if account not in account_admins]


def _client(endpoint_url: str, credentials: Mapping[str, str], service: str, region: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=credentials["aws_access_key_id"],
        aws_secret_access_key=credentials["aws_secret_access_key"],
    )


def provision_fleet(
    endpoint_url: str,
    admins: Mapping[str, Mapping[str, str]],
    *,
    scope: Scope,
    policy: DelegationPolicy,
    runbook_files: Sequence[Path],
    service_role_name: str,
    image_id: str,
) -> Fleet:
    """Set up the fleet for ``policy`` (the story's, listing every file of ``runbook_files``).

    ``admins`` maps account ids to their bootstrap admin's keys: the story's account (``scope.account``)
    and every fleet account. boto3's errors propagate (the story turns them into a StoryError).
    """
    compiled = compile_policies(policy, scope, runbook_files).policies
    home = admins[scope.account]
    _client(endpoint_url, home, "iam", scope.region).put_role_policy(
        RoleName=service_role_name,
        PolicyName=ADMINISTRATION_POLICY_NAME,
        PolicyDocument=json.dumps(compiled["administration_role_policy"]),
    )
    _client(endpoint_url, home, "cloudwatch", scope.region).put_metric_alarm(
        AlarmName=FLEET_ALARM,
        AlarmDescription=f"Stops every {FLEET_RUNBOOK} execution when patching fails (the policy asks).",
        Namespace="Fleet",
        MetricName="PatchErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    role_arns: dict[str, str] = {}
    tagged: dict[Location, tuple[str, ...]] = {}
    untagged: dict[Location, str] = {}
    for account in FLEET_ACCOUNTS:
        iam = _client(endpoint_url, admins[account], "iam", scope.region)
        role_arns[account] = iam.create_role(
            RoleName=DEFAULT_EXECUTION_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(compiled["execution_role_trust_policy"]),
            Description=f"Runs {FLEET_RUNBOOK} here for the administration role of {scope.account}.",
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=DEFAULT_EXECUTION_ROLE_NAME,
            PolicyName=EXECUTION_POLICY_NAME,
            PolicyDocument=json.dumps(compiled["execution_role_policies"][account]),
        )
        for region in FLEET_REGIONS:
            ec2 = _client(endpoint_url, admins[account], "ec2", region)
            patch_group = {"PatchGroup": FLEET_PATCH_GROUP}
            tagged[(account, region)] = launch_instances(
                ec2, image_id, FLEET_TAGGED_PER_LOCATION, patch_group
            )
            [untagged[(account, region)]] = launch_instances(ec2, image_id, 1)
    return Fleet(role_arns, tagged, untagged)


def launch_instances(
    ec2: Any, image_id: str, count: int, tags: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Launch ``count`` instances of ``image_id`` tagged ``tags``; their ids."""
    specifications = [
        {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}
    ]
    launched = ec2.run_instances(
        ImageId=image_id,
        InstanceType=INSTANCE_TYPE,
        MinCount=count,
        MaxCount=count,
        TagSpecifications=specifications if tags else [],
    )
    return tuple(instance["InstanceId"] for instance in launched["Instances"])
