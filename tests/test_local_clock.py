"""The simulated clock: scaled, continuous when re-scaled, timezone-aware, and interruptible waits."""

from __future__ import annotations

import threading
import time
from datetime import timedelta, timezone

import pytest

from airflow_ssm_delegate.local.clock import SimulatedClock


def test_simulated_time_runs_time_scale_times_faster() -> None:
    clock = SimulatedClock(time_scale=3600)
    start = clock.now()
    time.sleep(0.05)
    elapsed = clock.now() - start
    assert elapsed >= timedelta(seconds=0.05 * 3600)
    assert start.tzinfo is timezone.utc


def test_changing_the_scale_never_jumps_back_or_forward() -> None:
    clock = SimulatedClock(time_scale=3600)
    time.sleep(0.02)
    before = clock.now()
    clock.time_scale = 1.0
    after = clock.now()
    assert timedelta(0) <= after - before < timedelta(seconds=5)
    assert clock.time_scale == 1.0


def test_wait_returns_early_when_the_event_is_set() -> None:
    clock = SimulatedClock(time_scale=1.0)
    event = threading.Event()
    threading.Timer(0.01, event.set).start()
    assert clock.wait(3600, event) is True


def test_wait_lasts_the_scaled_simulated_seconds() -> None:
    clock = SimulatedClock(time_scale=36000)
    start = clock.now()
    assert clock.wait(3600, threading.Event()) is False
    assert clock.now() - start >= timedelta(hours=1)
    assert clock.wall_seconds(-5) == 0.0


@pytest.mark.parametrize("scale", [0, -1.0])
def test_non_positive_scale_is_refused(scale: float) -> None:
    with pytest.raises(ValueError, match="time_scale must be a positive"):
        SimulatedClock(scale)
    clock = SimulatedClock()
    with pytest.raises(ValueError, match="time_scale"):
        clock.time_scale = scale


def test_time_stands_still_while_the_runtime_works_then_resumes_without_a_jump() -> None:
    clock = SimulatedClock(time_scale=3600)
    with clock.held():
        held_at = clock.now()
        time.sleep(0.05)  # 180 simulated seconds, were the clock running
        with clock.held():  # nested (or another worker's) hold
            assert clock.now() == held_at
        assert clock.now() == held_at
    resumed = clock.now()
    assert timedelta(0) <= resumed - held_at < timedelta(seconds=0.04 * 3600)
    time.sleep(0.02)
    assert clock.now() - resumed >= timedelta(seconds=0.02 * 3600)


def test_at_one_x_a_hold_changes_nothing() -> None:
    clock = SimulatedClock(time_scale=1.0)
    before = clock.now()
    with clock.held():
        time.sleep(0.03)
        inside = clock.now()
    after = clock.now()
    assert inside - before >= timedelta(seconds=0.03)
    assert after >= inside
