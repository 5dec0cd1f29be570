"""The local runtime's account quotas through boto3: a running limit, a Pending queue, then the error."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.local.quotas import ExecutionQuotas
from airflow_ssm_delegate.local.server import LocalAutomationServer
from tests.fixtures.local_runtime import error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HOLD = {"name": "hold", "action": "aws:pause", "inputs": {}}  # waits until stopped or resumed


@pytest.fixture
def ssm(boto_client: Callable[..., Any]) -> Any:
    return boto_client("ssm")


def publish(ssm: Any, steps: list[dict[str, Any]]) -> str:
    name = unique("Quota")
    content = json.dumps({"schemaVersion": "0.3", "mainSteps": steps})
    ssm.create_document(Name=name, Content=content, DocumentType="Automation", DocumentFormat="JSON")
    return name


@contextmanager
def quotas(server: LocalAutomationServer, max_running: int, max_queued: int) -> Iterator[ExecutionQuotas]:
    """Fresh quotas for this test only: executions other tests left running are not counted."""
    original = server.quotas
    server.quotas = ExecutionQuotas(max_running, max_queued)
    try:
        yield server.quotas
    finally:
        server.quotas = original


def status(ssm: Any, execution_id: str) -> str:
    return str(
        ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"][
            "AutomationExecutionStatus"
        ]
    )


def settled(ssm: Any, execution_id: str, leave: str = "Pending", timeout: float = 10.0) -> str:
    """The status once it is no longer ``leave`` (an admitted execution begins on a worker thread)."""
    deadline = time.monotonic() + timeout
    while (current := status(ssm, execution_id)) == leave and time.monotonic() < deadline:
        time.sleep(0.02)
    return current


def start(ssm: Any, name: str) -> str:
    return str(ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"])


def stop_all(ssm: Any, execution_ids: list[str]) -> None:
    for execution_id in execution_ids:
        if status(ssm, execution_id) not in ("Cancelled", "Success", "Failed"):
            ssm.stop_automation_execution(AutomationExecutionId=execution_id)


def test_beyond_the_limit_executions_wait_pending_and_start_in_order(
    local_server: LocalAutomationServer, ssm: Any
) -> None:
    name = publish(ssm, [HOLD])
    started: list[str] = []
    with quotas(local_server, max_running=2, max_queued=3) as limits:
        try:
            started = [start(ssm, name) for _ in range(5)]
            first, second, third, fourth, fifth = started
            assert [settled(ssm, first), settled(ssm, second)] == ["Waiting", "Waiting"]
            assert [status(ssm, e) for e in (third, fourth, fifth)] == ["Pending"] * 3
            assert (limits.running, limits.queued) == (2, 3)

            refused = error_of(lambda: ssm.start_automation_execution(DocumentName=name))
            assert refused["Code"] == "AutomationExecutionLimitExceededException"
            assert (
                "2 automation executions are running (limit 2) and 3 are queued (limit 3)"
                in refused["Message"]
            )

            ssm.stop_automation_execution(AutomationExecutionId=first)
            assert settled(ssm, third) == "Waiting"  # the oldest Pending one starts first
            assert [status(ssm, fourth), status(ssm, fifth)] == ["Pending", "Pending"]
            ssm.stop_automation_execution(AutomationExecutionId=second)
            assert settled(ssm, fourth) == "Waiting"
            assert status(ssm, fifth) == "Pending"
        finally:
            stop_all(ssm, started)


def test_a_pending_execution_can_be_stopped_and_frees_its_place(
    local_server: LocalAutomationServer, ssm: Any
) -> None:
    name = publish(ssm, [HOLD])
    started: list[str] = []
    with quotas(local_server, max_running=1, max_queued=1) as limits:
        try:
            started = [start(ssm, name), start(ssm, name)]
            running, pending = started
            assert settled(ssm, running) == "Waiting"
            ssm.stop_automation_execution(AutomationExecutionId=pending)
            assert settled(ssm, pending, leave="Cancelling") == "Cancelled"
            execution = ssm.get_automation_execution(AutomationExecutionId=pending)["AutomationExecution"]
            assert execution["StepExecutions"] == []  # it never ran
            assert (limits.running, limits.queued) == (1, 0)
            started.append(start(ssm, name))  # its place in the queue is free again
            assert status(ssm, started[-1]) == "Pending"
        finally:
            stop_all(ssm, started)


def test_child_executions_count_against_the_limit(local_server: LocalAutomationServer, ssm: Any) -> None:
    child = publish(ssm, [HOLD])
    parent = publish(
        ssm, [{"name": "run", "action": "aws:executeAutomation", "inputs": {"DocumentName": child}}]
    )
    started: list[str] = []
    with quotas(local_server, max_running=1, max_queued=5):
        try:
            started = [start(ssm, parent)]
            assert settled(ssm, started[0]) == "InProgress"
            children: list[dict[str, Any]] = []
            deadline = time.monotonic() + 10
            while not children and time.monotonic() < deadline:
                children = ssm.describe_automation_executions(
                    Filters=[{"Key": "ParentExecutionId", "Values": [started[0]]}]
                )["AutomationExecutionMetadataList"]
                time.sleep(0.02)
            assert [c["AutomationExecutionStatus"] for c in children] == [
                "Pending"
            ]  # the parent holds the slot
            started.append(children[0]["AutomationExecutionId"])
        finally:
            stop_all(ssm, started)


def test_defaults_are_awss_quotas() -> None:
    server = LocalAutomationServer()
    assert (server.quotas.max_running, server.quotas.max_queued) == (100, 1000)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_running": 0}, "max_running must be a whole number of at least 1, got 0"),
        ({"max_queued": -1}, "max_queued must be a whole number of at least 0, got -1"),
        ({"max_running": "5"}, "max_running must be a whole number of at least 1, got '5'"),
    ],
)
def test_bad_quotas_are_refused_when_constructed(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalAutomationServer(**arguments)
