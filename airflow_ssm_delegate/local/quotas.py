"""The account's Automation quotas: how many executions run at once, and how many may wait as ``Pending``.

AWS runs at most 100 automations at once per account and Region (child executions and rate-control
executions count); further starts wait in a queue of up to 1,000 as ``Pending`` and start in order as running
ones end; beyond the queue StartAutomationExecution fails with AutomationExecutionLimitExceededException.
(Systems Manager service quotas: "Concurrently executing automations" and "Automation execution queue",
https://docs.aws.amazon.com/general/latest/gr/ssm.html#limits_ssm.) AWS's adaptive concurrency, which can
raise the running limit up to 500, is not emulated: the limit here is fixed.
"""

from __future__ import annotations

import threading
from collections import deque

from airflow_ssm_delegate.local.errors import AutomationApiError

DEFAULT_MAX_RUNNING = 100
DEFAULT_MAX_QUEUED = 1000
LIMIT_EXCEEDED = "AutomationExecutionLimitExceededException"


class ExecutionQuotas:
    """Admission of executions: run now, queue as Pending (first in, first started), or refuse."""

    def __init__(self, max_running: int = DEFAULT_MAX_RUNNING, max_queued: int = DEFAULT_MAX_QUEUED) -> None:
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._queue: deque[str] = deque()
        self.max_running = max_running
        self.max_queued = max_queued

    @property
    def max_running(self) -> int:
        return self._max_running

    @max_running.setter
    def max_running(self, value: int) -> None:
        self._max_running = _checked("max_running", value, minimum=1)

    @property
    def max_queued(self) -> int:
        return self._max_queued

    @max_queued.setter
    def max_queued(self, value: int) -> None:
        self._max_queued = _checked("max_queued", value, minimum=0)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def admit(self, execution_id: str) -> bool:
        """True: it may run now. False: it waits as Pending. Raises when the queue is full too."""
        with self._lock:
            if not self._queue and len(self._running) < self._max_running:
                self._running.add(execution_id)
                return True
            if len(self._queue) >= self._max_queued:
                raise AutomationApiError(
                    LIMIT_EXCEEDED,
                    f"{len(self._running)} automation executions are running (limit {self._max_running}) "
                    f"and {len(self._queue)} are queued (limit {self._max_queued}); retry the start when some"
                    " have ended.",
                )
            self._queue.append(execution_id)
            return False

    def release(self, execution_id: str) -> list[str]:
        """An execution ended (running or still queued): the queued ids that may start now, in order."""
        with self._lock:
            self._running.discard(execution_id)
            if execution_id in self._queue:
                self._queue.remove(execution_id)
            started = []
            while self._queue and len(self._running) < self._max_running:
                next_id = self._queue.popleft()
                self._running.add(next_id)
                started.append(next_id)
            return started


def _checked(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value
