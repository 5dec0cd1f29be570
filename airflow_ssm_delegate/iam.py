"""Least-privilege IAM policies for the three personas, derived from the runbooks themselves.

- ``service_role_trust_policy``: only ssm.amazonaws.com, only for this account's automation executions
  (``aws:SourceAccount`` / ``aws:SourceArn``: the confused-deputy guard).
- ``service_role_policy``: the calls the runbooks' steps make (``actions.iam_actions_for_step``), each on
  the narrowest resource the step allows (an instance type list from the parameter's allowedValues, the
  tag keys the step writes), never an action wildcard.
- ``operator_policy``: start exactly these runbooks (pinned versions when given), read them (the hook
  checks a runbook before it starts it), watch and control their executions (DescribeAutomationExecutions
  only exists on ``"*"``), pass only this role to SSM.
- ``author_policy``: create, update, version and share exactly these documents.

Resource-level scoping follows the AWS Service Authorization Reference; calls that support no resource
type (Describe*/List*) get ``"*"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ssm_delegate.documents.actions import iam_actions_for_step, is_reference
from airflow_ssm_delegate.documents.model import Runbook, StepSpec, load_runbook
from airflow_ssm_delegate.documents.references import REFERENCE

VERSION = "2012-10-17"
Condition = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Scope:
    """The account and region the policies are written for: every ARN they name is built here."""

    account: str
    region: str

    def arn(self, service: str, resource: str, *, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account if account else ''}:{resource}"

    def ec2(self, kind: str, name: str = "*") -> str:
        """An EC2 ARN; images and snapshots have an empty account field (they may be another's, shared)."""
        return self.arn("ec2", f"{kind}/{name}", account=kind not in ("image", "snapshot"))


@dataclass(frozen=True)
class Grant:
    """Actions on resources under one condition; grants with equal resources and condition merge."""

    actions: frozenset[str]
    resources: tuple[str, ...]
    condition: str = ""  # canonical JSON, so grants compare and merge

    @property
    def condition_block(self) -> Condition:
        return dict(json.loads(self.condition or "{}"))


def _grant(actions: Sequence[str], resources: Sequence[str], condition: Condition | None = None) -> Grant:
    return Grant(
        frozenset(actions), tuple(sorted(set(resources))), json.dumps(condition or {}, sort_keys=True)
    )


def _parameter_values(runbook: Runbook, value: Any) -> list[str] | None:
    """A literal, or the allowedValues of the parameter ``value`` references; None when unconstrained."""
    if not is_reference(value):
        return [str(value)] if value is not None else None
    match = REFERENCE.fullmatch(str(value).strip())
    spec = runbook.parameters.get(match.group(1)) if match else None
    if spec is None or spec.allowed_values is None:
        return None
    return [str(item) for item in spec.allowed_values]


def _run_instances_grants(step: StepSpec, runbook: Runbook, scope: Scope) -> list[Grant]:
    inputs = step.inputs
    types = _parameter_values(runbook, inputs.get("InstanceType"))
    image = inputs.get("ImageId")
    images = [scope.ec2("image", image if isinstance(image, str) and not is_reference(image) else "*")]
    groups = inputs.get("SecurityGroupIds") if not is_reference(inputs.get("SecurityGroupIds")) else None
    others = [
        scope.ec2("network-interface"),
        scope.ec2("volume"),
        scope.ec2("subnet"),
        *(scope.ec2("security-group", g) for g in (groups or ["*"])),
        *images,
    ]
    if "KeyName" in inputs:
        others.append(scope.ec2("key-pair"))
    grants = [
        _grant(
            ["ec2:RunInstances"],
            [scope.ec2("instance")],
            {"StringEquals": {"ec2:InstanceType": sorted(types)}} if types else None,
        ),
        _grant(["ec2:RunInstances"], others),
        _grant(["ec2:DescribeInstances"], ["*"]),
    ]
    if "TagSpecifications" in inputs:
        grants.append(
            _grant(
                ["ec2:CreateTags"],
                [scope.ec2("instance"), scope.ec2("volume")],
                {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            )
        )
    if "IamInstanceProfileArn" in inputs or "IamInstanceProfileName" in inputs:
        grants.append(
            _grant(
                ["iam:PassRole"],
                [f"arn:aws:iam::{scope.account}:role/*"],
                {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
    return grants


def _create_tags_grants(step: StepSpec, scope: Scope) -> list[Grant]:
    if step.inputs.get("ResourceType", "EC2") != "EC2":
        return [_grant(["ssm:AddTagsToResource"], ["*"])]
    tags = step.inputs.get("Tags")
    keys = [t.get("Key") for t in tags if isinstance(t, Mapping)] if isinstance(tags, list) else []
    literal_keys = [k for k in keys if isinstance(k, str) and not is_reference(k)]
    condition = None
    if literal_keys and len(literal_keys) == len(keys):  # a reference could be any key: no condition then
        condition = {"ForAllValues:StringEquals": {"aws:TagKeys": sorted(literal_keys)}}
    return [_grant(["ec2:CreateTags"], [_tagged_resource(step.inputs.get("ResourceIds"), scope)], condition)]


def _tagged_resource(resource_ids: Any, scope: Scope) -> str:
    """Instances (ids or an earlier step's InstanceIds) -> instance/*; anything else -> any resource."""
    ids = resource_ids if isinstance(resource_ids, list) else [resource_ids]
    if all(isinstance(i, str) and (i.startswith("i-") or i.strip().endswith("InstanceIds }}")) for i in ids):
        return scope.ec2("instance")
    return "*"


def _instance_resources(inputs: Mapping[str, Any], scope: Scope) -> list[str]:
    ids = inputs.get("InstanceIds")
    if isinstance(ids, list) and ids and all(isinstance(i, str) and not is_reference(i) for i in ids):
        return [scope.ec2("instance", i) for i in ids]
    return [scope.ec2("instance")]


_INSTANCE_SCOPED = frozenset({"ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"})
_WEBHOOK_PARAMETER = "parameter/d9d01087-4a3f-49e0-b0b4-d568d7826553/ssm/integrations/webhook/"


def _resources_for(action: str, step: StepSpec, scope: Scope) -> list[str]:
    """The resources of one permission of ``step`` (AWS Service Authorization Reference)."""
    if action in _INSTANCE_SCOPED:
        return _instance_resources(step.inputs, scope)

    def named(key: str) -> str:  # a literal input, or any name when the input is a reference
        value = step.inputs.get(key)
        return value if isinstance(value, str) and not is_reference(value) else "*"

    stack = scope.arn("cloudformation", f"stack/{named('StackName')}/*")
    by_action: dict[str, list[str]] = {
        "ec2:CreateImage": [scope.ec2("instance"), scope.ec2("image")],
        "ec2:CopyImage": [scope.ec2("image")],
        "ec2:DeregisterImage": [scope.ec2("image")],
        "ec2:DeleteSnapshot": [scope.ec2("snapshot")],
        "ssm:StartAutomationExecution": [
            scope.arn("ssm", f"automation-definition/{named('DocumentName')}:*")
        ],
        "ssm:GetAutomationExecution": [scope.arn("ssm", "automation-execution/*")],
        # AWS-owned documents have no account in their ARN, the account's own documents do.
        "ssm:SendCommand": [
            f"arn:aws:ssm:{scope.region}:*:document/{named('DocumentName')}",
            scope.ec2("instance"),
            scope.arn("ssm", "managed-instance/*"),
        ],
        "sns:Publish": [
            step.inputs["NotificationArn"] if named("NotificationArn") != "*" else scope.arn("sns", "*")
        ],
        "lambda:InvokeFunction": [scope.arn("lambda", f"function:{named('FunctionName')}")],
        "states:StartExecution": [
            scope.arn("states", f"stateMachine:{named('stateMachineArn').split(':')[-1]}")
        ],
        "states:DescribeExecution": [scope.arn("states", "execution:*")],
        "cloudformation:CreateStack": [stack],
        "cloudformation:DeleteStack": [stack],
        "ssm:GetParameter": [scope.arn("ssm", _WEBHOOK_PARAMETER + named("IntegrationName"))],
    }
    return by_action.get(action, ["*"])


def _step_grants(step: StepSpec, runbook: Runbook, scope: Scope) -> list[Grant]:
    if step.action == "aws:runInstances":
        return _run_instances_grants(step, runbook, scope)
    if step.action == "aws:createTags":
        return _create_tags_grants(step, scope)
    return [_grant([action], _resources_for(action, step, scope)) for action in iam_actions_for_step(step)]


def service_role_grants(runbook: Runbook, scope: Scope) -> list[Grant]:
    """What the service role must be allowed for every step of ``runbook`` (preflight checks these)."""
    return [grant for step in runbook.all_steps() for grant in _step_grants(step, runbook, scope)]


def hand_written_permissions(runbook: Runbook) -> list[str]:
    """Steps whose calls cannot be derived (scripts): their permissions must be added by hand."""
    return [
        f"step {step.name} runs a script (aws:executeScript): add the calls it makes to the role by hand"
        for step in runbook.all_steps()
        if step.action == "aws:executeScript"
    ]


def statement(
    sid: str, actions: Sequence[str], resources: Sequence[str], condition: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions) if len(actions) > 1 else actions[0],
        "Resource": list(resources) if len(resources) > 1 else resources[0],
    }
    if condition:
        statement["Condition"] = dict(condition)
    return statement


def merge_grants(grants: Sequence[Grant]) -> list[dict[str, Any]]:
    """Statements for ``grants`` (see ``_merge``), for modules that build other roles' policies."""
    return _merge(grants)


def _merge(grants: Sequence[Grant]) -> list[dict[str, Any]]:
    """One statement per (resources, condition), actions unioned; Sids say what the statement is for."""
    merged: dict[tuple[tuple[str, ...], str], set[str]] = {}
    for grant in grants:
        merged.setdefault((grant.resources, grant.condition), set()).update(grant.actions)
    statements, used = [], set()
    for (resources, condition), actions in merged.items():
        service, name = sorted(actions)[0].split(":", 1)
        sid = service.capitalize() + name
        candidate, number = sid, 2
        while candidate in used:
            candidate, number = f"{sid}{number}", number + 1
        used.add(candidate)
        statements.append(statement(candidate, sorted(actions), list(resources), json.loads(condition)))
    return statements


def policy_document(statements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def trust_policy(scope: Scope) -> dict[str, Any]:
    return policy_document(
        [
            {
                "Sid": "SsmAutomationOfThisAccountOnly",
                "Effect": "Allow",
                "Principal": {"Service": "ssm.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": scope.account},
                    "ArnLike": {"aws:SourceArn": scope.arn("ssm", "automation-execution/*")},
                },
            }
        ]
    )


def operator_policy(
    names: Sequence[str], scope: Scope, role_arn: str, pinned: Mapping[str, str]
) -> dict[str, Any]:
    definitions = [scope.arn("ssm", f"automation-definition/{n}:{pinned.get(n, '*')}") for n in names]
    documents = [scope.arn("ssm", f"document/{name}") for name in names]
    return policy_document(
        [
            # Definitions only: an Allow on document/NAME would also allow starting any version of it. The
            # new execution is a required resource type of the start (Service Authorization Reference).
            statement(
                "StartApprovedRunbooks",
                ["ssm:StartAutomationExecution"],
                [*definitions, scope.arn("ssm", "automation-execution/*")],
            ),
            statement("ReadApprovedRunbooks", ["ssm:DescribeDocument", "ssm:GetDocument"], documents),
            statement(
                "WatchAndControlExecutions",
                [
                    "ssm:DescribeAutomationStepExecutions",
                    "ssm:GetAutomationExecution",
                    "ssm:SendAutomationSignal",
                    "ssm:StopAutomationExecution",
                ],
                [scope.arn("ssm", "automation-execution/*")],
            ),
            # No resource-level support on AWS: "*" is the only resource it takes. The provider's triggers
            # use it to poll up to 10 executions per call (and fall back to Get without it).
            statement("PollExecutionsInBatches", ["ssm:DescribeAutomationExecutions"], ["*"]),
            statement(
                "PassTheServiceRoleToSsmOnly",
                ["iam:PassRole"],
                [role_arn],
                {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
            ),
        ]
    )


def author_policy(names: Sequence[str], scope: Scope) -> dict[str, Any]:
    actions = [
        "ssm:CreateDocument",
        "ssm:DescribeDocument",
        "ssm:ModifyDocumentPermission",
        "ssm:UpdateDocument",
        "ssm:UpdateDocumentDefaultVersion",
    ]
    return policy_document(
        [statement("PublishApprovedRunbooks", actions, [scope.arn("ssm", f"document/{n}") for n in names])]
    )


def service_role_policies(
    runbooks: Sequence[Runbook | str | Path], scope: Scope
) -> dict[str, dict[str, Any]]:
    """The service role's trust policy and the least-privilege policy every step of ``runbooks`` needs."""
    loaded = [r if isinstance(r, Runbook) else load_runbook(r) for r in runbooks]
    grants = [grant for runbook in loaded for grant in service_role_grants(runbook, scope)]
    return {
        "service_role_trust_policy": trust_policy(scope),
        "service_role_policy": policy_document(_merge(grants)),
    }


def generate_policies(
    paths: Sequence[str | Path],
    *,
    role_name: str,
    account: str,
    region: str,
    names: Mapping[str, str] | None = None,
    pinned_versions: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The four policy documents for the runbooks at ``paths``.

    A runbook's document name is its file stem unless ``names`` maps the path (as given) to another;
    ``pinned_versions`` (name -> version) narrows the operator's start permission to that version.
    Raises ``RunbookError`` for an invalid runbook and ``UnresolvablePermissionError`` when a step's
    permissions depend on a runtime value.
    """
    scope = Scope(account=account, region=region)
    runbooks = {(names or {}).get(str(path), Path(path).stem): load_runbook(path) for path in paths}
    for unknown in sorted(set(pinned_versions or {}) - set(runbooks)):
        raise ValueError(f"--pin names {unknown}, which is not among the runbooks {sorted(runbooks)}")
    for name, version in (pinned_versions or {}).items():
        if not str(version).isdigit() or str(version).startswith("0"):
            raise ValueError(
                f"--pin {name}={version}: a pinned version is a document version number such as 3 "
                "(the one `airflow-ssm-delegate publish` printed)"
            )
    role_arn = f"arn:aws:iam::{account}:role/{role_name}"
    return {
        **service_role_policies(list(runbooks.values()), scope),
        "operator_policy": operator_policy(list(runbooks), scope, role_arn, pinned_versions or {}),
        "author_policy": author_policy(list(runbooks), scope),
    }
