"""Preflight: ask IAM (SimulatePrincipalPolicy) whether a runbook can run before anyone starts it.

Checks the service role against every permission the runbook's steps need (the same grants ``iam``
generates, with their conditions' values as context), and the caller against starting the runbook
and passing the role to SSM. A denied row names the principal, action and resource to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.documents.model import parse_runbook
from airflow_ssm_delegate.iam import Scope, service_role_grants
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS

if TYPE_CHECKING:
    from collections.abc import Mapping

ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::(\d{12}):role/[\w+=,.@/-]+")
_ASSUMED_ROLE = re.compile(r"arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([\w+=,.@-]+)/.+")
_LIST_OPERATORS = ("ForAllValues:", "ForAnyValue:")


@dataclass(frozen=True)
class Check:
    """One simulated request and IAM's decision (allowed, implicitDeny or explicitDeny)."""

    principal: str
    action: str
    resource: str
    decision: str

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


def _context(condition: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Context entries that satisfy ``condition``: the request the runbook makes carries these values."""
    entries = []
    for operator, keys in condition.items():
        for key, value in keys.items():
            values = [str(v) for v in (value if isinstance(value, list) else [value])]
            multi = operator.startswith(_LIST_OPERATORS)
            entries.append(
                {
                    "ContextKeyName": key,
                    "ContextKeyValues": values if multi else values[:1],
                    "ContextKeyType": "stringList" if multi else "string",
                }
            )
    return entries


def _simulate(iam: Any, principal: str, action: str, resource: str, context: list[dict[str, Any]]) -> Check:
    response = iam.simulate_principal_policy(
        PolicySourceArn=principal, ActionNames=[action], ResourceArns=[resource], ContextEntries=context
    )
    results = response.get("EvaluationResults") or [{}]
    return Check(principal, action, resource, str(results[0].get("EvalDecision", "implicitDeny")))


def caller_principal(sts: Any) -> str:
    """The caller as SimulatePrincipalPolicy takes it (an assumed-role session -> its role)."""
    arn = str(sts.get_caller_identity()["Arn"])
    match = _ASSUMED_ROLE.fullmatch(arn)
    return f"arn:{match.group(1)}:iam::{match.group(2)}:role/{match.group(3)}" if match else arn


def preflight(
    *, ssm: Any, iam: Any, sts: Any, document_name: str, role_arn: str, document_version: str | None = None
) -> list[Check]:
    """Every check for running ``document_name`` under ``role_arn``; raises ValueError for a bad role ARN."""
    match = ROLE_ARN.fullmatch(role_arn)
    if not match:
        raise ValueError(f"--role {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    version_args = {"DocumentVersion": document_version} if document_version else {}
    document = ssm.get_document(Name=document_name, **version_args)
    runbook = parse_runbook(document["Content"], source=document_name)
    scope = Scope(account=match.group(1), region=ssm.meta.region_name)
    checks = [
        _simulate(iam, role_arn, action, resource, _context(grant.condition_block))
        for grant in service_role_grants(runbook, scope)
        for action in sorted(grant.actions)
        for resource in grant.resources
    ]
    caller = caller_principal(sts)
    definition = definition_arn(scope, document_name, str(document["DocumentVersion"]))
    pass_context = _context({"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}})
    # As Airflow starts it: with the audit tags, which the compiled operator policy requires.
    audit = _context({"StringEquals": {f"aws:RequestTag/{key}": "preflight" for key in AUDIT_TAG_KEYS}})
    checks.append(_simulate(iam, caller, "ssm:StartAutomationExecution", definition, audit))
    checks.append(_simulate(iam, caller, "iam:PassRole", role_arn, pass_context))
    return list(dict.fromkeys(checks))  # grants of several steps may repeat a check


def definition_arn(scope: Scope, document: str, version: str) -> str:
    """What StartAutomationExecution is authorised against, for a name or a (shared) document ARN."""
    if document.startswith("arn:"):
        return f"{document.replace(':document/', ':automation-definition/', 1)}:{version}"
    return scope.arn("ssm", f"automation-definition/{document}:{version}")


def format_table(checks: list[Check]) -> str:
    """A fixed-width table, denied rows marked so they stand out."""
    rows = [("PRINCIPAL", "ACTION", "RESOURCE", "DECISION")]
    rows += [
        (c.principal, c.action, c.resource, c.decision if c.allowed else f"{c.decision} <-- fix")
        for c in checks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=True)) for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
