"""Automation execution statuses grouped by what a waiter does with them.

One copy, shared by the operators, the sensor, the trigger and the batched poller (the waiter JSON file
describes the same grouping as data for botocore's waiter machinery).
"""

from __future__ import annotations

SUCCESS_STATUSES: frozenset[str] = frozenset({"Success", "CompletedWithSuccess"})
FAILURE_STATUSES: frozenset[str] = frozenset(
    {
        "Failed",
        "TimedOut",
        "Cancelled",
        "Rejected",
        "CompletedWithFailure",
        "ChangeCalendarOverrideRejected",
        "Exited",
    }
)
TERMINAL_STATUSES: frozenset[str] = SUCCESS_STATUSES | FAILURE_STATUSES
"""Every other status (Pending, InProgress, Waiting, Cancelling, PendingApproval, ...) means: keep waiting."""


def is_terminal(status: str) -> bool:
    """Whether an execution in ``status`` has ended (successfully or not)."""
    return status in TERMINAL_STATUSES


def is_success(status: str) -> bool:
    """Whether ``status`` is a successful end."""
    return status in SUCCESS_STATUSES
