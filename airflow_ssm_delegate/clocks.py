"""What "now" is for a watch loop, and how long its waits take in real seconds.

Three clocks:
- :class:`WallClock` — real time (real AWS).
- :class:`ServerClock` — the clock of the endpoint a hook talks to. The local runtime runs runbooks on a
  simulated clock (``time_scale`` times faster) and reports it in headers on every answer
  (``simclock``); a ServerClock attached to the hook's client learns it from there, so an Airflow process
  watching a 13-hour runbook that the runtime plays in 13 seconds compares the runbook's sleep ends with
  the right "now". With no headers (real AWS) it is the wall clock. ``waiter_delay`` and
  ``max_poll_interval`` stay wall seconds under it (``settings_scale`` = time scale).
- Any clock installed with :func:`use_clock` (benchmarks, tests): the whole watch, settings included,
  runs on it. It is process-wide and never part of a trigger's serialized kwargs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from airflow_ssm_delegate.simclock import clock_reading

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from airflow_ssm_delegate.simclock import ClockReading


class Clock(Protocol):
    """Where "now" comes from and how long a wait of ``sim_seconds`` takes in real (wall) seconds."""

    def now(self) -> datetime: ...

    def wall_seconds(self, sim_seconds: float) -> float: ...


class WallClock:
    """Real time."""

    settings_scale = 1.0

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wall_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds)


class ServerClock:
    """The endpoint's clock, learnt from the simulated-time headers of its answers (wall time without any)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reading: ClockReading | None = None
        self._read_at = 0.0  # time.monotonic() of the reading

    def observe(self, response: Mapping[str, Any]) -> None:
        """Learn from one botocore response (raises ValueError on a garbled clock header)."""
        reading = clock_reading(response)
        if reading is not None:
            with self._lock:
                self._reading, self._read_at = reading, time.monotonic()

    def attach(self, client: Any) -> None:
        """Observe every answer ``client`` (a boto3 SSM client) receives."""

        def on_answer(parsed: Mapping[str, Any] | None = None, **_: Any) -> None:
            if parsed:
                self.observe(parsed)

        client.meta.events.register("after-call.ssm", on_answer)

    @property
    def time_scale(self) -> float:
        reading = self._reading
        return reading.time_scale if reading else 1.0

    @property
    def settings_scale(self) -> float:
        """Settings like ``waiter_delay`` are wall seconds: in simulated seconds they are this much longer."""
        return self.time_scale

    def now(self) -> datetime:
        with self._lock:
            reading, read_at = self._reading, self._read_at
        if reading is None:
            return datetime.now(timezone.utc)
        elapsed = (time.monotonic() - read_at) * reading.time_scale
        return datetime.fromtimestamp(reading.sim_now, timezone.utc) + timedelta(seconds=elapsed)

    def wall_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) / self.time_scale


class _Installed:
    clock: Clock | None = None


def clock_or(default: Clock) -> Clock:
    """The installed clock, else ``default`` (a loop's ServerClock)."""
    return _Installed.clock or default


def settings_scale(clock: Clock) -> float:
    """Factor turning ``waiter_delay``-like settings into ``clock`` seconds (1 unless the clock says so)."""
    return float(getattr(clock, "settings_scale", 1.0))


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Run every watch loop of this process on ``clock`` (e.g. the local runtime's SimulatedClock)."""
    previous, _Installed.clock = _Installed.clock, clock
    try:
        yield clock
    finally:
        _Installed.clock = previous


def backoff_clock() -> Clock:
    """The clock backoffs sleep on: the installed one (so tests run them instantly), else wall time."""
    return _Installed.clock or WallClock()


def sleep_blocking(seconds: float) -> None:
    """Back off ``seconds`` in this thread."""
    time.sleep(backoff_clock().wall_seconds(seconds))


async def sleep_async(seconds: float) -> None:
    """Back off ``seconds`` without blocking the event loop."""
    await asyncio.sleep(backoff_clock().wall_seconds(seconds))
