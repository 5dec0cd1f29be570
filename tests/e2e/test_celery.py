"""CeleryExecutor with the Redis broker on 127.0.0.1:6379 runs an automation task.

The stack gets a Celery queue of its own on the shared Redis (``[operators] default_queue``) and a
worker consuming only that queue, so no other session can take its tasks. A task Celery ran carries the
Celery task id as its ``external_executor_id`` and the stack's queue — LocalExecutor sets neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import (
    LocalRuntime,
    audit_tags,
    install_fast_polling,
    instance_tags,
    local_runtime,
    story_env,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.fixtures.airflow_stack import AirflowStack, StackFactory

pytestmark = pytest.mark.slow

DAG_ID = "launch_tagged_instance"
CONF = {"instance_type": "t3.micro", "cost_center": "CC-1001", "owner": "celery-tester"}


@pytest.fixture(scope="module")
def celery_world(
    airflow_stacks: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LocalRuntime]]:
    workdir = tmp_path_factory.mktemp("celery")
    with local_runtime(workdir / "runtime", time_scale=60) as runtime:
        story = runtime.provision_story(workdir / "story")
        with airflow_stacks.stack(executor="CeleryExecutor", extra_env=story_env(story)) as stack:
            install_fast_polling(stack.home)
            stack.start_all()
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            yield stack, runtime


def test_celery_worker_runs_the_automation_task(celery_world: tuple[AirflowStack, LocalRuntime]) -> None:
    stack, runtime = celery_world
    run_id = stack.trigger_dag(DAG_ID, CONF)

    assert stack.wait_for_run(DAG_ID, run_id, timeout=240) == "success"
    rows = stack.sql(
        "SELECT task_id, state, queue, external_executor_id FROM task_instance "
        "WHERE dag_id = %s AND run_id = %s",
        (DAG_ID, run_id),
    )
    for task_id, state, queue, celery_task_id in rows:
        assert (task_id, state, queue) == (task_id, "success", stack.celery_queue)
        assert celery_task_id, f"{task_id} has no Celery task id: it did not run through Celery"

    result = stack.xcom(DAG_ID, run_id, "launch")
    assert result["status"] == "Success"
    assert runtime.execution(result["execution_id"])["AutomationExecutionStatus"] == "Success"
    assert audit_tags(runtime, result["execution_id"])["airflow:run_id"] == run_id
    [instance_id] = result["outputs"]["launch.InstanceIds"]
    assert instance_tags(runtime, instance_id)["Owner"] == "celery-tester"
