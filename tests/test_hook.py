"""SsmAutomationHook against botocore's Stubber: request shapes, policy before any start, masking."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import WaiterError
from botocore.stub import ANY, Stubber

from airflow_ssm_delegate.hooks.automation import ClientTokenConflict, SsmAutomationHook, current_audit_tags
from airflow_ssm_delegate.policy import PolicyFileError, PolicyViolation
from tests.test_policy import HASH, LAUNCH_ROLE, OTHER_ROLE, POLICY, RUNBOOK, write_policy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NAME = "LaunchTaggedInstance"
TOKEN = "0b9f6a36-3d5b-5a6e-9a4e-1c1b2e3f4a5b"
EXECUTION_ID = "4c1b7bdc-0a0e-4d8e-9f65-5a1c3b6b8d10"


@pytest.fixture(autouse=True)
def builtin_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """No policy file unless a test sets one."""
    monkeypatch.delenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", raising=False)


@pytest.fixture(scope="module")
def hook() -> SsmAutomationHook:
    """One client for the module (creating one costs ~0.3 s); each test stubs it afresh."""
    return SsmAutomationHook(aws_conn_id=None, region_name="us-east-1")


@pytest.fixture
def stubber(hook: SsmAutomationHook) -> Iterator[Stubber]:
    with Stubber(hook.conn) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_policy(tmp_path, POLICY.replace("    secret_parameters: [Owner]\n", ""))
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(path))
    return path


def expect_runbook_read(
    stubber: Stubber, requested: str | None, version: str = "3", digest: str = HASH
) -> None:
    """GetDocument (resolving ``requested``) then DescribeDocument of the concrete version."""
    get_params: dict[str, Any] = {"Name": NAME}
    if requested is not None:
        get_params["DocumentVersion"] = requested
    stubber.add_response(
        "get_document",
        {"Name": NAME, "DocumentVersion": version, "Content": RUNBOOK, "DocumentType": "Automation"},
        get_params,
    )
    stubber.add_response(
        "describe_document",
        {
            "Document": {
                "Name": NAME,
                "DocumentVersion": version,
                "Hash": digest,
                "DocumentType": "Automation",
            }
        },
        {"Name": NAME, "DocumentVersion": version},
    )


# ------------------------------------------------------------------------------------------ start


def test_start_pins_the_version_passes_the_role_and_tags(
    hook: SsmAutomationHook, stubber: Stubber, policy_file: Path
) -> None:
    expect_runbook_read(stubber, "3")
    stubber.add_response(
        "start_automation_execution",
        {"AutomationExecutionId": EXECUTION_ID},
        {
            "DocumentName": NAME,
            "DocumentVersion": "3",
            "Parameters": {
                "Owner": ["alice"],
                "InstanceType": ["t3.small"],
                "AutomationAssumeRole": [LAUNCH_ROLE],
            },
            "ClientToken": TOKEN,
            "Mode": "Auto",
            "Tags": [{"Key": "Team", "Value": "ops"}, {"Key": "CostCenter", "Value": "cc-42"}],
        },
    )
    execution_id = hook.start_automation_execution(
        NAME, {"Owner": "alice", "InstanceType": "t3.small"}, client_token=TOKEN, tags={"Team": "ops"}
    )
    assert execution_id == EXECUTION_ID


def test_start_resolves_default_version_to_a_number_and_sends_targets(
    hook: SsmAutomationHook, stubber: Stubber
) -> None:
    expect_runbook_read(stubber, None, version="7")
    stubber.add_response(
        "start_automation_execution",
        {"AutomationExecutionId": EXECUTION_ID},
        {
            "DocumentName": NAME,
            "DocumentVersion": "7",
            "Parameters": {"Owner": ["bob"], "AutomationAssumeRole": [OTHER_ROLE]},
            "Mode": "Auto",
            "TargetParameterName": "InstanceId",
            "Targets": [{"Key": "tag:Env", "Values": ["dev"]}],
            "MaxConcurrency": "2",
            "MaxErrors": "1",
        },
    )
    hook.start_automation_execution(
        NAME,
        {"Owner": "bob"},
        service_role_arn=OTHER_ROLE,
        target_parameter_name="InstanceId",
        targets=[{"Key": "tag:Env", "Values": ["dev"]}],
        max_concurrency="2",
        max_errors="1",
    )


def test_a_runbook_without_parameters_is_started_without_the_parameters_map(
    hook: SsmAutomationHook, stubber: Stubber
) -> None:
    # A literal assumeRole needs no parameter; StartAutomationExecution refuses Parameters={} (min 1).
    content = f"schemaVersion: '0.3'\nassumeRole: {LAUNCH_ROLE}\nmainSteps:\n"
    content += "  - {name: nap, action: 'aws:sleep', inputs: {Duration: PT1M}}\n"
    stubber.add_response("get_document", {"Name": "Nap", "DocumentVersion": "2", "Content": content}, None)
    stubber.add_response("describe_document", {"Document": {"Name": "Nap", "DocumentVersion": "2"}}, None)
    stubber.add_response(
        "start_automation_execution",
        {"AutomationExecutionId": EXECUTION_ID},
        {"DocumentName": "Nap", "DocumentVersion": "2", "Mode": "Auto"},
    )
    assert hook.start_automation_execution("Nap") == EXECUTION_ID


def test_refusal_before_reading_makes_no_call_at_all(hook: SsmAutomationHook, stubber: Stubber) -> None:
    with pytest.raises(PolicyViolation) as caught:
        hook.start_automation_execution(NAME, {"Owner": "x"}, service_role_arn="not-a-role")
    assert caught.value.rule == "service-role-required"


def test_a_broken_policy_file_refuses_every_start_without_any_call(
    hook: SsmAutomationHook, stubber: Stubber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(write_policy(tmp_path, "documents: 3\n")))
    with pytest.raises(PolicyFileError, match="key 'documents': expected a mapping of runbook name or ARN"):
        hook.start_automation_execution(NAME, {"Owner": "x"}, service_role_arn=LAUNCH_ROLE)


@pytest.mark.parametrize(
    "case", [("Unlisted", LAUNCH_ROLE, "document-listed"), (NAME, OTHER_ROLE, "role-allowed")]
)
def test_policy_file_refusals_before_reading_make_no_call(
    hook: SsmAutomationHook, stubber: Stubber, policy_file: Path, case: tuple[str, str, str]
) -> None:
    document, role, rule = case
    with pytest.raises(PolicyViolation) as caught:
        hook.start_automation_execution(document, {"Owner": "x"}, service_role_arn=role)
    assert (caught.value.rule, caught.value.document, caught.value.role) == (rule, document, role)


@pytest.mark.parametrize(
    "case",
    [
        ({"parameters": {"Owner": "UPPER"}}, HASH, "parameters"),
        ({"parameters": {"Owner": "x"}}, "c" * 64, "sha256-pin"),
        ({"parameters": {"Owner": "x"}, "tags": {f"T{i}": "v" for i in range(5)}}, HASH, "tags"),
    ],
)
def test_refusal_after_reading_never_calls_start(
    hook: SsmAutomationHook, stubber: Stubber, policy_file: Path, case: tuple[dict[str, Any], str, str]
) -> None:
    arguments, digest, rule = case
    # No StartAutomationExecution response is queued: a start call would fail with a StubResponseError.
    expect_runbook_read(stubber, "3", digest=digest)
    with pytest.raises(PolicyViolation) as caught:
        hook.start_automation_execution(NAME, **arguments)
    assert caught.value.rule == rule


def test_audit_tags_come_from_the_running_task(hook: SsmAutomationHook, stubber: Stubber) -> None:
    from airflow.sdk.execution_time.context import set_current_context

    ti = SimpleNamespace(dag_id="launch", run_id="manual__2026-11-28T00:00:00+00:00 #1", task_id="start")
    expect_runbook_read(stubber, None)
    stubber.add_response(
        "start_automation_execution",
        {"AutomationExecutionId": EXECUTION_ID},
        {
            "DocumentName": NAME,
            "DocumentVersion": "3",
            "Parameters": ANY,
            "Mode": "Auto",
            "Tags": [
                {"Key": "airflow:dag_id", "Value": "launch"},
                {"Key": "airflow:run_id", "Value": "manual__2026-11-28T00:00:00+00:00 _1"},
                {"Key": "airflow:task_id", "Value": "start"},
            ],
        },
    )
    with set_current_context({"ti": ti}):  # type: ignore[typeddict-item]
        hook.start_automation_execution(NAME, {"Owner": "x"}, service_role_arn=LAUNCH_ROLE)
    assert current_audit_tags() == {}  # outside a task there is nothing to tag with


def test_secret_parameters_are_masked_in_logs(
    hook: SsmAutomationHook, stubber: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow.providers.common.compat.sdk import redact

    secret = "correct-horse-battery-staple"
    expect_runbook_read(stubber, None)
    stubber.add_response("start_automation_execution", {"AutomationExecutionId": EXECUTION_ID}, None)
    hook.start_automation_execution(NAME, {"Owner": "x", "DbPassword": secret}, service_role_arn=LAUNCH_ROLE)
    text = "".join(capsys.readouterr())  # Airflow 3 hooks log through structlog to the console
    assert "'DbPassword': ['***']" in text
    assert secret not in text
    assert f"under role {LAUNCH_ROLE}: execution {EXECUTION_ID}" in text
    assert redact(f"later line with {secret}") == "later line with ***"  # registered with Airflow's masker


def test_reused_token_with_other_arguments_explains_what_to_do(
    hook: SsmAutomationHook, stubber: Stubber
) -> None:
    expect_runbook_read(stubber, None)
    stubber.add_client_error(
        "start_automation_execution", "IdempotentParameterMismatch", "token reused", http_status_code=400
    )
    with pytest.raises(ClientTokenConflict) as caught:
        hook.start_automation_execution(
            NAME, {"Owner": "x"}, service_role_arn=LAUNCH_ROLE, client_token=TOKEN
        )
    assert str(caught.value) == (
        f"Runbook {NAME}: client token {TOKEN} was already used to start an execution with different "
        "arguments (parameters, version, role, tags or targets changed since an earlier try of this task "
        "instance), so AWS refuses to start it again. Restore the earlier arguments to re-attach to that "
        "execution, or start a deliberately new one with a new client_token or idempotency key."
    )


def test_a_runbook_that_does_not_parse_fails_without_retry(hook: SsmAutomationHook, stubber: Stubber) -> None:
    from airflow_ssm_delegate.compat import AirflowFailException

    stubber.add_response(
        "get_document", {"Name": NAME, "DocumentVersion": "1", "Content": "schemaVersion: '2.2'"}, None
    )
    stubber.add_response("describe_document", {"Document": {"Name": NAME, "DocumentVersion": "1"}}, None)
    with pytest.raises(AirflowFailException, match=f"Runbook {NAME} version 1 cannot be started: "):
        hook.start_automation_execution(NAME, {}, service_role_arn=LAUNCH_ROLE)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"parameters": ["Owner=x"]},
            "parameters must be a mapping of runbook parameter name to value, got list",
        ),
        ({"parameters": {"Owner": "x"}, "tags": "team"}, "tags must be a mapping"),
        ({"parameters": {"Owner": "x"}, "tags": [{"Team": "a"}]}, "tags must be a mapping"),
    ],
)
def test_arguments_of_the_wrong_shape_are_refused_before_any_call(
    hook: SsmAutomationHook, stubber: Stubber, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        hook.start_automation_execution(NAME, service_role_arn=LAUNCH_ROLE, **arguments)


def test_a_missing_runbook_version_is_named_and_not_retried(
    hook: SsmAutomationHook, stubber: Stubber
) -> None:
    from airflow_ssm_delegate.compat import AirflowFailException

    stubber.add_client_error(
        "get_document", "InvalidDocument", "The specified document does not exist.", 400, None
    )
    with pytest.raises(AirflowFailException, match=f"Runbook {NAME} version 7 cannot be read: The specified"):
        hook.start_automation_execution(
            NAME, {"Owner": "x"}, document_version="7", service_role_arn=LAUNCH_ROLE
        )


# ------------------------------------------------------------------------------------------ watch


def test_step_executions_are_read_across_pages(hook: SsmAutomationHook, stubber: Stubber) -> None:
    stubber.add_response(
        "describe_automation_step_executions",
        {"StepExecutions": [{"StepName": "a"}], "NextToken": "t1"},
        {"AutomationExecutionId": EXECUTION_ID},
    )
    stubber.add_response(
        "describe_automation_step_executions",
        {"StepExecutions": [{"StepName": "b"}]},
        {"AutomationExecutionId": EXECUTION_ID, "NextToken": "t1"},
    )
    assert [s["StepName"] for s in hook.get_step_executions(EXECUTION_ID)] == ["a", "b"]


def test_executions_are_described_ten_ids_per_call(hook: SsmAutomationHook, stubber: Stubber) -> None:
    ids = [f"{i:08d}-0000-0000-0000-000000000000" for i in range(12)]
    for batch in (ids[:10], ids[10:]):
        stubber.add_response(
            "describe_automation_executions",
            {"AutomationExecutionMetadataList": [{"AutomationExecutionId": i} for i in batch]},
            {"Filters": [{"Key": "ExecutionId", "Values": batch}]},
        )
    found = hook.describe_automation_executions([*ids, ids[0]])  # duplicates asked once
    assert [item["AutomationExecutionId"] for item in found] == ids


def test_get_stop_and_signal_request_shapes(hook: SsmAutomationHook, stubber: Stubber) -> None:
    stubber.add_response(
        "get_automation_execution",
        {
            "AutomationExecution": {
                "AutomationExecutionId": EXECUTION_ID,
                "AutomationExecutionStatus": "Waiting",
            }
        },
        {"AutomationExecutionId": EXECUTION_ID},
    )
    stubber.add_response(
        "stop_automation_execution", {}, {"AutomationExecutionId": EXECUTION_ID, "Type": "Cancel"}
    )
    stubber.add_response(
        "send_automation_signal",
        {},
        {"AutomationExecutionId": EXECUTION_ID, "SignalType": "Approve", "Payload": {"Comment": ["ok"]}},
    )
    stubber.add_response(
        "send_automation_signal", {}, {"AutomationExecutionId": EXECUTION_ID, "SignalType": "Resume"}
    )
    stubber.add_response(
        "send_automation_signal",
        {},
        {
            "AutomationExecutionId": EXECUTION_ID,
            "SignalType": "Reject",
            "Payload": {"Ticket": ["42"], "Reasons": ["a", "b"]},
        },
    )
    assert hook.get_automation_execution(EXECUTION_ID)["AutomationExecutionStatus"] == "Waiting"
    hook.stop_automation_execution(EXECUTION_ID)
    hook.send_automation_signal(EXECUTION_ID, "Approve", {"Comment": "ok"})
    hook.send_automation_signal(EXECUTION_ID, "Resume")
    hook.send_automation_signal(EXECUTION_ID, "Reject", {"Ticket": 42, "Reasons": ("a", "b")})


def test_failure_description_pages_truncated_steps(hook: SsmAutomationHook, stubber: Stubber) -> None:
    stubber.add_response(
        "describe_automation_step_executions",
        {
            "StepExecutions": [
                {"StepName": "launch", "Action": "aws:runInstances", "StepStatus": "Success"},
                {
                    "StepName": "tag",
                    "Action": "aws:createTags",
                    "StepStatus": "Failed",
                    "FailureMessage": "not authorized to perform ec2:CreateTags",
                    "FailureDetails": {"FailureType": "Permission"},
                },
            ]
        },
        {"AutomationExecutionId": EXECUTION_ID},
    )
    execution = {
        "AutomationExecutionId": EXECUTION_ID,
        "DocumentName": NAME,
        "AutomationExecutionStatus": "Failed",
        "StepExecutions": [],
        "StepExecutionsTruncated": True,
    }
    assert hook.describe_failure({"AutomationExecution": execution}) == (
        f"Automation execution {EXECUTION_ID} of runbook {NAME} ended Failed: step 'tag' (aws:createTags) "
        "Failed: not authorized to perform ec2:CreateTags [failure type Permission]. The service role lacks "
        "a permission this step needs: grant it to the role, not to Airflow."
    )


# ------------------------------------------------------------------------------------------ waiter


def execution_status(status: str) -> dict[str, Any]:
    return {
        "AutomationExecution": {"AutomationExecutionId": EXECUTION_ID, "AutomationExecutionStatus": status}
    }


def test_waiter_keeps_waiting_until_success(hook: SsmAutomationHook, stubber: Stubber) -> None:
    for status in ("Pending", "InProgress", "Waiting", "Success"):
        stubber.add_response(
            "get_automation_execution", execution_status(status), {"AutomationExecutionId": ANY}
        )
    waiter = hook.get_waiter("automation_execution_complete")
    waiter.wait(AutomationExecutionId=EXECUTION_ID, WaiterConfig={"Delay": 0, "MaxAttempts": 5})


@pytest.mark.parametrize("status", ["Failed", "Cancelled", "TimedOut", "CompletedWithFailure", "Exited"])
def test_waiter_stops_on_a_failure_status(hook: SsmAutomationHook, stubber: Stubber, status: str) -> None:
    stubber.add_response("get_automation_execution", execution_status("InProgress"), None)
    stubber.add_response("get_automation_execution", execution_status(status), None)
    waiter = hook.get_waiter("automation_execution_complete")
    with pytest.raises(WaiterError, match="terminal failure state"):
        waiter.wait(AutomationExecutionId=EXECUTION_ID, WaiterConfig={"Delay": 0, "MaxAttempts": 5})
