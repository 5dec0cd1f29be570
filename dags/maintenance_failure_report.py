"""
### Report on a failed maintenance — scheduled by Automation's events, not by a clock

Whenever an execution of the `LongRunningMaintenance` runbook ends `Failed`, `TimedOut` or `Cancelled`,
Systems Manager emits an EventBridge event; a rule sends it to the SQS queue named by the AWS connection's
`events_queue_url` extra, and an `AssetWatcher` on that queue updates the asset
`ssm-automation://LongRunningMaintenance/failed`, which schedules this DAG. `report` reads the execution
(failed step, AWS's message) and logs it — the place to page someone or open a ticket.

Needs Airflow's `AssetWatcher` (Airflow 3.0+) and the events queue (see the README's "Watching by
events"); without them this file defines no DAG.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

try:
    from airflow.sdk import DAG, Asset, AssetWatcher, task

    HAS_ASSET_WATCHER = True
except ImportError:  # Airflow without AssetWatcher: no DAG here
    HAS_ASSET_WATCHER = False

RUNBOOK = "LongRunningMaintenance"

if HAS_ASSET_WATCHER:
    from airflow_ssm_delegate.triggers.asset_events import SsmAutomationEndedTrigger

    failed_maintenance = Asset(
        f"ssm-automation://{RUNBOOK}/failed",
        watchers=[AssetWatcher(name="failed_maintenance_events", trigger=SsmAutomationEndedTrigger(RUNBOOK))],
    )

    with DAG(
        dag_id="maintenance_failure_report",
        description="Report on each failed LongRunningMaintenance execution (scheduled by its event)",
        schedule=[failed_maintenance],
        start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
        catchup=False,
        tags=["ssm-delegate", "example", "events"],
        doc_md=__doc__,
    ) as dag:

        @task
        def report(**context: Any) -> dict[str, Any]:
            """Say which execution failed, where and why (the event names it; AWS tells the rest)."""
            from airflow_ssm_delegate.hooks.automation import SsmAutomationHook

            found: dict[str, Any] = {}
            for asset_event in context["triggering_asset_events"][failed_maintenance]:
                # Airflow records a watcher's TriggerEvent as extra={"from_trigger": True, "payload": ...}
                event = asset_event.extra.get("payload", asset_event.extra)
                execution_id = event["execution_id"]
                hook = SsmAutomationHook()
                execution = hook.get_automation_execution(execution_id)
                found[execution_id] = hook.describe_failure(execution)
                print(f"Maintenance {execution_id} ended {event['status']}: {found[execution_id]}")
            return found

        report()
