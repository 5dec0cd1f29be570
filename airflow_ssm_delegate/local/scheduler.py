"""One timer thread for every waiting step of every execution.

Why not a thread per execution: a benchmark watches 1,000 executions that mostly sleep for hours.
Sleeping costs one heap entry here; only steps making calls occupy one of a few worker threads.
Timers are in simulated time, so changing the clock's ``time_scale`` needs no rescheduling (the
thread re-checks at least every ``MAX_NAP`` wall seconds).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from airflow_ssm_delegate.local.clock import SimulatedClock

log = logging.getLogger(__name__)
MAX_NAP = 0.5


class TimerScheduler:
    """Runs callbacks on a worker pool, now (``submit``) or at a simulated time (``call_at``)."""

    def __init__(self, clock: SimulatedClock, workers: int = 8) -> None:
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="automation-step")
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._wake = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="automation-timers", daemon=True)
        self._thread.start()

    def submit(self, callback: Callable[[], None]) -> None:
        if self._running:
            with contextlib.suppress(RuntimeError):  # the pool shut down meanwhile: nothing runs any more
                self._pool.submit(self._guarded, callback)

    def call_at(self, when: datetime, callback: Callable[[], None]) -> None:
        with self._wake:
            heapq.heappush(self._heap, (when, next(self._sequence), callback))
            self._wake.notify()

    def pending_timers(self) -> int:
        with self._wake:
            return len(self._heap)

    @staticmethod
    def _guarded(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # callbacks handle their own failures; this only keeps the worker alive
            log.exception("automation engine callback failed")

    def _loop(self) -> None:
        while True:
            with self._wake:
                if not self._running:
                    return
                due: list[Callable[[], None]] = []
                now = self._clock.now()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                if not due:
                    nap = MAX_NAP
                    if self._heap:
                        nap = min(nap, self._clock.wall_seconds((self._heap[0][0] - now).total_seconds()))
                    self._wake.wait(nap)
                    continue
            for callback in due:
                self.submit(callback)

    def shutdown(self) -> None:
        with self._wake:
            self._running = False
            self._heap.clear()
            self._wake.notify()
        self._thread.join(timeout=2)
        self._pool.shutdown(wait=False, cancel_futures=True)
