"""The example operator policy (``examples/iam-policies.json``) decides each bypass as IAM would.

IAM's policy simulator (``iam:SimulateCustomPolicy``, answered by the local runtime's evaluator) is given
the request context AWS builds for each call — the request's tags (``aws:RequestTag``) on a start, the
execution's tags (``aws:ResourceTag``) on get/stop/signal, ``iam:PassedToService`` on PassRole — so these
cases check the compiled policy's logic independently of how a server fills that context.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from airflow_ssm_delegate.examples import EXAMPLE_ACCOUNT, EXAMPLE_REGION, EXAMPLES_DIR
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS
from tests.fixtures.local_runtime import client_for

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.server import LocalAutomationServer

SSM = f"arn:aws:ssm:{EXAMPLE_REGION}:{EXAMPLE_ACCOUNT}"
LAUNCH_V1 = f"{SSM}:automation-definition/LaunchTaggedInstance:1"
EXECUTION = f"{SSM}:automation-execution/6c9a4b1e-0000-4000-8000-000000000001"
ROLE = f"arn:aws:iam::{EXAMPLE_ACCOUNT}:role/SsmDelegateAutomationRole"


def tags(kind: str, *, without: str = "") -> dict[str, str]:
    return {f"aws:{kind}/{key}": "x" for key in AUDIT_TAG_KEYS if key != without}


REQUESTED, ON_EXECUTION = tags("RequestTag"), tags("ResourceTag")
EC2_INSTANCES = f"arn:aws:ec2:{EXAMPLE_REGION}:{EXAMPLE_ACCOUNT}:instance/*"


class Case(NamedTuple):
    name: str
    action: str
    resource: str
    context: dict[str, str]
    expected: str


CASES = [Case(*case) for case in [
    ("the listed runbook, pinned version, audit tags", "ssm:StartAutomationExecution", LAUNCH_V1, REQUESTED,
     "allowed"),
    ("the new execution, audit tags", "ssm:StartAutomationExecution", f"{SSM}:automation-execution/*",
     REQUESTED, "allowed"),
    ("no audit tags", "ssm:StartAutomationExecution", LAUNCH_V1, {}, "implicitDeny"),
    ("one audit tag missing", "ssm:StartAutomationExecution", LAUNCH_V1,
     tags("RequestTag", without="airflow:run_id"), "implicitDeny"),
    ("the new execution, no audit tags", "ssm:StartAutomationExecution", f"{SSM}:automation-execution/*", {},
     "implicitDeny"),
    ("another version", "ssm:StartAutomationExecution", LAUNCH_V1[:-1] + "2", REQUESTED, "implicitDeny"),
    ("an unlisted runbook", "ssm:StartAutomationExecution", f"{SSM}:automation-definition/Unapproved:1",
     REQUESTED, "implicitDeny"),
    ("the document ARN (any version)", "ssm:StartAutomationExecution", f"{SSM}:document/LaunchTaggedInstance",
     REQUESTED, "implicitDeny"),
    ("stop Airflow's execution", "ssm:StopAutomationExecution", EXECUTION, ON_EXECUTION, "allowed"),
    ("stop another's execution", "ssm:StopAutomationExecution", EXECUTION, {}, "implicitDeny"),
    ("approve Airflow's execution", "ssm:SendAutomationSignal", EXECUTION, ON_EXECUTION, "allowed"),
    ("approve another's execution", "ssm:SendAutomationSignal", EXECUTION, {}, "implicitDeny"),
    ("read another's execution", "ssm:GetAutomationExecution", EXECUTION, {}, "implicitDeny"),
    ("pass the listed role to SSM", "iam:PassRole", ROLE, {"iam:PassedToService": "ssm.amazonaws.com"},
     "allowed"),
    ("pass the listed role to EC2", "iam:PassRole", ROLE, {"iam:PassedToService": "ec2.amazonaws.com"},
     "implicitDeny"),
    ("pass another role", "iam:PassRole", f"arn:aws:iam::{EXAMPLE_ACCOUNT}:role/Admin",
     {"iam:PassedToService": "ssm.amazonaws.com"}, "implicitDeny"),
    ("boto3 straight to EC2", "ec2:RunInstances", EC2_INSTANCES, {}, "implicitDeny"),
]]  # fmt: skip


@pytest.fixture(scope="module")
def operator_policy() -> str:
    return json.dumps(json.loads((EXAMPLES_DIR / "iam-policies.json").read_text())["operator_policy"])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_example_operator_policy_decides_like_this(
    local_server: LocalAutomationServer, operator_policy: str, case: Case
) -> None:
    entries: list[dict[str, Any]] = [
        {"ContextKeyName": key, "ContextKeyValues": [value], "ContextKeyType": "string"}
        for key, value in case.context.items()
    ]
    result = client_for(local_server, "iam").simulate_custom_policy(
        PolicyInputList=[operator_policy],
        ActionNames=[case.action],
        ResourceArns=[case.resource],
        **({"ContextEntries": entries} if entries else {}),
    )
    (evaluation,) = result["EvaluationResults"]
    assert evaluation["EvalDecision"] == case.expected, evaluation
