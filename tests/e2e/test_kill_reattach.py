"""A task process SIGKILLed right after StartAutomationExecution: its retry re-attaches (issue 10).

Real processes: api-server, scheduler with LocalExecutor, dag-processor and triggerer on a fresh PostgreSQL
database, the local runtime in its own process. The task waits in its worker (not deferred) on a
``LongRunningMaintenance`` execution that stops at its approval step. As soon as the runtime has the
execution, the test SIGKILLs the task's process (``airflow worker -- <ti id>``, the title the Task SDK
gives it) together with its supervisor, the LocalExecutor worker: a lost worker (OOM kill, node loss) —
no ``on_kill``, no cleanup, nothing recorded after the start, nobody left to report the try. The scheduler
finds the try without heartbeat, fails it into its retry and queues try 2, which must find the same
execution (deterministic ClientToken; the task state store on 3.3, the audit tags before it): exactly one
execution on the runtime.

Why the supervisor too: Airflow 3.1+ turns a task process killed under a live supervisor into a retry
(``UP_FOR_RETRY``), but Airflow 3.0's supervisor reports it ``failed`` with no retry at all; a lost worker
goes through the scheduler's heartbeat timeout, which honours retries on every Airflow 3 minor.

This runs in the newest minor (the full suite) and in the oldest one (``make test``'s 3.0 cell).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import (
    LocalRuntime,
    audit_tags,
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

DAG_ID = "e2e_kill_reattach"
TASK_ID = "maintain"
DOCUMENT = "LongRunningMaintenance"
KILL_DAG = f'''
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
    SsmStartAutomationExecutionOperator(
        task_id="{TASK_ID}",
        document_name="{DOCUMENT}",
        parameters={{
            "InstanceId": "{{{{ var.value.maintenance_instance_id }}}}",
            "Approvers": ["{{{{ var.value.maintenance_approver }}}}"],
            "FirstWindow": "PT1M",
            "SecondWindow": "PT1M",
        }},
        deferrable=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
'''
TIME_SCALE = 60  # the approval step (24 h timeout) waits for the test, not for the clock
# A try whose worker is gone is failed (into its retry) after this many seconds without a heartbeat.
HEARTBEAT_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
}


@pytest.fixture(scope="module")
def kill_world(
    airflow_stacks: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LocalRuntime, Story]]:
    workdir = tmp_path_factory.mktemp("kill-reattach")
    dags = write_dags(workdir / "dags", {f"{DAG_ID}.py": KILL_DAG})
    with local_runtime(workdir / "runtime", time_scale=TIME_SCALE) as runtime:
        story = runtime.provision_story(workdir / "story")
        with airflow_stacks.stack(dags_folder=dags, extra_env={**story_env(story), **HEARTBEAT_ENV}) as stack:
            install_fast_polling(stack.home)
            stack.start_all()
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            yield stack, runtime, story


def task_process(title: str) -> int | None:
    """The pid whose command line (set by setproctitle) is ``title``, if one runs now."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
        except OSError:
            continue  # exited meanwhile
        if cmdline.decode(errors="replace") == title:
            return int(entry.name)
    return None


def parent_pid(pid: int) -> int:
    """The parent of ``pid`` (field 4 of /proc/PID/stat, after the parenthesised command name)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def executions_of_run(runtime: LocalRuntime, run_id: str) -> list[str]:
    return [
        e["AutomationExecutionId"]
        for e in runtime.executions(DOCUMENT)
        if audit_tags(runtime, e["AutomationExecutionId"]).get("airflow:run_id") == run_id
    ]


def test_a_task_killed_right_after_the_start_is_retried_onto_the_same_execution(
    kill_world: tuple[AirflowStack, LocalRuntime, Story],
) -> None:
    stack, runtime, story = kill_world
    before = {e["AutomationExecutionId"] for e in runtime.executions(DOCUMENT)}
    run_id = stack.trigger_dag(DAG_ID)

    [(ti_id,)] = wait_until(
        lambda: stack.sql(
            "SELECT id FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s "
            "AND state = 'running'",
            (DAG_ID, run_id, TASK_ID),
        ),
        timeout=120,
        what=f"{TASK_ID} of {run_id} to run",
        diagnostics=stack.logs_report,
    )
    title = f"airflow worker -- {ti_id}"
    pid = wait_until(
        lambda: task_process(title), timeout=60, what=f"a process titled {title!r}", interval=0.05
    )
    supervisor = parent_pid(pid)
    started = wait_until(
        lambda: {e["AutomationExecutionId"] for e in runtime.executions(DOCUMENT)} - before,
        timeout=60,
        interval=0.05,
        what=f"StartAutomationExecution of {DOCUMENT} by {TASK_ID}",
        diagnostics=stack.logs_report,
    )
    os.kill(supervisor, signal.SIGKILL)  # first: nothing may report the try's end
    os.kill(pid, signal.SIGKILL)
    [execution_id] = started

    # Try 2 runs (the scheduler's retry after the heartbeat timeout) and waits on try 1's execution.
    wait_until(
        lambda: stack.sql(
            "SELECT 1 FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s "
            "AND try_number = 2 AND state = 'running'",
            (DAG_ID, run_id, TASK_ID),
        ),
        timeout=120,
        what=f"try 2 of {TASK_ID} to run",
        diagnostics=lambda: f"{stack.task_states(DAG_ID, run_id)}\n{stack.logs_report()}",
    )
    assert task_process(title) != pid
    execution = wait_for_execution_status(runtime, execution_id, {"Waiting"}, timeout=60)
    assert execution["CurrentStepName"] == "approveMaintenance"
    story.client("ssm", story.operator).send_automation_signal(
        AutomationExecutionId=execution_id, SignalType="Approve", Payload={"Comment": ["approved by e2e"]}
    )

    assert stack.wait_for_run(DAG_ID, run_id, timeout=240) == "success"
    [(state, try_number)] = stack.sql(
        "SELECT state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        (DAG_ID, run_id, TASK_ID),
    )
    assert (state, try_number) == ("success", 2)
    # Try 1 ended because its worker died, not by any decision of ours.
    [(first_try_state,)] = stack.sql(
        "SELECT state FROM task_instance_history WHERE dag_id = %s AND run_id = %s AND task_id = %s "
        "AND try_number = 1",
        (DAG_ID, run_id, TASK_ID),
    )
    assert first_try_state in {"failed", "up_for_retry"}
    result = stack.xcom(DAG_ID, run_id, TASK_ID)
    assert (result["execution_id"], result["status"]) == (execution_id, "Success")
    # Exactly one execution for this run: the retry re-attached instead of starting another.
    assert executions_of_run(runtime, run_id) == [execution_id]
    assert {e["AutomationExecutionId"] for e in runtime.executions(DOCUMENT)} - before == {execution_id}
