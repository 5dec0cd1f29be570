"""Wait for an SSM Automation execution started elsewhere (another task, the console, a schedule)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_ssm_delegate.clocks import sleep_blocking
from airflow_ssm_delegate.compat import AirflowException
from airflow_ssm_delegate.connection import CONNECTION_TEMPLATE_FIELDS
from airflow_ssm_delegate.links.automation import SsmAutomationExecutionLink
from airflow_ssm_delegate.operators.automation import (
    check_trigger_event,
    default_deferrable,
    execution_result,
)
from airflow_ssm_delegate.operators.base import SsmAutomationBaseOperator
from airflow_ssm_delegate.polling import DEFAULT_MAX_POLL_INTERVAL, read_execution
from airflow_ssm_delegate.status import SUCCESS_STATUSES, TERMINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class SsmAutomationExecutionSensor(SsmAutomationBaseOperator, BaseSensorOperator):
    """Succeeds when the execution succeeds; fails with the failed step and AWS's message otherwise.

    It only watches: killing the sensor never stops the execution (it did not start it).

    :param execution_id: the execution to watch. Templated.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param max_poll_interval: deferrable mode: longest pause between checks during provably long sleeps.
    :param events_queue_url: deferrable mode: the SQS queue of Automation's events to watch by (see the
        trigger); None: the connection's ``events_queue_url`` extra, if set; "": polling only.
    """

    template_fields: Sequence[str] = ("execution_id", "events_queue_url", *CONNECTION_TEMPLATE_FIELDS)
    operator_extra_links = (SsmAutomationExecutionLink(),)

    def __init__(
        self,
        *,
        execution_id: str,
        deferrable: bool | None = None,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        events_queue_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.execution_id = execution_id
        self.events_queue_url = events_queue_url
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_poll_interval = max(max_poll_interval, float(self.poke_interval))

    def execute(self, context: Context) -> Any:
        SsmAutomationExecutionLink.persist(
            context,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            execution_id=self.execution_id,
        )
        if not self.deferrable:
            return super().execute(context)
        from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger

        self.defer(
            trigger=SsmAutomationExecutionTrigger(
                self.execution_id,
                **self.connection_settings.as_kwargs(),
                waiter_delay=float(self.poke_interval),
                max_poll_interval=self.max_poll_interval,
                cancel_on_kill=False,
                events_queue_url=self.events_queue_url,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def poke(self, context: Context) -> bool:
        from airflow_ssm_delegate.retry import call_with_backoff

        execution = call_with_backoff(
            lambda: read_execution(self.hook.get_automation_execution, self.execution_id),
            sleep=sleep_blocking,
        )
        status = str(execution.get("AutomationExecutionStatus"))
        self.log.info("Automation execution %s is %s", self.execution_id, status)
        if status in SUCCESS_STATUSES:
            return True
        if status in TERMINAL_STATUSES:
            raise AirflowException(self.hook.describe_failure(execution))
        return False

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: validate the event and report the execution's outcome."""
        check_trigger_event(event, self.execution_id)
        return execution_result(self.hook, self.execution_id)
