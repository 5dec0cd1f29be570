"""Transient AWS errors: which ones, how long to back off, and the botocore retry settings we add.

Two layers, on purpose: botocore's own retry mode (``adaptive`` by default here) absorbs short bursts of
throttling inside one API call; the bounded, jittered backoff below sits around a whole poll so that a
longer outage (endpoint unreachable, a throttling storm) delays the watch instead of failing the task.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

T = TypeVar("T")

DEFAULT_RETRIES: dict[str, Any] = {"mode": "adaptive", "max_attempts": 10}

TRANSIENT_ERROR_CODES: frozenset[str] = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
START_LIMIT_ERROR_CODE = "AutomationExecutionLimitExceededException"
# Stopping an execution that already ended (or is gone) is not an error for a cancel-on-kill.
ALREADY_ENDED_CODES = frozenset(
    {"InvalidAutomationStatusUpdateException", "AutomationExecutionNotFoundException"}
)

_TRANSIENT_EXCEPTIONS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)


def merged_botocore_config(user_config: dict[str, Any] | None) -> dict[str, Any]:
    """The user's botocore config with a retry policy added, unless the user chose one themselves."""
    if user_config is not None and not isinstance(user_config, Mapping):
        raise TypeError(
            "botocore_config must be a dict of botocore.config.Config arguments (e.g. "
            f'{{"read_timeout": 30}}), got {type(user_config).__name__} {user_config!r:.80}'
        )
    merged = dict(user_config or {})
    merged.setdefault("retries", dict(DEFAULT_RETRIES))
    return merged


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ``ClientError`` (``None`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same call later may succeed (throttling, 5xx, connection trouble, timeouts)."""
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return True
    if isinstance(exc, ClientError):
        if error_code(exc) in TRANSIENT_ERROR_CODES:
            return True
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and status >= 500
    return False


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt ``n`` waits uniformly in ``[0, min(cap, base * 2**n)]``.

    ``max_attempts`` bounds how many failures in a row are absorbed before the error is raised.
    """

    base: float = 2.0
    cap: float = 300.0
    max_attempts: int = 12

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits between attempts (``max_attempts - 1`` of them)."""
        draw = (rng or random).uniform
        for attempt in range(self.max_attempts - 1):
            yield draw(self.base / 2, min(self.cap, self.base * 2**attempt))


DEFAULT_BACKOFF = Backoff()


def _retry_delay(
    exc: BaseException,
    delays: Iterator[float],
    should_retry: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException, float], None] | None,
) -> float | None:
    """How long to wait before trying again after ``exc``; None: give up (the caller re-raises ``exc``).

    Shared by the blocking and the ``async`` loop so both decide and report retries the same way.
    """
    delay = next(delays, None) if should_retry(exc) else None
    if delay is not None and on_retry is not None:
        on_retry(exc, delay)
    return delay


def call_with_backoff(
    call: Callable[[], T],
    *,
    should_retry: Callable[[BaseException], bool] = is_transient,
    backoff: Backoff = DEFAULT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Run ``call``; on a retryable error wait (jittered) and retry (``backoff.max_attempts`` tries)."""
    delays = backoff.delays()
    while True:
        try:
            return call()
        except Exception as exc:
            delay = _retry_delay(exc, delays, should_retry, on_retry)
            if delay is None:
                raise
            sleep(delay)


async def call_with_backoff_async(
    call: Callable[[], Awaitable[T]],
    *,
    should_retry: Callable[[BaseException], bool] = is_transient,
    backoff: Backoff = DEFAULT_BACKOFF,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """The ``async`` twin of :func:`call_with_backoff` (the wait never blocks the event loop)."""
    delays = backoff.delays()
    while True:
        try:
            return await call()
        except Exception as exc:
            delay = _retry_delay(exc, delays, should_retry, on_retry)
            if delay is None:
                raise
            await sleep(delay)
