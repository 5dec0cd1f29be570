"""Issue 12 through real Airflow processes (PostgreSQL metadata DB): the ``maintenance_failure_report`` DAG
scheduled by its ``AssetWatcher`` on Automation's events, and an ``aws:approve`` step decided by a person
through the api-server's human-in-the-loop REST endpoints (what Airflow's "Required actions" view calls).

One stack serves both: the local runtime (its own process) emits the events, an EventBridge rule routes them
to an SQS queue the AWS connection names (``events_queue_url``), and the triggerer runs the report's asset
trigger and the approval's HITL trigger. The executions are ``LongRunningMaintenance`` runs the test starts
as the administrator; the operator (Airflow's ``aws_default``) is their approver.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_ssm_delegate.compat import HAS_HITL
from airflow_ssm_delegate.local.events import connection_env_with_queue, grant_consumer, route_events_to_queue
from airflow_ssm_delegate.local.story import AIRFLOW_CONN_ID
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS
from tests.e2e.support import local_runtime, story_env, wait_for_execution_status
from tests.fixtures.airflow_stack import PROJECT_DAGS, wait_until, write_dags

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_ssm_delegate.local.story import Story
    from tests.e2e.support import LocalRuntime
    from tests.fixtures.airflow_stack import AirflowStack, StackFactory

try:
    from airflow.sdk import AssetWatcher  # noqa: F401

    HAS_ASSET_WATCHER = True
except ImportError:  # pragma: no cover - Airflow without AssetWatcher
    HAS_ASSET_WATCHER = False

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAS_ASSET_WATCHER, reason="this Airflow has no AssetWatcher (Airflow 3.0+)"),
]

REPORT_DAG = "maintenance_failure_report"
APPROVAL_DAG = "e2e_human_approval"
APPROVAL_TASK = "human_approval"
RUNBOOK = "LongRunningMaintenance"
# The maintenance DAG's human_approval, on an execution the test starts (the DAG itself is weekly with
# catchup: unpaused here it would start a maintenance per past Saturday).
APPROVAL_DAG_SOURCE = f'''
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_ssm_delegate.operators.approval import SsmAutomationApprovalOperator

START = datetime(2026, 1, 1, tzinfo=timezone.utc)

with DAG("{APPROVAL_DAG}", schedule=None, start_date=START, catchup=False):
    SsmAutomationApprovalOperator(
        task_id="{APPROVAL_TASK}",
        execution_id="{{{{ dag_run.conf['execution_id'] }}}}",
        subject="Approve the maintenance of {{{{ task.execution_id }}}}?",
        response_timeout=timedelta(hours=20),
    )
'''
# The runbook's approval times out after 24 simulated hours: 288 wall seconds here, well beyond the test.
TIME_SCALE = 300


@pytest.fixture(scope="module")
def world(
    airflow_stacks: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LocalRuntime, Story]]:
    workdir = tmp_path_factory.mktemp("events-report")
    dags = {f"{REPORT_DAG}.py": (PROJECT_DAGS / f"{REPORT_DAG}.py").read_text()}  # the example as shipped
    if HAS_HITL:
        dags[f"{APPROVAL_DAG}.py"] = APPROVAL_DAG_SOURCE
    folder = write_dags(workdir / "dags", dags)
    with local_runtime(workdir / "runtime", time_scale=TIME_SCALE) as runtime:
        story = runtime.provision_story(workdir / "story")
        sqs = runtime.client("sqs")
        queue_url = route_events_to_queue(runtime.client("events"), sqs, "e2e-report-events")
        grant_consumer(runtime.client("iam"), story.operator.arn, queue_url, sqs)
        env = story_env(story)
        env.update(connection_env_with_queue(env, AIRFLOW_CONN_ID, queue_url))
        with airflow_stacks.stack(dags_folder=folder, extra_env=env) as stack:
            stack.start_all()
            for dag_id in dags:
                stack.wait_for_dag(Path(dag_id).stem)
                stack.unpause(Path(dag_id).stem)
            yield stack, runtime, story


def start_maintenance(runtime: LocalRuntime, story: Story) -> str:
    """A LongRunningMaintenance execution waiting for the operator's approval; its id. Started by the
    administrator, with Airflow's audit tags (the operator's policy reaches only executions carrying them)."""
    execution_id = runtime.client("ssm").start_automation_execution(
        DocumentName=RUNBOOK,
        Parameters={
            "AutomationAssumeRole": [story.service_role_arn],
            "InstanceId": [story.maintenance_instance_id],
            "Approvers": [story.operator.arn],
            "FirstWindow": ["PT10M"],
            "SecondWindow": ["PT10M"],
        },
        Tags=[{"Key": key, "Value": "e2e"} for key in AUDIT_TAG_KEYS],
    )["AutomationExecutionId"]
    wait_for_execution_status(runtime, execution_id, {"Waiting"}, timeout=120)
    return str(execution_id)


def step(runtime: LocalRuntime, execution_id: str, name: str) -> dict[str, Any]:
    records = runtime.client("ssm").describe_automation_step_executions(AutomationExecutionId=execution_id)
    return next(s for s in records["StepExecutions"] if s["StepName"] == name)


def wait_for_report(
    stack: AirflowStack, execution_id: str, timeout: float = 150
) -> tuple[str, dict[str, Any]]:
    """The report run whose triggering events name ``execution_id``, once it succeeded: (run id, result)."""

    def reported() -> tuple[str, dict[str, Any]] | None:
        for run_id, state in stack.sql(
            "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_type = 'asset_triggered'",
            (REPORT_DAG,),
        ):
            if state == "success":
                found = stack.xcom(REPORT_DAG, str(run_id), "report")
                if execution_id in found:
                    return str(run_id), found
        return None

    return wait_until(
        reported,
        timeout=timeout,
        interval=1,
        what=f"a {REPORT_DAG} run reporting {execution_id}",
        diagnostics=lambda: f"runs: {stack.sql('SELECT run_id, state FROM dag_run')}\n{stack.logs_report()}",
    )


def test_a_failed_maintenance_schedules_the_report_by_its_event(
    world: tuple[AirflowStack, LocalRuntime, Story],
) -> None:
    stack, runtime, story = world
    # the report's asset trigger runs in the triggerer before the maintenance fails (else its event would
    # wait in the queue for it: also fine, but then this would not show the trigger consuming live events)
    wait_until(
        lambda: stack.sql(
            "SELECT 1 FROM trigger WHERE classpath LIKE %s AND triggerer_id IS NOT NULL",
            ("%SsmAutomationEndedTrigger",),
        ),
        timeout=90,
        what="the triggerer to run the report's asset trigger",
        diagnostics=stack.logs_report,
    )
    execution_id = start_maintenance(runtime, story)
    story.client("ssm", story.operator).send_automation_signal(
        AutomationExecutionId=execution_id, SignalType="Reject", Payload={"Comment": ["not this week"]}
    )
    wait_for_execution_status(runtime, execution_id, {"Failed"}, timeout=120)
    run_id, found = wait_for_report(stack, execution_id)
    assert "not this week" in found[execution_id]  # AWS's own account of the failure, read by the report
    log = stack.task_log(REPORT_DAG, run_id, "report")
    assert f"Maintenance {execution_id} ended Failed" in log


@pytest.mark.skipif(not HAS_HITL, reason="this Airflow has no human-in-the-loop operators (Airflow 3.1+)")
def test_a_person_rejects_the_approval_through_the_api_server(
    world: tuple[AirflowStack, LocalRuntime, Story],
) -> None:
    """As the UI does: a JWT from the auth manager, the "Required actions" list (GET hitlDetails), then the
    answer (PATCH the task instance's hitlDetails); the runbook's aws:approve step gets that decision."""
    stack, runtime, story = world
    execution_id = start_maintenance(runtime, story)
    run_id = stack.trigger_dag(APPROVAL_DAG, {"execution_id": execution_id})
    token = httpx.get(f"{stack.api_url}/auth/token", timeout=30).json()["access_token"]
    ui = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def required_action() -> dict[str, Any] | None:
        response = ui.get(
            "/api/v2/dags/~/dagRuns/~/hitlDetails",
            params={"dag_id": APPROVAL_DAG, "response_received": False},
        )
        response.raise_for_status()
        pending = [d for d in response.json()["hitl_details"] if d["task_instance"]["dag_run_id"] == run_id]
        return pending[0] if pending else None

    detail = wait_until(
        required_action,
        timeout=120,
        interval=1,
        what="the approval to appear in Required actions",
        diagnostics=lambda: f"{stack.task_states(APPROVAL_DAG, run_id)}\n{stack.logs_report()}",
    )
    assert detail["options"] == ["Approve", "Reject"]
    assert execution_id in detail["subject"]
    # A person reads the request before answering. Answering within a second of the task parking would
    # meet an Airflow 3.3.2 race (the resumed try is failed as a "state mismatch" when the scheduler learns
    # of the parked try's exit after the resume, as in apache/airflow#72716): answer once it has.
    scheduler = next(p for p in stack.processes if p.name == "scheduler")
    parked = (
        "Received executor event with state success for task instance TaskInstanceKey("
        f"dag_id='{APPROVAL_DAG}', task_id='{APPROVAL_TASK}', run_id='{run_id}'"
    )
    wait_until(lambda: parked in scheduler.log_text(), timeout=60, what="the scheduler to see the task park")
    note = f"window clashes with the release {uuid.uuid4().hex[:6]}"
    answer = ui.patch(
        f"/api/v2/dags/{APPROVAL_DAG}/dagRuns/{run_id}/taskInstances/{APPROVAL_TASK}/-1/hitlDetails",
        json={"chosen_options": ["Reject"], "params_input": {"comment": note}},
    )
    assert answer.status_code == 200, answer.text
    person = answer.json()["responded_by"]["name"]
    assert stack.wait_for_run(APPROVAL_DAG, run_id, timeout=120) == "success"
    execution = wait_for_execution_status(runtime, execution_id, {"Failed"}, timeout=120)
    approval = step(runtime, execution_id, "approveMaintenance")
    assert approval["StepStatus"] == "Failed"
    assert f"Reject in Airflow by {person}: {note}" in approval["FailureMessage"]
    assert execution["AutomationExecutionStatus"] == "Failed"
