"""The roles of multi-account Automation (TargetLocations), compiled from the delegation policy's ``fan_out``.

AWS runs a multi-account start as an administration role in the starting account, which assumes an execution
role in each target account; the execution role's permissions are what the runbook's steps get there
("Running automations in multiple AWS Regions and accounts", Systems Manager User Guide: the
``AWS-SystemsManager-AutomationAdministrationRole`` and ``AWS-SystemsManager-AutomationExecutionRole``
templates). From the runbooks whose rule has ``fan_out`` accounts, regions or execution role names:

- ``administration_role_trust_policy``: ssm.amazonaws.com, for this account's executions only;
- ``administration_role_policy``: ``sts:AssumeRole`` on exactly the allowed execution role names in exactly
  the allowed accounts (AWS's template allows that name in every account, ``iam::*``), and
  ``cloudwatch:DescribeAlarms`` on the policy's ``required_alarm`` (the starting execution polls it);
- ``execution_role_trust_policy``: the administration role of the starting account, and nothing else;
- ``execution_role_policies``: per target account, the least privilege of those runbooks' steps (as for the
  service role) in the allowed regions, calls on ``"*"`` limited by ``aws:RequestedRegion``, plus what AWS's
  template grants for resolving targets (tags, resource groups, instances).

What IAM cannot say here is a :class:`~airflow_ssm_delegate.iam_compile.Gap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.fanout import DEFAULT_EXECUTION_ROLE_NAME
from airflow_ssm_delegate.iam import (
    Scope,
    merge_grants,
    policy_document,
    service_role_grants,
    statement,
    trust_policy,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_ssm_delegate.documents.model import Runbook
    from airflow_ssm_delegate.policy import DocumentRule

ADMINISTRATION_ROLE_NAME = "AWS-SystemsManager-AutomationAdministrationRole"
ANY_ACCOUNT = "*"
#: What AWS's execution role template grants for resolving Targets in each location.
TARGET_RESOLUTION_ACTIONS = (
    "ec2:DescribeInstances",
    "resource-groups:GetGroupQuery",
    "resource-groups:ListGroupResources",
    "tag:GetResources",
)


@dataclass(frozen=True)
class RoleGap:
    """A fan-out rule IAM cannot express in these roles (turned into an ``iam_compile.Gap``)."""

    document: str
    detail: str
    covered_by: str


@dataclass
class _Account:
    """What one target account's execution role must allow: its names, regions and runbooks."""

    role_names: set[str] = field(default_factory=set)
    regions: set[str] = field(default_factory=set)
    runbooks: list[Runbook] = field(default_factory=list)


def located_rules(rules: Sequence[DocumentRule]) -> list[DocumentRule]:
    """The rules that reach other accounts or regions (fan_out accounts, regions or execution role names)."""
    return [
        rule
        for rule in rules
        if rule.fan_out is not None
        and (rule.fan_out.accounts or rule.fan_out.regions or rule.fan_out.execution_role_names)
    ]


def multi_account_policies(
    rules: Sequence[DocumentRule],
    scope: Scope,
    runbooks: Mapping[str, Runbook],
    administration_role_name: str | None = None,
) -> tuple[dict[str, Any], list[RoleGap]]:
    """The four new policies (keys as in the module docstring) and what they leave to other checks.

    ``runbooks`` maps document names to parsed runbooks (the ``iam`` command's FILE arguments): their steps
    make up the execution role's permissions; a located rule without its runbook file is a gap. The
    administration role is the one a TargetLocations start runs as (its AutomationAssumeRole):
    ``administration_role_name`` in this account when given, else the rule's ``default_role``, else AWS's
    default name.
    """
    accounts: dict[str, _Account] = {}
    gaps: list[RoleGap] = []
    admins: set[str] = set()
    alarms: set[str] = set()
    for rule in located_rules(rules):
        admins.add(_administration_role(rule, scope, administration_role_name))
        if rule.required_alarm:  # the starting execution polls it as the administration role
            alarms.add(f"arn:aws:cloudwatch:{scope.region}:{scope.account}:alarm:{rule.required_alarm}")
        assert rule.fan_out is not None
        names = rule.fan_out.execution_role_names or (DEFAULT_EXECUTION_ROLE_NAME,)
        listed = rule.fan_out.accounts
        if not listed or not all(account_id.isdigit() for account_id in listed):  # any account, or OUs
            gaps.append(_any_account_gap(rule))
            targets = [ANY_ACCOUNT]
        else:
            targets = list(listed)
        for account_id in targets:
            entry = accounts.setdefault(account_id, _Account())
            entry.role_names.update(names)
            entry.regions.update(rule.fan_out.regions or ("*",))
            if rule.document in runbooks:
                entry.runbooks.append(runbooks[rule.document])
        if rule.document not in runbooks:
            gaps.append(
                RoleGap(
                    rule.document,
                    "no runbook file was given, so the execution role's policy has no permission for its "
                    "steps.",
                    "pass the runbook file (FILE; --name FILE=NAME if its name differs) to compile them.",
                )
            )
    if not accounts:
        return {}, gaps
    principal = sorted(admins) if len(admins) > 1 else next(iter(admins))
    policies = {
        "administration_role_trust_policy": trust_policy(scope),
        "administration_role_policy": _administration_policy(accounts, sorted(alarms)),
        "execution_role_trust_policy": policy_document(
            [
                {
                    "Sid": "TheAdministrationRoleOnly",
                    "Effect": "Allow",
                    "Principal": {"AWS": principal},
                    "Action": "sts:AssumeRole",
                }
            ]
        ),
        "execution_role_policies": {
            account_id: _execution_policy(account_id, entry) for account_id, entry in sorted(accounts.items())
        },
    }
    return policies, gaps


def _administration_role(rule: DocumentRule, scope: Scope, name: str | None) -> str:
    default = rule.default_role
    if name is None and default and "*" not in default and "?" not in default:
        return default
    return f"arn:aws:iam::{scope.account}:role/{name or ADMINISTRATION_ROLE_NAME}"


def _administration_policy(accounts: Mapping[str, _Account], alarms: Sequence[str]) -> dict[str, Any]:
    roles = sorted(
        f"arn:aws:iam::{account_id}:role/{name}"
        for account_id, entry in accounts.items()
        for name in entry.role_names
    )
    statements = [statement("AssumeTheExecutionRoles", ["sts:AssumeRole"], roles)]
    if alarms:
        statements.append(statement("ReadTheRequiredAlarms", ["cloudwatch:DescribeAlarms"], alarms))
    return policy_document(statements)


def _execution_policy(account_id: str, entry: _Account) -> dict[str, Any]:
    regions = sorted(entry.regions)
    grants = [
        grant
        for region in regions
        for runbook in entry.runbooks
        for grant in service_role_grants(runbook, Scope(account=account_id, region=region))
    ]
    statements = [_in_regions(item, regions) for item in merge_grants(grants)]
    statements.append(
        _in_regions(statement("ResolveTargets", list(TARGET_RESOLUTION_ACTIONS), ["*"]), regions)
    )
    return policy_document(statements)


def _in_regions(item: dict[str, Any], regions: Sequence[str]) -> dict[str, Any]:
    """A statement on ``"*"`` (calls with no resource type) limited to the allowed regions."""
    if item.get("Resource") not in ("*", ["*"]) or "*" in regions:
        return item
    condition = dict(item.get("Condition") or {})
    condition["StringEquals"] = {**condition.get("StringEquals", {}), "aws:RequestedRegion": list(regions)}
    return {**item, "Condition": condition}


def _any_account_gap(rule: DocumentRule) -> RoleGap:
    return RoleGap(
        rule.document,
        "the fan_out rule allows any account or names organizational units, which IAM cannot list: the "
        "administration role may assume the execution role names in every account "
        "(arn:aws:iam::*:role/NAME).",
        "the provider's check of TargetLocations Accounts before the start; list account ids to have IAM "
        "enforce it.",
    )


def runbooks_by_name(paths: Sequence[str | Path], names: Mapping[str, str] | None) -> dict[str, Runbook]:
    """The runbook files by document name (the file stem unless ``names`` maps the path to another)."""
    from airflow_ssm_delegate.documents.model import load_runbook

    return {(names or {}).get(str(path), Path(path).stem): load_runbook(path) for path in paths}
