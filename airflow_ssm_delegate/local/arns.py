"""Resource ARNs and condition keys of a request, built from AWS's Service Authorization Reference.

For an operation without a hand-written rule in ``resources`` (CloudFormation, Lambda, S3, SNS, SQS,
CloudWatch, Step Functions, RDS, EventBridge, Logs, ...) the reference (``sar``) says which resource
types the IAM action takes and their ARN formats (``arn:${Partition}:cloudformation:${Region}:
${Account}:stack/${StackName}/${Id}``). Each ``${...}`` is filled from the request's own parameters
(``StackName``, ``Bucket``/``Key``, ``FunctionName``, a ``...Arn`` parameter, the queue URL...);
an identifier the request cannot carry yet (a new stack's id) is ``*``. A resource type none of whose
identifiers the request gives is left out; with none left the action is checked against ``*``, as
AWS does for actions without resource types. The action's condition keys that name a request
parameter (``cloudformation:TemplateUrl`` <- ``TemplateURL``) and ``aws:RequestTag``/``aws:TagKeys``
(from ``Tags``) go into the request context.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from airflow_ssm_delegate.local.resources import Check, Scope, indexed, tag_context
from airflow_ssm_delegate.local.sar import (
    ResourceType,
    action_condition_keys,
    action_resource_types,
    condition_key_type,
)
from airflow_ssm_delegate.local.wire import botocore_session

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_ssm_delegate.local.iam_eval import ContextValue

#: IAM service prefix by SigV4 signing name, where they differ.
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "tagging": "tag"}
#: botocore model name by signing name, where they differ.
_MODEL_NAME = {
    "monitoring": "cloudwatch",
    "states": "stepfunctions",
    "email": "ses",
    "tagging": "resourcegroupstaggingapi",
}
#: API operations whose IAM action has another name (Service Authorization Reference, per service).
_ACTION_ALIASES = {
    "s3": {
        "ListObjects": "ListBucket",
        "ListObjectsV2": "ListBucket",
        "HeadBucket": "ListBucket",
        "HeadObject": "GetObject",
        "ListBuckets": "ListAllMyBuckets",
        "DeleteObjects": "DeleteObject",
        "CopyObject": "PutObject",
        "CreateMultipartUpload": "PutObject",
        "UploadPart": "PutObject",
        "CompleteMultipartUpload": "PutObject",
        "GetBucketTagging": "GetBucketTagging",
    },
    "lambda": {"Invoke": "InvokeFunction", "InvokeAsync": "InvokeFunction"},
    # "You cannot set permissions explicitly for SendMessageBatch, DeleteMessageBatch, or
    # ChangeMessageVisibilityBatch": the single action's permission covers the batch (SQS Developer Guide,
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api-actions.html).
    "sqs": {
        "SendMessageBatch": "SendMessage",
        "DeleteMessageBatch": "DeleteMessage",
        "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    },
}
#: ARN placeholders filled from a differently named request parameter (the API's own member names).
_PLACEHOLDER_PARAMETERS = {
    "BucketName": ("Bucket",),
    "ObjectName": ("Key",),
    "TopicName": ("TopicArn", "Name"),
    "QueueName": ("QueueUrl", "QueueName"),
    "StateMachineName": ("stateMachineArn", "name"),
    "ExecutionId": ("executionArn",),
    "DbInstanceName": ("DBInstanceIdentifier",),
    "SnapshotName": ("DBSnapshotIdentifier",),
    "RuleName": ("Rule", "Name"),
    "ParameterNameWithoutLeadingSlash": ("Name",),
    "LogGroupName": ("logGroupName",),
    "LogStreamName": ("logStreamName",),
    "AlarmName": ("AlarmName", "AlarmNames"),
}
_CREATING = ("Create", "Run", "Copy", "Allocate", "Import", "Register")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
_SCOPE_PLACEHOLDERS = frozenset({"Partition", "Region", "Account"})


def iam_action(service: str, operation: str) -> tuple[str, str]:
    """(IAM service prefix, IAM action name) of an API operation."""
    prefix = _IAM_PREFIX.get(service, service)
    return prefix, _ACTION_ALIASES.get(prefix, {}).get(operation, operation)


@lru_cache(maxsize=1024)
def _uri_template(service: str, operation: str) -> str | None:
    try:
        model = botocore_session().get_service_model(_MODEL_NAME.get(service, service))
        return str(model.operation_model(operation).http.get("requestUri", "")).split("?", 1)[0]
    except Exception:  # an unknown service or operation: no URI parameters
        return None


def uri_parameters(service: str, operation: str, path: str) -> dict[str, str]:
    """Parameters a REST protocol carries in its path (``/{Bucket}/{Key+}``, ``/functions/{Name}``)."""
    template = _uri_template(service, operation)
    if not template:
        return {}
    names: list[str] = []

    def group(match: re.Match[str]) -> str:
        name = match.group(1).replace("\\", "")
        names.append(name.rstrip("+"))
        return "(.+)" if name.endswith("+") else "([^/]+)"

    pattern = re.sub(r"\\\{([A-Za-z0-9\\+]+)\\\}", group, re.escape(template))
    found = re.fullmatch(pattern, path) or re.fullmatch(pattern, path.rstrip("/"))
    return {name: unquote(value) for name, value in zip(names, found.groups(), strict=True)} if found else {}


def request_parameters(
    service: str, operation: str, path: str, params: Mapping[str, Any], body: bytes
) -> dict[str, Any]:
    """All parameters of a request: query/form or JSON, plus path parameters and a REST JSON body."""
    merged = dict(params)
    if not merged and body[:1] == b"{":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            merged.update(parsed)
    merged.update(uri_parameters(service, operation, path))
    return merged


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    """A parameter's values, whatever the protocol: a JSON value or list, or query ``Name.member.N``."""
    lowered = name.lower()
    for key, value in params.items():
        if key.lower() == lowered:
            if isinstance(value, list):
                return [str(v) for v in value if isinstance(v, str | int | float)]
            return [str(value)] if isinstance(value, str | int | float) else []
    return indexed(params, f"{name}.member") or indexed(params, name)


def _placeholder_values(placeholder: str, params: Mapping[str, Any]) -> list[str]:
    for name in (*_PLACEHOLDER_PARAMETERS.get(placeholder, ()), placeholder):
        values = _values(params, name)
        if values:
            return [_identifier(placeholder, v) for v in values]
    return []


def _identifier(placeholder: str, value: str) -> str:
    """The name inside an ARN or URL a parameter may hold (a topic ARN, a queue URL)."""
    if placeholder == "ParameterNameWithoutLeadingSlash":
        return value.lstrip("/")
    if value.startswith("arn:"):
        return re.split(r"[:/]", value)[-1]
    if value.startswith(("http://", "https://")):
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


def _format_regex(arn_format: str) -> re.Pattern[str]:
    body = _PLACEHOLDER.sub("\0", arn_format)
    return re.compile("^" + re.escape(body).replace("\0", ".+?") + "$")


def _arns_for(
    resource: ResourceType, params: Mapping[str, Any], scope: Scope, new: bool = False
) -> list[str]:
    """The ARNs of ``resource`` the request names (empty when it names none; with ``new``, a resource the
    request creates, its identifiers ``*``)."""
    for value in (str(v) for v in params.values() if isinstance(v, str) and v.startswith("arn:")):
        if (
            _format_regex(resource.arn_format).match(value)
            and value.split(":")[2] == resource.arn_format.split(":")[2]
        ):
            return [value]
    fixed = {"Partition": "aws", "Region": scope.region, "Account": scope.account_id}
    identifying = [p for p in resource.placeholders if p not in _SCOPE_PLACEHOLDERS]
    found = {p: _placeholder_values(p, params) for p in identifying}
    if not identifying or not (found[identifying[0]] or new):  # the request names no such resource
        return []
    counts = {len(v) for v in found.values() if len(v) > 1}
    count = max(counts) if counts else 1
    arns = []
    for index in range(count):

        def fill(match: re.Match[str], index: int = index) -> str:
            name = match.group(1)
            if name in fixed:
                return fixed[name]
            values = found.get(name) or ["*"]
            return values[index] if index < len(values) else values[0]

        arns.append(_PLACEHOLDER.sub(fill, resource.arn_format))
    return arns


def _tags(params: Mapping[str, Any]) -> dict[str, str]:
    for name in ("Tags", "tags", "Tag"):
        value = params.get(name)
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        if isinstance(value, list):
            return {
                str(t.get("Key", t.get("key"))): str(t.get("Value", t.get("value", "")))
                for t in value
                if isinstance(t, dict)
            }
    tags: dict[str, str] = {}
    for key, value in params.items():
        match = re.fullmatch(r"Tags?\.(?:member\.)?(\d+)\.Key", key)
        if match:
            prefix = key[: -len("Key")]
            tags[str(value)] = str(params.get(f"{prefix}Value", ""))
    return tags


def _context(prefix: str, action: str, params: Mapping[str, Any]) -> dict[str, ContextValue]:
    context: dict[str, ContextValue] = dict(tag_context(_tags(params)))
    for key in action_condition_keys(prefix, action):
        if "$" in key or "<" in key or not key.startswith(f"{prefix}:"):
            continue
        wanted = key.split(":", 1)[1].replace("-", "").lower()
        name = next((k for k in params if re.sub(r"\W", "", k).lower() == wanted), None)
        values = _values(params, name) if name else []
        if values:
            multivalued = str(condition_key_type(prefix, key) or "").startswith("ArrayOf")
            context[key] = values if multivalued else values[0]
    return context


def sar_checks(service: str, operation: str, params: Mapping[str, Any], scope: Scope) -> list[Check]:
    """Every (action, resource, context) the reference says the request is authorised against."""
    prefix, action_name = iam_action(service, operation)
    action = f"{prefix}:{action_name}"
    context = _context(prefix, action_name, params)
    resources = action_resource_types(prefix, action_name)
    required = {r.name: _arns_for(r, params, scope) for r in resources if r.required}
    creates = action_name.startswith(_CREATING)
    if any(required.values()) or (creates and required):
        # A required type the request does not name is, for an action that makes resources, the new one
        # (``snapshot/*`` of ec2:CreateSnapshot); otherwise the required types are alternatives.
        arns = [
            arn
            for r in resources
            if r.required
            for arn in required[r.name] or (_arns_for(r, params, scope, new=True) if creates else [])
        ]
        return [Check(action, arn, context) for arn in arns]
    for resource in resources:
        arns = _arns_for(resource, params, scope)
        if arns:
            return [Check(action, arn, context) for arn in arns]
    return [Check(action, "*", context)]
