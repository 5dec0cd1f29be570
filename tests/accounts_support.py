"""Helpers for multi-account tests on the local runtime: fresh accounts, roles, a probe runbook, waiting.

moto's state lives for the whole test session, so each test uses accounts and role names of its own.
"""

from __future__ import annotations

import json
import random
import time
from typing import TYPE_CHECKING, Any

import boto3

from tests.fixtures.local_runtime import NO_RETRIES, policy_document, unique
from tests.local_engine_support import role_runbook

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_ssm_delegate.local.server import LocalAutomationServer

ENDED = frozenset(
    {"Success", "Failed", "Cancelled", "TimedOut", "CompletedWithSuccess", "CompletedWithFailure"}
)
#: A runbook that reports where it ran: the account its role is in (STS) and the Region it was given.
PROBE = role_runbook(
    {
        "name": "who",
        "action": "aws:executeAwsApi",
        "inputs": {"Service": "sts", "Api": "GetCallerIdentity"},
        "outputs": [{"Name": "Account", "Selector": "$.Account", "Type": "String"}],
    },
    {
        "name": "instances",
        "action": "aws:executeAwsApi",
        "inputs": {"Service": "ec2", "Api": "DescribeInstances"},
        "outputs": [{"Name": "Reservations", "Selector": "$.Reservations", "Type": "MapList"}],
    },
    role_default="",
    outputs=["who.Account", "instances.Reservations"],
)


def new_account() -> str:
    """A 12-digit account id no other test uses."""
    return str(random.randrange(10**11, 10**12))


def client(server: LocalAutomationServer, service: str, creds: Mapping[str, str], region: str = "") -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=region or server.region,
        config=NO_RETRIES,
        **dict(creds),
    )


def create_role(
    server: LocalAutomationServer,
    account_id: str,
    name: str,
    trust: Sequence[Mapping[str, Any]] | str,
    policy: Sequence[Mapping[str, Any]] | str = (),
) -> str:
    """A role in ``account_id`` (created with that account's bootstrap admin); its ARN."""
    iam = client(server, "iam", server.admin_credentials_for(account_id))
    trust_document = trust if isinstance(trust, str) else policy_document(trust)
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_document)["Role"]["Arn"]
    if policy:
        document = policy if isinstance(policy, str) else policy_document(policy)
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=document)
    return str(arn)


def publish(server: LocalAutomationServer, content: Mapping[str, Any] = PROBE) -> str:
    """The runbook, published in the starting account; its name."""
    name = unique("Fleet")
    client(server, "ssm", server.admin_credentials).create_document(
        Name=name, Content=json.dumps(content), DocumentType="Automation", DocumentFormat="JSON"
    )
    return name


def wait(ssm: Any, execution_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The execution once it has ended (fails the test if it has not within ``timeout`` wall seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] in ENDED:
            return dict(execution)
        assert time.monotonic() < deadline, (
            f"execution {execution_id} still {execution['AutomationExecutionStatus']}"
        )
        time.sleep(0.05)


def child_of(server: LocalAutomationServer, step: Mapping[str, Any]) -> dict[str, Any]:
    """A location step's child execution, read where it ran (its account and Region)."""
    location = step["TargetLocation"]
    account_id, region = location["Accounts"][0], location["Regions"][0]
    ssm = client(server, "ssm", server.admin_credentials_for(account_id), region)
    return wait(ssm, step["Outputs"]["AutomationExecutionId"][0])


def statements(document: str) -> list[dict[str, Any]]:
    return list(json.loads(document)["Statement"])
