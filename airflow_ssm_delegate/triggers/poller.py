"""One batched status poller per triggerer process (and connection), shared by every automation trigger.

A triggerer may watch hundreds of executions. Instead of one GetAutomationExecution per trigger per
poll, each trigger tells the poller *when* it next needs a fresh status; the poller wakes at the earliest
due time and asks DescribeAutomationExecutions about up to 10 execution ids at once (ExecutionId filter),
filling a batch with the executions due next so their answers come for free. If the service refuses
the batched filter (ValidationException and friends) the poller falls back to one
GetAutomationExecution per execution for the rest of the process's life.

Every AWS call is the synchronous boto3 hook run in a worker thread (``asyncio.to_thread``): aiobotocore
pins an older botocore (it would drag boto3 down for the whole deployment) and does not work with moto
in-process, while boto3 clients are thread-safe — so the event loop never blocks on I/O. Throttling,
5xx and connection errors are absorbed with a bounded, jittered backoff (``retry.Backoff``); only after
that is exhausted does the error reach the waiting triggers.

"Now" is the endpoint's clock (``clocks.ServerClock``, learnt from the local runtime's simulated-time
headers; wall time on real AWS), unless a clock was installed with ``clocks.use_clock`` (benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_ssm_delegate.clocks import ServerClock, clock_or, sleep_async
from airflow_ssm_delegate.polling import read_execution
from airflow_ssm_delegate.retry import (
    DEFAULT_BACKOFF,
    Backoff,
    call_with_backoff_async,
    error_code,
    is_transient,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.clocks import Clock
    from airflow_ssm_delegate.connection import ConnectionSettings
    from airflow_ssm_delegate.documents.model import Runbook
    from airflow_ssm_delegate.hooks.automation import SsmAutomationHook

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_SIZE = 10  # DescribeAutomationExecutions: at most 10 values per filter
# A poll absorbs ~12 transient failures in a row (waits of up to 5 min each) before the watch gives up.
POLL_BACKOFF = DEFAULT_BACKOFF
# The batched call refused as such (an IAM policy granting Get but not Describe is the usual reason on AWS):
# fall back to one GetAutomationExecution per execution.
BATCH_REFUSED_CODES = frozenset(
    {
        "ValidationException",
        "InvalidFilterKey",
        "InvalidFilterValue",
        "InvalidFilter",
        "AccessDeniedException",
    }
)


@dataclass(order=True)
class _Request:
    due_at: datetime
    seq: int
    execution_id: str = field(compare=False)
    future: asyncio.Future[dict[str, Any]] = field(compare=False)


class BatchedPoller:
    """Answers "what is the status of execution X, no older than time T?" with as few calls as possible."""

    def __init__(
        self,
        hook_factory: Callable[[], SsmAutomationHook],
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._hook_factory = hook_factory
        self._hook: SsmAutomationHook | None = None
        self._backoff = backoff
        self._batch_size = batch_size
        self._queue: list[_Request] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._driver: asyncio.Task[None] | None = None
        self._runbooks: dict[tuple[str, str | None], asyncio.Future[Runbook | None]] = {}
        self.server_clock = ServerClock()
        self.batching_refused = False
        self.hook_calls = 0

    # -- public -----------------------------------------------------------------------------------

    async def status(self, execution_id: str, due_at: datetime) -> dict[str, Any]:
        """The execution's metadata (status, CurrentStepName, ...) as fetched at or after ``due_at``.

        It may come earlier when the execution rides along in another batch.
        """
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        request = _Request(due_at, next(self._seq), execution_id, future)
        heapq.heappush(self._queue, request)
        if self._queue[0] is request:
            self._wakeup.set()
        self._ensure_driver()
        try:
            return await future
        finally:
            if not future.done():
                future.cancel()  # the trigger went away: the driver skips it

    async def call(self, method: str, *args: Any) -> Any:
        """Call a hook method in a thread, absorbing transient errors (counts towards ``hook_calls``)."""
        return await call_with_backoff_async(
            lambda: self._in_thread(method, *args),
            backoff=self._backoff,
            sleep=sleep_async,
            on_retry=self._log_retry,
        )

    async def runbook(self, name: str, version: str | None) -> Runbook | None:
        """The parsed runbook, fetched once per process; None if unreadable (polling then ignores steps)."""
        key = (name, version)
        if key not in self._runbooks:
            future: asyncio.Future[Runbook | None] = asyncio.get_running_loop().create_future()
            self._runbooks[key] = future
            try:
                runbook = await call_with_backoff_async(
                    lambda: self._with_hook(lambda hook: _read_runbook(hook, name, version)),
                    backoff=self._backoff,
                    sleep=sleep_async,
                    on_retry=self._log_retry,
                )
                future.set_result(runbook)
            except Exception as exc:
                log.warning(
                    "Cannot read runbook %s (version %s) for step-aware polling: %s", name, version, exc
                )
                future.set_result(None)
        return await asyncio.shield(self._runbooks[key])

    @property
    def clock(self) -> Clock:
        """What "now" is for the executions this poller watches."""
        return clock_or(self.server_clock)

    def due_in(self, seconds: float) -> datetime:
        """Now + ``seconds`` on this poller's clock."""
        return self.clock.now() + timedelta(seconds=seconds)

    def _build_hook(self) -> SsmAutomationHook:
        hook = self._hook_factory()
        self.server_clock.attach(hook.conn)
        return hook

    # -- driver -----------------------------------------------------------------------------------

    def _ensure_driver(self) -> None:
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive(), name="ssm-automation-poller")

    def _discard_cancelled(self) -> None:
        while self._queue and self._queue[0].future.done():
            heapq.heappop(self._queue)

    async def _drive(self) -> None:
        try:
            while True:
                self._discard_cancelled()
                if not self._queue:
                    return
                wait = (self._queue[0].due_at - self.clock.now()).total_seconds()
                if wait > 0:
                    self._wakeup.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout=self.clock.wall_seconds(wait))
                    continue
                await self._poll_due()
        except Exception as exc:  # a bug here must not leave every trigger waiting forever
            log.exception("The batched poller failed; the waiting triggers report it")
            while self._queue:
                request = heapq.heappop(self._queue)
                if not request.future.done():
                    request.future.set_exception(exc)

    def _take_batch(self) -> list[_Request]:
        """All due requests, plus the soonest not-yet-due ones to fill the last batch of 10."""
        now = self.clock.now()
        taken: list[_Request] = []
        ids: set[str] = set()
        while self._queue:
            head = self._queue[0]
            if head.future.done():
                heapq.heappop(self._queue)
                continue
            batch_full = len(ids) % self._batch_size == 0
            if head.due_at > now and head.execution_id not in ids and batch_full:
                break
            taken.append(heapq.heappop(self._queue))
            ids.add(head.execution_id)
        return taken

    async def _poll_due(self) -> None:
        requests = self._take_batch()
        by_id: dict[str, list[_Request]] = {}
        for request in requests:
            by_id.setdefault(request.execution_id, []).append(request)
        try:
            results = await call_with_backoff_async(
                lambda: self._fetch(list(by_id)),
                backoff=self._backoff,
                sleep=sleep_async,
                on_retry=self._log_retry,
            )
        except Exception as exc:
            for request in requests:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        for execution_id, waiting in by_id.items():
            outcome = results[execution_id]
            for request in waiting:
                if request.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)

    async def _fetch(self, execution_ids: list[str]) -> dict[str, dict[str, Any] | BaseException]:
        results: dict[str, dict[str, Any] | BaseException] = {}
        if not self.batching_refused:
            for start in range(0, len(execution_ids), self._batch_size):
                chunk = execution_ids[start : start + self._batch_size]
                try:
                    found = await self._in_thread("describe_automation_executions", chunk)
                except Exception as exc:
                    if error_code(exc) not in BATCH_REFUSED_CODES:
                        raise
                    log.warning("Batched DescribeAutomationExecutions refused (%s); polling one by one.", exc)
                    self.batching_refused = True
                    break
                for metadata in found:
                    results[metadata["AutomationExecutionId"]] = metadata
        for execution_id in execution_ids:
            if execution_id not in results:  # batching refused, or the listing does not show it (yet)
                results[execution_id] = await self._get_one(execution_id)
        return results

    async def _get_one(self, execution_id: str) -> dict[str, Any] | BaseException:
        try:
            execution = await self._with_hook(
                lambda hook: read_execution(hook.get_automation_execution, execution_id)
            )
        except Exception as exc:
            if is_transient(exc):
                raise  # the whole poll is retried with backoff
            return exc
        return execution

    async def _in_thread(self, method: str, *args: Any) -> Any:
        """Call ``hook.<method>(*args)`` in a worker thread."""
        return await self._with_hook(lambda hook: getattr(hook, method)(*args))

    async def _with_hook(self, call: Callable[[SsmAutomationHook], T]) -> T:
        """Run ``call(hook)`` in a worker thread (the hook is built there too, on first use)."""
        if self._hook is None:
            self._hook = await asyncio.to_thread(self._build_hook)
        hook = self._hook
        self.hook_calls += 1
        return await asyncio.to_thread(call, hook)

    @staticmethod
    def _log_retry(exc: BaseException, delay: float) -> None:
        log.warning("Transient AWS error, retrying in %.1f s: %s", delay, exc)


def _read_runbook(hook: SsmAutomationHook, name: str, version: str | None) -> Runbook:
    """The runbook's content by one GetDocument (the watch needs no DescribeDocument: that is for policy)."""
    from airflow_ssm_delegate.documents.model import parse_runbook

    arguments = {"Name": name, **({"DocumentVersion": version} if version else {})}
    document = hook.conn.get_document(**arguments)
    return parse_runbook(document["Content"], source=f"{name} version {document.get('DocumentVersion')}")


# One poller per event loop and connection settings: the triggerer runs one loop; tests run many.
_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], BatchedPoller]] = (
    weakref.WeakKeyDictionary()
)


def get_poller(settings: ConnectionSettings) -> BatchedPoller:
    """The shared poller for ``settings`` in the running event loop (created on first use)."""
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    key = settings.key()
    if key not in pollers:
        pollers[key] = BatchedPoller(settings.build_hook, backoff=POLL_BACKOFF)
    return pollers[key]
