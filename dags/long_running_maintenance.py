"""
### Weekly maintenance of an EC2 instance — a runbook that runs longer than 12 hours

Every week the `LongRunningMaintenance` runbook stops the instance, images it, waits for an approval,
works through its maintenance windows, starts the instance again and verifies it. A run takes over 12
hours, so it must run under a service role (the caller's session would expire after 12 hours): the
delegation policy's `default_role` for the runbook provides it, and this DAG names no role.

- **Schedules and backfills.** `catchup=True`: unpausing, or `airflow backfill create` over a date range,
  runs one maintenance per weekly interval.
- **No worker slot while it runs.** `maintain` is deferrable: the triggerer watches the execution.
- **Bounded concurrency.** At most 2 runs are active (`max_active_runs`) and every maintenance holds a
  slot of the `ssm_automation` pool while it runs — the pool counts deferred tasks, so a backfill never
  has more executions running at once than the pool has slots (created by `make demo`/`make airflow`,
  docker-compose's `airflow-init`, or `airflow pools set ssm_automation 2 "..." --include-deferred`).
- **Idempotent per interval.** The ClientToken derives from the task instance and an idempotency key
  made of the logical date: a retry, or clearing the run, re-attaches to the interval's execution
  instead of starting a second one.
- **Approval.** `approve` answers the runbook's `aws:approve` step once it waits (`auto_approve`). With
  `auto_approve=false` a person decides in Airflow's own UI (Airflow 3.1+: `human_approval`, a
  human-in-the-loop task in "Required actions", which sends their Approve/Reject to AWS), unless
  `approve_in_airflow=false`; on older Airflow, in the AWS console or with `aws ssm send-automation-signal`.
- **Progress.** While `maintain` is deferred its log shows each step as it starts and ends (by event
  when the AWS connection has an `events_queue_url` extra, else by the safety-net poll), who may approve
  the approval step and how, and at the end every step with its status and duration.
- **Cleanup.** If anything fails, `stop_on_failure` cancels the execution (the runbook's `onCancel` steps
  restart the instance) and fails the run with what happened.

The instance and the approver come from the run's params, else from the Airflow Variables
`maintenance_instance_id` and `maintenance_approver` (set per deployment; the local story sets both —
the approver is the operator identity, since `approve` signals with the `aws_default` connection).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

# airflow.sdk.TriggerRule exists from Airflow 3.1 and airflow.sdk.exceptions.AirflowFailException from 3.2:
# the ecosystem's compatibility package imports each from wherever this Airflow keeps it.
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, TriggerRule
from airflow.sdk import DAG, BaseSensorOperator, Context, Param, PokeReturnValue, task

from airflow_ssm_delegate.examples import AUTOMATION_POOL
from airflow_ssm_delegate.operators.approval import HAS_HITL, SsmAutomationApprovalOperator
from airflow_ssm_delegate.operators.automation import (
    SsmSendAutomationSignalOperator,
    SsmStartAutomationExecutionOperator,
)

EXECUTION_ID = "{{ ti.xcom_pull(task_ids='maintain', key='execution_id') }}"


class AwaitApprovalRequest(BaseSensorOperator):
    """Wait until the execution waits at its ``aws:approve`` step; return its id for the approve task.

    Skips (and so skips the task after it) when ``auto_approve`` is not ``when_auto_approve`` or the
    execution ended before asking.
    """

    template_fields = ("execution_id", "auto_approve")

    def __init__(
        self, *, execution_id: str, auto_approve: str, when_auto_approve: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.execution_id = execution_id
        self.auto_approve = auto_approve
        self.when_auto_approve = when_auto_approve

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_ssm_delegate.hooks.automation import SsmAutomationHook
        from airflow_ssm_delegate.status import TERMINAL_STATUSES

        if (self.auto_approve == "True") != self.when_auto_approve:
            raise AirflowSkipException(
                "auto_approve is off: a person approves the maintenance"
                if self.when_auto_approve
                else "auto_approve is on: the approve task answers"
            )
        if self.execution_id in ("", "None"):
            return PokeReturnValue(is_done=False)  # maintain has not started its execution yet
        execution = SsmAutomationHook().get_automation_execution(self.execution_id)
        status = execution["AutomationExecutionStatus"]
        if status in TERMINAL_STATUSES:
            raise AirflowSkipException(
                f"execution {self.execution_id} ended {status} before asking for approval"
            )
        waiting = execution.get("CurrentAction") == "aws:approve"
        return PokeReturnValue(is_done=waiting, xcom_value=self.execution_id)


with DAG(
    dag_id="long_running_maintenance",
    description="Weekly >12 h maintenance of an EC2 instance via the LongRunningMaintenance runbook",
    schedule="0 2 * * 6",  # Saturdays 02:00 UTC
    start_date=datetime(2026, 11, 7, tzinfo=timezone.utc),
    catchup=True,
    max_active_runs=2,
    dagrun_timeout=timedelta(hours=36),
    tags=["ssm-delegate", "example", "maintenance"],
    doc_md=__doc__,
    params={
        "instance_id": Param(
            None,
            type=["null", "string"],
            pattern=r"^i-[0-9a-f]{8,17}$",
            title="Instance id",
            description="Instance to maintain; empty means the Variable maintenance_instance_id.",
        ),
        "approver": Param(
            None,
            type=["null", "string"],
            title="Approver",
            description="ARN of the IAM user or role who approves; empty: the Variable maintenance_approver.",
        ),
        "auto_approve": Param(
            True,
            type="boolean",
            title="Approve automatically",
            description="Let the approve task answer the runbook's approval step (else a person does).",
        ),
        "approve_in_airflow": Param(
            True,
            type="boolean",
            title="Ask in Airflow",
            description="Without auto_approve: ask the person in Airflow's Required actions (3.1+), "
            "else they approve in the AWS console.",
        ),
    },
) as dag:
    maintain = SsmStartAutomationExecutionOperator(
        task_id="maintain",
        document_name="LongRunningMaintenance",
        parameters={
            "InstanceId": "{{ params.instance_id or var.value.maintenance_instance_id }}",
            "Approvers": ["{{ params.approver or var.value.maintenance_approver }}"],
        },
        idempotency_key="maintenance-{{ ds }}",
        deferrable=True,
        pool=AUTOMATION_POOL,
        execution_timeout=timedelta(hours=30),
    )

    approval_request = AwaitApprovalRequest(
        task_id="await_approval_request",
        execution_id=EXECUTION_ID,
        auto_approve="{{ params.auto_approve }}",
        poke_interval=30,
        timeout=timedelta(hours=20).total_seconds(),
        mode="reschedule",  # no worker slot between pokes
    )

    approve = SsmSendAutomationSignalOperator(
        task_id="approve",
        execution_id=approval_request.output,
        signal_type="Approve",
        payload={"Comment": ["Approved by Airflow: {{ dag.dag_id }} run {{ run_id }}"]},
    )

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def stop_on_failure(execution_id: str) -> None:
        """Cancel the execution if it still runs (its onCancel steps clean up), then fail the run."""
        from airflow_ssm_delegate.hooks.automation import SsmAutomationHook
        from airflow_ssm_delegate.status import TERMINAL_STATUSES

        if not execution_id or execution_id == "None":
            raise AirflowFailException("maintenance failed before its execution started")
        hook = SsmAutomationHook()
        status = hook.get_automation_execution(execution_id)["AutomationExecutionStatus"]
        if status not in TERMINAL_STATUSES:
            hook.stop_automation_execution(execution_id, type="Cancel")
            raise AirflowFailException(f"maintenance failed; execution {execution_id} ({status}) cancelled")
        raise AirflowFailException(f"maintenance failed; execution {execution_id} ended {status}")

    answers = [approve]
    if HAS_HITL:  # Airflow 3.1+: a person answers in Airflow's UI when auto_approve is off
        human_request = AwaitApprovalRequest(
            task_id="await_human_approval_request",
            execution_id=EXECUTION_ID,
            auto_approve="{{ params.auto_approve or not params.approve_in_airflow }}",
            when_auto_approve=False,
            poke_interval=30,
            timeout=timedelta(hours=20).total_seconds(),
            mode="reschedule",
        )
        answers.append(
            SsmAutomationApprovalOperator(
                task_id="human_approval",
                execution_id=human_request.output,
                subject="Approve the maintenance of {{ task.execution_id }}?",
                response_timeout=timedelta(hours=20),
            )
        )

    [maintain, *answers] >> stop_on_failure(EXECUTION_ID)
