"""EC2 requests AWS refuses in the instance's current state and moto would perform anyway.

ModifyInstanceAttribute changes some attributes only on a stopped instance ("To modify some attributes,
the instance must be stopped",
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyInstanceAttribute.html); the instance type
is one ("Change the instance type": stop the instance, change it, start it,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/change-instance-type-of-ebs-backed-instance.html, the
steps AWS-ResizeInstance runs). On any other state AWS answers ``IncorrectInstanceState`` ("The instance is
in an incorrect state for the requested action",
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html) with the message
"The instance 'i-...' is not in the 'stopped' state.". moto changes the type of a running instance, so the
runtime refuses it first; a runbook that forgets to stop the instance fails locally as it would on AWS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models import ec2_backends

from airflow_ssm_delegate.local.wire import error_response

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_ssm_delegate.local.wire import Response

__all__ = ["refuse_for_instance_state"]

#: ModifyInstanceAttribute attributes (the Attribute value, and the query key of their own parameter)
#: that need a stopped instance. Only the documented instance type is held here.
_STOPPED_ONLY = {"instanceType": "InstanceType.Value"}


def refuse_for_instance_state(
    operation: str, params: Mapping[str, Any], account_id: str, region: str
) -> Response | None:
    """Before moto answers: AWS's ``IncorrectInstanceState`` for a change the state forbids, else None."""
    if operation != "ModifyInstanceAttribute":
        return None
    attribute = params.get("Attribute")
    if not any(attribute == name or key in params for name, key in _STOPPED_ONLY.items()):
        return None
    instance_id = str(params.get("InstanceId", ""))
    try:
        state = ec2_backends[account_id][region].get_instance(instance_id).state
    except InvalidInstanceIdError:
        return None  # moto answers InvalidInstanceID.NotFound, as AWS does
    if state == "stopped":
        return None
    return error_response(
        "ec2", "IncorrectInstanceState", f"The instance '{instance_id}' is not in the 'stopped' state.", 400
    )
