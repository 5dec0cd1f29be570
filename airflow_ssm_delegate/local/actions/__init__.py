"""The actions the local runtime supports: ``REGISTRY`` maps an action name to its implementation.

A runbook using an action not in the registry is refused at start (see ``engine``), so the supported
set is exactly this mapping's keys.
"""

from __future__ import annotations

from airflow_ssm_delegate.local.actions import (
    api,
    automation,
    command,
    ec2,
    flow,
    lambdas,
    loop,
    script,
    stacks,
    states,
    variables,
)
from airflow_ssm_delegate.local.actions.base import Action

REGISTRY: dict[str, Action] = {
    "aws:runInstances": ec2.run_instances,
    "aws:createTags": ec2.create_tags,
    "aws:changeInstanceState": ec2.change_instance_state,
    "aws:createImage": ec2.create_image,
    "aws:deleteImage": ec2.delete_image,
    "aws:copyImage": ec2.copy_image,
    "aws:executeAwsApi": api.execute_aws_api,
    "aws:waitForAwsResourceProperty": api.wait_for_aws_resource_property,
    "aws:assertAwsResourceProperty": api.assert_aws_resource_property,
    "aws:branch": flow.branch,
    "aws:sleep": flow.sleep,
    "aws:pause": flow.pause,
    "aws:approve": flow.approve,
    "aws:executeAutomation": automation.execute_automation,
    "aws:runCommand": command.run_command,
    "aws:executeScript": script.execute_script,
    "aws:createStack": stacks.create_stack,
    "aws:deleteStack": stacks.delete_stack,
    "aws:executeStateMachine": states.execute_state_machine,
    "aws:loop": loop.loop,
    "aws:updateVariable": variables.update_variable,
    "aws:invokeLambdaFunction": lambdas.invoke_lambda_function,
}
SUPPORTED_ACTIONS = frozenset(REGISTRY)
#: Actions that run code in real time: they apply timeoutSeconds themselves, in wall-clock seconds.
WALL_TIMED_ACTIONS = frozenset({"aws:executeScript", "aws:invokeLambdaFunction"})
#: Inputs the engine leaves unrendered at the step's start (the action renders them when it needs them).
LATE_INPUTS: dict[str, frozenset[str]] = {"aws:loop": loop.LATE_INPUTS}

__all__ = ["LATE_INPUTS", "REGISTRY", "SUPPORTED_ACTIONS", "WALL_TIMED_ACTIONS", "Action"]
