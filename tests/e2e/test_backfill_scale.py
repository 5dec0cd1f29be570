"""A backfill of 300 intervals of a deferrable maintenance DAG, on real Airflow against the local runtime.

Scheduler, triggerer and LocalExecutor on PostgreSQL (the stack of ``tests.fixtures.airflow_stack``); the
runtime in its own process at its default quotas (100 running executions, 1,000 queued). Each interval's
``maintain`` task starts a short runbook (16 hours of ``aws:sleep``, 32 seconds at 1800x), defers, and
is resumed by the triggerer. A trigger that fires before the scheduler has seen the deferring worker exit
makes Airflow 3.3.2 fail the resumed try ("state mismatch", apache/airflow#72716); on a heavily loaded
machine the scheduler can take over a minute to see it, so the window is long and the task has retries, as
a production maintenance task would: a retry re-attaches to its interval's execution (never a second one).
The ``ssm_automation`` pool (deferred tasks included) has fewer slots than the backfill's active runs, so of
Airflow's limits the pool is the one that bounds the executions running at once (on a loaded machine the
executor may turn tasks over too slowly to fill it).

How the bounds are measured, not timed:
- the pool, from Airflow's database: the task instances holding a slot (queued, running, deferred), sampled
  while the backfill runs;
- the executions at once, from the runtime's own records after the fact: an execution counts against the
  account's quota from its ``ExecutionStartTime`` (admission) to its ``ExecutionEndTime`` (release), so the
  most intervals covering one instant is the most the quota object ever counted (running plus Pending).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.local.quotas import DEFAULT_MAX_RUNNING
from tests.e2e.support import (
    LocalRuntime,
    install_fast_polling,
    local_runtime,
    most_at_once,
    set_automation_pool,
    story_env,
)
from tests.fixtures.airflow_stack import AirflowStack, StackFactory, wait_until, write_dags

if TYPE_CHECKING:
    from collections.abc import Iterator

# 300 intervals take minutes even on an idle 2-core machine (each task is two worker processes: start and
# resume); on a shared, loaded one, longer than pytest's default 600 s timeout.
BACKFILL_TIMEOUT = 1500
pytestmark = [pytest.mark.slow, pytest.mark.timeout(BACKFILL_TIMEOUT + 300)]

INTERVALS = 300
DAG_ID = "e2e_backfill_scale"
TASK_ID = "maintain"
DOCUMENT = "E2eShortMaintenance"
POOL_SLOTS = 48
BACKFILL_ACTIVE_RUNS = POOL_SLOTS + 16  # more runs than slots: max_active_runs never bounds before the pool
# A task's two workloads (start and defer, then resume) each spend seconds in a worker, mostly waiting on
# the loaded CPU and the execution API; more executor slots than the stack's default 8 keep the CPU busy.
THROUGHPUT_ENV = {
    "AIRFLOW__CORE__PARALLELISM": "12",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(BACKFILL_ACTIVE_RUNS),
}
TIME_SCALE = 1800
FIRST_DAY = date(2025, 1, 1)  # daily intervals, all long before "now"
HOLDING_STATES = ("queued", "running", "deferred")  # a task instance in these holds a pool slot
# The scheduler makes no runs of its own (catchup would add every daily interval since FIRST_DAY).
NO_SCHEDULED_RUNS = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}

RUNBOOK = """\
schemaVersion: '0.3'
description: A short maintenance window (the backfill scale test's runbook).
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole:
    type: String
    description: The service role the runbook runs as.
  Window:
    type: String
    description: Length of the maintenance window (ISO-8601 duration).
    default: PT16H
mainSteps:
  - name: window
    action: aws:sleep
    isEnd: true
    inputs:
      Duration: '{{ Window }}'
"""

DAG = f'''
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_ssm_delegate.examples import AUTOMATION_POOL
from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

with DAG(
    "{DAG_ID}",
    schedule="@daily",
    start_date=datetime({FIRST_DAY.year}, {FIRST_DAY.month}, {FIRST_DAY.day}, tzinfo=timezone.utc),
    catchup=True,
    max_active_runs={BACKFILL_ACTIVE_RUNS},
):
    SsmStartAutomationExecutionOperator(
        task_id="{TASK_ID}",
        document_name="{DOCUMENT}",
        idempotency_key="maintenance-{{{{ ds }}}}",
        deferrable=True,
        pool=AUTOMATION_POOL,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )
'''


@dataclass
class PoolSampler:
    """The most ``maintain`` task instances seen holding a pool slot at once (Airflow's database)."""

    stack: AirflowStack
    max_holding: int = 0
    deferred_seen: bool = False
    samples: int = 0
    wall_seconds: float = 0.0  # reported (-s), never asserted

    def sample(self) -> None:
        rows = self.stack.sql(
            "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND task_id = %s GROUP BY state",
            (DAG_ID, TASK_ID),
        )
        counts = {state: int(count) for state, count in rows}
        self.max_holding = max(self.max_holding, sum(counts.get(state, 0) for state in HOLDING_STATES))
        self.deferred_seen |= counts.get("deferred", 0) > 0
        self.samples += 1


@pytest.fixture(scope="module")
def scale_world(
    airflow_stacks: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LocalRuntime]]:
    workdir = tmp_path_factory.mktemp("backfill-scale")
    runbook = workdir / f"{DOCUMENT}.yaml"
    runbook.write_text(RUNBOOK)
    dags = write_dags(workdir / "dags", {f"{DAG_ID}.py": DAG})
    with local_runtime(workdir / "runtime", time_scale=TIME_SCALE) as runtime:
        story = runtime.provision_story(workdir / "story", extra_runbooks=[runbook])
        extra_env = {**story_env(story), **NO_SCHEDULED_RUNS, **THROUGHPUT_ENV}
        with airflow_stacks.stack(dags_folder=dags, extra_env=extra_env) as stack:
            install_fast_polling(stack.home)
            set_automation_pool(stack, POOL_SLOTS)
            stack.start_all()
            stack.wait_for_dag(DAG_ID)
            yield stack, runtime


@pytest.fixture(scope="module")
def backfill(scale_world: tuple[AirflowStack, LocalRuntime]) -> PoolSampler:
    stack, _ = scale_world
    last_day = FIRST_DAY + timedelta(days=INTERVALS - 1)
    stack.airflow(
        "backfill",
        "create",
        "--dag-id",
        DAG_ID,
        "--from-date",
        FIRST_DAY.isoformat(),
        "--to-date",
        last_day.isoformat(),
        "--max-active-runs",
        str(BACKFILL_ACTIVE_RUNS),
    )
    stack.unpause(DAG_ID)  # paused DAGs run nothing, backfills included
    sampler = PoolSampler(stack)
    started = time.monotonic()

    def all_finished() -> bool:
        sampler.sample()
        [(unfinished,)] = stack.sql(
            "SELECT count(*) FROM dag_run WHERE dag_id = %s AND state NOT IN ('success', 'failed')", (DAG_ID,)
        )
        return unfinished == 0

    wait_until(
        all_finished,
        timeout=BACKFILL_TIMEOUT,
        interval=0.5,
        what=f"the {INTERVALS} backfill runs to finish",
        diagnostics=lambda: f"{run_states(stack)}\n{stack.logs_report()}",
    )
    sampler.wall_seconds = time.monotonic() - started
    return sampler


def run_states(stack: AirflowStack) -> Counter[str]:
    return Counter(
        {
            f"{run_type}/{state}": int(count)
            for run_type, state, count in stack.sql(
                "SELECT run_type, state, count(*) FROM dag_run WHERE dag_id = %s GROUP BY run_type, state",
                (DAG_ID,),
            )
        }
    )


def test_every_interval_succeeds_with_exactly_one_execution(
    scale_world: tuple[AirflowStack, LocalRuntime], backfill: PoolSampler
) -> None:
    stack, runtime = scale_world
    assert run_states(stack) == {"backfill/success": INTERVALS}
    states = stack.sql(
        "SELECT state, count(*) FROM task_instance WHERE dag_id = %s GROUP BY state", (DAG_ID,)
    )
    assert states == [("success", INTERVALS)]  # no failed task
    [(retried,)] = stack.sql(
        "SELECT count(*) FROM task_instance WHERE dag_id = %s AND try_number > 1", (DAG_ID,)
    )
    print(f"{retried} of {INTERVALS} tasks needed a retry (apache/airflow#72716 under load)")
    assert backfill.deferred_seen

    executions = runtime.executions(DOCUMENT)
    assert Counter(e["AutomationExecutionStatus"] for e in executions) == {"Success": INTERVALS}
    results: list[tuple[str, dict[str, Any]]] = stack.sql(
        "SELECT run_id, value FROM xcom WHERE dag_id = %s AND task_id = %s AND key = 'return_value'",
        (DAG_ID, TASK_ID),
    )
    by_run = {run_id: result["execution_id"] for run_id, result in results}
    assert len(by_run) == INTERVALS
    # One execution per interval: each run's XCom names its own, and the runtime holds no other.
    assert sorted(by_run.values()) == sorted(e["AutomationExecutionId"] for e in executions)


def test_executions_at_once_stay_within_the_pool_and_the_quota(
    scale_world: tuple[AirflowStack, LocalRuntime], backfill: PoolSampler
) -> None:
    _, runtime = scale_world
    # Tasks ran side by side and never held more slots than the pool has. (Whether they fill it depends on
    # how fast this machine's CPU turns workloads over, so that is not asserted.)
    assert backfill.samples > 10
    assert 1 < backfill.max_holding <= POOL_SLOTS

    spans = [
        (e["ExecutionStartTime"].timestamp(), e["ExecutionEndTime"].timestamp())
        for e in runtime.executions(DOCUMENT)
    ]
    assert len(spans) == INTERVALS
    at_once = most_at_once(spans)
    print(
        f"{INTERVALS} intervals in {backfill.wall_seconds:.0f} s; at most {backfill.max_holding} of "
        f"{POOL_SLOTS} pool slots held, {at_once} executions at once"
    )
    assert 1 < at_once <= POOL_SLOTS <= DEFAULT_MAX_RUNNING
