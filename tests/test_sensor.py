"""SsmAutomationExecutionSensor: poke, failure reasons, deferral (it never cancels what it did not start)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ssm_delegate.compat import AirflowException, TaskDeferred
from airflow_ssm_delegate.sensors.automation import SsmAutomationExecutionSensor
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger
from tests.test_operator import add_get, context
from tests.test_trigger import new_id


def sensor(hook: Any, execution_id: str, **kwargs: Any) -> SsmAutomationExecutionSensor:
    task = SsmAutomationExecutionSensor(
        task_id="watch", execution_id=execution_id, aws_conn_id=None, deferrable=False, **kwargs
    )
    task.__dict__["hook"] = hook
    return task


def test_poke_follows_the_status(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_get(stub, execution_id, "Waiting")
    add_get(stub, execution_id, "Success")
    watch = sensor(hook, execution_id)
    assert watch.poke(context()) is False
    assert watch.poke(context()) is True


def test_poke_fails_with_the_reason(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_get(stub, execution_id, "Cancelled", FailureMessage="Cancelled by user")
    with pytest.raises(AirflowException, match="ended Cancelled: Cancelled by user"):
        sensor(hook, execution_id).poke(context())


def test_deferrable_sensor_defers_without_cancel_on_kill(hook_and_stub: Any) -> None:
    hook, _ = hook_and_stub
    execution_id = new_id()
    watch = sensor(hook, execution_id, poke_interval=20, timeout=600)
    watch.deferrable = True
    with pytest.raises(TaskDeferred) as deferred:
        watch.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, SsmAutomationExecutionTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["execution_id"] == execution_id
    assert kwargs["cancel_on_kill"] is False
    assert kwargs["waiter_delay"] == 20
    assert deferred.value.timeout is not None
    assert deferred.value.timeout.total_seconds() == 600


def test_execute_complete_refuses_an_event_about_another_execution(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    watch = sensor(hook, execution_id)
    with pytest.raises(AirflowException, match="this task watches"):
        watch.execute_complete(context(), {"status": "success", "execution_id": new_id()})
    add_get(stub, execution_id, "Success")
    event = {"status": "success", "execution_id": execution_id}
    assert watch.execute_complete(context(), event)["status"] == "Success"
