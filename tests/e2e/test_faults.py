"""Process-level faults (issue 5) with real Airflow processes against the local runtime.

The fault DAG waits, deferred, on a ``LongRunningMaintenance`` execution that stops at its approval
step — a wait only the test ends, so each fault lands while the trigger is watching:

- a triggerer restarted mid-wait: the trigger is not cancelled by the shutdown, and the completion that
  happens while no triggerer runs is picked up by the next one (same try, same execution);
- a task cleared while deferred: Airflow 3.3 calls the trigger's ``on_kill``, which cancels the execution,
  so the runbook's ``onCancel`` step (restart the instance) runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.support import (
    LocalRuntime,
    install_fast_polling,
    local_runtime,
    story_env,
    wait_for_execution_status,
)
from tests.fixtures.airflow_stack import AirflowStack, StackFactory, wait_until, write_dags

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_ssm_delegate.local.story import Story

pytestmark = pytest.mark.slow

DAG_ID = "e2e_fault_maintenance"
TASK_ID = "maintain"
FAULT_DAG = f'''
from datetime import datetime, timezone

from airflow.sdk import DAG

from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
    SsmStartAutomationExecutionOperator(
        task_id="{TASK_ID}",
        document_name="LongRunningMaintenance",
        parameters={{
            "InstanceId": "{{{{ var.value.maintenance_instance_id }}}}",
            "Approvers": ["{{{{ var.value.maintenance_approver }}}}"],
            "FirstWindow": "PT1M",
            "SecondWindow": "PT1M",
        }},
        deferrable=True,
    )
'''
# A minute of runbook time per second: the approval step (24 h timeout) waits for the test, not the clock.
TIME_SCALE = 60
ON_KILL_LOG_LINE = "Trigger cancelled by user action, invoking on_kill"


@pytest.fixture(scope="module")
def fault_world(
    airflow_stacks: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LocalRuntime, Story]]:
    workdir = tmp_path_factory.mktemp("faults")
    dags = write_dags(workdir / "dags", {f"{DAG_ID}.py": FAULT_DAG})
    with local_runtime(workdir / "runtime", time_scale=TIME_SCALE) as runtime:
        story = runtime.provision_story(workdir / "story")
        # A stopped triggerer's triggers go to another one once its heartbeat is this many seconds old.
        env = {**story_env(story), "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10"}
        with airflow_stacks.stack(dags_folder=dags, extra_env=env) as stack:
            install_fast_polling(stack.home)
            stack.start_all()
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            yield stack, runtime, story


def maintain_state(stack: AirflowStack, run_id: str) -> str | None:
    return stack.task_states(DAG_ID, run_id).get(TASK_ID)


def start_and_wait_for_approval_step(stack: AirflowStack, runtime: LocalRuntime) -> tuple[str, str]:
    """Trigger a run; return (run_id, execution_id) once the task is deferred and the runbook waits."""
    run_id = stack.trigger_dag(DAG_ID)
    wait_until(
        lambda: maintain_state(stack, run_id) == "deferred",
        timeout=120,
        what=f"{TASK_ID} of {run_id} to defer",
        diagnostics=stack.logs_report,
    )
    execution_id = str(stack.xcom(DAG_ID, run_id, TASK_ID, key="execution_id"))
    execution = wait_for_execution_status(runtime, execution_id, {"Waiting"}, timeout=60)
    assert execution["CurrentStepName"] == "approveMaintenance"
    wait_until(
        lambda: trigger_claimed(stack, run_id),
        timeout=60,
        what=f"the trigger of {TASK_ID} in {run_id} to be claimed by a triggerer",
        diagnostics=stack.logs_report,
    )
    # Airflow calls on_kill only for a trigger its runner has started (it starts claimed triggers on its
    # next loop, about a second later); a clear before that just deletes the trigger, and the new try
    # re-attaches to the still-running execution — Airflow's behaviour, not a case these tests are about.
    time.sleep(TRIGGER_START_MARGIN_S)
    return run_id, execution_id


TRIGGER_START_MARGIN_S = 3.0


def trigger_claimed(stack: AirflowStack, run_id: str) -> bool:
    rows = stack.sql(
        "SELECT t.triggerer_id FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
        "WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = %s",
        (DAG_ID, run_id, TASK_ID),
    )
    return bool(rows and rows[0][0] is not None)


def triggerer(stack: AirflowStack) -> Any:
    [process] = [p for p in stack.processes if p.name == "triggerer" and p.alive]
    return process


def step_statuses(execution: dict[str, Any]) -> dict[str, str]:
    return {step["StepName"]: step["StepStatus"] for step in execution["StepExecutions"]}


def test_completion_during_a_triggerer_restart_is_not_lost(
    fault_world: tuple[AirflowStack, LocalRuntime, Story],
) -> None:
    stack, runtime, story = fault_world
    run_id, execution_id = start_and_wait_for_approval_step(stack, runtime)

    triggerer(stack).stop()  # graceful: the trigger's cleanup runs, its on_kill must not
    assert runtime.execution(execution_id)["AutomationExecutionStatus"] == "Waiting"
    # The execution ends while no triggerer watches it.
    story.client("ssm", story.operator).send_automation_signal(
        AutomationExecutionId=execution_id, SignalType="Approve", Payload={"Comment": ["approved by e2e"]}
    )
    wait_for_execution_status(runtime, execution_id, {"Success"})
    assert maintain_state(stack, run_id) == "deferred"

    stack.start_triggerer()

    assert stack.wait_for_run(DAG_ID, run_id, timeout=180) == "success"
    [(state, try_number)] = stack.sql(
        "SELECT state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        (DAG_ID, run_id, TASK_ID),
    )
    assert (state, try_number) == ("success", 1)
    result = stack.xcom(DAG_ID, run_id, TASK_ID)
    assert (result["execution_id"], result["status"]) == (execution_id, "Success")
    started_for_run = [
        e for e in runtime.executions("LongRunningMaintenance") if e["AutomationExecutionId"] == execution_id
    ]
    assert len(started_for_run) == 1


def test_clearing_a_deferred_task_cancels_its_execution_and_runs_on_cancel(
    fault_world: tuple[AirflowStack, LocalRuntime, Story],
) -> None:
    stack, runtime, _ = fault_world
    run_id, execution_id = start_and_wait_for_approval_step(stack, runtime)

    stack.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {"dry_run": False, "dag_run_id": run_id, "task_ids": [TASK_ID], "only_failed": False},
    )

    execution = wait_for_execution_status(runtime, execution_id, {"Cancelled"}, timeout=120)
    steps = step_statuses(execution)
    assert steps["approveMaintenance"] == "Cancelled"
    assert steps["restartInstance"] == "Success", steps  # the onCancel step
    # Airflow's triggerer wrote this into the trigger's part of the task log: its on_kill did the cancelling.
    assert ON_KILL_LOG_LINE in stack.task_log(DAG_ID, run_id, TASK_ID, try_number=1)
