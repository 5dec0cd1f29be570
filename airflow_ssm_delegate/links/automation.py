"""Console link of an Automation execution, shown on the task in the Airflow UI.

The operator calls :meth:`SsmAutomationExecutionLink.persist` once it knows the execution id; at the end
of each try the worker calls :meth:`get_link` and stores the URL as XCom ``_link_SsmAutomationExecutionLink``,
which the UI reads. Built on ``airflow.sdk.BaseOperatorLink`` rather than the Amazon provider's
``BaseAwsLink``: that one pulls in botocore at import time, and the operator module imports this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

# Console domain per AWS partition (as in the Amazon provider's BaseAwsLink).
CONSOLE_DOMAINS = {"aws": "aws.amazon.com", "aws-cn": "amazonaws.cn", "aws-us-gov": "amazonaws-us-gov.com"}


class SsmAutomationExecutionLink(BaseOperatorLink):
    """The AWS console page of the execution a task started or watches."""

    name: ClassVar[str] = "SSM Automation Execution"
    key: ClassVar[str] = "_ssm_automation_execution"  # XCom holding region, partition and execution id

    @staticmethod
    def format_url(region_name: str, aws_partition: str, execution_id: str) -> str:
        """Console URL of the execution; empty for a partition without a known console domain."""
        domain = CONSOLE_DOMAINS.get(aws_partition)
        if not (domain and region_name and execution_id):
            return ""
        return (
            f"https://{region_name}.console.{domain}/systems-manager/automation/execution/"
            f"{execution_id}?region={region_name}"
        )

    @classmethod
    def persist(
        cls,
        context: Context,
        operator: BaseOperator | None = None,
        *,
        region_name: str,
        aws_partition: str,
        execution_id: str,
    ) -> None:
        """Remember what the link needs for this try (``operator`` only for BaseAwsLink parity)."""
        context["ti"].xcom_push(
            key=cls.key,
            value={"region_name": region_name, "aws_partition": aws_partition, "execution_id": execution_id},
        )

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow_ssm_delegate.compat import XCom

        stored = XCom.get_value(key=self.key, ti_key=ti_key)
        if not isinstance(stored, dict):
            return ""
        return self.format_url(
            str(stored.get("region_name", "")),
            str(stored.get("aws_partition", "")),
            str(stored.get("execution_id", "")),
        )
