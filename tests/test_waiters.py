"""Waiting as data: the waiter file classifies every Automation status; failure messages name the step."""

from __future__ import annotations

from typing import Any

import botocore.session

from airflow_ssm_delegate.status import (
    FAILURE_STATUSES,
    SUCCESS_STATUSES,
    TERMINAL_STATUSES,
    failure_message,
)


def test_terminal_statuses_are_the_documented_ones() -> None:
    assert {"Success", "CompletedWithSuccess"} == SUCCESS_STATUSES
    assert {
        "Failed",
        "TimedOut",
        "Cancelled",
        "Rejected",
        "CompletedWithFailure",
        "ChangeCalendarOverrideRejected",
        "Exited",
    } == FAILURE_STATUSES


def test_every_other_status_of_the_api_model_keeps_waiting() -> None:
    model = botocore.session.get_session().get_service_model("ssm")
    statuses = set(model.shape_for("AutomationExecutionStatus").enum)
    assert statuses >= TERMINAL_STATUSES  # no typo in the waiter file
    assert statuses - TERMINAL_STATUSES == {
        "Pending",
        "InProgress",
        "Waiting",
        "Cancelling",
        "PendingApproval",
        "Approved",
        "Scheduled",
        "RunbookInProgress",
        "PendingChangeCalendarOverride",
        "ChangeCalendarOverrideApproved",
    }


def execution(status: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "AutomationExecutionId": "exec-1",
        "DocumentName": "LaunchTaggedInstance",
        "AutomationExecutionStatus": status,
        "StepExecutions": steps,
        **extra,
    }


def test_failure_message_names_the_failed_step_action_and_aws_message() -> None:
    steps = [
        {"StepName": "launch", "Action": "aws:runInstances", "StepStatus": "Success"},
        {"StepName": "cleanup", "Action": "aws:changeInstanceState", "StepStatus": "Cancelled"},
        {
            "StepName": "verify",
            "Action": "aws:assertAwsResourceProperty",
            "StepStatus": "TimedOut",
            "FailureMessage": "Step timed out after 600 seconds",
        },
    ]
    assert failure_message({"AutomationExecution": execution("TimedOut", steps)}) == (
        "Automation execution exec-1 of runbook LaunchTaggedInstance ended TimedOut: step 'verify' "
        "(aws:assertAwsResourceProperty) TimedOut: Step timed out after 600 seconds"
    )


def test_failure_message_without_a_failed_step_uses_the_execution_message() -> None:
    rejected = execution("Rejected", [], FailureMessage="Rejected by approver ops-lead")
    assert failure_message(rejected) == (
        "Automation execution exec-1 of runbook LaunchTaggedInstance ended Rejected: "
        "Rejected by approver ops-lead"
    )
    assert failure_message(execution("Failed", [])).endswith("ended Failed: no step reported a failure")


def test_failure_message_uses_paged_steps_when_given() -> None:
    paged = [
        {"StepName": "tag", "Action": "aws:createTags", "StepStatus": "Failed", "FailureMessage": "denied"}
    ]
    message = failure_message(execution("Failed", [], StepExecutionsTruncated=True), paged)
    assert "step 'tag' (aws:createTags) Failed: denied" in message
