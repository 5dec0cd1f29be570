"""Which errors are transient, how the backoff is bounded, and the botocore retry settings we add."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from airflow_ssm_delegate.retry import Backoff, call_with_backoff, is_transient, merged_botocore_config


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException"),
        client_error("TooManyRequestsException"),
        client_error("InternalServerError", 500),
        client_error("Whatever", 503),
        EndpointConnectionError(endpoint_url="http://x"),
        ReadTimeoutError(endpoint_url="http://x"),
    ],
)
def test_transient_errors(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        client_error("AccessDeniedException"),
        client_error("AutomationExecutionNotFoundException"),
        KeyError("x"),
    ],
)
def test_permanent_errors(error: Exception) -> None:
    assert not is_transient(error)


def test_retry_policy_is_added_but_never_overrides_the_user() -> None:
    assert merged_botocore_config(None)["retries"] == {"mode": "adaptive", "max_attempts": 10}
    user = {"retries": {"mode": "standard", "max_attempts": 2}, "read_timeout": 5}
    assert merged_botocore_config(user) == user
    assert merged_botocore_config({"read_timeout": 5})["read_timeout"] == 5


@pytest.mark.parametrize("config", ["retries", ["read_timeout", 5]])
def test_a_botocore_config_that_is_not_a_dict_is_refused_by_name(config: object) -> None:
    with pytest.raises(TypeError, match=r"botocore_config must be a dict of botocore\.config\.Config"):
        merged_botocore_config(config)  # type: ignore[arg-type]


def test_backoff_is_jittered_and_capped() -> None:
    delays = list(Backoff(base=2, cap=10, max_attempts=8).delays(random.Random(1)))
    assert len(delays) == 7
    assert all(1 <= delay <= 10 for delay in delays)
    assert len(set(delays)) == 7


def test_call_with_backoff_gives_up_after_the_bound() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def throttled() -> None:
        calls.append(1)
        raise client_error("ThrottlingException")

    with pytest.raises(ClientError):
        call_with_backoff(throttled, backoff=Backoff(base=1, cap=2, max_attempts=4), sleep=waits.append)
    assert len(calls) == 4
    assert len(waits) == 3


def test_call_with_backoff_does_not_retry_permanent_errors() -> None:
    waits: list[float] = []

    def denied() -> None:
        raise client_error("AccessDeniedException")

    with pytest.raises(ClientError, match="AccessDeniedException"):
        call_with_backoff(denied, sleep=waits.append)
    assert waits == []


def test_call_with_backoff_returns_once_it_works() -> None:
    outcomes = iter([client_error("ThrottlingException"), "ok"])

    def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert call_with_backoff(flaky, sleep=lambda _: None) == "ok"
