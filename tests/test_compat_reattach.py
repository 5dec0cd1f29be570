"""Re-attach without a task state store (Airflow < 3.3), on the local Automation runtime.

The task contexts here carry no ``task_state_store``, as on Airflow 3.0-3.2 (on 3.3 the same code path runs
whenever the store is absent). Executions are found by their identity tag with DescribeAutomationExecutions.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.compat import TaskDeferred
from airflow_ssm_delegate.idempotency import TaskIdentity, derive_client_token
from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator
from airflow_ssm_delegate.reattach import IDENTITY_TAG_PREFIX
from tests.fixtures.local_runtime import SSM_TRUST, client_for, unique
from tests.test_operator import FakeTaskInstance, context

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer

EC2_READ = {"Effect": "Allow", "Action": ["ec2:DescribeRegions"], "Resource": "*"}
# Sleeps for an hour (the runtime's clock runs at wall speed here), then one harmless call.
LONG = json.dumps(
    {
        "schemaVersion": "0.3",
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {"AutomationAssumeRole": {"type": "String"}},
        "mainSteps": [
            {"name": "window", "action": "aws:sleep", "inputs": {"Duration": "PT1H"}},
            {
                "name": "look",
                "action": "aws:executeAwsApi",
                "inputs": {"Service": "ec2", "Api": "DescribeRegions"},
            },
        ],
    }
)


@pytest.fixture
def role(new_role: Callable[..., str]) -> str:
    return new_role([SSM_TRUST], [EC2_READ], prefix="compat-role")


@pytest.fixture
def document(local_server: LocalAutomationServer, aws_conn_env: Any) -> str:
    name = unique("Compat")
    client_for(local_server, "ssm").create_document(
        Name=name, Content=LONG, DocumentType="Automation", DocumentFormat="JSON"
    )
    return name


def deferred_execution(document: str, role: str, ti: FakeTaskInstance, **kwargs: Any) -> str:
    """One try of a deferrable start with no task state store; the execution id it defers on."""
    return deferred_try(document, role, ti, **kwargs)[0]


def deferred_try(document: str, role: str, ti: FakeTaskInstance, **kwargs: Any) -> tuple[str, int]:
    """Like :func:`deferred_execution`, also counting the try's StartAutomationExecution calls."""
    operator = SsmStartAutomationExecutionOperator(
        task_id=ti.task_id, document_name=document, service_role_arn=role, deferrable=True, **kwargs
    )
    starts: list[Any] = []
    operator.hook.conn.meta.events.register(
        "before-call.ssm.StartAutomationExecution", lambda **event: starts.append(event)
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context(ti, state_store=False))
    return str(deferred.value.trigger.serialize()[1]["execution_id"]), len(starts)


def executions(server: LocalAutomationServer, document: str) -> list[str]:
    pages = (
        client_for(server, "ssm")
        .get_paginator("describe_automation_executions")
        .paginate(Filters=[{"Key": "DocumentNamePrefix", "Values": [document]}])
    )
    return sorted(
        item["AutomationExecutionId"] for page in pages for item in page["AutomationExecutionMetadataList"]
    )


def tags_of(server: LocalAutomationServer, execution_id: str) -> dict[str, str]:
    tags = client_for(server, "ssm").list_tags_for_resource(
        ResourceType="Automation", ResourceId=execution_id
    )
    return {tag["Key"]: tag["Value"] for tag in tags["TagList"]}


def cancel(server: LocalAutomationServer, execution_id: str) -> None:
    """Cancel and wait until the execution is Cancelled (a status that is neither running nor success)."""
    ssm = client_for(server, "ssm")
    ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")
    for _ in range(200):
        status = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"][
            "AutomationExecutionStatus"
        ]
        if status == "Cancelled":
            return
        time.sleep(0.05)
    raise AssertionError(f"{execution_id} is still {status}")


def stop_all(server: LocalAutomationServer, document: str) -> None:
    ssm = client_for(server, "ssm")
    for execution_id in executions(server, document):
        with contextlib.suppress(ssm.exceptions.ClientError):  # already ended
            ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")


def test_a_killed_try_is_found_again_by_its_identity_tag(
    local_server: LocalAutomationServer, document: str, role: str
) -> None:
    ti = FakeTaskInstance(run_id=unique("run"))
    first, starts = deferred_try(document, role, ti)
    try:
        assert starts == 1
        token = derive_client_token(TaskIdentity("dag", "launch", ti.run_id))
        assert tags_of(local_server, first)[f"{IDENTITY_TAG_PREFIX}{token}"] == "-1"
        # The worker died after the start: XCom is gone, there is no state store. Three more tries find
        # the execution by its tag and make no start call at all (the ClientToken is not even needed).
        for try_number in (2, 3, 4):
            retry = FakeTaskInstance(run_id=ti.run_id, try_number=try_number)
            assert deferred_try(document, role, retry) == (first, 0)
        assert executions(local_server, document) == [first]
    finally:
        stop_all(local_server, document)


def test_after_a_failed_execution_one_fresh_execution_starts_and_later_tries_attach_to_it(
    local_server: LocalAutomationServer, document: str, role: str
) -> None:
    ti = FakeTaskInstance(run_id=unique("run"))
    failed = deferred_execution(document, role, ti)
    try:
        cancel(local_server, failed)  # ended without success: the next try must not report it again
        fresh = deferred_execution(document, role, FakeTaskInstance(run_id=ti.run_id, try_number=2))
        assert fresh != failed
        # Killed right after that start: the next tries find the fresh one, never a third execution.
        for try_number in (3, 4):
            retry = FakeTaskInstance(run_id=ti.run_id, try_number=try_number)
            assert deferred_execution(document, role, retry) == fresh
        assert executions(local_server, document) == sorted([failed, fresh])
    finally:
        stop_all(local_server, document)


def test_mapped_task_instances_each_find_their_own_execution(
    local_server: LocalAutomationServer, document: str, role: str
) -> None:
    run_id = unique("run")
    started = {index: deferred_execution(document, role, FakeTaskInstance(run_id, index)) for index in (0, 1)}
    try:
        assert started[0] != started[1]
        for index in (1, 0):
            retry = FakeTaskInstance(run_id, index, try_number=2)
            assert deferred_execution(document, role, retry) == started[index]
        assert executions(local_server, document) == sorted(started.values())
    finally:
        stop_all(local_server, document)


def test_a_changed_idempotency_key_starts_a_deliberately_new_execution(
    local_server: LocalAutomationServer, document: str, role: str
) -> None:
    ti = FakeTaskInstance(run_id=unique("run"))
    first = deferred_execution(document, role, ti, idempotency_key="a")
    try:
        second = deferred_execution(document, role, ti, idempotency_key="b")
        assert second != first
        assert executions(local_server, document) == sorted([first, second])
    finally:
        stop_all(local_server, document)


def test_without_room_for_the_identity_tag_the_token_still_prevents_a_duplicate(
    *,
    local_server: LocalAutomationServer,
    document: str,
    role: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"documents:\n  {document}:\n    roles: ['{role}']\n"
        "    required_tags: {CostCenter: CC-1, Team: platform}\n"
    )
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(policy))
    ti = FakeTaskInstance(run_id=unique("run"))
    first = deferred_execution(document, role, ti)
    try:
        assert not any(key.startswith(IDENTITY_TAG_PREFIX) for key in tags_of(local_server, first))
        retry = FakeTaskInstance(run_id=ti.run_id, try_number=2)
        # Nothing to find by tag, so the retry calls StartAutomationExecution: its ClientToken returns the
        # same execution.
        assert deferred_try(document, role, retry) == (first, 1)
        assert executions(local_server, document) == [first]
    finally:
        stop_all(local_server, document)
