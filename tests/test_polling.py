"""The step-aware polling schedule: lower bounds of the time left, and the delays derived from them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_ssm_delegate.documents.model import parse_runbook
from airflow_ssm_delegate.polling import (
    ExecutionWatch,
    PollSchedule,
    sleep_duration_seconds,
    time_to_end_lower_bound,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
HOUR = 3600.0


def runbook(*steps: dict[str, Any]) -> Any:
    return parse_runbook({"schemaVersion": "0.3", "mainSteps": list(steps)})


def sleep(name: str, duration: str = "PT1H", **extra: Any) -> dict[str, Any]:
    return {"name": name, "action": "aws:sleep", "inputs": {"Duration": duration}, **extra}


def api(name: str, **extra: Any) -> dict[str, Any]:
    inputs = {"Service": "ec2", "Api": "DescribeInstances"}
    return {"name": name, "action": "aws:executeAwsApi", "inputs": inputs, **extra}


def pause(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "action": "aws:pause", "inputs": {}, **extra}


def test_running_sleep_bound_is_its_remaining_time() -> None:
    book = runbook(api("prepare"), sleep("window", "PT4H"), api("verify"))
    started = NOW - timedelta(hours=1)
    assert time_to_end_lower_bound(book, "window", NOW, current_step_started=started) == 3 * HOUR


def test_consecutive_sleeps_add_up() -> None:
    book = runbook(sleep("first", "PT2H"), sleep("second", "PT3H"), api("verify"))
    bound = time_to_end_lower_bound(book, "first", NOW, current_step_started=NOW - timedelta(minutes=30))
    assert bound == 1.5 * HOUR + 3 * HOUR


def test_a_step_that_can_abort_at_once_ends_the_bound() -> None:
    # After the window an API call may fail and abort the execution immediately.
    book = runbook(sleep("first", "PT2H"), api("check"), sleep("second", "PT3H"))
    assert time_to_end_lower_bound(book, "first", NOW, current_step_started=NOW) == 2 * HOUR


def test_on_failure_step_target_is_followed() -> None:
    book = runbook(
        sleep("first", "PT2H"),
        api("check", onFailure="step:cooldown"),
        sleep("second", "PT3H", isEnd=True),
        sleep("cooldown", "PT1H"),
    )
    # success path: 2h + 3h, failure path: 2h + 1h -> the bound is the shorter one.
    assert time_to_end_lower_bound(book, "first", NOW, current_step_started=NOW) == 3 * HOUR


def test_pause_followed_by_a_window_waits_for_the_window() -> None:
    book = runbook(pause("approval"), sleep("window", "PT6H"), api("verify"))
    assert time_to_end_lower_bound(book, "approval", NOW) == 6 * HOUR


def test_pause_followed_by_a_failable_step_gives_no_slack() -> None:
    book = runbook(pause("approval"), api("act"), sleep("window", "PT6H"))
    assert time_to_end_lower_bound(book, "approval", NOW) == 0


def test_approve_can_be_rejected_so_it_gives_no_slack() -> None:
    approve = {"name": "approve", "action": "aws:approve", "inputs": {"Approvers": ["arn:aws:iam::1:role/x"]}}
    book = runbook(approve, sleep("window", "PT6H"))
    assert time_to_end_lower_bound(book, "approve", NOW) == 0


def test_branch_takes_the_shortest_choice_and_the_default() -> None:
    branch = {
        "name": "choose",
        "action": "aws:branch",
        "inputs": {
            "Choices": [{"NextStep": "long", "Variable": "{{ X }}", "StringEquals": "a"}],
            "Default": "short",
        },
    }
    book = runbook(branch, sleep("long", "PT8H", isEnd=True), sleep("short", "PT2H", isEnd=True))
    assert time_to_end_lower_bound(book, "choose", NOW) == 2 * HOUR


def test_timestamp_sleep_cannot_end_before_its_timestamp() -> None:
    until = (NOW + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    book = runbook({"name": "until", "action": "aws:sleep", "inputs": {"Timestamp": until}}, api("verify"))
    assert time_to_end_lower_bound(book, "until", NOW) == 5 * HOUR


def test_templated_duration_is_read_from_the_step_execution_inputs() -> None:
    book = runbook(sleep("window", "{{ WindowLength }}"), api("verify"))
    started = NOW - timedelta(hours=1)
    assert time_to_end_lower_bound(book, "window", NOW, current_step_started=started) == 0
    aws_inputs = {"Duration": '"PT3H"'}  # AWS reports resolved inputs JSON-encoded
    bound = time_to_end_lower_bound(
        book, "window", NOW, current_step_started=started, current_step_inputs=aws_inputs
    )
    assert bound == 2 * HOUR


def test_sleep_timeout_caps_the_bound() -> None:
    book = runbook(sleep("window", "PT5H", timeoutSeconds=3600), api("verify"))
    assert time_to_end_lower_bound(book, "window", NOW, current_step_started=NOW) == HOUR


def test_unknown_current_step_gives_no_slack() -> None:
    book = runbook(sleep("window", "PT5H"))
    assert time_to_end_lower_bound(book, "not-a-step", NOW) == 0
    assert time_to_end_lower_bound(book, None, NOW) == 0


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("PT1H", HOUR),
        ("PT90M", 5400.0),
        ("P1D", 86400.0),
        ('"PT10S"', 10.0),
        ("{{ X }}", None),
        ("soon", None),
    ],
)
def test_sleep_duration_parsing(duration: str, seconds: float | None) -> None:
    assert sleep_duration_seconds({"Duration": duration}) == seconds


def test_schedule_never_below_waiter_delay_nor_above_cap() -> None:
    schedule = PollSchedule(waiter_delay=30, max_poll_interval=3600, clock_skew_margin=5)
    assert schedule.next_delay(0) == 30
    assert schedule.next_delay(600) == 595
    assert schedule.next_delay(10 * HOUR) == 3600


def test_schedule_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="waiter_delay must be a positive"):
        PollSchedule(waiter_delay=0)
    with pytest.raises(ValueError, match="max_poll_interval"):
        PollSchedule(waiter_delay=60, max_poll_interval=30)


def test_watch_fetches_step_records_once_per_sleep_step() -> None:
    book = runbook(api("prepare"), sleep("window", "PT4H"), api("verify"))
    watch = ExecutionWatch(PollSchedule(waiter_delay=30, max_poll_interval=7200, clock_skew_margin=0))
    prepare = {"CurrentStepName": "prepare"}
    assert not watch.needs_step_records(prepare, book)
    assert watch.next_delay(prepare, book, NOW) == 30

    window = {"CurrentStepName": "window"}
    assert watch.needs_step_records(window, book)
    records = [
        {"StepName": "prepare", "ExecutionStartTime": NOW - timedelta(hours=2)},
        {
            "StepName": "window",
            "ExecutionStartTime": NOW - timedelta(hours=1),
            "Inputs": {"Duration": '"PT4H"'},
        },
    ]
    assert watch.next_delay(window, book, NOW, records) == 7200  # 3 h left, capped at 2 h
    assert not watch.needs_step_records(window, book)  # same step: the record is kept
    later = NOW + timedelta(hours=2, minutes=59)
    assert watch.next_delay(window, book, later) == 60


def test_watch_without_step_awareness_polls_every_waiter_delay() -> None:
    book = runbook(sleep("window", "PT4H"))
    watch = ExecutionWatch(PollSchedule(waiter_delay=30), step_aware=False)
    assert not watch.needs_step_records({"CurrentStepName": "window"}, book)
    assert watch.next_delay({"CurrentStepName": "window"}, book, NOW) == 30
