"""Compile the delegation policy into the operator's IAM policy: what AWS enforces, not only Python.

The provider's checks run in the task's own process, so a DAG author (who runs code on the workers) can
go around them; IAM on the operator's credentials is the boundary. This module turns each rule of the
delegation policy that IAM can express into a statement, with the resource types and condition keys the
Service Authorization Reference documents for the action ("Actions, resources, and condition keys for
AWS Systems Manager", https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html):

- ``ssm:StartAutomationExecution`` — resource types ``automation-definition`` (NAME:VERSION, so a pin is a
  version in the ARN), ``automation-execution`` (the new execution) and ``document``; condition keys
  ``aws:RequestTag/K``, ``aws:TagKeys``, ``aws:ResourceTag/K``, ``ssm:DocumentVersion``. The listed
  runbooks are allowed as definition ARNs only (an Allow on ``document/NAME`` would allow every version),
  each with its required tags (``aws:RequestTag/K`` equals the value) and Airflow's audit tags present
  (``Null`` on ``aws:RequestTag/airflow:...``); the new execution (``automation-execution/*``) likewise
  needs the audit tags. ``aws:TagKeys`` is not used to close the key set: a task may add tags of its own.
- ``ssm:GetAutomationExecution``, ``StopAutomationExecution``, ``SendAutomationSignal`` — resource
  ``automation-execution``, condition key ``aws:ResourceTag/K``: only executions carrying the audit tags.
- ``ssm:DescribeAutomationStepExecutions`` (no condition key) and ``DescribeAutomationExecutions`` (no
  resource type) cannot be narrowed that way: reads, reported as gaps.
- ``iam:PassRole`` on the listed role patterns, ``iam:PassedToService = ssm.amazonaws.com``.

Everything else (a service role being required, parameter rules, SHA-256 pins, per-runbook roles...) is
returned as a :class:`Gap` saying what covers it instead; the ``iam`` command prints them on stderr.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.iam import (
    Scope,
    author_policy,
    policy_document,
    service_role_policies,
    statement,
)
from airflow_ssm_delegate.iam_locations import (
    located_rules,
    multi_account_policies,
    runbooks_by_name,
)
from airflow_ssm_delegate.policy import (
    AUDIT_TAG_KEYS,
    RULE_PARAMETERS,
    RULE_ROLE,
    RULE_SERVICE_ROLE,
    RULE_SHA256,
    RULE_VERSION,
    DelegationPolicy,
    DocumentRule,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

SSM_SERVICE = "ssm.amazonaws.com"
# Actions on an existing execution that support aws:ResourceTag (Service Authorization Reference).
TAG_SCOPED_EXECUTION_ACTIONS = (
    "ssm:GetAutomationExecution",
    "ssm:SendAutomationSignal",
    "ssm:StopAutomationExecution",
)


class CompileError(ValueError):
    """The delegation policy cannot become an IAM policy; the message says why and what to do."""


@dataclass(frozen=True)
class Gap:
    """A rule of the delegation policy that IAM cannot express, and what covers it instead."""

    rule: str
    detail: str
    covered_by: str
    document: str | None = None

    def __str__(self) -> str:
        where = f"{self.document}: " if self.document else ""
        return f"[{self.rule}] {where}{self.detail} Covered instead by: {self.covered_by}"


@dataclass(frozen=True)
class CompiledPolicies:
    """The policies to deploy (same keys as ``iam.generate_policies``) and the rules IAM leaves open."""

    policies: dict[str, dict[str, Any]]
    gaps: tuple[Gap, ...]


def document_arn(scope: Scope, document: str) -> str:
    """``document/NAME`` ARN of a listed runbook; listed ARNs (shared runbooks) are used as they are.

    Amazon-owned runbooks (``AWS-*``) have no account in their ARN.
    """
    if document.startswith("arn:"):
        return document
    account = not document.startswith(("AWS-", "AWSEC2-", "AWSSupport-", "AWSConfigRemediation-"))
    return scope.arn("ssm", f"document/{document}", account=account)


def definition_arn(scope: Scope, rule: DocumentRule) -> str:
    """``automation-definition/NAME:VERSION`` (``:*`` when the policy pins no version)."""
    base = document_arn(scope, rule.document).replace(":document/", ":automation-definition/", 1)
    return f"{base}:{rule.version or '*'}"


def _audit_tags_present(prefix: str) -> dict[str, dict[str, str]]:
    """``Null: false`` on each audit tag key: the key must be in the request (or on the resource)."""
    return {"Null": {f"{prefix}/{key}": "false" for key in AUDIT_TAG_KEYS}}


def _start_condition(rule: DocumentRule) -> dict[str, Any]:
    condition: dict[str, Any] = _audit_tags_present("aws:RequestTag")
    if rule.required_tags:
        condition["StringEquals"] = {
            f"aws:RequestTag/{key}": value for key, value in sorted(rule.required_tags.items())
        }
    return condition


def _start_statements(scope: Scope, rules: Sequence[DocumentRule]) -> list[dict[str, Any]]:
    """One statement per distinct tag condition (usually one), listing the definitions it covers."""
    groups: dict[str, list[str]] = {}
    for rule in rules:
        key = json.dumps(_start_condition(rule), sort_keys=True)
        groups.setdefault(key, []).append(definition_arn(scope, rule))
    found = []
    for number, (condition, resources) in enumerate(groups.items(), start=1):
        sid = "StartListedRunbooks" + (str(number) if len(groups) > 1 else "")
        found.append(
            statement(sid, ["ssm:StartAutomationExecution"], sorted(resources), json.loads(condition))
        )
    return found


def _pass_role_statement(rules: Sequence[DocumentRule]) -> dict[str, Any] | None:
    roles = sorted({pattern for rule in rules for pattern in rule.roles})
    if not roles:
        return None
    return statement(
        "PassListedRolesToSsmOnly",
        ["iam:PassRole"],
        roles,
        {"StringEquals": {"iam:PassedToService": SSM_SERVICE}},
    )


def compile_operator_policy(policy: DelegationPolicy, scope: Scope) -> tuple[dict[str, Any], list[Gap]]:
    """The operator's IAM policy for ``policy``, and the rules it cannot express."""
    if policy.documents is None:
        raise CompileError(
            f"{policy.source} lists no runbooks (the built-in rule allows any runbook), so there is nothing "
            "to limit the operator to. Write a delegation policy file with a 'documents:' list and pass it "
            "with --policy."
        )
    rules = [policy.documents[name] for name in sorted(policy.documents)]
    if not rules:  # 'documents: {}' refuses every runbook: the operator needs no rights at all
        return policy_document([]), gaps_of(policy, rules)
    execution = scope.arn("ssm", "automation-execution/*")
    statements = [
        *_start_statements(scope, rules),
        # StartAutomationExecution also authorises the new execution (a required resource type).
        statement(
            "StartOnlyExecutionsWithAuditTags",
            ["ssm:StartAutomationExecution"],
            [execution],
            _audit_tags_present("aws:RequestTag"),
        ),
        statement(
            "ReadListedRunbooks",
            ["ssm:DescribeDocument", "ssm:GetDocument"],
            sorted(document_arn(scope, rule.document) for rule in rules),
        ),
        statement(
            "WatchAndControlAirflowExecutionsOnly",
            list(TAG_SCOPED_EXECUTION_ACTIONS),
            [execution],
            _audit_tags_present("aws:ResourceTag"),
        ),
        # No condition key on AWS for this one: it can only be scoped to executions, not to tags.
        statement("ReadStepsOfExecutions", ["ssm:DescribeAutomationStepExecutions"], [execution]),
        # No resource-level support on AWS: "*" only. The provider's triggers poll up to 10 executions per
        # call with it (and fall back to GetAutomationExecution without it).
        statement("PollExecutionsInBatches", ["ssm:DescribeAutomationExecutions"], ["*"]),
    ]
    pass_role = _pass_role_statement(rules)
    if pass_role is not None:
        statements.append(pass_role)
    return policy_document(statements), gaps_of(policy, rules)


def _fan_out_gaps(rule: DocumentRule) -> list[Gap]:
    """The runbook's fan-out bounds: StartAutomationExecution has no condition key for Targets,
    TargetLocations, MaxConcurrency, MaxErrors or AlarmConfiguration (Service Authorization Reference)."""
    fan_out, covered = rule.fan_out, "the provider's check before the start (rule names as in its refusal)"
    gaps: list[Gap] = []
    if fan_out is not None:
        bounds = [
            name
            for name, value in (
                ("accounts", fan_out.accounts),
                ("regions", fan_out.regions),
                ("execution role names", fan_out.execution_role_names),
                ("max_concurrency", fan_out.max_concurrency),
                ("max_errors", fan_out.max_errors),
                ("target_location_max_concurrency", fan_out.target_location_max_concurrency),
                ("target_location_max_errors", fan_out.target_location_max_errors),
            )
            if value
        ]
        if bounds:
            gaps.append(
                Gap(
                    "fan-out",
                    f"IAM has no condition key for the fan-out of a start ({', '.join(bounds)}).",
                    f"{covered}; for accounts and execution role names also the Automation administration "
                    "role's sts:AssumeRole, limited to arn:aws:iam::ACCOUNT:role/NAME of the allowed "
                    "accounts and names (administration_role_policy, compiled here when fan_out lists them).",
                    rule.document,
                )
            )
    if rule.required_alarm:
        gaps.append(
            Gap(
                "alarm-required",
                f"IAM cannot require AlarmConfiguration (alarm {rule.required_alarm}) on a start.",
                covered,
                rule.document,
            )
        )
    return gaps


def gaps_of(policy: DelegationPolicy, rules: Sequence[DocumentRule]) -> list[Gap]:
    """The rules of ``policy`` IAM cannot express, each with what covers it instead."""
    gaps: list[Gap] = []
    if policy.require_service_role:
        gaps.append(
            Gap(
                RULE_SERVICE_ROLE,
                "IAM cannot require the AutomationAssumeRole parameter: the operator may start a listed "
                "runbook without a role, and it then runs on the operator's own credentials.",
                "the operator policy grants no rights on any resource (no EC2, no other SSM calls), so a "
                "role-less execution fails at its first step that calls AWS (AccessDenied); the provider "
                "refuses such a start before it is made.",
            )
        )
    if len({rule.roles for rule in rules}) > 1:
        gaps.append(
            Gap(
                RULE_ROLE,
                "iam:PassRole cannot be tied to a runbook: any role listed for any runbook can be passed "
                "with any listed runbook.",
                "the provider's role-allowed check; give every listed runbook the same roles (or one "
                "operator per role set) to have IAM enforce it.",
            )
        )
    for rule in rules:
        if rule.version is None:
            gaps.append(
                Gap(
                    RULE_VERSION,
                    "no version pin: IAM allows every version of the runbook (automation-definition/"
                    "NAME:*), including ones published later.",
                    "the author policy (who may publish new versions); pin a version to have IAM enforce it.",
                    rule.document,
                )
            )
        if rule.sha256 is not None:
            covered = (
                f"the version pin {rule.version} (a document version's content never changes), which "
                "IAM enforces; the provider compares the hash before starting."
                if rule.version
                else "only the provider's check before starting, and the author policy (who may publish); "
                "pin the version too."
            )
            gaps.append(
                Gap(RULE_SHA256, "IAM cannot check a document's content hash.", covered, rule.document)
            )
        gaps.extend(_fan_out_gaps(rule))
    gaps.append(
        Gap(
            RULE_PARAMETERS,
            "IAM has no condition key for runbook parameters (allowedValues, allowedPattern, types).",
            "SSM validates the parameters against the runbook's own declarations at start; the service "
            "role's least privilege (e.g. RunInstances limited to the allowed instance types) bounds what "
            "any value can do; the provider checks them first.",
        )
    )
    gaps.append(
        Gap(
            "audit-tags",
            "IAM requires the audit tags airflow:dag_id/run_id/task_id to be present, but cannot check that "
            "their values name the task that really started the execution.",
            "CloudTrail (who called StartAutomationExecution, with which tags); the operator's credentials "
            "must be the only ones in Airflow.",
        )
    )
    gaps.append(
        Gap(
            "read-executions",
            "DescribeAutomationExecutions (no resource type) and DescribeAutomationStepExecutions (no "
            "condition key) cannot be limited to Airflow's executions: the operator can read the status and "
            "steps of every execution in the account and region.",
            "nothing: reads only; GetAutomationExecution, StopAutomationExecution and SendAutomationSignal "
            "are limited to executions carrying the audit tags.",
        )
    )
    return gaps


#: What the triggers' shared events-queue consumer calls (triggers/events.py): ReceiveMessage, and
#: DeleteMessageBatch/DeleteMessage, which AWS authorises both as sqs:DeleteMessage
#: (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html).
EVENT_CONSUMER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage")
_SQS_ARN = re.compile(r"arn:aws[a-z-]*:sqs:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,75}(\.fifo)?")


def events_consumer_statement(queue_arn: str) -> dict[str, Any]:
    """The statement that lets the operator watch by events: consume the one events queue."""
    if not _SQS_ARN.fullmatch(queue_arn):
        raise CompileError(
            f"{queue_arn!r} is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:QUEUE_NAME); pass the ARN "
            "of the queue the connection's events_queue_url extra names"
        )
    return statement("WatchAutomationEvents", list(EVENT_CONSUMER_ACTIONS), [queue_arn])


def compile_policies(
    policy: DelegationPolicy,
    scope: Scope,
    runbook_files: Sequence[str | Path] = (),
    names: Mapping[str, str] | None = None,
    events_queue_arn: str | None = None,
    *,
    administration_role_name: str | None = None,
) -> CompiledPolicies:
    """All policies for ``policy``: the operator's, the author's, and the service role's for the files.

    A runbook file's document name is its file stem unless ``names`` maps the path (as given) to another;
    it must be a runbook the policy lists. Raises :class:`CompileError` otherwise. ``events_queue_arn``
    (the queue the connection's ``events_queue_url`` extra names) adds the events consumer's rights.
    Runbooks whose ``fan_out`` reaches other accounts or regions add the administration and execution
    roles' policies (``iam_locations``; ``administration_role_name``: the role TargetLocations starts run
    as, by default each runbook's ``default_role``).
    """
    operator, gaps = compile_operator_policy(policy, scope)
    if events_queue_arn is not None:
        operator = {
            **operator,
            "Statement": [*operator["Statement"], events_consumer_statement(events_queue_arn)],
        }
    listed = sorted(policy.documents or {})
    own = [name for name in listed if not name.startswith("arn:")]
    policies: dict[str, dict[str, Any]] = {}
    if runbook_files:
        by_name = {(names or {}).get(str(path), Path(path).stem): path for path in runbook_files}
        unlisted = sorted(set(by_name) - set(listed))
        if unlisted:
            raise CompileError(
                f"runbook file(s) for {', '.join(unlisted)}, which {policy.source} does not list "
                f"(listed: {', '.join(listed) or 'none'}). Pass files of listed runbooks, or name a file's "
                "document with --name FILE=NAME."
            )
        policies.update(service_role_policies(list(by_name.values()), scope))
    policies["operator_policy"] = operator
    policies["author_policy"] = author_policy(own, scope) if own else policy_document([])
    rules = [policy.documents[name] for name in listed] if policy.documents else []
    runbooks = runbooks_by_name(runbook_files, names) if located_rules(rules) else {}
    located, role_gaps = multi_account_policies(rules, scope, runbooks, administration_role_name)
    policies.update(located)
    gaps.extend(Gap("fan-out-roles", gap.detail, gap.covered_by, gap.document) for gap in role_gaps)
    return CompiledPolicies(policies, tuple(gaps))
