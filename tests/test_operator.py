"""SsmStartAutomationExecutionOperator (and the stop/signal operators) against a Stubber-backed hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import ANY, Stubber

from airflow_ssm_delegate.compat import AirflowException, TaskDeferred
from airflow_ssm_delegate.idempotency import STATE_STORE_KEY, TaskIdentity, derive_client_token
from airflow_ssm_delegate.links.automation import SsmAutomationExecutionLink
from airflow_ssm_delegate.operators.automation import (
    SsmSendAutomationSignalOperator,
    SsmStartAutomationExecutionOperator,
    SsmStopAutomationExecutionOperator,
)
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger
from tests.test_trigger import new_id

if TYPE_CHECKING:
    from airflow_ssm_delegate.hooks.automation import SsmAutomationHook
    from tests.fixtures.stubbed_ssm import FastClock

# The blocking loop's and the backoff's waits pass on simulated time, instantly.
pytestmark = pytest.mark.usefixtures("clock")

ROLE = "arn:aws:iam::123456789012:role/LaunchRole"
RUNBOOK = """
schemaVersion: '0.3'
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole: {type: String}
  Count: {type: Integer, default: 1}
outputs: [launch.InstanceIds]
mainSteps:
  - name: launch
    action: aws:runInstances
    inputs: {ImageId: ami-12345678, MinInstanceCount: '{{ Count }}', MaxInstanceCount: '{{ Count }}'}
"""


class FakeTaskInstance:
    """The few task-instance attributes the operator reads, and an XCom recorder."""

    def __init__(self, run_id: str = "manual__1", map_index: int = -1, try_number: int = 1) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "dag", "launch", run_id, map_index
        self.try_number = try_number
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class FakeStateStore:
    """Dict-backed ``task_state_store``: survives between tries like the real one does."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def context(
    ti: FakeTaskInstance | None = None, store: FakeStateStore | None = None, *, state_store: bool = True
) -> Any:
    """A task context as Airflow 3.3 gives it (an empty state store unless ``store``); ``state_store=False``
    is Airflow < 3.3, where the operator re-attaches by its identity tag (tests/test_compat_reattach.py)."""
    ctx: dict[str, Any] = {"ti": ti or FakeTaskInstance()}
    if state_store:
        ctx["task_state_store"] = store if store is not None else FakeStateStore()
    return ctx


def operator(hook: SsmAutomationHook, **kwargs: Any) -> SsmStartAutomationExecutionOperator:
    arguments: dict[str, Any] = {
        "task_id": "launch",
        "document_name": "Launch",
        "parameters": {"Count": 2},
        "service_role_arn": ROLE,
        "aws_conn_id": None,
        "region_name": "us-east-1",
        "deferrable": False,
        "step_aware": False,
        "waiter_delay": 30,
        **kwargs,
    }
    op = SsmStartAutomationExecutionOperator(**arguments)
    op.__dict__["hook"] = hook
    return op


def add_runbook(stub: Stubber) -> None:
    stub.add_response(
        "get_document",
        {"Name": "Launch", "DocumentVersion": "1", "Content": RUNBOOK, "DocumentFormat": "YAML"},
        {"Name": "Launch"},
    )
    stub.add_response(
        "describe_document",
        {"Document": {"Name": "Launch", "DocumentVersion": "1", "DocumentType": "Automation"}},
        {"Name": "Launch", "DocumentVersion": "1"},
    )


def add_start(stub: Stubber, execution_id: str, token: Any = ANY) -> None:
    stub.add_response(
        "start_automation_execution",
        {"AutomationExecutionId": execution_id},
        {
            "DocumentName": "Launch",
            "DocumentVersion": "1",
            "Parameters": {"Count": ["2"], "AutomationAssumeRole": [ROLE]},
            "ClientToken": token,
            "Mode": "Auto",
        },
    )


def add_get(stub: Stubber, execution_id: str, status: str, **extra: Any) -> None:
    stub.add_response(
        "get_automation_execution",
        {
            "AutomationExecution": {
                "AutomationExecutionId": execution_id,
                "AutomationExecutionStatus": status,
                "DocumentName": "Launch",
                **extra,
            }
        },
        {"AutomationExecutionId": execution_id},
    )


def test_runs_to_success_and_returns_outputs(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_runbook(stub)
    add_start(stub, execution_id)
    add_get(stub, execution_id, "InProgress")
    add_get(stub, execution_id, "Success", Outputs={"launch.InstanceIds": ["i-0abc"]})
    add_get(stub, execution_id, "Success", Outputs={"launch.InstanceIds": ["i-0abc"]})
    ti = FakeTaskInstance()
    result = operator(hook).execute(context(ti))
    assert result == {
        "execution_id": execution_id,
        "status": "Success",
        "outputs": {"launch.InstanceIds": ["i-0abc"]},
    }
    assert ti.xcoms["execution_id"] == execution_id
    link = ti.xcoms[SsmAutomationExecutionLink.key]
    assert link == {"region_name": "us-east-1", "aws_partition": "aws", "execution_id": execution_id}
    assert ROLE not in str(ti.xcoms) + str(result)  # parameter values never reach XCom


def test_failed_execution_names_the_step_action_and_message(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_runbook(stub)
    add_start(stub, execution_id)
    failed_step = {
        "StepName": "launch",
        "Action": "aws:runInstances",
        "StepStatus": "Failed",
        "FailureMessage": "You are not authorized to perform ec2:RunInstances",
        "FailureDetails": {"FailureType": "Permission"},
    }
    for _ in range(2):
        add_get(stub, execution_id, "Failed", StepExecutions=[failed_step])
    with pytest.raises(
        AirflowException, match=r"'launch' \(aws:runInstances\) Failed: You are not authorized"
    ):
        operator(hook).execute(context())


def test_deferrable_raises_task_deferred_with_the_trigger(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_runbook(stub)
    add_start(stub, execution_id)
    op = operator(hook, deferrable=True, waiter_delay=45, waiter_max_attempts=100, botocore_config={"x": 1})
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, SsmAutomationExecutionTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["execution_id"] == execution_id
    assert kwargs["waiter_delay"] == 45
    assert kwargs["botocore_config"] == {"x": 1}
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None
    assert deferred.value.timeout.total_seconds() == 4500


def test_deferrable_retry_reattached_to_an_ended_execution_reports_it_without_deferring(
    hook_and_stub: Any,
) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    store = FakeStateStore()
    store.set(STATE_STORE_KEY, execution_id)
    add_get(stub, execution_id, "Success")  # re-attach decision
    add_get(stub, execution_id, "Success")  # ended already: no deferral
    add_get(stub, execution_id, "Success", Outputs={"launch.InstanceIds": ["i-1"]})
    op = operator(hook, deferrable=True)
    result = op.execute(context(FakeTaskInstance(try_number=2), store))
    assert result == {
        "execution_id": execution_id,
        "status": "Success",
        "outputs": {"launch.InstanceIds": ["i-1"]},
    }
    stub.assert_no_pending_responses()


def test_execute_complete_validates_the_event(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_get(stub, execution_id, "Success", Outputs={"launch.InstanceIds": ["i-1"]})
    op = operator(hook)
    event = {"status": "success", "execution_id": execution_id, "execution_status": "Success"}
    assert op.execute_complete(context(), event)["outputs"] == {"launch.InstanceIds": ["i-1"]}
    with pytest.raises(AirflowException, match="Malformed event"):
        op.execute_complete(context(), {"status": "bogus"})
    with pytest.raises(AirflowException, match="Lost track of automation execution"):
        op.execute_complete(context(), {"status": "error", "execution_id": execution_id, "message": "boom"})


def test_new_try_reattaches_through_the_state_store(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    store = FakeStateStore()
    store.set(STATE_STORE_KEY, execution_id)
    add_get(stub, execution_id, "InProgress")  # the re-attach check: no start call at all
    result = operator(hook, wait_for_completion=False)
    add_get(stub, execution_id, "InProgress")
    assert result.execute(context(store=store))["execution_id"] == execution_id


def test_retry_after_a_failed_execution_starts_a_new_one_deterministically(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    failed, fresh = new_id(), new_id()
    store = FakeStateStore()
    store.set(STATE_STORE_KEY, failed)
    identity = TaskIdentity("dag", "launch", "manual__1")
    add_get(stub, failed, "Failed")
    add_runbook(stub)
    add_start(stub, fresh, token=derive_client_token(identity, None, replaces_execution_id=failed))
    add_get(stub, fresh, "InProgress")
    result = operator(hook, wait_for_completion=False).execute(context(store=store))
    assert result["execution_id"] == fresh
    assert store.get(STATE_STORE_KEY) == fresh


def test_client_token_is_derived_from_the_task_instance(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    identity = TaskIdentity("dag", "launch", "scheduled__2026", 3)
    add_runbook(stub)
    add_start(stub, execution_id, token=derive_client_token(identity, "key-1"))
    add_get(stub, execution_id, "InProgress")
    op = operator(hook, wait_for_completion=False, idempotency_key="key-1")
    op.execute(context(FakeTaskInstance("scheduled__2026", 3)))


def test_reattach_false_sends_no_token(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_runbook(stub)
    stub.add_response(
        "start_automation_execution",
        {"AutomationExecutionId": execution_id},
        {"DocumentName": "Launch", "DocumentVersion": "1", "Parameters": ANY, "Mode": "Auto"},
    )
    add_get(stub, execution_id, "InProgress")
    store = FakeStateStore()
    operator(hook, wait_for_completion=False, reattach=False).execute(context(store=store))
    assert store.values == {}


def test_parameter_mismatch_between_tries_is_explained(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    add_runbook(stub)
    stub.add_client_error("start_automation_execution", "IdempotentParameterMismatch", "token reused")
    with pytest.raises(AirflowException, match="different arguments"):
        operator(hook).execute(context())


def test_account_limit_waits_and_retries_the_start(hook_and_stub: Any, clock: FastClock) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_runbook(stub)
    stub.add_client_error(
        "start_automation_execution", "AutomationExecutionLimitExceededException", "100 running"
    )
    add_runbook(stub)
    add_start(stub, execution_id)
    add_get(stub, execution_id, "InProgress")
    started = clock.now()
    assert operator(hook, wait_for_completion=False).execute(context())["execution_id"] == execution_id
    assert (clock.now() - started).total_seconds() >= 15  # it waited before trying again


def test_on_kill_cancels_a_running_execution(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    stub.add_response(
        "stop_automation_execution", {}, {"AutomationExecutionId": execution_id, "Type": "Cancel"}
    )
    op = operator(hook)
    op.on_kill()  # nothing started yet: no call
    op.execution_id = execution_id
    op.on_kill()
    operator(hook, cancel_on_kill=False).on_kill()


def test_waiter_max_attempts_bounds_the_blocking_wait(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    add_runbook(stub)
    add_start(stub, execution_id)
    add_get(stub, execution_id, "InProgress")
    with pytest.raises(AirflowException, match="still InProgress after"):
        operator(hook, waiter_delay=10, waiter_max_attempts=1).execute(context())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"document_name": ""}, "needs document_name"),
        ({"mode": "Manual"}, "mode must be"),
        ({"waiter_max_attempts": 0}, "waiter_max_attempts must be at least 1"),
        ({"waiter_delay": 0}, "waiter_delay must be a positive"),
    ],
)
def test_bad_arguments_are_refused_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SsmStartAutomationExecutionOperator(task_id="t", **{"document_name": "Launch", **kwargs})


def test_stop_operator(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    stub.add_response(
        "stop_automation_execution", {}, {"AutomationExecutionId": execution_id, "Type": "Complete"}
    )
    op = SsmStopAutomationExecutionOperator(task_id="stop", execution_id=execution_id, stop_type="Complete")
    op.__dict__["hook"] = hook
    op.execute(context())
    with pytest.raises(ValueError, match="stop_type must be one of"):
        SsmStopAutomationExecutionOperator(task_id="stop", execution_id=execution_id, stop_type="Abort")


def test_signal_operator(hook_and_stub: Any) -> None:
    hook, stub = hook_and_stub
    execution_id = new_id()
    stub.add_response(
        "send_automation_signal",
        {},
        {"AutomationExecutionId": execution_id, "SignalType": "Approve", "Payload": {"Comment": ["ok"]}},
    )
    op = SsmSendAutomationSignalOperator(
        task_id="approve", execution_id=execution_id, signal_type="Approve", payload={"Comment": "ok"}
    )
    op.__dict__["hook"] = hook
    op.execute(context())
    with pytest.raises(ValueError, match="signal_type must be one of"):
        SsmSendAutomationSignalOperator(task_id="s", execution_id=execution_id, signal_type="Continue")
    start_step = SsmSendAutomationSignalOperator(
        task_id="s", execution_id=execution_id, signal_type="StartStep"
    )
    with pytest.raises(ValueError, match="needs payload"):
        start_step.execute(context())


def test_rendering_masks_secret_looking_parameter_values() -> None:
    from airflow.providers.common.compat.sdk import redact

    op = SsmStartAutomationExecutionOperator(
        task_id="launch", document_name="Launch", parameters={"DbPassword": "{{ 'hunter2-' ~ 'rendered' }}"}
    )
    op.render_template_fields(context())
    assert op.parameters == {"DbPassword": "hunter2-rendered"}
    assert "hunter2-rendered" not in str(redact("connect with hunter2-rendered"))


def test_the_console_link_is_declared_for_the_ui() -> None:
    assert any(
        isinstance(link, SsmAutomationExecutionLink)
        for link in SsmStartAutomationExecutionOperator.operator_extra_links
    )
