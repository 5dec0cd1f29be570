"""The harness itself, proven with stock Airflow operators only (no project code involved).

If these fail, the end-to-end tests of the provider cannot be trusted either: they show that the
scheduler hands tasks to LocalExecutor workers which reach the api-server's execution API, and that a
deferred task travels scheduler -> triggerer -> worker on the PostgreSQL metadata database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.fixtures.airflow_stack import AirflowStack, StackFactory, write_dags

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pytest import TempPathFactory

pytestmark = pytest.mark.slow

PYTHON_DAG = """
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

with DAG("e2e_harness_python", schedule=None, catchup=False):
    PythonOperator(task_id="answer", python_callable=lambda: {"answer": 42})
"""

DEFERRING_DAG = '''
from datetime import timedelta

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import DAG, BaseOperator


class DeferThenResume(BaseOperator):
    """Defers to the triggerer, then returns from the method a worker resumes it in."""

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=4)), method_name="resume")

    def resume(self, context, event=None):
        return {"resumed_on_worker": True, "try_number": context["ti"].try_number}


with DAG("e2e_harness_deferring", schedule=None, catchup=False):
    DeferThenResume(task_id="wait")
'''


@pytest.fixture(scope="module")
def harness_stack(airflow_stacks: StackFactory, tmp_path_factory: TempPathFactory) -> Iterator[AirflowStack]:
    dags = write_dags(
        tmp_path_factory.mktemp("harness-dags"),
        {"e2e_harness_python.py": PYTHON_DAG, "e2e_harness_deferring.py": DEFERRING_DAG},
    )
    with airflow_stacks.stack(dags_folder=dags) as stack:
        stack.start_all()
        yield stack


def test_local_executor_runs_a_python_task_on_postgres(harness_stack: AirflowStack) -> None:
    harness_stack.wait_for_dag("e2e_harness_python")
    harness_stack.unpause("e2e_harness_python")
    run_id = harness_stack.trigger_dag("e2e_harness_python")

    assert harness_stack.wait_for_run("e2e_harness_python", run_id) == "success"
    assert harness_stack.xcom("e2e_harness_python", run_id, "answer") == {"answer": 42}


def test_deferred_task_goes_through_the_triggerer_and_resumes_on_a_worker(
    harness_stack: AirflowStack,
) -> None:
    harness_stack.wait_for_dag("e2e_harness_deferring")
    harness_stack.unpause("e2e_harness_deferring")
    run_id = harness_stack.trigger_dag("e2e_harness_deferring")
    seen: list[str | None] = []

    def sample() -> None:
        state = harness_stack.task_states("e2e_harness_deferring", run_id).get("wait")
        if not seen or seen[-1] != state:
            seen.append(state)

    assert harness_stack.wait_for_run("e2e_harness_deferring", run_id, on_poll=sample) == "success", seen
    assert "deferred" in seen, seen
    assert harness_stack.xcom("e2e_harness_deferring", run_id, "wait") == {
        "resumed_on_worker": True,
        "try_number": 1,
    }
    # The triggerer, not the worker, waited: a trigger row was created and is gone again.
    assert harness_stack.sql("SELECT count(*) FROM trigger")[0][0] == 0
