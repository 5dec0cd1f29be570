"""The runtime reports its simulated clock on every response; ``simclock`` reads it back."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from airflow_ssm_delegate.simclock import (
    SIM_TIME_HEADER,
    TIME_SCALE_HEADER,
    ClockReading,
    clock_reading,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

Bounds = tuple[float, ClockReading | None, float]
STRANGER = {"aws_access_key_id": "AKIASTRANGER00000001", "aws_secret_access_key": "s" * 40}


def _reading_of(call: Callable[[], Any]) -> ClockReading | None:
    """The clock reported by a call's response, or by its ClientError's response."""
    try:
        response = call()
    except ClientError as error:
        response = error.response
    return clock_reading(response)


@pytest.fixture
def sim_now_bounds(local_server: LocalAutomationServer) -> Callable[[Callable[[], Any]], Bounds]:
    """``bounds(call)`` -> (simulated now before, the reading, simulated now after)."""
    assert local_server.clock is not None
    clock = local_server.clock

    def bounds(call: Callable[[], Any]) -> Bounds:
        before = clock.now().timestamp()
        reading = _reading_of(call)
        return before, reading, clock.now().timestamp()

    return bounds


@pytest.fixture
def restore_time_scale(local_server: LocalAutomationServer) -> Iterator[None]:
    """The server is shared by the session: put its speed back."""
    original = local_server.time_scale
    yield
    local_server.time_scale = original


def test_every_kind_of_response_carries_the_simulated_clock(
    local_server: LocalAutomationServer,
    boto_client: Callable[..., Any],
    sim_now_bounds: Callable[[Callable[[], Any]], Bounds],
) -> None:
    ssm, ec2 = boto_client("ssm"), boto_client("ec2")
    calls = {
        "automation answer": ssm.describe_automation_executions,
        "automation error": lambda: ssm.get_automation_execution(AutomationExecutionId="0" * 36),
        "moto answer": lambda: boto_client("sts").get_caller_identity(),
        "moto error": lambda: ec2.describe_instances(InstanceIds=["i-00000000000000000"]),
        "gateway refusal": lambda: boto_client("sts", STRANGER).get_caller_identity(),
    }
    for what, call in calls.items():
        before, reading, after = sim_now_bounds(call)
        assert reading is not None, what
        assert before <= reading.sim_now <= after, what
        assert reading.time_scale == local_server.time_scale, what


def test_the_reported_clock_follows_a_time_scale_change(
    local_server: LocalAutomationServer,
    boto_client: Callable[..., Any],
    sim_now_bounds: Callable[[Callable[[], Any]], Bounds],
    restore_time_scale: None,
) -> None:
    sts = boto_client("sts")
    local_server.time_scale = 3600
    first_before, first, first_after = sim_now_bounds(sts.get_caller_identity)
    local_server.time_scale = 2.5
    second_before, second, second_after = sim_now_bounds(sts.get_caller_identity)

    assert first is not None and second is not None
    assert (first.time_scale, second.time_scale) == (3600.0, 2.5)
    assert first_before <= first.sim_now <= first_after <= second_before <= second.sim_now <= second_after
    assert local_server.clock is not None and local_server.clock.time_scale == 2.5


def test_time_scale_must_be_a_positive_finite_number(local_server: LocalAutomationServer) -> None:
    original = local_server.time_scale
    for bad in (0, -1, float("inf"), float("nan"), "fast"):
        with pytest.raises(ValueError, match="time_scale must be a positive number"):
            local_server.time_scale = bad  # type: ignore[assignment]
    assert local_server.time_scale == original


def _response(headers: dict[str, str]) -> dict[str, Any]:
    return {"ResponseMetadata": {"HTTPHeaders": headers}}


def test_clock_reading_without_the_headers_means_real_aws() -> None:
    assert clock_reading(_response({"content-type": "application/x-amz-json-1.1"})) is None
    assert clock_reading({}) is None


def test_clock_reading_parses_the_headers_in_any_case() -> None:
    reading = clock_reading(_response({"X-Ssm-Delegate-Sim-Time": "1700000000.5", TIME_SCALE_HEADER: "60"}))
    assert reading == ClockReading(sim_now=1700000000.5, time_scale=60.0)
    assert reading.wall_seconds(120) == 2.0
    assert reading.wall_seconds(-5) == 0.0


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({SIM_TIME_HEADER: "soon", TIME_SCALE_HEADER: "1.0"}, SIM_TIME_HEADER),
        ({SIM_TIME_HEADER: "1700000000.0", TIME_SCALE_HEADER: "0"}, TIME_SCALE_HEADER),
        ({SIM_TIME_HEADER: "1700000000.0", TIME_SCALE_HEADER: "inf"}, TIME_SCALE_HEADER),
        ({SIM_TIME_HEADER: "1700000000.0"}, TIME_SCALE_HEADER),
    ],
)
def test_a_garbled_clock_is_an_error_naming_the_header(headers: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        clock_reading(_response(headers))


def test_simclock_imports_with_the_standard_library_only() -> None:
    code = (
        "import sys; import airflow_ssm_delegate.simclock; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto', "
        "'airflow') or m.startswith('airflow_ssm_delegate.local')); print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
