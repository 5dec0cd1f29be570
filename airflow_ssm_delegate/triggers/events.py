"""One SQS consumer per triggerer process (and queue), shared by every trigger that watches by event.

An administrator routes Automation's EventBridge events (``source: aws.ssm``, the execution and step
status-change detail-types) to an SQS queue; :class:`EventFeed` long-polls that queue (ReceiveMessage with
``WaitTimeSeconds``, up to 10 messages a call) and hands each event to the triggers watching its
execution (and to event listeners, e.g. an ``AssetWatcher``'s trigger). Whatever many executions a
triggerer watches, the queue costs one call per ``WaitTimeSeconds`` while idle.

Acknowledgement: a message is deleted only after every trigger it was handed to has applied it (their
``News.applied`` future); a message no trigger here watches is left for another triggerer (its
visibility timeout returns it to the queue) and deleted once it is older than ``STALE_AFTER_S``, so a
queue fed with other executions' events does not grow without bound. Events are best effort and may
come twice or out of order: the triggers treat them as hints (see ``triggers.automation``) and confirm the
end with one GetAutomationExecution.

Why not the Amazon provider's ``SqsSensorTrigger`` / ``MessageQueueTrigger(scheme="sqs")`` here: each
instance is one consumer yielding one batch and ending, and it deletes what it receives; a triggerer
watching 1,000 executions would run 1,000 consumers stealing each other's messages. It also needs
aiobotocore, which this package keeps out (see ``triggers.poller``). The same sync-boto3-in-a-thread
approach as the poller is used instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.retry import is_transient

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.connection import ConnectionSettings

log = logging.getLogger(__name__)

SOURCE = "aws.ssm"
EXECUTION_DETAIL_TYPE = "EC2 Automation Execution Status-change Notification"
STEP_DETAIL_TYPE = "EC2 Automation Step Status-change Notification"
#: ReceiveMessage long polling: the most SQS allows (seconds).
WAIT_TIME_SECONDS = 20
#: A message nobody here watches is deleted once this old (wall seconds since SQS received it).
STALE_AFTER_S = 300.0
#: How long the feed waits for triggers to apply an event before leaving it to be received again.
APPLY_TIMEOUT_S = 60.0
#: Failures in a row (throttling, connection trouble) before the queue is declared unreachable.
MAX_FAILURES = 3
#: While unreachable, the queue is tried again after this long, doubling up to ``RECHECK_MAX_S`` (seconds):
#: a queue created late or a right granted late is noticed without a triggerer restart, and a queue that
#: stays gone costs one call every few minutes.
RECHECK_FIRST_S = 5.0
RECHECK_MAX_S = 300.0
#: The connection extra an administrator sets to make every watch event-driven.
CONNECTION_EXTRA = "events_queue_url"
_EVENT_TIME_FORMAT = "%b %d, %Y %I:%M:%S %p"


@dataclass
class News:
    """One Automation event, as a watching trigger needs it."""

    execution_id: str
    status: str
    time: datetime  # when the change happened (the event's ``time``)
    definition: str = ""
    step_name: str | None = None  # None: the execution's own status
    action: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    applied: asyncio.Future[None] | None = field(default=None, repr=False, compare=False)

    @property
    def is_step(self) -> bool:
        return self.step_name is not None

    def done(self) -> None:
        """Tell the feed this event has been applied (it may now be deleted from the queue)."""
        if self.applied is not None and not self.applied.done():
            self.applied.set_result(None)


@dataclass(frozen=True)
class QueueUnreachable:
    """Handed to the watchers when the queue cannot be read: they poll instead."""

    reason: str


@dataclass(frozen=True)
class QueueReachable:
    """Handed to the watchers when a queue that could not be read is read again: events flow again."""


FeedItem = News | QueueUnreachable | QueueReachable


def parse_event_time(text: Any) -> datetime | None:
    """StartTime/EndTime of these events (``Nov 29, 2024 7:43:26 PM``, UTC), or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, _EVENT_TIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _iso_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_news(body: str) -> News | None:
    """The News in an SQS message body (an EventBridge event), or None if it is not an Automation event."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("source") != SOURCE:
        return None
    detail_type, detail = event.get("detail-type"), event.get("detail")
    if detail_type not in (EXECUTION_DETAIL_TYPE, STEP_DETAIL_TYPE) or not isinstance(detail, dict):
        return None
    execution_id, status = detail.get("ExecutionId"), detail.get("Status")
    if not isinstance(execution_id, str) or not isinstance(status, str):
        return None
    is_step = detail_type == STEP_DETAIL_TYPE
    return News(
        execution_id=execution_id,
        status=status,
        time=_iso_time(event.get("time")) or datetime.now(timezone.utc),
        definition=str(detail.get("Definition", "")),
        step_name=str(detail.get("StepName")) if is_step else None,
        action=str(detail.get("Action")) if is_step else None,
        start_time=parse_event_time(detail.get("StartTime")),
        end_time=parse_event_time(detail.get("EndTime")),
    )


class EventFeed:
    """Reads one queue for the whole process; triggers subscribe by execution id or by predicate."""

    def __init__(
        self,
        queue_url: str,
        client_factory: Callable[[], Any],
        *,
        wait_time_seconds: int = WAIT_TIME_SECONDS,
        retry_delay: float = 1.0,
        recheck_delay: float | None = None,
        max_recheck_delay: float | None = None,
    ) -> None:
        self.queue_url = queue_url
        self._client_factory = client_factory
        self._client: Any = None
        self._wait = wait_time_seconds
        self._retry_delay = retry_delay
        self._recheck_delay = RECHECK_FIRST_S if recheck_delay is None else recheck_delay
        self._max_recheck_delay = RECHECK_MAX_S if max_recheck_delay is None else max_recheck_delay
        self._rechecks = 0  # failed attempts since the queue became unreachable
        self._watchers: dict[str, list[asyncio.Queue[FeedItem]]] = {}
        self._listeners: list[tuple[Callable[[News], bool], asyncio.Queue[FeedItem]]] = []
        self._driver: asyncio.Task[None] | None = None
        self.unreachable: str | None = None
        self.calls = 0  # SQS requests sent (ReceiveMessage, DeleteMessageBatch)

    # -- subscribing ------------------------------------------------------------------------------

    def watch(self, execution_id: str) -> asyncio.Queue[FeedItem]:
        """A queue of this execution's events; a QueueUnreachable when the queue cannot be read (poll
        meanwhile), a QueueReachable when it is read again."""
        inbox: asyncio.Queue[FeedItem] = asyncio.Queue()
        self._watchers.setdefault(execution_id, []).append(inbox)
        self._started(inbox)
        return inbox

    def listen(self, predicate: Callable[[News], bool]) -> asyncio.Queue[FeedItem]:
        """A queue of every event ``predicate`` accepts, whichever execution it is about."""
        inbox: asyncio.Queue[FeedItem] = asyncio.Queue()
        self._listeners.append((predicate, inbox))
        self._started(inbox)
        return inbox

    def leave(self, inbox: asyncio.Queue[FeedItem]) -> None:
        """Stop handing events to ``inbox`` (a trigger that fired or was cancelled)."""
        for execution_id, inboxes in list(self._watchers.items()):
            if inbox in inboxes:
                inboxes.remove(inbox)
                if not inboxes:
                    del self._watchers[execution_id]
        self._listeners = [(p, i) for p, i in self._listeners if i is not inbox]
        while not inbox.empty():  # what it never read needs it no more: acknowledged, so deleted
            news = inbox.get_nowait()
            if isinstance(news, News):
                news.done()

    def _started(self, inbox: asyncio.Queue[FeedItem]) -> None:
        if self.unreachable is not None:
            inbox.put_nowait(QueueUnreachable(self.unreachable))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive(), name="ssm-automation-events")

    # -- the consumer -----------------------------------------------------------------------------

    async def _drive(self) -> None:
        failures = 0
        while self._watchers or self._listeners:
            try:
                messages = await self._receive()
            except Exception as exc:
                failures += 1
                if self.unreachable is None and is_transient(exc) and failures < MAX_FAILURES:
                    await asyncio.sleep(self._retry_delay * 2 ** (failures - 1))
                    continue
                self._unreachable_now(exc)
                await asyncio.sleep(self._next_recheck())
                continue
            failures = 0
            if self.unreachable is not None:
                self._reachable_again()
            # settle this batch before the next receive: an in-flight message makes the next long poll
            # return at once (and moto's spin), and deletes go ten to a call
            handled = [self._handle(message) for message in messages]
            await self._settle([item for item in handled if item is not None])

    def _next_recheck(self) -> float:
        """Bounded exponential backoff between attempts while the queue is unreachable."""
        delay = min(self._max_recheck_delay, self._recheck_delay * 2**self._rechecks)
        self._rechecks += 1
        return delay

    def _handle(self, message: dict[str, Any]) -> tuple[str, list[asyncio.Future[None]]] | None:
        """Hand one message to whoever watches it: (receipt handle, their applied futures) to delete it
        once applied, or None to leave it in the queue."""
        handle = str(message.get("ReceiptHandle", ""))
        news = parse_news(str(message.get("Body", "")))
        if news is None:  # not an Automation event (a wrong rule pattern?): nobody will ever want it
            log.debug("Ignoring a message that is not an Automation status-change event: %.200s", message)
            return handle, []
        targets = list(self._watchers.get(news.execution_id, []))
        targets += [inbox for predicate, inbox in self._listeners if predicate(news)]
        if not targets:  # another triggerer may watch it: leave it, unless it is old
            return (handle, []) if self._age(message) > STALE_AFTER_S else None
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for inbox in targets:
            future: asyncio.Future[None] = loop.create_future()
            futures.append(future)
            inbox.put_nowait(replace(news, applied=future))  # each trigger acknowledges its own copy
        return handle, futures

    async def _settle(self, handled: list[tuple[str, list[asyncio.Future[None]]]]) -> None:
        """Delete the messages once applied (those not applied in time come again: harmless)."""
        futures = [future for _, waiting in handled for future in waiting]
        if futures:
            await asyncio.wait(futures, timeout=APPLY_TIMEOUT_S)
        applied = [handle for handle, waiting in handled if all(f.done() for f in waiting)]
        for start in range(0, len(applied), 10):
            batch = applied[start : start + 10]
            try:
                await self._delete(batch)
            except Exception as exc:  # a duplicate later is harmless
                log.warning("Could not delete events from %s: %s", self.queue_url, exc)

    async def _delete(self, handles: list[str]) -> None:
        """One DeleteMessageBatch: AWS authorises it as sqs:DeleteMessage (SQS Developer Guide)."""
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
        await self._call("delete_message_batch", QueueUrl=self.queue_url, Entries=entries)

    @staticmethod
    def _age(message: dict[str, Any]) -> float:
        sent = message.get("Attributes", {}).get("SentTimestamp")
        try:
            return time.time() - int(sent) / 1000
        except (TypeError, ValueError):
            return 0.0

    async def _receive(self) -> list[dict[str, Any]]:
        response = await self._call(
            "receive_message",
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait,
            AttributeNames=["SentTimestamp"],
        )
        return list(response.get("Messages", []))

    async def _call(self, method: str, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = await asyncio.to_thread(self._client_factory)
        self.calls += 1
        client = self._client
        return await asyncio.to_thread(lambda: getattr(client, method)(**kwargs))

    def _unreachable_now(self, exc: BaseException) -> None:
        """Tell everyone once that the queue cannot be read; later failures only go to the debug log."""
        if self.unreachable is not None:
            log.debug("The Automation events queue %s still cannot be read: %s", self.queue_url, exc)
            return
        self.unreachable = f"{type(exc).__name__}: {exc}"
        log.warning(
            "The Automation events queue %s cannot be read (%s): the watches fall back to polling; "
            "trying it again every %g s at most.",
            self.queue_url,
            self.unreachable,
            self._max_recheck_delay,
        )
        self._tell_all(QueueUnreachable(self.unreachable))

    def _reachable_again(self) -> None:
        log.warning(  # a warning, as the fall-back was: whoever saw one should see the other
            "The Automation events queue %s is read again (it could not be: %s): the watches use its events.",
            self.queue_url,
            self.unreachable,
        )
        self.unreachable = None
        self._rechecks = 0
        self._tell_all(QueueReachable())

    def _tell_all(self, item: QueueUnreachable | QueueReachable) -> None:
        for inboxes in self._watchers.values():
            for inbox in inboxes:
                inbox.put_nowait(item)
        for _, inbox in self._listeners:
            inbox.put_nowait(item)

    async def close(self) -> None:
        """Stop consuming (tests)."""
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._driver


def sqs_client_factory(settings: ConnectionSettings) -> Callable[[], Any]:
    """Builds the SQS client of the settings' Airflow connection (in a worker thread, on first use)."""

    def build() -> Any:
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        from airflow_ssm_delegate.retry import merged_botocore_config

        return SqsHook(
            aws_conn_id=settings.aws_conn_id,
            region_name=settings.region_name,
            verify=settings.verify,
            config=merged_botocore_config(settings.botocore_config),
        ).conn

    return build


_EXTRA_CACHE: dict[str | None, tuple[float, str | None]] = {}
EXTRA_CACHE_S = 300.0


async def queue_url_from_connection(settings: ConnectionSettings) -> str | None:
    """The ``events_queue_url`` extra of the settings' AWS connection (None when not set).

    Read at most every ``EXTRA_CACHE_S`` per connection: 1,000 triggers starting together must not make
    1,000 connection look-ups.
    """
    conn_id = settings.aws_conn_id
    if conn_id is None:
        return None
    cached = _EXTRA_CACHE.get(conn_id)
    if cached is not None and time.monotonic() - cached[0] < EXTRA_CACHE_S:
        return cached[1]

    def read() -> str | None:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        hook = AwsBaseHook(aws_conn_id=conn_id, client_type="sqs")
        value = hook.conn_config.extra_config.get(CONNECTION_EXTRA)
        return str(value) if value else None

    try:
        value = await asyncio.to_thread(read)
    except Exception as exc:
        log.warning("Could not read the %s extra of connection %s: %s", CONNECTION_EXTRA, conn_id, exc)
        value = None
    _EXTRA_CACHE[conn_id] = (time.monotonic(), value)
    return value


# One feed per event loop, queue and connection settings (the triggerer runs one loop; tests many).
_FEEDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], EventFeed]] = (
    weakref.WeakKeyDictionary()
)


def get_feed(queue_url: str, settings: ConnectionSettings) -> EventFeed:
    """The shared feed of ``queue_url`` in the running event loop (created on first use)."""
    feeds = _FEEDS.setdefault(asyncio.get_running_loop(), {})
    key = (queue_url, *settings.key())
    if key not in feeds:
        feeds[key] = EventFeed(queue_url, sqs_client_factory(settings))
    return feeds[key]
