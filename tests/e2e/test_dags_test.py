"""``airflow dags test launch_tagged_instance`` (SQLite, its own AIRFLOW_HOME) against the local runtime.

The operator identity of the Airflow connection is denied ec2:*; the instance is launched and tagged by
the runbook under the service role the delegation policy names.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

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
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.story import Story
    from tests.fixtures.airflow_stack import SqliteAirflow

pytestmark = pytest.mark.slow

DAG_ID = "launch_tagged_instance"
CONF = {"instance_type": "t3.small", "cost_center": "CC-2002", "owner": "e2e-tester"}


@pytest.fixture(scope="module")
def runtime_and_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRuntime, Story]]:
    workdir = tmp_path_factory.mktemp("dags-test-runtime")
    with local_runtime(workdir / "runtime", time_scale=60) as runtime:
        yield runtime, runtime.provision_story(workdir / "story")


def xcom_value(airflow: SqliteAirflow, task_id: str, key: str = "return_value") -> Any:
    rows = airflow.sql(
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ?", (DAG_ID, task_id, key)
    )
    assert len(rows) == 1, f"expected one XCom {key} of {task_id}, found {rows}"
    return json.loads(rows[0][0])


def test_dags_test_launches_a_tagged_instance_under_the_service_role(
    runtime_and_story: tuple[LocalRuntime, Story], sqlite_airflow: Callable[..., SqliteAirflow]
) -> None:
    runtime, story = runtime_and_story
    airflow = sqlite_airflow(extra_env=story_env(story))
    install_fast_polling(airflow.home)

    airflow.airflow("dags", "test", DAG_ID, "--conf", json.dumps(CONF), timeout=300)

    assert airflow.sql("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)) == [("success",)]
    result = xcom_value(airflow, "launch")
    assert result["status"] == "Success"
    instance_ids = xcom_value(airflow, "instance_ids")
    assert instance_ids == result["outputs"]["launch.InstanceIds"]
    assert len(instance_ids) == 1

    # Exactly one execution, the one in XCom, run as the service role the policy names.
    executions = runtime.executions("LaunchTaggedInstance")
    assert [e["AutomationExecutionId"] for e in executions] == [result["execution_id"]]
    execution = runtime.execution(result["execution_id"])
    assert execution["AutomationExecutionStatus"] == "Success"
    assert execution["Parameters"]["AutomationAssumeRole"] == [story.service_role_arn]
    assert execution["Parameters"]["InstanceType"] == ["t3.small"]
    # Audit tags from the real task context of `airflow dags test`.
    [run_id] = [r for (r,) in airflow.sql("SELECT run_id FROM dag_run WHERE dag_id = ?", (DAG_ID,))]
    assert audit_tags(runtime, result["execution_id"]) == {
        "airflow:dag_id": DAG_ID,
        "airflow:run_id": run_id,
        "airflow:task_id": "launch",
    }

    tags = instance_tags(runtime, instance_ids[0])
    assert tags["CostCenter"] == "CC-2002"
    assert tags["Owner"] == "e2e-tester"
    assert tags["LaunchedBy"] == result["execution_id"]
    reservation = runtime.client("ec2").describe_instances(InstanceIds=instance_ids)["Reservations"][0]
    assert reservation["Instances"][0]["InstanceType"] == "t3.small"
    assert reservation["Instances"][0]["State"]["Name"] == "running"
