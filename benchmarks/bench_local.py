"""Benchmark of the local Automation runtime: engine throughput and the launch-and-tag story's wall time.

``run()`` returns:
- ``engine_steps_per_second``: flow steps (aws:sleep PT0S, aws:branch) per wall second across 50
  concurrent executions of a 20-step runbook - the engine's own overhead, no AWS calls.
- ``seed_story_seconds``: wall seconds from StartAutomationExecution to Success of the bundled
  ``LaunchTaggedInstance`` run by an operator denied ec2:* under a service role, observed through
  GetAutomationExecution as a client would (median of 3 runs; ``seed_story_cold_seconds`` is the first).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from typing import Any

import boto3
from botocore.config import Config

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.local.server import LocalAutomationServer

TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "CompletedWithSuccess", "CompletedWithFailure"}
SSM_TRUST = {"Effect": "Allow", "Principal": {"Service": "ssm.amazonaws.com"}, "Action": "sts:AssumeRole"}
EXECUTIONS = 50
FLOW_STEPS = 20
STORY_RUNS = 3


def _client(server: LocalAutomationServer, service: str, creds: dict[str, str] | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        config=Config(retries={"max_attempts": 1}),
        **(creds or server.admin_credentials),
    )


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _publish(server: LocalAutomationServer, content: str, document_format: str) -> str:
    name = f"Bench-{uuid.uuid4().hex[:8]}"
    _client(server, "ssm").create_document(
        Name=name, Content=content, DocumentType="Automation", DocumentFormat=document_format
    )
    return name


def _wait_for_end(ssm: Any, execution_id: str, pause: float = 0.01) -> dict[str, Any]:
    """Poll GetAutomationExecution, as a client would, until the execution ended; its final state."""
    while True:
        execution: dict[str, Any] = ssm.get_automation_execution(AutomationExecutionId=execution_id)[
            "AutomationExecution"
        ]
        if execution["AutomationExecutionStatus"] in TERMINAL:
            return execution
        time.sleep(pause)


def engine_steps_per_second(server: LocalAutomationServer) -> float:
    steps = []
    for index in range(FLOW_STEPS):
        if index % 2:
            choice = {"NextStep": f"S{index + 1}", "Variable": "{{ global:REGION }}", "StartsWith": "us-"}
            steps.append({"name": f"S{index}", "action": "aws:branch", "inputs": {"Choices": [choice]}})
        else:
            steps.append({"name": f"S{index}", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}})
    steps.append({"name": f"S{FLOW_STEPS}", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}})
    name = _publish(server, json.dumps({"schemaVersion": "0.3", "mainSteps": steps}), "JSON")
    ssm = _client(server, "ssm")
    started = time.perf_counter()
    ids = [
        ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"] for _ in range(EXECUTIONS)
    ]
    assert server.engine is not None
    finished = {execution_id: server.engine.wait(execution_id, timeout=120) for execution_id in ids}
    elapsed = time.perf_counter() - started
    if any(e["AutomationExecutionStatus"] != "Success" for e in finished.values()):
        raise RuntimeError("a benchmark execution did not succeed")
    return sum(len(e["StepExecutions"]) for e in finished.values()) / elapsed


def _story_actors(server: LocalAutomationServer) -> tuple[dict[str, str], str]:
    """An operator denied ec2:* who may start runbooks and pass the role; the role's ARN."""
    iam = _client(server, "iam")
    suffix = uuid.uuid4().hex[:8]
    role_arn = iam.create_role(RoleName=f"launch-{suffix}", AssumeRolePolicyDocument=_policy(SSM_TRUST))[
        "Role"
    ]["Arn"]
    iam.put_role_policy(
        RoleName=f"launch-{suffix}",
        PolicyName="launch-and-tag",
        PolicyDocument=_policy(
            {
                "Effect": "Allow",
                "Action": [
                    "ec2:RunInstances",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstanceStatus",
                    "ec2:CreateTags",
                ],
                "Resource": "*",
            }
        ),
    )
    user = f"operator-{suffix}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="operator",
        PolicyDocument=_policy(
            {
                "Effect": "Allow",
                "Action": ["ssm:StartAutomationExecution", "ssm:GetAutomationExecution"],
                "Resource": "*",
            },
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role_arn},
            {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"},
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }, role_arn


def seed_story_seconds(server: LocalAutomationServer) -> list[float]:
    operator, role_arn = _story_actors(server)
    name = _publish(server, runbook_path("LaunchTaggedInstance").read_text(encoding="utf-8"), "YAML")
    image_id = _client(server, "ec2").describe_images()["Images"][0]["ImageId"]
    ssm = _client(server, "ssm", operator)
    parameters = {
        "AutomationAssumeRole": [role_arn],
        "ImageId": [image_id],
        "Owner": ["jane.doe@example.com"],
        "CostCenter": ["CC-1001"],
    }
    timings = []
    for _ in range(STORY_RUNS):
        started = time.perf_counter()
        execution_id = ssm.start_automation_execution(DocumentName=name, Parameters=parameters)[
            "AutomationExecutionId"
        ]
        status = _wait_for_end(ssm, execution_id)["AutomationExecutionStatus"]
        timings.append(time.perf_counter() - started)
        if status != "Success":
            raise RuntimeError(f"the launch-and-tag story ended {status}")
    return timings


def run() -> dict[str, float]:
    with LocalAutomationServer(time_scale=1.0, enforce_iam=True) as server:
        story = seed_story_seconds(server)
        throughput = engine_steps_per_second(server)
    return {
        "engine_steps_per_second": round(throughput, 1),
        "seed_story_seconds": round(statistics.median(story), 3),
        "seed_story_cold_seconds": round(story[0], 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
