"""Catalogue of the documented schema-0.3 ``aws:*`` actions and the IAM permissions each step needs.

Lint checks inputs against ``ACTIONS``; ``iam`` builds the service role's least-privilege policy from
``iam_actions_for_step``. The permissions are the calls the action makes (as the local runtime makes
them too), so a policy derived here is exactly enough — the IAM tests remove statements to show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore import xform_name
from botocore.exceptions import UnknownServiceError
from botocore.model import OperationNotFoundError

from airflow_ssm_delegate.documents.references import REFERENCE

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.model import StepSpec


@dataclass(frozen=True)
class ActionSpec:
    """What a step of this action may contain.

    ``api`` names the API call an action wraps ("this action supports most parameters of X"): every
    member of that call's request shape is an accepted input too, so the table follows botocore's model.
    """

    name: str
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    outputs: dict[str, str] = field(default_factory=dict)  # built-in output name -> type
    one_of: tuple[frozenset[str], ...] = ()  # each group: exactly one of these inputs
    api_parameters: bool = False  # other inputs are parameters of the Service/Api call
    api: tuple[str, str] | None = None  # (boto3 service, operation) whose request members are inputs

    def accepted_inputs(self) -> frozenset[str]:
        """Every input name the action accepts (None-free; empty for Service/Api actions)."""
        names = self.required | self.optional | frozenset().union(*self.one_of)
        return names | (request_members(*self.api) if self.api else frozenset())


def _spec(name: str, required: str = "", optional: str = "", outputs: str = "", **extra: Any) -> ActionSpec:
    def names(text: str) -> frozenset[str]:
        return frozenset(text.split())

    fixed = dict(item.split(":") for item in outputs.split())
    return ActionSpec(name, names(required), names(optional), fixed, **extra)


# Inputs and built-in outputs: "Systems Manager Automation actions reference"
# (https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-actions.html) and its page per
# action, automation-action-<name>.html (e.g. automation-action-changestate.html: FailOnUnexpectedStopped;
# automation-action-executeStateMachine.html: the eight lower-case outputs; automation-action-executeScript
# .html: Handler is Python-only, output Payload; automation-action-loop.html).
_PROPERTY = "Service Api PropertySelector DesiredValues"
_IMAGE_OUT = "ImageId:String ImageState:String"
ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        _spec("aws:approve", "Approvers", "NotificationArn Message MinRequiredApprovals",
              "ApprovalStatus:String ApproverDecisions:MapList Approvers:StringList"),
        _spec("aws:assertAwsResourceProperty", _PROPERTY, api_parameters=True),
        _spec("aws:branch", "Choices", "Default InputPayload"),
        _spec("aws:changeInstanceState", "InstanceIds DesiredState",
              "CheckStateOnly Force AdditionalInfo FailOnUnexpectedStopped"),
        _spec("aws:copyImage", "SourceImageId SourceRegion ImageName",
              "ImageDescription Encrypted KmsKeyId ClientToken", _IMAGE_OUT, api=("ec2", "CopyImage")),
        _spec("aws:createImage", "InstanceId ImageName", "ImageDescription NoReboot BlockDeviceMappings",
              _IMAGE_OUT, api=("ec2", "CreateImage")),
        _spec("aws:createStack", "StackName",
              "Capabilities ClientRequestToken NotificationARNs OnFailure ResourceTypes RoleARN "
              "StackPolicyBody StackPolicyURL Tags TimeoutInMinutes Parameters",
              "StackId:String StackStatus:String StackStatusReason:String",
              one_of=(frozenset({"TemplateBody", "TemplateURL"}),), api=("cloudformation", "CreateStack")),
        _spec("aws:createTags", "ResourceIds Tags", "ResourceType"),
        _spec("aws:deleteImage", "ImageId"),
        _spec("aws:deleteStack", "StackName", "RoleARN ClientRequestToken RetainResources",
              api=("cloudformation", "DeleteStack")),
        _spec("aws:executeAutomation", "DocumentName",
              "DocumentVersion MaxConcurrency MaxErrors RuntimeParameters Tags TargetLocations TargetMaps "
              "TargetParameterName Targets TargetLocationsURL",
              "ExecutionId:String Status:String Output:StringList"),
        _spec("aws:executeAwsApi", "Service Api", api_parameters=True),
        _spec("aws:executeScript", "Runtime", "Handler Script Attachment InputPayload",
              "Payload:StringMap OutputPayload:StringMap"),
        _spec("aws:executeStateMachine", "stateMachineArn", "name input traceHeader",
              "executionArn:String input:String name:String output:String startDate:String "
              "stateMachineArn:String status:String stopDate:String",
              api=("stepfunctions", "StartExecution")),
        _spec("aws:invokeLambdaFunction", "FunctionName",
              "Qualifier InvocationType LogType ClientContext InputPayload Payload",
              "StatusCode:Integer FunctionError:String LogResult:String Payload:String"),
        _spec("aws:invokeWebhook", "IntegrationName", "Body", "Response:String ResponseCode:Integer"),
        _spec("aws:loop", "Steps", "Iterators IteratorDataType LoopCondition MaxIterations",
              "CurrentIteration:Integer CurrentIteratorValue:String"),
        _spec("aws:pause"),
        _spec("aws:runCommand", "DocumentName",
              "InstanceIds Targets Parameters CloudWatchOutputConfig Comment DocumentHash DocumentHashType "
              "DocumentVersion NotificationConfig OutputS3BucketName OutputS3KeyPrefix ServiceRoleArn "
              "TimeoutSeconds MaxConcurrency MaxErrors",
              "CommandId:String Status:String ResponseCode:Integer Output:String",
              api=("ssm", "SendCommand")),
        _spec("aws:runInstances", "ImageId",
              "MinInstanceCount MaxInstanceCount AdditionalInfo BlockDeviceMappings ClientToken "
              "DisableApiTermination EbsOptimized IamInstanceProfileArn IamInstanceProfileName "
              "InstanceInitiatedShutdownBehavior InstanceType KernelId KeyName Monitoring NetworkInterfaces "
              "Placement PrivateIpAddress RamdiskId SecurityGroupIds SecurityGroups SubnetId "
              "TagSpecifications UserData MetadataOptions",
              "InstanceIds:StringList InstanceStates:StringList", api=("ec2", "RunInstances")),
        _spec("aws:sleep", one_of=(frozenset({"Duration", "Timestamp"}),)),
        _spec("aws:updateVariable", "Name Value"),
        _spec("aws:waitForAwsResourceProperty", _PROPERTY, api_parameters=True),
    )
}  # fmt: skip

#: Actions AWS's own published runbooks use that no AWS page documents (so no inputs to check and nothing to
#: emulate): AWSEC2-CloneInstanceAndUpgradeSQLServer / -Windows (aws:putServerUpgradeMetrics,
#: aws:shareSQLMedia) and AWS's Distributor-on-Azure runbook (aws:installDistributorPackageOnAzure). AWS runs
#: them, so lint only warns (SSM028); the local runtime refuses them by name at start.
AWS_INTERNAL_ACTIONS = frozenset(
    {"aws:putServerUpgradeMetrics", "aws:shareSQLMedia", "aws:installDistributorPackageOnAzure"}
)


@lru_cache(maxsize=32)
def request_members(service: str, operation: str) -> frozenset[str]:
    """The request members of a botocore operation (empty when botocore lacks it)."""
    try:
        model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    except (UnknownServiceError, OperationNotFoundError):  # lint then accepts only the listed inputs
        return frozenset()
    shape = model.input_shape
    return frozenset(shape.members) if shape is not None else frozenset()


#: boto3 service names whose IAM prefix differs; the rest are the same (ec2, ssm, s3, iam, lambda...).
_IAM_PREFIX = {"elbv2": "elasticloadbalancing", "elb": "elasticloadbalancing", "stepfunctions": "states",
               "opensearch": "es", "cloudwatch": "cloudwatch"}  # fmt: skip

_STATE_ACTIONS = {"running": "ec2:StartInstances", "stopped": "ec2:StopInstances",
                  "terminated": "ec2:TerminateInstances"}  # fmt: skip
_FIXED_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "aws:copyImage": ("ec2:CopyImage", "ec2:DescribeImages"),
    "aws:createImage": ("ec2:CreateImage", "ec2:DescribeImages"),
    "aws:createStack": ("cloudformation:CreateStack", "cloudformation:DescribeStacks"),
    "aws:deleteImage": ("ec2:DescribeImages", "ec2:DeregisterImage", "ec2:DeleteSnapshot"),
    "aws:deleteStack": ("cloudformation:DeleteStack", "cloudformation:DescribeStacks"),
    "aws:executeAutomation": ("ssm:StartAutomationExecution", "ssm:GetAutomationExecution"),
    "aws:executeStateMachine": ("states:StartExecution", "states:DescribeExecution"),
    "aws:invokeLambdaFunction": ("lambda:InvokeFunction",),
    "aws:invokeWebhook": ("ssm:GetParameter",),
    "aws:runCommand": ("ssm:SendCommand", "ssm:ListCommands", "ssm:GetCommandInvocation"),
}


class UnresolvablePermissionError(ValueError):
    """A step's permissions depend on a runtime value (e.g. ``Api: '{{ ApiName }}'``)."""


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.search(value) is not None


@lru_cache(maxsize=64)
def operation_names(service: str) -> frozenset[str] | None:
    """The API operations of a boto3 service (None when botocore does not know the service)."""
    try:
        model = botocore.session.get_session().get_service_model(service)
    except UnknownServiceError:
        return None
    return frozenset(model.operation_names)


def api_operation(service: str, api: str) -> str | None:
    """``Api`` as written (PascalCase or snake_case) -> the operation name, None if not an operation."""
    names = operation_names(service.lower())
    if names is None:
        return None
    if api in names:
        return api
    # AWS's executeAwsApi calls boto3 by the snake_case form, so "listBuckets" and "list_buckets" work too.
    wanted = xform_name(api)
    return next((name for name in names if xform_name(name) == wanted), None)


def _api_permission(step: StepSpec) -> str:
    service, api = step.inputs.get("Service"), step.inputs.get("Api")
    if not isinstance(service, str) or not isinstance(api, str) or is_reference(service) or is_reference(api):
        raise UnresolvablePermissionError(
            f"step {step.name}: Service and Api must be literal for a least-privilege policy "
            f"(got Service={service!r}, Api={api!r})"
        )
    operation = api_operation(service, api)
    if operation is None:
        raise UnresolvablePermissionError(
            f"step {step.name}: {api!r} is not an operation of service {service!r}"
        )
    return f"{_IAM_PREFIX.get(service.lower(), service.lower())}:{operation}"


def _change_state_permissions(step: StepSpec) -> list[str]:
    permissions = ["ec2:DescribeInstances"]
    desired = step.inputs.get("DesiredState")
    if desired == "running" or is_reference(desired):  # running also waits for status checks to be OK
        permissions.append("ec2:DescribeInstanceStatus")  # (automation-action-changestate.html)
    if str(step.inputs.get("CheckStateOnly", False)).lower() == "true":
        return permissions
    if is_reference(desired):  # any of the three at run time
        return permissions + sorted(_STATE_ACTIONS.values())
    if desired not in _STATE_ACTIONS:
        raise UnresolvablePermissionError(f"step {step.name}: DesiredState {desired!r} is not one of "
                                          f"{sorted(_STATE_ACTIONS)}")  # fmt: skip
    return [*permissions, _STATE_ACTIONS[desired]]


def _run_instances_permissions(step: StepSpec) -> list[str]:
    permissions = ["ec2:RunInstances", "ec2:DescribeInstances"]
    if "TagSpecifications" in step.inputs:
        permissions.append("ec2:CreateTags")
    if "IamInstanceProfileArn" in step.inputs or "IamInstanceProfileName" in step.inputs:
        permissions.append("iam:PassRole")
    return permissions


def _create_tags_permissions(step: StepSpec) -> list[str]:
    return (
        ["ec2:CreateTags"] if step.inputs.get("ResourceType", "EC2") == "EC2" else ["ssm:AddTagsToResource"]
    )


def iam_actions_for_step(step: StepSpec) -> list[str]:
    """The IAM actions the service role needs for ``step`` (sorted, no duplicates, never a wildcard).

    Raises ``UnresolvablePermissionError`` when they depend on runtime values. Steps that make no AWS
    call (branch, sleep, pause, scripts, variables) need none; aws:approve needs sns:Publish only when it
    notifies.
    """
    action = step.action
    if action not in ACTIONS:  # an unknown action's calls are unknown: an empty grant would fail at run time
        raise UnresolvablePermissionError(
            f"step {step.name}: unknown action {action!r}, so its permissions are unknown "
            "(run `airflow-ssm-delegate lint` on the runbook)"
        )
    if action in ("aws:executeAwsApi", "aws:assertAwsResourceProperty", "aws:waitForAwsResourceProperty"):
        permissions = [_api_permission(step)]
    elif action == "aws:changeInstanceState":
        permissions = _change_state_permissions(step)
    elif action == "aws:runInstances":
        permissions = _run_instances_permissions(step)
    elif action == "aws:createTags":
        permissions = _create_tags_permissions(step)
    elif action == "aws:approve":
        permissions = ["sns:Publish"] if step.inputs.get("NotificationArn") else []
    else:
        permissions = list(_FIXED_PERMISSIONS.get(action, ()))
    return sorted(set(permissions))
