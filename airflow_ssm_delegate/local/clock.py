"""Simulated time for the local Automation runtime.

Runbooks sleep for hours and sessions expire after 12 hours; tests and demos cannot wait that long, so
the runtime runs on a clock that advances ``time_scale`` simulated seconds per wall-clock second
(3600 = an hour a second). Every timestamp the runtime reports comes from here.

Simulated time stands still while the runtime itself is working (``held``): AWS answers an API call in
milliseconds, but a loaded test machine may take half a second, which at 3600x would be half an hour of
simulated time charged to a step's ``timeoutSeconds`` — a demo would time out for being on a busy CPU.
At 1x nothing is held: simulated time is the wall time.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


class SimulatedClock:
    """Wall time scaled by ``time_scale``, anchored at the real UTC time of creation.

    ``time_scale`` may be changed while running: the clock re-anchors so simulated time never jumps.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self.check_scale(time_scale)
        self._scale = float(time_scale)
        self._anchor_wall = time.monotonic()
        self._anchor_sim = datetime.now(timezone.utc)
        self._holds = 0  # runtime work in progress: while > 0 (and faster than 1x) time stands still

    @staticmethod
    def check_scale(time_scale: float) -> None:
        """Raise ValueError unless ``time_scale`` is a usable speed."""
        if (
            isinstance(time_scale, bool)
            or not isinstance(time_scale, int | float)
            or not (0 < time_scale < math.inf)
        ):
            raise ValueError(
                f"time_scale must be a positive number of simulated seconds per second, got {time_scale!r}"
            )

    @property
    def time_scale(self) -> float:
        return self._scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self.check_scale(value)
        with self._lock:
            self._anchor_sim = self._now_locked()
            self._anchor_wall = time.monotonic()
            self._scale = float(value)

    def _now_locked(self) -> datetime:
        if self._holds and self._scale > 1:
            return self._anchor_sim
        return self._anchor_sim + timedelta(seconds=(time.monotonic() - self._anchor_wall) * self._scale)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Simulated time does not pass inside this block (nested and concurrent holds add up)."""
        with self._lock:
            self._anchor_sim, self._anchor_wall = self._now_locked(), time.monotonic()
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:  # resume from the held instant (at 1x, from now)
                self._anchor_sim, self._anchor_wall = self._now_locked(), time.monotonic()
                self._holds -= 1

    def now(self) -> datetime:
        """The simulated current time (timezone-aware UTC)."""
        with self._lock:
            return self._now_locked()

    def wall_seconds(self, sim_seconds: float) -> float:
        """How many wall-clock seconds ``sim_seconds`` of simulated time take (never negative)."""
        return max(0.0, sim_seconds) / self._scale

    def wait(self, sim_seconds: float, event: threading.Event) -> bool:
        """Block for ``sim_seconds`` of simulated time; returns True as soon as ``event`` is set first."""
        return event.wait(self.wall_seconds(sim_seconds))
