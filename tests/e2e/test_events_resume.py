"""A real triggerer (PostgreSQL metadata DB) resumes a deferred task from an Automation event (issue 12).

The local runtime (its own process) emits Automation's EventBridge events; an EventBridge rule sends them
to an SQS queue that the AWS connection names (``events_queue_url`` extra, as an administrator sets it).
The deferred maintenance waits at its approval step; the test approves; the triggerer learns of the end
from the queue and resumes the task. Polling alone could not end it in time: with no fast-polling policy
the safety net would first look hours (simulated) after the end.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_ssm_delegate.local.events import connection_env_with_queue, grant_consumer, route_events_to_queue
from airflow_ssm_delegate.local.story import AIRFLOW_CONN_ID
from tests.e2e.support import local_runtime, story_env, wait_for_execution_status
from tests.fixtures.airflow_stack import wait_until, write_dags

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fixtures.airflow_stack import StackFactory

pytestmark = pytest.mark.slow

DAG_ID = "e2e_events_maintenance"
TASK_ID = "maintain"
DAG = f'''
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
            "FirstWindow": "PT10M",
            "SecondWindow": "PT10M",
        }},
        deferrable=True,
    )
'''
TIME_SCALE = 60  # a simulated minute a second: the approval waits for the test, the windows take 20 s


def test_a_deferred_task_resumes_from_an_event(airflow_stacks: StackFactory, tmp_path: Path) -> None:
    dags = write_dags(tmp_path / "dags", {f"{DAG_ID}.py": DAG})
    with local_runtime(tmp_path / "runtime", time_scale=TIME_SCALE) as runtime:
        story = runtime.provision_story(tmp_path / "story")
        sqs = runtime.client("sqs")
        queue_url = route_events_to_queue(runtime.client("events"), sqs, "e2e-automation-events")
        grant_consumer(runtime.client("iam"), story.operator.arn, queue_url, sqs)
        env = story_env(story)
        env.update(connection_env_with_queue(env, AIRFLOW_CONN_ID, queue_url))
        with airflow_stacks.stack(dags_folder=dags, extra_env=env) as stack:
            stack.start_all()
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            run_id = stack.trigger_dag(DAG_ID)
            wait_until(
                lambda: stack.task_states(DAG_ID, run_id).get(TASK_ID) == "deferred",
                timeout=120,
                what=f"{TASK_ID} to defer",
                diagnostics=stack.logs_report,
            )
            execution_id = str(stack.xcom(DAG_ID, run_id, TASK_ID, key="execution_id"))
            wait_for_execution_status(runtime, execution_id, {"Waiting"}, timeout=120)
            story.client("ssm", story.operator).send_automation_signal(
                AutomationExecutionId=execution_id, SignalType="Approve", Payload={"Comment": ["e2e"]}
            )
            assert stack.wait_for_run(DAG_ID, run_id, timeout=240) == "success"
            log = stack.task_log(DAG_ID, run_id, TASK_ID, try_number=1)
    assert "by its events" in log
    assert "Step approveMaintenance (aws:approve): Waiting" in log
    assert story.operator.arn in log  # who may approve, resolved from the step's inputs
    assert "Step firstWindow (aws:sleep): Success" in log
    assert "(noticed by its event)" in log
    assert "[safety-net poll]" not in log
    assert json.dumps(queue_url)[1:-1] in log or queue_url in log
