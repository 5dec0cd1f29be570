"""Clocks: the endpoint's simulated clock learnt from response headers, wall time without them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_ssm_delegate.clocks import ServerClock, WallClock, clock_or, settings_scale, use_clock
from airflow_ssm_delegate.simclock import SIM_TIME_HEADER, TIME_SCALE_HEADER

SIM_NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def answer(sim_now: object, scale: object) -> dict[str, object]:
    headers = {SIM_TIME_HEADER: str(sim_now), TIME_SCALE_HEADER: str(scale)}
    return {"ResponseMetadata": {"HTTPHeaders": headers}}


def test_without_headers_it_is_the_wall_clock() -> None:
    clock = ServerClock()
    clock.observe({"ResponseMetadata": {"HTTPHeaders": {}}})
    assert abs((clock.now() - datetime.now(timezone.utc)).total_seconds()) < 60
    assert clock.wall_seconds(30) == 30
    assert settings_scale(clock) == 1


def test_headers_set_now_and_the_scale() -> None:
    clock = ServerClock()
    clock.observe(answer(SIM_NOW.timestamp(), 3600))
    assert SIM_NOW <= clock.now() < SIM_NOW + timedelta(hours=1)
    assert clock.wall_seconds(7200) == 2
    assert settings_scale(clock) == 3600  # waiter_delay stays wall seconds


def test_a_garbled_header_is_an_error_not_the_wall_clock() -> None:
    with pytest.raises(ValueError, match="x-ssm-delegate-time-scale"):
        ServerClock().observe(answer(SIM_NOW.timestamp(), "fast"))


def test_an_installed_clock_wins() -> None:
    server, installed = ServerClock(), WallClock()
    assert clock_or(server) is server
    with use_clock(installed):
        assert clock_or(server) is installed
    assert clock_or(server) is server
