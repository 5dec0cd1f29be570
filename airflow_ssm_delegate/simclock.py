"""Read the simulated clock a local Automation runtime reports on every response.

The local runtime (``ssm-delegate-local``) runs runbooks on a clock that may run ``time_scale`` times
faster than the wall clock, and reports it in two HTTP response headers. A poller that plans its next
call from a runbook's simulated sleep end must compare against *that* clock, not the wall clock. Real
AWS sends no such headers: ``clock_reading`` then returns None and callers use the wall clock.

Stdlib only, so the provider can use it without importing the local runtime or moto.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

SIM_TIME_HEADER = "x-ssm-delegate-sim-time"
"""Simulated now, epoch seconds (float), read from the runtime's clock when it answered."""
TIME_SCALE_HEADER = "x-ssm-delegate-time-scale"
"""Simulated seconds per wall-clock second (float, > 0)."""


@dataclass(frozen=True)
class ClockReading:
    """The runtime's simulated time when it answered, and how fast that time runs."""

    sim_now: float
    time_scale: float

    def wall_seconds(self, sim_seconds: float) -> float:
        """Wall-clock seconds that ``sim_seconds`` of simulated time take (never negative)."""
        return max(0.0, sim_seconds) / self.time_scale


def clock_reading(response: Mapping[str, Any]) -> ClockReading | None:
    """The clock a botocore response (or a ``ClientError.response``) reports; None on real AWS.

    Raises ValueError naming the header when one is present but not a usable number: a garbled clock
    must not silently turn into the wall clock.
    """
    metadata = response.get("ResponseMetadata") or {}
    headers = {str(k).lower(): v for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    sim_now, time_scale = headers.get(SIM_TIME_HEADER), headers.get(TIME_SCALE_HEADER)
    if sim_now is None and time_scale is None:
        return None
    return ClockReading(
        sim_now=_number(SIM_TIME_HEADER, sim_now, positive=False),
        time_scale=_number(TIME_SCALE_HEADER, time_scale, positive=True),
    )


def _number(header: str, raw: Any, *, positive: bool) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0):
        expected = "a positive number" if positive else "a number"
        raise ValueError(
            f"The endpoint's {header} header is {raw!r}, not {expected}; the endpoint is not a working "
            "ssm-delegate-local runtime (restart it, or point the connection at real AWS)."
        )
    return value
