"""Delegation policy fan-out rules: accounts/OUs, regions, execution role names, rate caps, required alarm.

Every refusal happens before any AWS call (the policy reads nothing; the hook's Stubber has nothing queued),
names its rule, and is also made at parse time by the cluster policy when the task's values are literal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import Stubber

from airflow_ssm_delegate.fanout import FanOutRequest
from airflow_ssm_delegate.hooks.automation import SsmAutomationHook
from airflow_ssm_delegate.policy import DelegationPolicy, PolicyFileError, PolicyViolation
from tests.test_cluster_policy import dag_bag
from tests.test_policy import LAUNCH_ROLE, POLICY, FakeDocuments, request, write_policy

if TYPE_CHECKING:
    from collections.abc import Iterator

NAME = "LaunchTaggedInstance"
OU = "ou-ab12-cdef3456"
FAN_OUT = """\
    fan_out:
      accounts: ["111122223333", 444455556666, "ou-ab12-cdef3456"]
      regions: [eu-west-1, us-east-1]
      execution_role_names: [Fleet-*]
      max_concurrency: [5, "10%"]
      max_errors: "5%"
      target_location_max_concurrency: 2
      target_location_max_errors: 0
    required_alarm: fleet-errors
"""
FAN_OUT_POLICY = POLICY + FAN_OUT
ALARM = {"Alarms": [{"Name": "fleet-errors"}]}
LOCATION = {
    "Accounts": ["111122223333", OU],
    "Regions": ["eu-west-1"],
    "ExecutionRoleName": "Fleet-Patch",
    "TargetLocationMaxConcurrency": "2",
}


@pytest.fixture
def policy(tmp_path: Path) -> DelegationPolicy:
    return DelegationPolicy.from_file(write_policy(tmp_path, FAN_OUT_POLICY))


def fan_out(**overrides: Any) -> FanOutRequest:
    arguments: dict[str, Any] = {
        "target_locations": [LOCATION],
        "max_concurrency": "10%",
        "max_errors": "5%",
        "targets": [{"Key": "tag:Name", "Values": ["web"]}],
        "alarm_configuration": ALARM,
    }
    arguments.update(overrides)
    return FanOutRequest(**arguments)


def refused_rule(policy: DelegationPolicy, **overrides: Any) -> tuple[str, str]:
    """(rule, message) of the refusal; the runbook must not even have been read."""
    documents = FakeDocuments()
    with pytest.raises(PolicyViolation) as caught:
        policy.authorize_start(request(fan_out=fan_out(**overrides)), documents)
    assert documents.calls == []
    return caught.value.rule, str(caught.value)


# ------------------------------------------------------------------------------------------ allowed


def test_a_start_within_every_bound_is_planned(policy: DelegationPolicy) -> None:
    plan = policy.authorize_start(request(fan_out=fan_out()), FakeDocuments())
    assert plan.role_arn == LAUNCH_ROLE


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_concurrency": "5", "max_errors": "5%"},
        {"targets": None, "max_concurrency": None, "max_errors": None},  # no rate control: nothing to cap
        {
            "target_locations": [
                {**LOCATION, "Accounts": ["444455556666"], "IncludeChildOrganizationUnits": True}
            ]
        },
        {"alarm_configuration": {**ALARM, "IgnorePollAlarmFailure": False}},
    ],
)
def test_allowed_variants(policy: DelegationPolicy, overrides: dict[str, Any]) -> None:
    policy.authorize_start(request(fan_out=fan_out(**overrides)), FakeDocuments())


def test_a_policy_without_fan_out_rules_leaves_fan_out_alone(tmp_path: Path) -> None:
    """Backward compatible: older policy files keep allowing whatever IAM allows."""
    old = DelegationPolicy.from_file(write_policy(tmp_path, POLICY))
    wide = [{"Accounts": ["999999999999"], "Regions": ["ap-south-1"], "TargetLocationMaxConcurrency": "100%"}]
    old.authorize_start(
        request(fan_out=fan_out(target_locations=wide, alarm_configuration=None)), FakeDocuments()
    )


# ----------------------------------------------------------------------------------------- refusals


def test_refuses_an_account_outside_the_list(policy: DelegationPolicy) -> None:
    location = {**LOCATION, "Accounts": ["111122223333", "999999999999"]}
    rule, message = refused_rule(policy, target_locations=[location])
    assert rule == "target-accounts"
    assert message == (
        f"Delegation policy ({policy.source}) refused runbook '{NAME}' under role (none) "
        "[rule target-accounts]: "
        "TargetLocations[0].Accounts names 999999999999, which the policy does not allow for this runbook "
        f"(allowed: 111122223333, 444455556666, {OU}). Remove them or ask the administrator to allow them."
    )


@pytest.mark.parametrize(
    ("location", "rule", "detail"),
    [
        ({**LOCATION, "Regions": ["eu-west-1", "ap-south-1"]}, "target-regions", "Regions names ap-south-1"),
        ({k: v for k, v in LOCATION.items() if k != "Regions"}, "target-regions", "Regions is not set"),
        ({k: v for k, v in LOCATION.items() if k != "Accounts"}, "target-accounts", "Accounts is not set"),
        ({**LOCATION, "Accounts": "111122223333"}, "target-accounts", "Accounts must be a list"),
        ({**LOCATION, "ExecutionRoleName": "Admin"}, "execution-role-name", "ExecutionRoleName Admin is not"),
        (
            {k: v for k, v in LOCATION.items() if k != "ExecutionRoleName"},
            "execution-role-name",
            "AWS-SystemsManager-AutomationExecutionRole (AWS's default: ExecutionRoleName unset)",
        ),
        ({**LOCATION, "TargetLocationMaxConcurrency": "3"}, "target-location-max-concurrency", "3 exceeds"),
        ({**LOCATION, "TargetLocationMaxConcurrency": "50%"}, "target-location-max-concurrency", "compared"),
        ({**LOCATION, "TargetLocationMaxErrors": "1"}, "target-location-max-errors", "1 exceeds"),
        (
            {**LOCATION, "TargetsMaxConcurrency": "20%"},
            "max-concurrency",
            "TargetsMaxConcurrency 20% exceeds",
        ),
        ({**LOCATION, "TargetsMaxErrors": "6%"}, "max-errors", "TargetsMaxErrors 6% exceeds"),
    ],
)
def test_refuses_a_location_beyond_the_policy(
    policy: DelegationPolicy, location: dict[str, Any], rule: str, detail: str
) -> None:
    refused, message = refused_rule(policy, target_locations=[location])
    assert (refused, detail in message) == (rule, True), message


@pytest.mark.parametrize(
    ("overrides", "rule", "detail"),
    [
        (
            {"max_concurrency": "6"},
            "max-concurrency",
            "MaxConcurrency 6 exceeds the policy's cap of 5 or 10%",
        ),
        ({"max_concurrency": "11%"}, "max-concurrency", "MaxConcurrency 11% exceeds"),
        # AWS's documented default MaxConcurrency is 10: over the cap of 5 when rate control is used.
        ({"max_concurrency": None}, "max-concurrency", "MaxConcurrency 10 exceeds"),
        ({"max_concurrency": "lots"}, "max-concurrency", "'lots' is not a number such as 10"),
        ({"max_errors": "1"}, "max-errors", "MaxErrors 1 cannot be compared with the policy's cap of 5%"),
        ({"max_errors": None}, "max-errors", "AWS documents no default). Set max_errors explicitly."),
        ({"alarm_configuration": None}, "alarm-required", "requires CloudWatch alarm fleet-errors on every"),
        (
            {"alarm_configuration": {"Alarms": []}},
            "alarm-required",
            "names no alarm, but the policy requires",
        ),
        ({"alarm_configuration": {"Alarms": [{"Name": "other"}]}}, "alarm-required", "names other, but"),
        (
            {"alarm_configuration": {**ALARM, "IgnorePollAlarmFailure": True}},
            "alarm-required",
            "IgnorePollAlarmFailure is true",
        ),
    ],
)
def test_refuses_rates_and_alarms_beyond_the_policy(
    policy: DelegationPolicy, overrides: dict[str, Any], rule: str, detail: str
) -> None:
    refused, message = refused_rule(policy, **overrides)
    assert (refused, detail in message) == (rule, True), message


def test_the_required_alarm_holds_without_any_fan_out(tmp_path: Path) -> None:
    policy = DelegationPolicy.from_file(write_policy(tmp_path, POLICY + "    required_alarm: guard\n"))
    with pytest.raises(PolicyViolation, match=r"\[rule alarm-required\]"):
        policy.authorize_start(request(), FakeDocuments())
    policy.authorize_start(
        request(fan_out=FanOutRequest(alarm_configuration={"Alarms": [{"Name": "guard"}]})), FakeDocuments()
    )


# -------------------------------------------------------------------------------------- policy file


@pytest.mark.parametrize(
    ("fan_out_text", "key", "problem"),
    [
        ("    fan_out: [a]\n", "fan_out", "expected a mapping of fan-out rules, got list"),
        ("    fan_out: {acounts: []}\n", "fan_out.acounts", "unknown key"),
        ("    fan_out: {accounts: [12345]}\n", "fan_out.accounts", "'12345' is not a 12-digit account id"),
        ("    fan_out: {accounts: ['12345']}\n", "fan_out.accounts", "'12345' is not a 12-digit account id"),
        ("    fan_out: {regions: [Ireland]}\n", "fan_out.regions", "'Ireland' is not a region name"),
        ("    fan_out: {max_concurrency: ten}\n", "fan_out.max_concurrency", "not a cap ('ten' is not a"),
        ("    fan_out: {max_errors: ['1%', '2%']}\n", "fan_out.max_errors", "one percentage"),
        ("    fan_out: {target_location_max_errors: '101%'}\n", "fan_out.target_location_max_errors", "100%"),
        ("    required_alarm: ''\n", "required_alarm", "'' is not a CloudWatch alarm name"),
    ],
)
def test_bad_fan_out_rules_name_the_file_the_key_and_the_fix(
    tmp_path: Path, fan_out_text: str, key: str, problem: str
) -> None:
    path = write_policy(tmp_path, POLICY + fan_out_text)
    with pytest.raises(PolicyFileError) as caught:
        DelegationPolicy.from_file(path)
    message = str(caught.value)
    assert caught.value.key == f"documents.{NAME}.{key}"
    assert message.startswith(f"Delegation policy file {path}, key 'documents.{NAME}.{key}': ")
    assert problem in message, message


def test_the_file_is_parsed_into_rules(policy: DelegationPolicy) -> None:
    assert policy.documents is not None
    rule = policy.documents[NAME]
    assert rule.required_alarm == "fleet-errors"
    assert rule.fan_out is not None
    assert rule.fan_out.accounts == ("111122223333", "444455556666", OU)
    assert str(rule.fan_out.max_concurrency) == "5 or 10%"
    assert str(rule.fan_out.target_location_max_errors) == "0"


# ---------------------------------------------------------------------------- through the real hook


@pytest.fixture
def stubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SsmAutomationHook, Stubber]]:
    text = FAN_OUT_POLICY.replace('    sha256: "' + "a" * 64 + '"\n', "").replace('    version: "3"\n', "")
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(write_policy(tmp_path, text)))
    hook = SsmAutomationHook(aws_conn_id=None, region_name="us-east-1")
    with Stubber(hook.conn) as stub:
        yield hook, stub
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("arguments", "rule"),
    [
        ({"target_locations": [{**LOCATION, "Regions": ["ap-south-1"]}]}, "target-regions"),
        ({"max_concurrency": "50%"}, "max-concurrency"),
        ({"alarm_configuration": None}, "alarm-required"),
    ],
)
def test_the_hook_refuses_before_any_aws_call(
    stubbed: tuple[SsmAutomationHook, Stubber], arguments: dict[str, Any], rule: str
) -> None:
    hook, _ = stubbed  # nothing queued: GetDocument or StartAutomationExecution would raise StubResponseError
    start: dict[str, Any] = {
        "target_locations": [LOCATION],
        "max_concurrency": "10%",
        "max_errors": "5%",
        "alarm_configuration": ALARM,
        **arguments,
    }
    with pytest.raises(PolicyViolation) as caught:
        hook.start_automation_execution(NAME, {"Owner": "alice"}, **start)
    assert caught.value.rule == rule


def test_the_hook_sends_the_allowed_fan_out_and_alarm(stubbed: tuple[SsmAutomationHook, Stubber]) -> None:
    from tests.test_hook import EXECUTION_ID, expect_runbook_read

    hook, stub = stubbed
    expect_runbook_read(stub, None)
    stub.add_response(
        "start_automation_execution",
        {"AutomationExecutionId": EXECUTION_ID},
        {
            "DocumentName": NAME,
            "DocumentVersion": "3",
            "Parameters": {"Owner": ["alice"], "AutomationAssumeRole": [LAUNCH_ROLE]},
            "Mode": "Auto",
            "MaxConcurrency": "10%",
            "MaxErrors": "5%",
            "TargetLocations": [LOCATION],
            "AlarmConfiguration": ALARM,
            "Tags": [{"Key": "CostCenter", "Value": "cc-42"}],
        },
    )
    execution_id = hook.start_automation_execution(
        NAME,
        {"Owner": "alice"},
        max_concurrency="10%",
        max_errors="5%",
        target_locations=[LOCATION],
        alarm_configuration=ALARM,
    )
    assert execution_id == EXECUTION_ID


# ------------------------------------------------------------------------------------ parse time


def test_literal_fan_out_beyond_the_policy_is_an_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(write_policy(tmp_path, FAN_OUT_POLICY)))
    bag = dag_bag(
        tmp_path,
        "fleet",
        f"""
        SsmStartAutomationExecutionOperator(
            task_id="patch",
            document_name="{NAME}",
            target_locations=[{{"Accounts": ["999999999999"], "Regions": ["eu-west-1"]}}],
            alarm_configuration={ALARM!r},
        )
        """,
    )
    assert bag.dags == {}
    (error,) = bag.import_errors.values()
    assert "task 'patch'" in error
    assert "[rule target-accounts]: TargetLocations[0].Accounts names 999999999999" in error


def test_templated_fan_out_values_are_left_to_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(write_policy(tmp_path, FAN_OUT_POLICY)))
    bag = dag_bag(
        tmp_path,
        "fleet_templated",
        f"""
        SsmStartAutomationExecutionOperator(
            task_id="patch",
            document_name="{NAME}",
            targets=[{{"Key": "tag:Name", "Values": ["web"]}}],
            max_concurrency="{{{{ params.rate }}}}",
            max_errors="5%",
            target_locations=[{{"Accounts": "{{{{ params.accounts }}}}", "Regions": ["eu-west-1"],
                                "ExecutionRoleName": "Fleet-Patch"}}],
            alarm_configuration="{{{{ params.alarm }}}}",
        )
        """,
    )
    assert bag.import_errors == {}
    assert list(bag.dags) == ["fleet_templated"]


def test_a_missing_required_alarm_is_an_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(write_policy(tmp_path, FAN_OUT_POLICY)))
    bag = dag_bag(
        tmp_path, "no_alarm", f'SsmStartAutomationExecutionOperator(task_id="t", document_name="{NAME}")\n'
    )
    (error,) = bag.import_errors.values()
    assert "[rule alarm-required]" in error


def test_account_ids_written_unquoted_keep_their_digits_or_are_refused(tmp_path: Path) -> None:
    """An unquoted 12-digit id is a YAML int; a leading zero makes YAML read octal, which is refused."""
    text = POLICY + "    fan_out: {accounts: [011122223333]}\n"
    with pytest.raises(PolicyFileError, match=r"is not a 12-digit account id.*Quote account ids"):
        DelegationPolicy.from_file(write_policy(tmp_path, text))


def test_the_commented_example_in_the_shipped_policy_parses(tmp_path: Path) -> None:
    """The example file shows fan_out commented out; uncommented, it must be a valid rule."""
    from airflow_ssm_delegate.examples import __file__ as examples

    text = (Path(examples).parent / "delegation-policy.yaml").read_text()
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("    # fan_out:")))
    block = [line.replace("    # ", "    ", 1) for line in lines[start : start + 9]]
    uncommented = "\n".join(lines[:start] + block + lines[start + 9 :]) + "\n"
    policy = DelegationPolicy.from_file(write_policy(tmp_path, uncommented))
    assert policy.documents is not None
    rule = policy.documents[NAME]
    assert rule.required_alarm == "fleet-patch-errors"
    assert rule.fan_out is not None
    assert rule.fan_out.regions == ("us-east-1", "eu-west-1")
