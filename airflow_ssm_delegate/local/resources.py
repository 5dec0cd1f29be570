"""Which IAM action, resource ARNs and condition keys a wire request is authorised against.

Best effort, for the operations the delegated-administration story uses; every other operation is
checked against resource ``"*"`` (so a resource-scoped Allow does not cover it). Resources covered:

- ec2 ``RunInstances``: ``instance/*``, ``image/AMI``, ``subnet/ID`` (or ``subnet/*``),
  ``security-group/ID`` (or ``security-group/*``), ``network-interface/*``, ``volume/*``, ``key-pair/NAME``
  — each must be allowed, as on AWS; condition keys ``ec2:InstanceType``, ``aws:RequestTag/K``,
  ``aws:TagKeys``. With ``TagSpecifications`` also ``ec2:CreateTags`` on ``instance/*`` (and
  ``volume/*``) with ``ec2:CreateAction=RunInstances``.
- ec2 ``CreateTags``/``DeleteTags``: each ``ResourceId``'s ARN (by id prefix), with the tag keys.
- ec2 instance state changes (``Start/Stop/Terminate/RebootInstances``), ``CreateImage``,
  ``DeregisterImage``: the instance / image ARNs.
- ssm documents (``Name``) -> ``document/NAME``; parameters -> ``parameter/NAME``; ``SendCommand`` ->
  the document and ``instance/ID``s; automation execution operations -> ``automation-execution/ID``.
  ``StartAutomationExecution`` is authorised by the engine through ``authz.IamAuthorizer.authorize_start``
  (on the requested version before the runbook is read, then on the resolved one with the role), so it has
  no wire-level check here.
- iam operations naming ``RoleName``/``UserName``/``GroupName``/``PolicyArn``/``PolicySourceArn`` -> that ARN;
  sts ``AssumeRole`` -> ``RoleArn`` (plus the role's trust policy, see ``authz``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_ssm_delegate.local.iam_eval import ContextValue


@dataclass(frozen=True)
class Check:
    """One (action, resource) pair that must be allowed for the request to go through."""

    action: str
    resource: str = "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """Where the request is addressed (for building ARNs)."""

    region: str
    account_id: str


# Operations with no wire-level check: the handler authorises them itself.
AUTHORISED_BY_HANDLER = frozenset({"ssm:StartAutomationExecution"})
# Always allowed, as on AWS (even an explicit Deny does not stop it).
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})

_EC2_ID_TYPES = {
    "i": "instance",
    "vol": "volume",
    "sg": "security-group",
    "subnet": "subnet",
    "vpc": "vpc",
    "eni": "network-interface",
    "igw": "internet-gateway",
    "rtb": "route-table",
    "eipalloc": "elastic-ip",
    "lt": "launch-template",
    "acl": "network-acl",
    "dopt": "dhcp-options",
}
_EC2_ACCOUNTLESS = {"ami": "image", "snap": "snapshot"}  # AWS writes these without an account id


def ec2_arn(scope: Scope, resource_id: str) -> str:
    """The ARN of an EC2 resource id (``i-123`` -> ``arn:aws:ec2:R:A:instance/i-123``); unknown -> ``*``."""
    prefix = resource_id.split("-", 1)[0]
    if prefix in _EC2_ACCOUNTLESS:
        return f"arn:aws:ec2:{scope.region}::{_EC2_ACCOUNTLESS[prefix]}/{resource_id}"
    if prefix in _EC2_ID_TYPES:
        return f"arn:aws:ec2:{scope.region}:{scope.account_id}:{_EC2_ID_TYPES[prefix]}/{resource_id}"
    return "*"


def _ec2(scope: Scope, kind: str, name: str = "*") -> str:
    if kind in _EC2_ACCOUNTLESS.values():
        return f"arn:aws:ec2:{scope.region}::{kind}/{name}"
    return f"arn:aws:ec2:{scope.region}:{scope.account_id}:{kind}/{name}"


def indexed(params: Mapping[str, Any], prefix: str) -> list[str]:
    """Query-protocol lists: ``InstanceId.1``, ``InstanceId.2``... in index order."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)$")
    found = sorted((int(m.group(1)), str(v)) for k, v in params.items() if (m := pattern.match(k)))
    return [value for _, value in found]


def _tags(params: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Query-protocol tags: ``Tag.1.Key``/``Tag.1.Value``... -> {key: value}."""
    tags = {}
    for name, value in params.items():
        match = re.fullmatch(rf"{re.escape(prefix)}\.(\d+)\.Key", name)
        if match:
            tags[str(value)] = str(params.get(f"{prefix}.{match.group(1)}.Value", ""))
    return tags


def tag_context(tags: Mapping[str, str]) -> dict[str, ContextValue]:
    """``aws:RequestTag/K`` for each tag and ``aws:TagKeys`` (multi-valued)."""
    context: dict[str, ContextValue] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        context["aws:TagKeys"] = list(tags)
    return context


def _tag_specifications(params: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``TagSpecification.N.ResourceType`` -> its tags."""
    specs: dict[str, dict[str, str]] = {}
    for key in params:
        match = re.fullmatch(r"TagSpecification\.(\d+)\.ResourceType", key)
        if match:
            specs.setdefault(str(params[key]), {}).update(
                _tags(params, f"TagSpecification.{match.group(1)}.Tag")
            )
    return specs


def _run_instances(scope: Scope, params: Mapping[str, Any]) -> list[Check]:
    action = "ec2:RunInstances"
    specs = _tag_specifications(params)
    instance_context = {**tag_context(specs.get("instance", {}))}
    if "InstanceType" in params:
        instance_context["ec2:InstanceType"] = str(params["InstanceType"])
    groups = indexed(params, "SecurityGroupId") or ["*"]
    checks = [
        Check(action, _ec2(scope, "instance"), instance_context),
        Check(action, _ec2(scope, "network-interface")),
        Check(action, _ec2(scope, "volume"), tag_context(specs.get("volume", {}))),
        Check(action, _ec2(scope, "subnet", str(params.get("SubnetId", "*")))),
        *(Check(action, _ec2(scope, "security-group", group)) for group in groups),
    ]
    if "ImageId" in params:
        checks.append(Check(action, _ec2(scope, "image", str(params["ImageId"]))))
    if "KeyName" in params:
        checks.append(Check(action, _ec2(scope, "key-pair", str(params["KeyName"]))))
    for resource_type, tags in specs.items():
        if resource_type in ("instance", "volume"):
            context = {**tag_context(tags), "ec2:CreateAction": "RunInstances"}
            checks.append(Check("ec2:CreateTags", _ec2(scope, resource_type), context))
    return checks


def _ec2_tagging(scope: Scope, operation: str, params: Mapping[str, Any]) -> list[Check]:
    context = tag_context(_tags(params, "Tag"))
    return [Check(f"ec2:{operation}", ec2_arn(scope, rid), context) for rid in indexed(params, "ResourceId")]


def _ec2_instances(scope: Scope, operation: str, params: Mapping[str, Any]) -> list[Check]:
    ids = indexed(params, "InstanceId") or ([str(params["InstanceId"])] if "InstanceId" in params else [])
    return [Check(f"ec2:{operation}", ec2_arn(scope, iid)) for iid in ids] or [Check(f"ec2:{operation}")]


def _ec2_checks(scope: Scope, operation: str, params: Mapping[str, Any]) -> list[Check]:
    if operation == "RunInstances":
        return _run_instances(scope, params)
    if operation in ("CreateTags", "DeleteTags"):
        return _ec2_tagging(scope, operation, params)
    if operation in ("StartInstances", "StopInstances", "TerminateInstances", "RebootInstances"):
        return _ec2_instances(scope, operation, params)
    if operation == "CreateImage":
        return [*_ec2_instances(scope, operation, params), Check("ec2:CreateImage", _ec2(scope, "image"))]
    if operation == "DeregisterImage" and "ImageId" in params:
        return [Check("ec2:DeregisterImage", _ec2(scope, "image", str(params["ImageId"])))]
    return [Check(f"ec2:{operation}")]


_SSM_DOCUMENT_OPERATIONS = frozenset(
    {
        "CreateDocument",
        "UpdateDocument",
        "DeleteDocument",
        "GetDocument",
        "DescribeDocument",
        "DescribeDocumentPermission",
        "ModifyDocumentPermission",
        "UpdateDocumentDefaultVersion",
        "ListDocumentVersions",
        "UpdateDocumentMetadata",
        "ListDocumentMetadataHistory",
    }
)
_SSM_EXECUTION_OPERATIONS = frozenset(
    {
        "GetAutomationExecution",
        "StopAutomationExecution",
        "SendAutomationSignal",
        "DescribeAutomationStepExecutions",
    }
)
_SSM_PARAMETER_OPERATIONS = frozenset(
    {
        "GetParameter",
        "PutParameter",
        "DeleteParameter",
        "GetParameterHistory",
        "LabelParameterVersion",
    }
)


def ssm_document_arn(scope: Scope, name: str) -> str:
    """A document's ARN; Amazon-owned documents (``AWS-*``, ``AWSSupport-*``...) have no account in it."""
    if name.startswith("arn:"):
        return name
    account = (
        ""
        if name.startswith(("AWS-", "AWSEC2-", "AWSSupport-", "AWSConfigRemediation-"))
        else scope.account_id
    )
    return f"arn:aws:ssm:{scope.region}:{account}:document/{name}"


def _ssm_checks(scope: Scope, operation: str, params: Mapping[str, Any]) -> list[Check]:
    action = f"ssm:{operation}"
    prefix = f"arn:aws:ssm:{scope.region}:{scope.account_id}"
    if operation in _SSM_DOCUMENT_OPERATIONS and isinstance(params.get("Name"), str):
        return [Check(action, ssm_document_arn(scope, params["Name"]))]
    if operation in _SSM_EXECUTION_OPERATIONS and isinstance(params.get("AutomationExecutionId"), str):
        return [Check(action, f"{prefix}:automation-execution/{params['AutomationExecutionId']}")]
    if operation in _SSM_PARAMETER_OPERATIONS and isinstance(params.get("Name"), str):
        return [Check(action, f"{prefix}:parameter/{params['Name'].lstrip('/')}")]
    if operation in ("GetParameters", "DeleteParameters") and isinstance(params.get("Names"), list):
        return [Check(action, f"{prefix}:parameter/{str(n).lstrip('/')}") for n in params["Names"]] or [
            Check(action)
        ]
    if operation == "SendCommand" and isinstance(params.get("DocumentName"), str):
        # An EC2 instance is ec2's instance ARN, a hybrid node (mi-) ssm's managed-instance (Service
        # Authorization Reference, Systems Manager: SendCommand's resource types "instance" and
        # "managed-instance").
        instances = [str(i) for i in params.get("InstanceIds") or [] if isinstance(i, str)]
        return [
            Check(action, ssm_document_arn(scope, params["DocumentName"])),
            *(
                Check(
                    action,
                    f"{prefix}:managed-instance/{iid}"
                    if iid.startswith("mi-")
                    else _ec2(scope, "instance", iid),
                )
                for iid in instances
            ),
        ]
    return [Check(action)]


def _iam_checks(scope: Scope, operation: str, params: Mapping[str, Any]) -> list[Check]:
    action = f"iam:{operation}"
    for parameter, kind in (
        ("RoleName", "role"),
        ("UserName", "user"),
        ("GroupName", "group"),
        ("InstanceProfileName", "instance-profile"),
    ):
        if parameter in params:
            return [Check(action, f"arn:aws:iam::{scope.account_id}:{kind}/{params[parameter]}")]
    for parameter in ("PolicyArn", "PolicySourceArn"):  # the policy, or the simulated user/role
        if parameter in params:
            return [Check(action, str(params[parameter]))]
    return [Check(action)]


def _sts_checks(scope: Scope, operation: str, params: Mapping[str, Any]) -> list[Check]:
    if operation == "AssumeRole" and "RoleArn" in params:
        context: dict[str, ContextValue] = {"sts:RoleSessionName": str(params.get("RoleSessionName", ""))}
        if "ExternalId" in params:
            context["sts:ExternalId"] = str(params["ExternalId"])
        return [Check("sts:AssumeRole", str(params["RoleArn"]), context)]
    return [Check(f"sts:{operation}")]


def _lambda_checks(scope: Scope, operation: str, params: Mapping[str, Any]) -> list[Check]:
    """IAM names Lambda's Invoke API ``lambda:InvokeFunction`` (Service Authorization Reference)."""
    return [Check("lambda:InvokeFunction" if operation == "Invoke" else f"lambda:{operation}")]


_BY_SERVICE: dict[str, Callable[[Scope, str, Mapping[str, Any]], list[Check]]] = {
    "lambda": _lambda_checks,
    "ec2": _ec2_checks,
    "ssm": _ssm_checks,
    "iam": _iam_checks,
    "sts": _sts_checks,
}


#: Services whose checks are written here; every other one is built from the Service Authorization
#: Reference (``arns``).
HAND_WRITTEN_SERVICES = frozenset(_BY_SERVICE)


def checks_for(service: str, operation: str, params: Mapping[str, Any], scope: Scope) -> list[Check]:
    """Every (action, resource, context) the request needs; empty if the handler authorises it itself."""
    action = f"{service}:{operation}"
    if action in AUTHORISED_BY_HANDLER:
        return []
    build = _BY_SERVICE.get(service)
    return build(scope, operation, params) if build else [Check(action)]
