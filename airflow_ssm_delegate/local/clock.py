"""Simulated time for the local Automation runtime.

Runbooks sleep for hours and sessions expire after 12 hours; tests and demos cannot wait that long, so
the runtime runs on a clock that advances ``time_scale`` simulated seconds per wall-clock second
(3600 = an hour a second). Every timestamp the runtime reports comes from here.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone


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
        return self._anchor_sim + timedelta(seconds=(time.monotonic() - self._anchor_wall) * self._scale)

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
