"""The batched poller: 10 executions per DescribeAutomationExecutions call, and the per-execution fallback."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.connection import ConnectionSettings
from airflow_ssm_delegate.triggers.poller import BatchedPoller, get_poller
from tests.test_trigger import add_describe, metadata, new_id

if TYPE_CHECKING:
    from botocore.stub import Stubber

    from tests.fixtures.stubbed_ssm import FastClock

pytestmark = pytest.mark.usefixtures("clock")


def get_response(execution_id: str, status: str) -> dict[str, Any]:
    return {
        "AutomationExecution": {"AutomationExecutionId": execution_id, "AutomationExecutionStatus": status}
    }


async def test_twelve_due_executions_take_two_calls(hook_and_stub: tuple[Any, Stubber]) -> None:
    hook, stub = hook_and_stub
    ids = [new_id() for _ in range(12)]
    add_describe(stub, ids[:10], *(metadata(i, "InProgress") for i in ids[:10]))
    add_describe(stub, ids[10:], *(metadata(i, "Success") for i in ids[10:]))
    poller = BatchedPoller(lambda: hook)
    due = poller.due_in(0)
    results = await asyncio.gather(*(poller.status(i, due) for i in ids))
    assert [r["AutomationExecutionStatus"] for r in results] == ["InProgress"] * 10 + ["Success"] * 2
    assert poller.hook_calls == 2


async def test_not_yet_due_executions_ride_along(hook_and_stub: tuple[Any, Stubber]) -> None:
    hook, stub = hook_and_stub
    due_now, later = new_id(), [new_id() for _ in range(3)]
    add_describe(stub, [due_now, *later], *(metadata(i, "InProgress") for i in [due_now, *later]))
    poller = BatchedPoller(lambda: hook)
    waits = [poller.status(i, poller.due_in(600)) for i in later]
    results = await asyncio.gather(poller.status(due_now, poller.due_in(0)), *waits)
    assert len(results) == 4
    assert poller.hook_calls == 1  # the three later ones were answered by the same call


async def test_refused_batching_falls_back_to_one_call_each(hook_and_stub: tuple[Any, Stubber]) -> None:
    hook, stub = hook_and_stub
    first, second = new_id(), new_id()
    stub.add_client_error(
        "describe_automation_executions", "ValidationException", "ExecutionId filter not supported"
    )
    stub.add_response(
        "get_automation_execution", get_response(first, "InProgress"), {"AutomationExecutionId": first}
    )
    stub.add_response(
        "get_automation_execution", get_response(second, "Success"), {"AutomationExecutionId": second}
    )
    # later polls go straight to GetAutomationExecution
    stub.add_response(
        "get_automation_execution", get_response(first, "Success"), {"AutomationExecutionId": first}
    )
    poller = BatchedPoller(lambda: hook)
    now = poller.due_in(0)
    one, two = await asyncio.gather(poller.status(first, now), poller.status(second, now))
    assert (one["AutomationExecutionStatus"], two["AutomationExecutionStatus"]) == ("InProgress", "Success")
    assert poller.batching_refused
    again = await poller.status(first, poller.due_in(30))
    assert again["AutomationExecutionStatus"] == "Success"


async def test_execution_missing_from_the_listing_is_fetched_alone(
    hook_and_stub: tuple[Any, Stubber],
) -> None:
    hook, stub = hook_and_stub
    known, unknown = new_id(), new_id()
    add_describe(stub, [known, unknown], metadata(known, "Success"))
    stub.add_client_error(
        "get_automation_execution", "AutomationExecutionNotFoundException", f"{unknown} does not exist"
    )
    poller = BatchedPoller(lambda: hook)
    now = poller.due_in(0)
    results: list[Any] = await asyncio.gather(
        poller.status(known, now), poller.status(unknown, now), return_exceptions=True
    )
    found, missing = results
    assert isinstance(found, dict)
    assert found["AutomationExecutionStatus"] == "Success"
    assert isinstance(missing, Exception)
    assert "does not exist" in str(missing)
    assert not poller.batching_refused


async def test_a_cancelled_waiter_is_skipped(hook_and_stub: tuple[Any, Stubber]) -> None:
    hook, stub = hook_and_stub
    gone, staying = new_id(), new_id()
    add_describe(stub, [staying], metadata(staying, "Success"))
    poller = BatchedPoller(lambda: hook)
    abandoned = asyncio.ensure_future(poller.status(gone, poller.due_in(60)))
    await asyncio.sleep(0)
    abandoned.cancel()
    result = await poller.status(staying, poller.due_in(120))
    assert result["AutomationExecutionStatus"] == "Success"


async def test_one_poller_per_connection_settings_and_loop() -> None:
    default = ConnectionSettings(aws_conn_id="a", botocore_config={"x": 1})
    assert get_poller(default) is get_poller(ConnectionSettings(aws_conn_id="a", botocore_config={"x": 1}))
    assert get_poller(default) is not get_poller(ConnectionSettings(aws_conn_id="b"))


async def test_an_installed_clock_overrides_the_endpoint_clock(clock: FastClock) -> None:
    poller = BatchedPoller(lambda: None)  # type: ignore[arg-type,return-value]
    assert poller.due_in(90) == clock.now() + timedelta(seconds=90)
