"""An event trigger for ``AssetWatcher``: an Automation execution of a runbook ended in a given status.

Schedules DAGs on Automation's EventBridge events, e.g. "run a report whenever an execution of
LongRunningMaintenance fails". It listens on the process's shared events feed (``triggers.events``), so
in a triggerer that also watches deferred executions the queue still has one consumer.

Why not ``MessageQueueTrigger(scheme="sqs")`` / the Amazon provider's ``SqsSensorTrigger``: that consumer
deletes every message it receives, so on a queue shared with the deferred watches it would take their
events (and it needs aiobotocore, which this package keeps out). On a queue of its own — a second
EventBridge rule whose pattern already narrows to the runbook and the statuses — it works as well; the
README shows that pattern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.connection import ConnectionSettings
from airflow_ssm_delegate.triggers.events import (
    News,
    QueueReachable,
    QueueUnreachable,
    get_feed,
    queue_url_from_connection,
)

try:  # Airflow 3.0+: event triggers (AssetWatcher) derive from BaseEventTrigger
    from airflow.triggers.base import BaseEventTrigger, TriggerEvent
except ImportError:  # pragma: no cover - older Airflow has no AssetWatcher
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment]
    from airflow.triggers.base import TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

DEFAULT_STATUSES = ("Failed", "TimedOut", "Cancelled")


class SsmAutomationEndedTrigger(BaseEventTrigger):
    """Yields ``{"execution_id", "definition", "status", "time"}`` for each matching execution event.

    :param definition: the runbook name (the events' ``Definition``).
    :param statuses: the execution statuses to report (default: the failures).
    :param events_queue_url: the queue; None: the AWS connection's ``events_queue_url`` extra.
    """

    def __init__(
        self,
        definition: str,
        *,
        statuses: list[str] | tuple[str, ...] = DEFAULT_STATUSES,
        events_queue_url: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
    ) -> None:
        super().__init__()
        if not definition:
            raise ValueError("SsmAutomationEndedTrigger needs the runbook name (definition) to listen for")
        self.definition = definition
        self.statuses = list(statuses)
        self.events_queue_url = events_queue_url
        self.connection = ConnectionSettings(aws_conn_id, region_name)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "definition": self.definition,
                "statuses": self.statuses,
                "events_queue_url": self.events_queue_url,
                "aws_conn_id": self.connection.aws_conn_id,
                "region_name": self.connection.region_name,
            },
        )

    def matches(self, news: News) -> bool:
        return not news.is_step and news.definition == self.definition and news.status in self.statuses

    async def run(self) -> AsyncIterator[TriggerEvent]:
        queue_url = self.events_queue_url or await queue_url_from_connection(self.connection)
        if not queue_url:
            raise ValueError(
                "SsmAutomationEndedTrigger has no events queue: pass events_queue_url or set the "
                f"events_queue_url extra of connection {self.connection.aws_conn_id!r}"
            )
        feed = get_feed(queue_url, self.connection)
        inbox = feed.listen(self.matches)
        seen: set[tuple[str, str]] = set()  # SQS delivers at least once
        try:
            while True:
                news = await inbox.get()
                if isinstance(news, QueueUnreachable):  # nothing to poll instead: wait for the feed's retry
                    self.log.warning(
                        "The Automation events queue %s cannot be read (%s): no %s event is seen until it "
                        "can be (the triggerer keeps trying it).",
                        queue_url,
                        news.reason,
                        self.definition,
                    )
                    continue
                if isinstance(news, QueueReachable):
                    self.log.warning("The Automation events queue %s is read again.", queue_url)
                    continue
                key = (news.execution_id, news.status)
                if key not in seen:
                    seen.add(key)
                    yield TriggerEvent(
                        {
                            "execution_id": news.execution_id,
                            "definition": news.definition,
                            "status": news.status,
                            "time": news.time.isoformat(),
                        }
                    )
                news.done()
        finally:
            feed.leave(inbox)
