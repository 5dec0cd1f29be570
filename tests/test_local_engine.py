"""The local Automation engine's semantics (flow, statuses, signals, stop, idempotency, listing).

Runs the engine alone against a plain moto server with a recording Authorizer (see
``local_engine_support``); IAM as AWS decides it is tested through ``LocalAutomationServer`` in
``test_local_engine_server.py``.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_ssm_delegate.local.actions import REGISTRY
from airflow_ssm_delegate.local.actions.base import Done, StepFailure
from airflow_ssm_delegate.local.actions.flow import sleep_end
from airflow_ssm_delegate.local.errors import AutomationApiError
from tests.local_engine_support import (
    CALLER,
    ROLE_ARN,
    ROLE_CREDENTIALS,
    Harness,
    runbook,
    step,
    steps_by_name,
)

ROLE_PARAMETER = {"AutomationAssumeRole": {"type": "String", "default": ""}}


def sleep(name: str, duration: str = "PT1S", **keys: object) -> dict[str, object]:
    return step(name, "aws:sleep", inputs={"Duration": duration}, **keys)


def failing(name: str, **keys: object) -> dict[str, object]:
    """A step that fails with a Verification failure (its property is never the desired one)."""
    return step(
        name,
        "aws:assertAwsResourceProperty",
        inputs={
            "Service": "ec2",
            "Api": "DescribeRegions",
            "RegionNames": ["us-east-1"],
            "PropertySelector": "$.Regions[0].RegionName",
            "DesiredValues": ["mars-north-1"],
        },
        **keys,
    )


def test_runs_steps_in_order_with_simulated_time_and_outputs(h: Harness) -> None:
    content = runbook(
        sleep("Wait", "PT2H"),
        step(
            "Pick",
            "aws:branch",
            inputs={
                "Choices": [{"NextStep": "Wait", "Variable": "x", "StringEquals": "y"}],
                "Default": "Done",
            },
        ),
        step("Skipped", "aws:pause"),
        sleep("Done", "PT1S", isEnd=True),
        step("AfterEnd", "aws:pause"),
    )
    execution = h.finish(h.run(content))
    assert execution["AutomationExecutionStatus"] == "Success"
    assert [s["StepName"] for s in execution["StepExecutions"]] == ["Wait", "Pick", "Done"]
    wait = steps_by_name(execution)["Wait"]
    assert wait["Inputs"] == {"Duration": '"PT2H"'}
    assert wait["ExecutionEndTime"] - wait["ExecutionStartTime"] >= 7200
    assert execution["ProgressCounters"]["SuccessSteps"] == 3
    assert "CurrentStepName" not in execution


def test_variables_render_parameters_globals_and_step_outputs(h: Harness) -> None:
    content = runbook(
        step(
            "Describe",
            "aws:executeAwsApi",
            inputs={"Service": "ec2", "Api": "DescribeRegions", "RegionNames": ["{{ Region }}"]},
            outputs=[{"Name": "Name", "Selector": "$.Regions[0].RegionName", "Type": "String"}],
        ),
        step(
            "Echo",
            "aws:executeAwsApi",
            inputs={
                "Service": "ec2",
                "Api": "DescribeRegions",
                "RegionNames": ["{{ Describe.Name }}"],
                "DryRun": False,
                "Filters": [
                    {
                        "Name": "region-name",
                        "Values": [
                            "{{ global:REGION }}",
                            "{{ global:ACCOUNT_ID }}-{{ global:AWS_PARTITION }}",
                            "{{ automation:EXECUTION_ID }}",
                            "{{ global:DATE }} {{ global:DATE_TIME }}",
                        ],
                    }
                ],
            },
        ),
        parameters={"Region": {"type": "String", "default": "eu-west-1"}},
        outputs=["Describe.Name"],
    )
    execution_id = h.run(content)
    execution = h.finish(execution_id)
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"] == {"Describe.Name": ["eu-west-1"]}
    assert execution["Parameters"] == {"Region": ["eu-west-1"]}
    echo = steps_by_name(execution)["Echo"]
    values = echo["Inputs"]
    assert values["RegionNames"] == '["eu-west-1"]'
    # global:DATE is the date when the step renders its inputs; at 3600x the simulated clock can cross
    # midnight between the execution's start and this step, so compare with the step's own start.
    started = datetime.fromtimestamp(echo["ExecutionStartTime"], timezone.utc)
    assert f'"us-east-1", "123456789012-aws", "{execution_id}", "{started:%Y-%m-%d}' in values["Filters"]


def test_unknown_variable_fails_the_step_naming_it(h: Harness) -> None:
    execution = h.finish(h.run(runbook(sleep("Wait", "{{ Nope }}"))))
    assert execution["AutomationExecutionStatus"] == "Failed"
    failed = steps_by_name(execution)["Wait"]
    assert "{{ Nope }}" in failed["FailureMessage"]
    assert failed["FailureDetails"]["FailureStage"] == "Inputs"


def test_invalid_parameters_are_refused_at_start_listing_each(h: Harness) -> None:
    content = runbook(
        sleep("Wait"),
        parameters={
            "Size": {"type": "String", "allowedValues": ["small", "large"]},
            "Count": {"type": "Integer", "default": 1},
        },
    )
    with pytest.raises(AutomationApiError) as refused:
        h.run(content, {"Size": "huge", "Count": "many", "Extra": "x"})
    assert refused.value.code == "InvalidAutomationExecutionParametersException"
    for name in ("Size", "Count", "Extra"):
        assert name in refused.value.message
    assert h.engine.describe([], None, None)[0] == []


def test_unsupported_action_is_refused_at_start_naming_it(h: Harness) -> None:
    with pytest.raises(AutomationApiError) as refused:
        h.run(runbook(sleep("Wait"), step("Hook", "aws:invokeWebhook", inputs={"IntegrationName": "x"})))
    assert refused.value.code == "InvalidDocumentContent"
    assert "aws:invokeWebhook (step Hook)" in refused.value.message
    # IAM comes first (on the requested version), the content check next; nothing asked with a role
    assert [start[2:] for start in h.authorizer.starts] == [("$DEFAULT", None)]
    assert h.engine.describe([], None, None)[0] == []


def test_refused_authorization_starts_nothing(h: Harness) -> None:
    h.authorizer.refuse_start = "not allowed to start it"
    with pytest.raises(AutomationApiError) as refused:
        h.run(
            runbook(sleep("Wait"), assumeRole="{{ AutomationAssumeRole }}", parameters=ROLE_PARAMETER),
            {"AutomationAssumeRole": ROLE_ARN},
        )
    assert refused.value.code == "AccessDeniedException"
    # refused on the requested $DEFAULT, then on the version it resolves to: before the parameters
    assert [start[2:] for start in h.authorizer.starts] == [("$DEFAULT", None), ("1", None)]
    assert h.engine.describe([], None, None)[0] == []


def test_the_start_is_authorised_first_on_the_request_then_with_the_role(h: Harness) -> None:
    h.run(
        runbook(sleep("Wait"), assumeRole="{{ AutomationAssumeRole }}", parameters=ROLE_PARAMETER),
        {"AutomationAssumeRole": ROLE_ARN},
        DocumentVersion="1",
    )
    assert [start[2:] for start in h.authorizer.starts] == [("1", None), ("1", ROLE_ARN)]


def test_client_token_makes_start_idempotent(h: Harness) -> None:
    h.documents.add("Idem", runbook(sleep("Wait")))
    body = {"DocumentName": "Idem", "ClientToken": "c0ffee00-0000-4000-8000-000000000001"}
    first = h.engine.start(dict(body), CALLER)
    assert h.engine.start(dict(body), CALLER) == first
    with pytest.raises(AutomationApiError) as mismatch:
        h.engine.start({**body, "Mode": "Interactive"}, CALLER)
    assert mismatch.value.code == "IdempotentParameterMismatch"
    assert len(h.engine.describe([{"Key": "DocumentNamePrefix", "Values": ["Idem"]}], None, None)[0]) == 1


def test_tags_are_limited_and_filterable(h: Harness) -> None:
    content = runbook(sleep("Wait"))
    with pytest.raises(AutomationApiError) as refused:
        h.run(content, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(6)])
    assert refused.value.code == "ValidationException"
    tagged = h.run(content, Tags=[{"Key": "airflow:dag_id", "Value": "d"}])
    h.run(content)
    found, _ = h.engine.describe([{"Key": "TagKey", "Values": ["airflow:dag_id"]}], None, None)
    assert [e["AutomationExecutionId"] for e in found] == [tagged]
    assert h.engine.tags(tagged) == [{"Key": "airflow:dag_id", "Value": "d"}]


def test_on_failure_abort_continue_and_goto(h: Harness) -> None:
    aborted = h.finish(h.run(runbook(failing("Check"), sleep("Never"))))
    assert aborted["AutomationExecutionStatus"] == "Failed"
    assert "Step Check Failed" in aborted["FailureMessage"]
    assert [s["StepName"] for s in aborted["StepExecutions"]] == ["Check"]
    failed = aborted["StepExecutions"][0]
    assert failed["FailureDetails"] == {"FailureStage": "Execution", "FailureType": "Verification"}

    continued = h.finish(h.run(runbook(failing("Check", onFailure="Continue"), sleep("Next"))))
    assert [s["StepStatus"] for s in continued["StepExecutions"]] == ["Failed", "Success"]
    assert continued["AutomationExecutionStatus"] == "Failed"  # a critical step failed

    noncritical = h.finish(
        h.run(runbook(failing("Check", onFailure="Continue", isCritical=False), sleep("Next")))
    )
    assert noncritical["AutomationExecutionStatus"] == "Success"

    jumped = h.finish(
        h.run(runbook(failing("Check", onFailure="step:Cleanup"), sleep("Skipped"), sleep("Cleanup")))
    )
    assert [s["StepName"] for s in jumped["StepExecutions"]] == ["Check", "Cleanup"]
    assert jumped["AutomationExecutionStatus"] == "Failed"


def test_step_timeout_times_out_step_and_execution(h: Harness) -> None:
    execution = h.finish(h.run(runbook(step("Hold", "aws:pause", timeoutSeconds=60))))
    assert execution["AutomationExecutionStatus"] == "TimedOut"
    hold = execution["StepExecutions"][0]
    assert hold["StepStatus"] == "TimedOut"
    assert "timeoutSeconds" in hold["FailureMessage"]
    assert hold["ExecutionEndTime"] - hold["ExecutionStartTime"] >= 60


def test_pause_waits_for_resume_and_refuses_wrong_signals(h: Harness) -> None:
    execution_id = h.run(runbook(step("Hold", "aws:pause"), sleep("After")))
    waiting = h.until(execution_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    assert waiting["CurrentStepName"] == "Hold"
    assert waiting["CurrentAction"] == "aws:pause"
    assert waiting["StepExecutions"][0]["StepStatus"] == "Waiting"
    with pytest.raises(AutomationApiError) as wrong:
        h.engine.signal(execution_id, "Approve", {})
    assert wrong.value.code == "InvalidAutomationSignalException"
    h.engine.signal(execution_id, "Resume", {})
    done = h.finish(execution_id)
    assert done["AutomationExecutionStatus"] == "Success"
    with pytest.raises(AutomationApiError) as late:
        h.engine.signal(execution_id, "Resume", {})
    assert late.value.code == "InvalidAutomationSignalException"
    with pytest.raises(AutomationApiError) as stop_late:
        h.engine.stop(execution_id)
    assert stop_late.value.code == "InvalidAutomationStatusUpdateException"


def test_unknown_execution_id_is_not_found(h: Harness) -> None:
    for call in (
        lambda: h.engine.get("0" * 36),
        lambda: h.engine.stop("0" * 36),
        lambda: h.engine.signal("0" * 36, "Resume", {}),
        lambda: h.engine.step_executions("0" * 36),
    ):
        with pytest.raises(AutomationApiError) as missing:
            call()
        assert missing.value.code == "AutomationExecutionNotFoundException"


def test_approve_needs_min_required_approvals_from_approvers(h: Harness) -> None:
    approvers = ["arn:aws:iam::123456789012:user/alice", "bob"]
    content = runbook(
        step("Approve", "aws:approve", inputs={"Approvers": approvers, "MinRequiredApprovals": 2}),
        outputs=["Approve.ApprovalStatus"],
    )
    execution_id = h.run(content)
    h.until(execution_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    stranger = CALLER.__class__("arn:aws:iam::123456789012:user/mallory", CALLER.credentials)
    with pytest.raises(AutomationApiError) as refused:
        h.engine.signal(execution_id, "Approve", {"Comment": ["me too"]}, caller=stranger)
    assert "mallory" in refused.value.message
    alice = CALLER.__class__(approvers[0], CALLER.credentials)
    bob = CALLER.__class__("arn:aws:iam::123456789012:user/bob", CALLER.credentials)
    h.engine.signal(execution_id, "Approve", {"Comment": ["ok"]}, caller=alice)
    h.until(execution_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    assert h.engine.get(execution_id)["AutomationExecutionStatus"] == "Waiting"  # one of two approvals
    h.engine.signal(execution_id, "Approve", {}, caller=bob)
    done = h.finish(execution_id)
    assert done["AutomationExecutionStatus"] == "Success"
    assert done["Outputs"] == {"Approve.ApprovalStatus": ["Approved"]}


def test_reject_fails_the_approval(h: Harness) -> None:
    execution_id = h.run(runbook(step("Approve", "aws:approve", inputs={"Approvers": ["bob"]})))
    h.until(execution_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    h.engine.signal(execution_id, "Reject", {"Comment": ["not today"]})
    done = h.finish(execution_id)
    assert done["AutomationExecutionStatus"] == "Failed"
    assert "not today" in done["StepExecutions"][0]["FailureMessage"]


def test_cancel_runs_on_cancel_step_then_cancelled(h: Harness) -> None:
    content = runbook(
        sleep("Long", "PT12H", onCancel="step:Cleanup"), sleep("Next"), sleep("Cleanup", isEnd=True)
    )
    execution_id = h.run(content)
    h.until(execution_id, lambda e: e.get("CurrentStepName") == "Long")
    h.clock.time_scale = 1.0  # keep the cleanup observable
    h.engine.stop(execution_id, "Cancel")
    assert h.engine.get(execution_id)["AutomationExecutionStatus"] == "Cancelling"
    h.engine.stop(execution_id, "Cancel")  # a repeated Cancel is accepted
    h.clock.time_scale = 3600
    done = h.finish(execution_id)
    assert done["AutomationExecutionStatus"] == "Cancelled"
    assert [(s["StepName"], s["StepStatus"]) for s in done["StepExecutions"]] == [
        ("Long", "Cancelled"),
        ("Cleanup", "Success"),
    ]


def test_complete_stops_without_on_cancel(h: Harness) -> None:
    execution_id = h.run(runbook(sleep("Long", "PT12H", onCancel="step:Cleanup"), sleep("Cleanup")))
    h.until(execution_id, lambda e: e.get("CurrentStepName") == "Long")
    h.engine.stop(execution_id, "Complete")
    done = h.finish(execution_id)
    assert done["AutomationExecutionStatus"] == "CompletedWithSuccess"
    assert [s["StepName"] for s in done["StepExecutions"]] == ["Long"]


def test_interactive_mode_runs_each_step_on_start_step(h: Harness) -> None:
    execution_id = h.run(runbook(sleep("One"), sleep("Two")), Mode="Interactive")
    waiting = h.until(execution_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    assert waiting["StepExecutions"][0]["StepStatus"] == "Pending"
    with pytest.raises(AutomationApiError) as unknown:
        h.engine.signal(execution_id, "StartStep", {"StepName": ["Three"]})
    assert unknown.value.code == "AutomationStepNotFoundException"
    h.engine.signal(execution_id, "StartStep", {"StepName": ["One"]})
    h.until(
        execution_id, lambda e: len(e["StepExecutions"]) == 2 and e["AutomationExecutionStatus"] == "Waiting"
    )
    h.engine.signal(execution_id, "StartStep", {"StepName": ["Two"]})
    assert h.finish(execution_id)["AutomationExecutionStatus"] == "Success"


def test_stop_step_cancels_the_running_step(h: Harness) -> None:
    execution_id = h.run(
        runbook(step("Hold", "aws:pause", onFailure="Continue", isCritical=False), sleep("Next"))
    )
    waiting = h.until(execution_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    step_id = waiting["StepExecutions"][0]["StepExecutionId"]
    h.engine.signal(execution_id, "StopStep", {"StepExecutionId": [step_id]})
    done = h.finish(execution_id)
    assert [s["StepStatus"] for s in done["StepExecutions"]] == ["Cancelled", "Success"]


def test_twelve_hour_rule_without_role_and_with_role(h: Harness) -> None:
    describe = step("Describe", "aws:executeAwsApi", inputs={"Service": "ec2", "Api": "DescribeRegions"})
    content = runbook(
        dict(describe, name="Before"),
        sleep("FirstWindow", "PT6H"),
        sleep("SecondWindow", "PT7H"),
        dict(describe, name="After"),
        assumeRole="{{ AutomationAssumeRole }}",
        parameters=ROLE_PARAMETER,
    )

    def run(**parameters: str) -> dict[str, Any]:
        """Real time for the first call, then 13 simulated hours in ~1.3 s while the windows sleep."""
        h.clock.time_scale = 1.0
        execution_id = h.run(content, parameters)
        h.until(execution_id, lambda e: e.get("CurrentStepName") not in (None, "Before"))
        h.clock.time_scale = 36000
        return h.finish(execution_id)

    without_role = run()
    assert without_role["AutomationExecutionStatus"] == "Failed"
    message = without_role["FailureMessage"]
    assert "expired 12 hours" in message and "service role" in message and "AutomationAssumeRole" in message
    after = steps_by_name(without_role)["After"]
    assert after["StepStatus"] == "Failed"
    assert after["ExecutionStartTime"] - without_role["ExecutionStartTime"] >= 12 * 3600
    assert steps_by_name(without_role)["Before"]["StepStatus"] == "Success"

    with_role = run(AutomationAssumeRole=ROLE_ARN)
    assert with_role["AutomationExecutionStatus"] == "Success"
    assert h.authorizer.assumed[-1] == (ROLE_ARN, with_role["AutomationExecutionId"])
    assert (ROLE_CREDENTIALS, "ec2") in h.engine.clients


def test_role_that_cannot_be_assumed_fails_the_execution(h: Harness) -> None:
    h.authorizer.refuse_role = "trust policy does not allow ssm.amazonaws.com"
    content = runbook(sleep("Wait"), assumeRole="{{ AutomationAssumeRole }}", parameters=ROLE_PARAMETER)
    done = h.finish(h.run(content, {"AutomationAssumeRole": ROLE_ARN}))
    assert done["AutomationExecutionStatus"] == "Failed"
    assert "unable to be assumed" in done["FailureMessage"]
    assert "ssm.amazonaws.com" in done["FailureMessage"]


def test_describe_filters_or_values_and_pages(h: Harness) -> None:
    before = datetime.now(timezone.utc) - timedelta(days=1)
    ids = [h.run(runbook(sleep("Wait"))) for _ in range(5)]
    for execution_id in ids:
        h.finish(execution_id)
    by_id, _ = h.engine.describe([{"Key": "ExecutionId", "Values": ids[:3]}], None, None)
    assert sorted(e["AutomationExecutionId"] for e in by_id) == sorted(ids[:3])
    seen: list[str] = []
    token = None
    while True:
        page, token = h.engine.describe(
            [
                {"Key": "ExecutionStatus", "Values": ["Success"]},
                {"Key": "StartTimeAfter", "Values": [f"{before:%Y-%m-%dT%H:%M:%SZ}"]},
            ],
            2,
            token,
        )
        assert len(page) <= 2
        seen += [e["AutomationExecutionId"] for e in page]
        if token is None:
            break
    assert seen[:5] == list(reversed(ids))  # newest first
    for bad, code in (
        ([{"Key": "Color", "Values": ["red"]}], "InvalidFilterKey"),
        ([{"Key": "ExecutionId", "Values": []}], "InvalidFilterValue"),
        ([{"Key": "StartTimeBefore", "Values": ["yesterday"]}], "InvalidFilterValue"),
    ):
        with pytest.raises(AutomationApiError) as refused:
            h.engine.describe(bad, None, None)
        assert refused.value.code == code
    with pytest.raises(AutomationApiError) as bad_token:
        h.engine.describe([], None, "garbage")
    assert bad_token.value.code == "InvalidNextToken"


def test_step_executions_filter_page_and_reverse(h: Harness) -> None:
    execution_id = h.run(runbook(sleep("A"), sleep("B"), sleep("C")))
    h.finish(execution_id)
    first, token = h.engine.step_executions(execution_id, [], 2, None, False)
    rest, last = h.engine.step_executions(execution_id, [], 2, token, False)
    assert [s["StepName"] for s in first + rest] == ["A", "B", "C"] and last is None
    backwards, _ = h.engine.step_executions(execution_id, [], None, None, True)
    assert [s["StepName"] for s in backwards] == ["C", "B", "A"]
    named, _ = h.engine.step_executions(
        execution_id, [{"Key": "StepName", "Values": ["B"]}], None, None, False
    )
    assert [s["StepName"] for s in named] == ["B"]


def test_cancel_of_a_parent_cancels_its_child(h: Harness) -> None:
    h.documents.add("ChildDoc", runbook(sleep("Long", "PT12H")))
    execution_id = h.run(runbook(step("Child", "aws:executeAutomation", inputs={"DocumentName": "ChildDoc"})))
    h.until(
        execution_id,
        lambda e: (
            e.get("CurrentStepName") == "Child" and e["StepExecutions"][0]["StepStatus"] == "InProgress"
        ),
    )
    children = h.until(
        execution_id,
        lambda _e: h.engine.describe([{"Key": "ParentExecutionId", "Values": [execution_id]}], None, None)[0],
    )
    assert children
    child_id = h.engine.describe([{"Key": "ParentExecutionId", "Values": [execution_id]}], None, None)[0][0][
        "AutomationExecutionId"
    ]
    h.engine.stop(execution_id)
    assert h.finish(execution_id)["AutomationExecutionStatus"] == "Cancelled"
    assert h.finish(child_id)["AutomationExecutionStatus"] == "Cancelled"


def test_a_thousand_sleeping_executions_need_no_thread_each(h: Harness) -> None:
    from airflow_ssm_delegate.local.quotas import ExecutionQuotas

    h.clock.time_scale = 60  # the naps outlast the test
    h.engine.quotas = ExecutionQuotas(max_running=1000)  # all running, none Pending (AWS would run 100)
    h.documents.add("Sleeper", runbook(sleep("Nap", "PT6H")))
    threads_before = threading.active_count()
    ids = [h.engine.start({"DocumentName": "Sleeper"}, CALLER) for _ in range(1000)]
    h.until(ids[-1], lambda _e: h.engine._scheduler.pending_timers() >= 1000, timeout=60)  # all asleep
    assert all(h.engine.get(i)["AutomationExecutionStatus"] == "InProgress" for i in ids)
    assert threading.active_count() - threads_before <= 10
    for execution_id in ids:
        h.engine.stop(execution_id)
    assert all(h.finish(i)["AutomationExecutionStatus"] == "Cancelled" for i in ids[:10])


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ([], "ValidationException"),
        ({}, "ValidationException"),
        ({"DocumentName": 7}, "ValidationException"),
        ({"DocumentName": "Missing"}, "AutomationDefinitionNotFoundException"),
        ({"DocumentName": "Shapes", "Mode": "Sometimes"}, "ValidationException"),
        ({"DocumentName": "Shapes", "Tags": "owner"}, "ValidationException"),
        ({"DocumentName": "Shapes", "Parameters": ["Size"]}, "InvalidAutomationExecutionParametersException"),
        (
            {"DocumentName": "Shapes", "Parameters": {"Size": [{"nested": 1}]}},
            "InvalidAutomationExecutionParametersException",
        ),
        (
            {"DocumentName": "Shapes", "Parameters": {"Size": None}},
            "InvalidAutomationExecutionParametersException",
        ),
        (
            {"DocumentName": "Shapes", "Targets": [{"Key": "tag:x", "Values": ["y"]}]},
            "InvalidAutomationExecutionParametersException",
        ),
    ],
)
def test_malformed_start_requests_get_the_api_error(h: Harness, request_body: object, code: str) -> None:
    h.documents.add("Shapes", runbook(sleep("Wait"), parameters={"Size": {"type": "String", "default": "s"}}))
    with pytest.raises(AutomationApiError) as refused:
        h.engine.start(request_body, CALLER)  # type: ignore[arg-type]
    assert refused.value.code == code
    assert h.engine.describe([], None, None)[0] == []


def test_execution_limit_refuses_starts_beyond_it(h: Harness) -> None:
    from airflow_ssm_delegate.local.quotas import ExecutionQuotas

    h.engine.quotas = ExecutionQuotas(max_running=1, max_queued=0)
    execution_id = h.run(runbook(step("Hold", "aws:pause")))
    with pytest.raises(AutomationApiError) as refused:
        h.run(runbook(sleep("Wait")))
    assert refused.value.code == "AutomationExecutionLimitExceededException"
    h.engine.stop(execution_id)
    h.finish(execution_id)
    assert h.finish(h.run(runbook(sleep("Wait"))))["AutomationExecutionStatus"] == "Success"


def test_sleep_end_is_computable_from_the_step_record(h: Harness) -> None:
    execution = h.finish(h.run(runbook(sleep("Nap", "PT30M"))))
    nap = execution["StepExecutions"][0]
    planned = sleep_end(
        {k: json.loads(v) for k, v in nap["Inputs"].items()},
        datetime.fromtimestamp(nap["ExecutionStartTime"], timezone.utc),
    )
    assert nap["ExecutionEndTime"] >= planned.timestamp()
    assert planned.timestamp() - nap["ExecutionStartTime"] == pytest.approx(1800)


class BlockingAction:
    """A test action whose call blocks until released, so a stop or signal arrives while it runs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, ctx: Any) -> Any:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(20), "the test never released the action"
        return Done({"Calls": self.calls})


@pytest.fixture
def blocking(monkeypatch: pytest.MonkeyPatch) -> BlockingAction:
    action = BlockingAction()
    monkeypatch.setitem(REGISTRY, "test:block", action)
    return action


def test_cancel_while_a_call_runs_takes_effect_when_it_returns(h: Harness, blocking: BlockingAction) -> None:
    execution_id = h.run(
        runbook(step("Busy", "test:block", onCancel="step:Cleanup"), sleep("Next"), sleep("Cleanup"))
    )
    assert blocking.entered.wait(20)
    h.engine.stop(execution_id)
    assert h.engine.get(execution_id)["AutomationExecutionStatus"] == "Cancelling"
    with pytest.raises(AutomationApiError) as busy:
        h.engine.signal(execution_id, "Resume", {})
    assert busy.value.code == "InvalidAutomationSignalException"
    blocking.release.set()
    done = h.finish(execution_id)
    assert done["AutomationExecutionStatus"] == "Cancelled"
    assert [(s["StepName"], s["StepStatus"]) for s in done["StepExecutions"]] == [
        ("Busy", "Cancelled"),
        ("Cleanup", "Success"),
    ]


def test_stop_step_while_a_call_runs(h: Harness, blocking: BlockingAction) -> None:
    execution_id = h.run(runbook(step("Busy", "test:block")))
    assert blocking.entered.wait(20)
    step_id = h.engine.get(execution_id)["StepExecutions"][0]["StepExecutionId"]
    h.engine.signal(execution_id, "StopStep", {"StepExecutionId": [step_id]})
    blocking.release.set()
    done = h.finish(execution_id)
    assert done["StepExecutions"][0]["StepStatus"] == "Cancelled"
    assert done["AutomationExecutionStatus"] == "Failed"  # onFailure Abort


def test_max_attempts_calls_the_action_again(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[int] = []

    def flaky(ctx: Any) -> Any:
        attempts.append(1)
        if len(attempts) < 3:
            raise StepFailure("not yet", "Action")
        return Done()

    monkeypatch.setitem(REGISTRY, "test:flaky", flaky)
    assert (
        h.finish(h.run(runbook(step("Flaky", "test:flaky", maxAttempts=3))))["AutomationExecutionStatus"]
        == "Success"
    )
    assert len(attempts) == 3
    attempts.clear()
    failed = h.finish(h.run(runbook(step("Flaky", "test:flaky", maxAttempts=2))))
    assert failed["AutomationExecutionStatus"] == "Failed" and len(attempts) == 2


def test_a_crashing_or_misbehaving_action_never_leaves_an_execution_running(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(ctx: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setitem(REGISTRY, "test:crash", crash)
    monkeypatch.setitem(REGISTRY, "test:garbage", lambda ctx: "not an outcome")
    crashed = h.finish(h.run(runbook(step("Crash", "test:crash"))))
    assert crashed["AutomationExecutionStatus"] == "Failed"
    assert "KeyError" in crashed["StepExecutions"][0]["FailureMessage"]
    garbage = h.finish(h.run(runbook(step("Garbage", "test:garbage"))))
    assert garbage["AutomationExecutionStatus"] == "Failed"
    assert "Internal error" in garbage["FailureMessage"]
    assert garbage["StepExecutions"][0]["StepStatus"] == "Failed"
