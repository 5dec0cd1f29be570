"""Flow-control actions: aws:sleep, aws:pause, aws:approve, aws:branch (no AWS resources touched)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import isodate

from airflow_ssm_delegate.local.actions.base import (
    Done,
    Outcome,
    Signal,
    StepContext,
    StepFailure,
    WaitForSignal,
    WaitUntil,
    reject_unknown_inputs,
    require,
    string_list,
)
from airflow_ssm_delegate.local.conditions import ChoiceError, choose

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_SLEEP = timedelta(days=7)
APPROVAL_TIMEOUT = timedelta(days=7)


def _iso8601(parse: Callable[[str], Any], name: str, value: Any, expected: str) -> Any:
    """``parse(value)``, or a Verification failure saying which input is not ISO 8601."""
    try:
        return parse(str(value))
    except (isodate.ISO8601Error, ValueError):
        raise StepFailure(f"{name} {value!r} is not ISO 8601: use {expected}.", "Verification") from None


def sleep_end(inputs: dict[str, Any], started: datetime) -> datetime:
    """When an aws:sleep step with these (rendered) inputs started at ``started`` ends.

    Public so observers (e.g. a poller) can compute the same instant from the step's Inputs.
    """
    duration, timestamp = inputs.get("Duration"), inputs.get("Timestamp")
    if (duration is None) == (timestamp is None):
        raise StepFailure(
            "aws:sleep needs exactly one of Duration (ISO-8601, e.g. PT10M) or Timestamp.", "Verification"
        )
    if duration is not None:
        delta = _iso8601(isodate.parse_duration, "Duration", duration, "a duration such as PT10M or PT2H")
        if not isinstance(delta, timedelta):
            raise StepFailure(
                f"Duration {duration!r} uses years or months; use days, hours, minutes or seconds.",
                "Verification",
            )
        if delta > MAX_SLEEP:
            raise StepFailure(f"Duration {duration!r} exceeds aws:sleep's maximum of 7 days.", "Verification")
        return started + max(delta, timedelta(0))
    end = _iso8601(isodate.parse_datetime, "Timestamp", timestamp, "a time such as 2026-01-01T00:00:00Z")
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    if end - started > MAX_SLEEP:
        raise StepFailure(
            f"Timestamp {timestamp!r} is more than aws:sleep's maximum of 7 days away.", "Verification"
        )
    return max(end, started)


def sleep(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:sleep")
    # from the step's start, so an observer computes the same end from ExecutionStartTime + Inputs
    return WaitUntil(sleep_end(ctx.inputs, ctx.started), lambda _ctx: Done())


def pause(ctx: StepContext) -> Outcome:
    # no input check: AWS documents none, yet its own published runbooks (Digito SOPs) pass ``Message``
    return WaitForSignal(frozenset({"Resume"}), lambda _ctx, _signal: Done())


def _principal(arn: str) -> tuple[str, str, str] | None:
    """(account, "user"|"role", name) of a user, role or assumed-role session ARN; None otherwise."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    kind, _, path = parts[5].partition("/")
    if kind in ("user", "role") and path:
        return parts[4], kind, path.rsplit("/", 1)[-1]  # the path before the name does not matter
    if kind == "assumed-role" and path:
        return parts[4], "role", path.split("/", 1)[0]  # a session acts for its role
    return None


def _approver_key(sender: str) -> str:
    """One key (an IAM ARN) per principal, so two sessions of one role count as one approval."""
    who = _principal(sender)
    return f"arn:aws:iam::{who[0]}:{who[1]}/{who[2]}" if who else sender


def is_approver(sender: str, approvers: list[str]) -> bool:
    """Whether ``sender`` (the caller's ARN) is one of an aws:approve step's ``Approvers``.

    AWS accepts "user name, user ARN, IAM role ARN, or IAM assume role ARN". A user ARN matches that
    user, a role ARN any session of that role, an assumed-role ARN that one session; a bare name
    matches a user (or, leniently, a role) of that name. Matching is by account, kind and name, never
    by the session name, which whoever assumes the role chooses freely.
    """
    who = _principal(sender)
    if who is None:  # the account root or an unidentified caller is no named approver
        return False
    for approver in approvers:
        if not approver.startswith("arn:"):
            if approver == who[2]:
                return True
        elif ":assumed-role/" in approver:
            if approver == sender:
                return True
        elif _principal(approver) == who:
            return True
    return False


def approve(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:approve")
    approvers = string_list(ctx.inputs, "Approvers")
    minimum = int(ctx.inputs.get("MinRequiredApprovals", 1) or 1)
    if not 1 <= minimum <= len(approvers):
        raise StepFailure(
            f"MinRequiredApprovals is {minimum} but there are {len(approvers)} Approvers; "
            f"use 1..{len(approvers)}.",
            "Verification",
        )
    topic = ctx.inputs.get("NotificationArn")
    if topic:
        message = str(ctx.inputs.get("Message") or f"Automation {ctx.execution_id} waits for your approval.")
        ctx.client("sns").publish(TopicArn=str(topic), Message=message)
    decisions: dict[str, str] = {}

    def accepts(signal: Signal) -> str | None:
        if signal.sender and not is_approver(signal.sender, approvers):
            return f"{signal.sender} is not one of the step's Approvers ({', '.join(approvers)})."
        return None

    def on_signal(_ctx: StepContext, signal: Signal) -> Outcome:
        who = _approver_key(signal.sender) if signal.sender else f"approver-{len(decisions) + 1}"
        if signal.type == "Reject":
            decisions[who] = "Rejected"
            comment = signal.first("Comment")
            raise StepFailure(f"Rejected by {who}" + (f": {comment}" if comment else "."), "Action")
        decisions[who] = "Approved"
        if sum(1 for d in decisions.values() if d == "Approved") >= minimum:
            return Done({"ApprovalStatus": "Approved", "ApproverDecisions": json.dumps(decisions)})
        return waiting

    waiting = WaitForSignal(
        frozenset({"Approve", "Reject"}),
        on_signal,
        deadline=ctx.now() + APPROVAL_TIMEOUT,
        deadline_message="No decision within aws:approve's 7-day limit.",
        accepts=accepts,
    )
    return waiting


def branch(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:branch")
    default = ctx.inputs.get("Default")
    try:
        target = choose(require(ctx.inputs, "Choices", list), str(default) if default else None)
    except ChoiceError as error:
        raise StepFailure(str(error), "Verification") from None
    if target is None:
        raise StepFailure("No choice matched and the step has no Default.", "Verification")
    return Done(next_step=target)
