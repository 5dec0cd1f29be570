"""
### Launch a tagged EC2 instance — through an approved runbook, never directly

Trigger this DAG from the Airflow UI ("Trigger DAG" opens a form built from the Params below). It starts
the `LaunchTaggedInstance` runbook, which launches the instance and tags it with the corporate tags.

The Airflow connection (`aws_default`) is the **operator**: it may start approved runbooks and pass the
approved service role, but holds no EC2 rights itself. The runbook runs as the service role named by the
delegation policy's `default_role` for `LaunchTaggedInstance`, so this DAG names no role ARN and cannot
choose a broader one. The policy also pins the runbook's version and content hash.

The result (XCom `return_value` of `launch`) carries the execution id, its status and the runbook's
outputs; `instance_ids` returns the new instance ids. The task's "SSM Automation execution" link opens
the execution in the AWS console.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

# Kept equal to the runbook's allowedValues / allowedPattern (tests/test_dags_import.py checks it), so the
# form refuses what the runbook would refuse, before anything starts.
INSTANCE_TYPES = {
    "t3.micro": "t3.micro — 2 vCPU, 1 GiB (tests, small tools)",
    "t3.small": "t3.small — 2 vCPU, 2 GiB",
    "t3.medium": "t3.medium — 2 vCPU, 4 GiB",
}
COST_CENTERS = {
    "CC-1001": "CC-1001 — Platform engineering",
    "CC-2002": "CC-2002 — Data and analytics",
    "CC-3003": "CC-3003 — Customer services",
}
AMI_ID_PATTERN = r"^ami-[0-9a-f]{8,17}$"
OWNER_PATTERN = r"^([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|[a-z][a-z0-9._-]{1,63})$"

with DAG(
    dag_id="launch_tagged_instance",
    description="Launch one EC2 instance with corporate tags via the LaunchTaggedInstance runbook",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=4,
    tags=["ssm-delegate", "example", "ec2"],
    doc_md=__doc__,
    params={
        "image_id": Param(
            "ami-04681a1dbd79675a5",
            type="string",
            pattern=AMI_ID_PATTERN,
            title="AMI id",
            description="Image to launch: ami- and 8 to 17 hex digits (default: an Amazon Linux 2 AMI).",
            section="Instance",
        ),
        "instance_type": Param(
            "t3.micro",
            type="string",
            enum=list(INSTANCE_TYPES),
            values_display=INSTANCE_TYPES,
            title="Instance type",
            description="Only the sizes the runbook allows.",
            section="Instance",
        ),
        "cost_center": Param(
            "CC-1001",
            type="string",
            enum=list(COST_CENTERS),
            values_display=COST_CENTERS,
            title="Cost center",
            description="Billed for the instance; becomes the CostCenter tag.",
            section="Tags",
        ),
        "owner": Param(
            "platform-team",
            type="string",
            pattern=OWNER_PATTERN,
            title="Owner",
            description="Email address or user name responsible for the instance; becomes the Owner tag.",
            section="Tags",
        ),
    },
) as dag:
    launch = SsmStartAutomationExecutionOperator(
        task_id="launch",
        document_name="LaunchTaggedInstance",
        parameters={
            "ImageId": "{{ params.image_id }}",
            "InstanceType": "{{ params.instance_type }}",
            "CostCenter": "{{ params.cost_center }}",
            "Owner": "{{ params.owner }}",
        },
    )

    @task
    def instance_ids(result: dict[str, Any]) -> list[str]:
        """The ids of the launched instances (the runbook's ``launch.InstanceIds`` output)."""
        return list(result["outputs"]["launch.InstanceIds"])

    instance_ids(launch.output)
