"""Generic API actions: aws:executeAwsApi, aws:waitForAwsResourceProperty, aws:assertAwsResourceProperty.

``Service`` is the boto3 service name (ec2, ssm, s3...), ``Api`` the operation (DescribeInstances; the
snake_case form is accepted too); every other input is a parameter of the call.
"""

from __future__ import annotations

from typing import Any

from botocore import xform_name
from botocore.exceptions import UnknownServiceError

from airflow_ssm_delegate.local.actions.base import Done, Outcome, StepContext, StepFailure, poll, require
from airflow_ssm_delegate.local.actions.shapes import coerce_request
from airflow_ssm_delegate.local.selectors import SelectorError, json_safe, select

_CALL_KEYS = frozenset({"Service", "Api"})
_PROPERTY_KEYS = frozenset({"PropertySelector", "DesiredValues"})


def call_api(ctx: StepContext, exclude: frozenset[str] = _CALL_KEYS) -> Any:
    """Make the call the inputs describe; the JSON-safe response."""
    service = require(ctx.inputs, "Service", str)
    api = require(ctx.inputs, "Api", str)
    try:
        client = ctx.client(service.lower())
    except UnknownServiceError:
        raise StepFailure(
            f"Service {service!r} is not a boto3 service name (e.g. ec2, ssm, s3).", "Verification"
        ) from None
    names = client.meta.service_model.operation_names
    operation = api if api in names else next((n for n in names if xform_name(n) == api), None)
    if operation is None:
        raise StepFailure(f"Api {api!r} is not an operation of {service}.", "Verification")
    params = coerce_request(client, operation, {k: v for k, v in ctx.inputs.items() if k not in exclude})
    try:
        return json_safe(getattr(client, xform_name(operation))(**params))
    except StepFailure:
        raise
    except Exception as error:  # botocore's ParamValidationError and friends: the inputs are wrong
        raise StepFailure(
            f"{service} {operation} rejected the step's inputs: {error}", "Verification"
        ) from None


def execute_aws_api(ctx: StepContext) -> Outcome:
    return Done(response=call_api(ctx))


def _property(ctx: StepContext, response: Any) -> tuple[Any, list[str]]:
    selector = require(ctx.inputs, "PropertySelector", str)
    desired = require(ctx.inputs, "DesiredValues", (list, str))
    desired_values = [_text(v) for v in (desired if isinstance(desired, list) else [desired])]
    try:
        return select(response, selector), desired_values
    except SelectorError as error:
        raise StepFailure(str(error), "Verification") from None


def _text(value: Any) -> str:
    """How a value compares: booleans (and their text, "True" in AWS's own AWSConfigRemediation runbooks)
    as lower-case true/false, everything else as its text."""
    text = str(value)
    return text.lower() if isinstance(value, bool) or text.lower() in ("true", "false") else text


def _matches(value: Any, desired: list[str]) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(_text(v) in desired for v in values)


def wait_for_aws_resource_property(ctx: StepContext) -> Outcome:
    def check(current: StepContext) -> Outcome | None:
        value, desired = _property(current, call_api(current, _CALL_KEYS | _PROPERTY_KEYS))
        return Done() if _matches(value, desired) else None

    return poll(
        ctx, check, f"{ctx.inputs.get('PropertySelector')} to be one of {ctx.inputs.get('DesiredValues')}"
    )


def assert_aws_resource_property(ctx: StepContext) -> Outcome:
    value, desired = _property(ctx, call_api(ctx, _CALL_KEYS | _PROPERTY_KEYS))
    if not _matches(value, desired):
        raise StepFailure(
            f"{ctx.inputs['PropertySelector']} is {value!r}, expected one of {', '.join(desired)}.",
            "Verification",
        )
    return Done()
