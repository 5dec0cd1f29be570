"""One trigger's watch loop: news from the events queue when there is one, the batched poll otherwise.

Each round waits for whichever comes first: an event about the execution (``triggers.events``) or the
next status poll (``triggers.poller``). Without a queue — or while it is unreachable — only polls
come, every ``waiter_delay`` or less often while the runbook provably cannot end (``polling``); the feed
keeps trying the queue and says when events flow again, and the watch goes back to them.

With a queue, the poll is a slow safety net: events are best effort, so the watch still polls, but only
at the time the runbook could first have ended (the same step-aware lower bound), and never more often
than ``events_safety_delay``. Events are hints, never trusted alone: an event saying the execution ended
is confirmed by one GetAutomationExecution (which also brings the outputs and step records the events do
not carry), so a duplicate, a reordered or even a forged event cannot end a watch early. A step event
moves the known current step and its start time (so the safety net needs no step records); an event
older than what is known changes nothing.

Progress: every step transition seen goes to the log (``triggers.progress``), and the final log lists
every step with its status and duration.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.clocks import settings_scale
from airflow_ssm_delegate.polling import ExecutionWatch, PollSchedule, execution_status
from airflow_ssm_delegate.status import TERMINAL_STATUSES
from airflow_ssm_delegate.triggers.events import News, QueueReachable, QueueUnreachable
from airflow_ssm_delegate.triggers.progress import APPROVE, StepProgress

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_ssm_delegate.documents.model import Runbook
    from airflow_ssm_delegate.triggers.events import EventFeed, FeedItem
    from airflow_ssm_delegate.triggers.poller import BatchedPoller

#: The safety net's cap while events flow: someone stopping the execution is an event too.
EVENTS_MAX_POLL_INTERVAL = 86400.0
_WAITING = frozenset({"Waiting", "Pending"})


class GaveUp(Exception):
    """``waiter_max_attempts`` status checks made and the execution still runs."""

    def __init__(self, status: str, checks: int) -> None:
        super().__init__(status, checks)
        self.status, self.checks = status, checks


@dataclass
class MonitorSettings:
    schedule: PollSchedule
    step_aware: bool = True
    events_safety_delay: float = 600.0
    waiter_max_attempts: int | None = None


class ExecutionMonitor:
    """Watches one execution until it ends; :meth:`run` returns its final GetAutomationExecution."""

    def __init__(
        self,
        execution_id: str,
        poller: BatchedPoller,
        feed: EventFeed | None,
        settings: MonitorSettings,
        log: Any,  # the trigger's logger (structlog in Airflow 3)
    ) -> None:
        self.execution_id = execution_id
        self.poller = poller
        self.feed = feed
        self.settings = settings
        self.log = log
        self.progress = StepProgress(log, execution_id, clock=poller.clock)
        self._inbox: asyncio.Queue[FeedItem] | None = None
        self._events_flow = True  # False while the feed says its queue cannot be read
        self._watch = self._new_watch()
        self._runbook: Runbook | None = None
        self._metadata: dict[str, Any] = {}
        self._step_started: dict[str, datetime] = {}  # from step events: no step records needed
        self._approvers_asked: set[str] = set()
        self.polls = 0
        self._poll: asyncio.Future[dict[str, Any]] | None = None
        self._poll_due = poller.clock.now()

    @property
    def by_events(self) -> bool:
        return self._inbox is not None and self._events_flow

    def _new_watch(self) -> ExecutionWatch:
        schedule = self.settings.schedule
        if self.by_events:
            # The safety net looks one safety delay *after* the earliest possible end (a negative
            # margin): by then an event should have come, so a poll then means events were lost.
            delay = max(self.settings.events_safety_delay, schedule.waiter_delay)
            schedule = PollSchedule(delay, max(delay, EVENTS_MAX_POLL_INTERVAL), -delay)
        return ExecutionWatch(schedule, step_aware=self.settings.step_aware)

    async def run(self) -> dict[str, Any]:
        if self.feed is not None:
            self._inbox = self.feed.watch(self.execution_id)  # before the first poll: no event is missed
            self._watch = self._new_watch()  # the safety net's pace
            self.log.info(
                "Watching automation execution %s by its events (queue %s); polling only as a safety net.",
                self.execution_id,
                self.feed.queue_url,
            )
        try:
            return await self._loop()
        finally:
            if self._poll is not None:
                await _cancelled(self._poll)
            if self.feed is not None and self._inbox is not None:
                self.feed.leave(self._inbox)

    async def _loop(self) -> dict[str, Any]:
        poller = self.poller
        due_at = poller.clock.now()
        first = True
        while True:
            news = await self._next(due_at)
            if isinstance(news, dict):  # a poll
                self.polls += 1
                self._metadata = news
                if execution_status(news, self.execution_id) in TERMINAL_STATUSES:
                    final = await self._final("the safety-net poll" if self.by_events else "a status poll")
                    if final is not None:
                        return final
                await self._apply_poll(news, first)
                checks = self.settings.waiter_max_attempts
                if checks is not None and self.polls >= checks:
                    raise GaveUp(execution_status(news, self.execution_id), self.polls)
            elif isinstance(news, (QueueUnreachable, QueueReachable)):
                self._events_flowing(news)
            else:
                ended = await self._apply_event(news)
                news.done()
                final = await self._final("its event") if ended else None
                if final is not None:
                    return final
            due_at = poller.due_in(await self._delay(first))
            first = first and not isinstance(news, dict)

    def _events_flowing(self, news: QueueUnreachable | QueueReachable) -> None:
        """Switch between events and polling as the feed says (once per change: the feed says it once)."""
        flowing = isinstance(news, QueueReachable)
        if flowing == self._events_flow:
            return
        self._events_flow = flowing
        if isinstance(news, QueueUnreachable):
            self.log.warning(
                "The events queue cannot be read (%s): watching %s by polling instead until it can.",
                news.reason,
                self.execution_id,
            )
        else:
            self.log.warning("The events queue is read again: watching %s by its events.", self.execution_id)
        self._watch = self._new_watch()

    async def _next(self, due_at: datetime) -> dict[str, Any] | FeedItem:
        """The next poll answer or event, whichever comes first.

        A poll already due (perhaps in flight) is kept across events rather than asked again.
        """
        poll = self._poll
        if poll is None or (
            not poll.done() and self._poll_due > self.poller.clock.now() and due_at != self._poll_due
        ):
            if poll is not None:
                await _cancelled(poll)
            poll = self._poll = asyncio.ensure_future(self.poller.status(self.execution_id, due_at))
            self._poll_due = due_at
        if self._inbox is None:
            self._poll = None
            return await poll
        event = asyncio.ensure_future(self._inbox.get())
        waiting: list[asyncio.Future[Any]] = [poll, event]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not event.done():
            await _cancelled(event)
        if event.done() and not event.cancelled():  # it may have taken its item while we looked
            if not poll.done():
                return event.result()
            self._inbox.put_nowait(event.result())  # both at once: the event waits for the next round
        self._poll = None
        return poll.result()

    async def _delay(self, first: bool) -> float:
        metadata, runbook = self._metadata, await self._read_runbook()
        step = metadata.get("CurrentStepName")
        steps: list[dict[str, Any]] | None = None
        if step in self._step_started:
            steps = [{"StepName": step, "ExecutionStartTime": self._step_started[step]}]
        elif self._watch.needs_step_records(metadata, runbook) and not (self.by_events and first):
            # polling, or events evidently lost (a poll found a step no event announced)
            try:
                steps = await self.poller.call("get_step_executions", self.execution_id)
            except Exception as exc:  # only the optimisation is lost, never the watch
                self.log.warning("No step records for %s (%s)", self.execution_id, exc)
                steps = []
        clock = self.poller.clock
        return self._watch.next_delay(metadata, runbook, clock.now(), steps, settings_scale(clock))

    async def _read_runbook(self) -> Runbook | None:
        name = self._metadata.get("DocumentName")
        if self._runbook is None and self.settings.step_aware and name:
            self._runbook = await self.poller.runbook(name, self._metadata.get("DocumentVersion"))
            self.progress.runbook = self._runbook
        return self._runbook

    async def _apply_poll(self, metadata: dict[str, Any], first: bool) -> None:
        step = metadata.get("CurrentStepName")
        if not step or step == self.progress.current_step:
            return
        await self._read_runbook()
        action = metadata.get("CurrentAction") or self.progress.action_of(step)
        status = "Waiting" if metadata.get("AutomationExecutionStatus") == "Waiting" else "InProgress"
        source = "first status check" if first else "safety-net poll" if self.by_events else "poll"
        await self._log_step(step, action, status, self.poller.clock.now(), None, source)

    async def _apply_event(self, news: News) -> bool:
        """Apply one event; True when it says the execution ended (to be confirmed)."""
        if not news.is_step:
            if news.status in TERMINAL_STATUSES:
                return True
            self._metadata = {**self._metadata, "AutomationExecutionStatus": news.status}
            return False
        assert news.step_name is not None
        if news.start_time is not None:
            self._step_started.setdefault(news.step_name, news.start_time)
        fresh = await self._log_step(
            news.step_name, news.action, news.status, news.time, news.start_time, "event"
        )
        if fresh and news.status in ("InProgress", *_WAITING):
            self._metadata = {
                **self._metadata,
                "CurrentStepName": news.step_name,
                "CurrentAction": news.action,
            }
        return False

    async def _log_step(  # noqa: PLR0917 (one transition's fields)
        self,
        step: str,
        action: str | None,
        status: str,
        when: datetime,
        started: datetime | None,
        source: str,
    ) -> bool:
        approvers = None
        if (action or self.progress.action_of(step)) == APPROVE and status in _WAITING:
            approvers = await self._approvers(step)
        return self.progress.step_changed(
            step, action, status, when, started=started, source=source, approvers=approvers
        )

    async def _approvers(self, step: str) -> list[str] | None:
        """The resolved Approvers of an approve step (one DescribeAutomationStepExecutions, once)."""
        if step in self._approvers_asked:
            return None
        self._approvers_asked.add(step)
        try:
            records = await self.poller.call("get_step_executions", self.execution_id)
        except Exception:
            return None
        for record in reversed(records):
            if record.get("StepName") == step:
                value = record.get("Inputs", {}).get("Approvers")
                return _string_list(value)
        return None

    async def _final(self, noticed_by: str) -> dict[str, Any] | None:
        """The one GetAutomationExecution at the end (outputs and step records), logged as a summary.

        None when AWS says the execution still runs although an event said it ended (a forged or
        misrouted event): the watch goes on.
        """
        execution = dict(await self.poller.call("get_automation_execution", self.execution_id))
        if execution_status(execution, self.execution_id) not in TERMINAL_STATUSES:
            self.log.warning(
                "An event said %s ended, but it is %s: still watching.",
                self.execution_id,
                execution["AutomationExecutionStatus"],
            )
            self._metadata = {k: v for k, v in execution.items() if k != "StepExecutions"}
            return None
        self.log.info(
            "Automation execution %s ended %s (noticed by %s).",
            self.execution_id,
            execution["AutomationExecutionStatus"],
            noticed_by,
        )
        self.progress.summary(execution)
        return execution


async def _cancelled(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _string_list(value: Any) -> list[str] | None:
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return None
