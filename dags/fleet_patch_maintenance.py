"""
### Patch a fleet across accounts and Regions — rate-controlled, under an alarm guard

Triggered from the form: choose the accounts and Regions (the form offers exactly the ones the delegation
policy's `fan_out` rule allows for `FleetPatchInstance`), the patch group and the pace. One start of the
`FleetPatchInstance` runbook then patches every instance tagged `PatchGroup=<group>` in every chosen
account and Region:

- **Where.** `TargetLocations`: one location per account and Region, at most
  `TargetLocationMaxConcurrency` (2) at once, none started after a location failed
  (`TargetLocationMaxErrors` 0). In each account the runbook runs as its execution role
  (`AWS-SystemsManager-AutomationExecutionRole`); the service role the policy approves starts them
  (it is the Automation administration role here: it may assume those execution roles).
- **Which instances, how fast.** `Targets` by tag with `TargetParameterName` `InstanceId`: one child
  execution per instance, at most `max_concurrency` at once and none started after `max_errors` failures
  in a location (the policy caps both).
- **Alarm guard.** Every execution carries the CloudWatch alarm `fleet-patch-errors` the policy requires
  (`AlarmConfiguration`); when it goes into ALARM, AWS stops the patching.
- **Checked before anything runs.** At parse time the cluster policy checks what is literal (runbook, role,
  execution role name, location pace, alarm); the hook checks the rest, as rendered, before the start.
- **What happened where.** `report_locations` logs each location — account, Region, its child execution
  and how it ended — and fails the run unless the whole fleet was patched.

`maintain` is deferrable and holds a slot of the `ssm_automation` pool while it runs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_ssm_delegate.compat import AirflowFailException, TriggerRule
from airflow_ssm_delegate.examples import AUTOMATION_POOL, FLEET_ALARM, FLEET_RUNBOOK
from airflow_ssm_delegate.fanout import DEFAULT_EXECUTION_ROLE_NAME
from airflow_ssm_delegate.fanout_form import location_params
from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

EXECUTION_ID = "{{ ti.xcom_pull(task_ids='patch_fleet', key='execution_id') }}"
RATE = r"^([1-9][0-9]*|[1-9][0-9]?%|100%)$"  # MaxConcurrency's pattern in the API reference
ERRORS = r"^([1-9][0-9]*|0|[1-9][0-9]?%|[0-9]%|100%)$"  # MaxErrors'
OPERATIONS = ["Scan", "Install"]
log = logging.getLogger(__name__)

with DAG(
    dag_id="fleet_patch_maintenance",
    description="Patch tagged instances in several accounts and Regions, a few at a time, under an alarm",
    schedule=None,  # triggered from the form
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    tags=["ssm-delegate", "example", "fleet"],
    doc_md=__doc__,
    params={
        **location_params(FLEET_RUNBOOK),
        "patch_group": Param(
            "web",
            type="string",
            pattern=r"^[\w.:/=+@ -]{1,256}$",
            title="Patch group",
            description="Instances tagged PatchGroup with this value are patched.",
        ),
        "operation": Param(
            "Install",
            enum=OPERATIONS,
            values_display={"Scan": "Scan: report missing patches", "Install": "Install missing patches"},
            title="Operation",
            description="What AWS-RunPatchBaseline does on each instance.",
        ),
        "max_concurrency": Param(
            "20%",
            type="string",
            pattern=RATE,
            title="Instances at once",
            description="MaxConcurrency in each location: a number or a percentage of its instances.",
        ),
        "max_errors": Param(
            "10%",
            type="string",
            pattern=ERRORS,
            title="Failures tolerated",
            description="MaxErrors in each location: no instance is started after more failed.",
        ),
    },
) as dag:

    @task(multiple_outputs=True)
    def fleet_locations(params: dict[str, Any] | None = None) -> dict[str, list[str]]:
        """The chosen accounts and Regions as lists (a template would render them as text)."""
        chosen = params or {}
        return {"accounts": list(chosen.get("accounts") or []), "regions": list(chosen.get("regions") or [])}

    chosen = fleet_locations()

    patch = SsmStartAutomationExecutionOperator(
        task_id="patch_fleet",
        document_name=FLEET_RUNBOOK,
        parameters={"Operation": "{{ params.operation }}"},
        target_parameter_name="InstanceId",
        targets=[{"Key": "tag:PatchGroup", "Values": ["{{ params.patch_group }}"]}],
        max_concurrency="{{ params.max_concurrency }}",
        max_errors="{{ params.max_errors }}",
        target_locations=[
            {
                "Accounts": chosen["accounts"],
                "Regions": chosen["regions"],
                "ExecutionRoleName": DEFAULT_EXECUTION_ROLE_NAME,
                "TargetLocationMaxConcurrency": "2",
                "TargetLocationMaxErrors": "0",
            }
        ],
        alarm_configuration={"Alarms": [{"Name": FLEET_ALARM}]},
        deferrable=True,
        pool=AUTOMATION_POOL,
        execution_timeout=timedelta(hours=10),
    )

    # One XCom, not one per location (a dict return type would make Airflow split it by key).
    @task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
    def report_locations(execution_id: str) -> dict[str, dict[str, Any]]:
        """Log each location's child execution and how it ended; fail unless every location succeeded."""
        from airflow_ssm_delegate.hooks.automation import SsmAutomationHook

        if not execution_id or execution_id == "None":
            raise AirflowFailException("the fleet execution never started; see patch_fleet's log")
        execution = SsmAutomationHook().get_automation_execution(execution_id)
        report: dict[str, dict[str, Any]] = {}
        for step in execution.get("StepExecutions", []):
            location = step.get("TargetLocation") or {}
            account, region = (location.get("Accounts") or ["?"])[0], (location.get("Regions") or ["?"])[0]
            child = (step.get("Outputs") or {}).get("AutomationExecutionId", [None])[0]
            report[f"{account}/{region}"] = {"child": child, "status": step.get("StepStatus")}
            log.info(
                "%s %s: %s, child execution %s%s",
                account,
                region,
                step.get("StepStatus"),
                child or "(none)",
                f" — {step['FailureMessage']}" if step.get("FailureMessage") else "",
            )
        status = execution.get("AutomationExecutionStatus")
        alarms = [alarm.get("Name") for alarm in execution.get("TriggeredAlarms", [])]
        if alarms:
            log.warning("Stopped by alarm %s.", ", ".join(map(str, alarms)))
        if status != "Success":
            raise AirflowFailException(f"fleet execution {execution_id} ended {status}: {report}")
        return report

    report_locations(EXECUTION_ID).set_upstream(patch)
