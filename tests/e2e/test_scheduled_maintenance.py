"""``long_running_maintenance`` under the scheduler, triggerer and LocalExecutor on PostgreSQL.

One ``airflow backfill create`` over three weekly intervals drives both tests of this module: each
maintenance task defers while its >12 h runbook runs (half an hour of runbook time per second here), the
triggerer resumes it, and the ``ssm_automation`` pool — given ONE slot, fewer than the DAG's
``max_active_runs`` of 2 — is what keeps the executions from overlapping, deferred tasks included.
While the backfill runs, the test samples both sides: task instance states in the metadata database and
the runtime's executions that have not ended.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.status import TERMINAL_STATUSES
from tests.e2e.support import (
    LocalRuntime,
    install_fast_polling,
    local_runtime,
    set_automation_pool,
    story_env,
)
from tests.fixtures.airflow_stack import AirflowStack, StackFactory, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

DAG_ID = "long_running_maintenance"
DOCUMENT = "LongRunningMaintenance"
TASK_ID = "maintain"
POOL_SLOTS = 1
# Saturdays 02:00 UTC: 2026-11-07, 11-14 and 11-21 — three intervals, all before "now" on these machines.
BACKFILL_FROM, BACKFILL_TO = "2026-11-06", "2026-11-22"
# The scheduler creates no runs of its own here ([scheduler] use_job_schedule off; backfill runs still
# run): with catchup=True it would otherwise add every weekly interval that fell due since the DAG's
# start_date and is not in the backfill — one more each week, which made a fourth execution in CI.
NO_SCHEDULED_RUNS = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
HOLDING_STATES = ("queued", "running", "deferred")  # a task instance in these holds a pool slot


@dataclass
class BackfillObservation:
    """What the sampler saw while the backfill ran, and how it ended."""

    run_ids: list[str]
    final_run_states: dict[str, str]
    maintain_states_seen: set[str] = field(default_factory=set)
    max_maintain_holding_slots: int = 0
    max_executions_in_flight: int = 0
    samples: int = 0

    def sample(self, stack: AirflowStack, runtime: LocalRuntime) -> None:
        rows = stack.sql(
            "SELECT state FROM task_instance WHERE dag_id = %s AND task_id = %s", (DAG_ID, TASK_ID)
        )
        states = [state for (state,) in rows if state]
        self.maintain_states_seen.update(states)
        holding = sum(1 for state in states if state in HOLDING_STATES)
        self.max_maintain_holding_slots = max(self.max_maintain_holding_slots, holding)
        in_flight = sum(
            1 for e in runtime.executions(DOCUMENT) if e["AutomationExecutionStatus"] not in TERMINAL_STATUSES
        )
        self.max_executions_in_flight = max(self.max_executions_in_flight, in_flight)
        self.samples += 1


@pytest.fixture(scope="module")
def maintenance_world(
    airflow_stacks: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LocalRuntime]]:
    workdir = tmp_path_factory.mktemp("maintenance")
    with local_runtime(workdir / "runtime", time_scale=1800) as runtime:
        story = runtime.provision_story(workdir / "story")
        with airflow_stacks.stack(extra_env={**story_env(story), **NO_SCHEDULED_RUNS}) as stack:
            install_fast_polling(stack.home)
            set_automation_pool(stack, POOL_SLOTS)
            stack.start_all()
            stack.wait_for_dag(DAG_ID)
            yield stack, runtime


@pytest.fixture(scope="module")
def backfill(maintenance_world: tuple[AirflowStack, LocalRuntime]) -> BackfillObservation:
    stack, runtime = maintenance_world
    stack.airflow(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", BACKFILL_FROM, "--to-date", BACKFILL_TO
    )
    # Paused DAGs run nothing, backfills included: unpause once the backfill exists (the scheduler makes
    # no runs of its own in this stack, see NO_SCHEDULED_RUNS).
    stack.unpause(DAG_ID)
    run_ids = [
        str(run_id)
        for (run_id,) in stack.sql(
            "SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY logical_date", (DAG_ID,)
        )
    ]
    observation = BackfillObservation(run_ids, {})

    def all_finished() -> bool:
        observation.sample(stack, runtime)
        states = {run_id: stack.run_state(DAG_ID, run_id) for run_id in run_ids}
        return all(state in ("success", "failed") for state in states.values())

    wait_until(
        all_finished,
        timeout=420,
        interval=0.5,
        what="the three backfill runs to finish",
        diagnostics=lambda: (
            "\n".join(f"{r}: {stack.task_states(DAG_ID, r)}" for r in run_ids) + f"\n{stack.logs_report()}"
        ),
    )
    observation.final_run_states = {run_id: str(stack.run_state(DAG_ID, run_id)) for run_id in run_ids}
    return observation


def test_backfill_over_three_intervals_makes_exactly_three_executions_within_the_pool(
    maintenance_world: tuple[AirflowStack, LocalRuntime], backfill: BackfillObservation
) -> None:
    stack, runtime = maintenance_world
    run_types = Counter(
        run_type for (run_type,) in stack.sql("SELECT run_type FROM dag_run WHERE dag_id = %s", (DAG_ID,))
    )
    assert run_types == {"backfill": 3}, run_types
    assert backfill.final_run_states == dict.fromkeys(backfill.run_ids, "success")

    executions = runtime.executions(DOCUMENT)
    assert len(executions) == 3, executions
    assert {e["AutomationExecutionStatus"] for e in executions} == {"Success"}
    # Each interval's XCom names its own execution: one execution per logical date, none shared.
    executed = {stack.xcom(DAG_ID, run_id, TASK_ID)["execution_id"] for run_id in backfill.run_ids}
    assert executed == {e["AutomationExecutionId"] for e in executions}

    # The pool (one slot, deferred tasks counted) bounded them, not max_active_runs (2).
    assert backfill.samples > 10
    assert backfill.max_maintain_holding_slots == POOL_SLOTS
    assert backfill.max_executions_in_flight == POOL_SLOTS


def test_maintenance_task_defers_and_the_triggerer_resumes_it(
    maintenance_world: tuple[AirflowStack, LocalRuntime], backfill: BackfillObservation
) -> None:
    stack, runtime = maintenance_world
    assert "deferred" in backfill.maintain_states_seen, backfill.maintain_states_seen
    rows = stack.sql(
        "SELECT run_id, state, try_number, next_method FROM task_instance WHERE dag_id = %s AND task_id = %s",
        (DAG_ID, TASK_ID),
    )
    # Success on the first try: the worker that resumed it continued the same try after the trigger fired.
    assert sorted((state, try_number) for _, state, try_number, _ in rows) == [("success", 1)] * 3
    assert stack.sql("SELECT count(*) FROM trigger")[0][0] == 0
    for run_id in backfill.run_ids:
        result: dict[str, Any] = stack.xcom(DAG_ID, run_id, TASK_ID)
        assert result["status"] == "Success"
        execution = runtime.execution(result["execution_id"])
        # Longer than the 12 hours a caller's session lasts: only possible under the service role.
        started, ended = execution["ExecutionStartTime"], execution["ExecutionEndTime"]
        assert (ended - started).total_seconds() > 12 * 3600
        assert {s["StepName"]: s["StepStatus"] for s in execution["StepExecutions"]}[
            "approveMaintenance"
        ] == ("Success")


def test_rerunning_an_interval_reattaches_to_its_execution(
    maintenance_world: tuple[AirflowStack, LocalRuntime], backfill: BackfillObservation
) -> None:
    """Idempotent per logical date: clearing a finished interval's maintenance starts no second execution."""
    stack, runtime = maintenance_world
    run_id = backfill.run_ids[0]
    first = stack.xcom(DAG_ID, run_id, TASK_ID)["execution_id"]

    stack.api(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {"dry_run": False, "dag_run_id": run_id, "task_ids": [TASK_ID], "only_failed": False},
    )

    assert stack.wait_for_run(DAG_ID, run_id, timeout=180) == "success"
    [(try_number,)] = stack.sql(
        "SELECT try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        (DAG_ID, run_id, TASK_ID),
    )
    assert try_number == 2
    assert stack.xcom(DAG_ID, run_id, TASK_ID)["execution_id"] == first
    assert len(runtime.executions(DOCUMENT)) == 3
