"""Rate control on the local runtime through boto3: Targets/TargetMaps fan out into one child per target.

Concurrency is counted from the engine's own records (``RateControl.peak``: children started and not yet
ended, kept under the parent's lock), never by timing.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.local.quotas import ExecutionQuotas
from airflow_ssm_delegate.local.ratecontrol import FanOut, Target
from tests.fixtures.local_runtime import SSM_TRUST, error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer

AMI = "ami-12c6146b"
MISSING_INSTANCE = "i-0123456789abcdef0"
ACTIVE = ("Pending", "InProgress", "Waiting", "Cancelling")
#: A child that naps 10 simulated minutes, or fails when its Outcome is "fail".
NAP: dict[str, Any] = {
    "schemaVersion": "0.3",
    "parameters": {"InstanceId": {"type": "String"}, "Outcome": {"type": "String", "default": "ok"}},
    "mainSteps": [
        {
            "name": "route",
            "action": "aws:branch",
            "inputs": {
                "Choices": [{"NextStep": "boom", "Variable": "{{ Outcome }}", "StringEquals": "fail"}],
                "Default": "nap",
            },
        },
        {"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT10M"}, "isEnd": True},
        {
            "name": "boom",
            "action": "aws:executeAwsApi",
            "inputs": {"Service": "ec2", "Api": "DescribeInstances", "InstanceIds": [MISSING_INSTANCE]},
            "isEnd": True,
        },
    ],
}
#: A child that waits until stopped.
HOLD: dict[str, Any] = {
    "schemaVersion": "0.3",
    "parameters": {"InstanceId": {"type": "String"}},
    "mainSteps": [{"name": "hold", "action": "aws:pause", "inputs": {}}],
}


@pytest.fixture
def ssm(boto_client: Callable[..., Any], local_server: LocalAutomationServer) -> Iterator[Any]:
    """An admin SSM client, on a clock fast enough that a 10-minute nap takes a fraction of a second."""
    original = local_server.time_scale
    local_server.time_scale = 3600
    try:
        yield boto_client("ssm")
    finally:
        local_server.time_scale = original


@pytest.fixture
def ec2(boto_client: Callable[..., Any]) -> Any:
    return boto_client("ec2")


@pytest.fixture
def fresh_quotas(local_server: LocalAutomationServer) -> Iterator[LocalAutomationServer]:
    """Quotas for this test only (executions other tests left running are not counted)."""
    engine = local_server.engine
    assert engine is not None
    original, original_rate = local_server.quotas, engine.rate_quotas
    local_server.quotas = ExecutionQuotas()
    engine.rate_quotas = ExecutionQuotas(25, 1000)
    try:
        yield local_server
    finally:
        local_server.quotas, engine.rate_quotas = original, original_rate


def publish(ssm: Any, content: dict[str, Any], **document: Any) -> str:
    name = unique("Fleet")
    ssm.create_document(
        Name=name, Content=json.dumps(content), DocumentType="Automation", DocumentFormat="JSON", **document
    )
    return name


def hold_the_only_slot(ssm: Any, server: LocalAutomationServer, max_queued: int) -> tuple[str, str]:
    """HOLD published, the account's quotas cut to one running execution and ``max_queued`` queued, and a HOLD
    execution waiting in that one running slot: (document name, the holder's execution id)."""
    name = publish(ssm, HOLD)
    server.quotas = ExecutionQuotas(max_running=1, max_queued=max_queued)
    holder = start(ssm, name, Parameters={"InstanceId": ["holder"]})
    until(ssm, holder, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    return name, holder


def publish_as_role(ssm: Any, new_role: Callable[..., str], prefix: str) -> tuple[str, str]:
    """A role Automation may assume, with no permissions, and NAP published to run as the role its
    AutomationAssumeRole parameter names: (role ARN, document name)."""
    role = new_role([SSM_TRUST], [], prefix=prefix)
    content = {
        **NAP,
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {**NAP["parameters"], "AutomationAssumeRole": {"type": "String"}},
    }
    return role, publish(ssm, content)


def tagged_instances(ec2: Any, count: int, key: str, value: str) -> list[str]:
    tags = [{"ResourceType": "instance", "Tags": [{"Key": key, "Value": value}]}]
    found = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, TagSpecifications=tags)
    return [instance["InstanceId"] for instance in found["Instances"]]


def get(ssm: Any, execution_id: str) -> dict[str, Any]:
    return dict(ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"])


def until(ssm: Any, execution_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while not done(found := get(ssm, execution_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def ended(ssm: Any, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    return until(ssm, execution_id, lambda e: e["AutomationExecutionStatus"] not in ACTIVE, timeout)


def status_of(ssm: Any, execution_id: str) -> str:
    return str(get(ssm, execution_id)["AutomationExecutionStatus"])


def children(ssm: Any, parent_id: str) -> list[dict[str, Any]]:
    pages = ssm.get_paginator("describe_automation_executions").paginate(
        Filters=[{"Key": "ParentExecutionId", "Values": [parent_id]}]
    )
    return [item for page in pages for item in page["AutomationExecutionMetadataList"]]


def child_exists(ssm: Any, parent_id: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while len(found := children(ssm, parent_id)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def peak(server: LocalAutomationServer, execution_id: str) -> int:
    assert server.engine is not None
    return server.engine.rate_control.peak(execution_id)


def start(ssm: Any, name: str, **request: Any) -> str:
    return str(ssm.start_automation_execution(DocumentName=name, **request)["AutomationExecutionId"])


def by_parameter_values(ssm: Any, name: str, values: list[str], **request: Any) -> str:
    targets = [{"Key": "ParameterValues", "Values": values}]
    return start(ssm, name, TargetParameterName="InstanceId", Targets=targets, **request)


def outcome_maps(outcomes: list[str]) -> list[dict[str, list[str]]]:
    return [{"InstanceId": [f"t{index}"], "Outcome": [o]} for index, o in enumerate(outcomes)]


def test_tag_targets_run_one_child_per_tagged_instance_with_aws_shapes(
    ssm: Any, ec2: Any, local_server: LocalAutomationServer
) -> None:
    fleet = unique("web")
    ids = tagged_instances(ec2, 4, "Fleet", fleet)
    tagged_instances(ec2, 1, "Fleet", unique("other"))
    name = publish(ssm, NAP)
    targets = [{"Key": "tag:Fleet", "Values": [fleet]}]
    parent_id = start(
        ssm, name, TargetParameterName="InstanceId", Targets=targets, MaxConcurrency="2", MaxErrors="1"
    )

    parent = ended(ssm, parent_id)
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")
    assert parent["TargetParameterName"] == "InstanceId"
    assert parent["Targets"] == targets
    assert (parent["MaxConcurrency"], parent["MaxErrors"], parent["Mode"]) == ("2", "1", "Auto")
    assert sorted(parent["ResolvedTargets"]["ParameterValues"]) == sorted(ids)
    assert parent["ResolvedTargets"]["Truncated"] is False
    assert parent["Outputs"] == {}
    assert parent["Parameters"] == {"Outcome": ["ok"]}  # given and defaulted, without the target parameter
    steps = parent["StepExecutions"]
    assert sorted(step["StepName"] for step in steps) == sorted(ids)
    assert {(step["Action"], step["StepStatus"]) for step in steps} == {("aws:executeAutomation", "Success")}
    assert json.loads(steps[0]["Inputs"]["InstanceId"]) == steps[0]["StepName"]
    assert parent["ProgressCounters"]["TotalSteps"] == parent["ProgressCounters"]["SuccessSteps"] == 4
    assert parent["TargetsSummary"] == {
        "TotalCount": 4,
        "StartedCount": 4,
        "CompletedCount": 4,
        "SuccessfulCount": 4,
        "FailedCount": 0,
    }
    assert "ParentAutomationExecutionId" not in parent and "Target" not in parent
    assert 1 < peak(local_server, parent_id) <= 2

    kids = children(ssm, parent_id)
    assert sorted(kid["Target"] for kid in kids) == sorted(ids)
    assert {(kid["ParentAutomationExecutionId"], kid["Mode"], kid["AutomationType"]) for kid in kids} == {
        (parent_id, "Auto", "Local")
    }
    child = get(ssm, kids[0]["AutomationExecutionId"])
    assert child["Parameters"]["InstanceId"] == [child["Target"]]
    assert child["Parameters"]["Outcome"] == ["ok"]
    assert child["ParentAutomationExecutionId"] == parent_id
    assert "TargetsSummary" not in child and "ResolvedTargets" not in child
    (listed,) = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": [parent_id]}])[
        "AutomationExecutionMetadataList"
    ]
    assert listed["ResolvedTargets"] == parent["ResolvedTargets"]
    assert listed["Targets"] == targets


def test_tag_key_targets_keep_only_resources_of_the_runbook_target_type(
    ssm: Any, ec2: Any, local_server: LocalAutomationServer
) -> None:
    key = unique("PatchGroup")
    ids = tagged_instances(ec2, 2, key, "any")
    volume = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": key, "Value": "any"}]}],
    )["VolumeId"]
    name = publish(ssm, NAP, TargetType="/AWS::EC2::Instance")
    parent_id = start(
        ssm, name, TargetParameterName="InstanceId", Targets=[{"Key": "tag-key", "Values": [key]}]
    )
    parent = ended(ssm, parent_id)
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")
    assert sorted(parent["ResolvedTargets"]["ParameterValues"]) == sorted(ids)
    assert volume not in parent["ResolvedTargets"]["ParameterValues"]
    assert parent["MaxConcurrency"] == "10"  # AWS's documented default
    assert "MaxErrors" not in parent


def test_parameter_values_with_a_percentage_ramp_up_to_that_share_of_the_targets(
    ssm: Any, local_server: LocalAutomationServer
) -> None:
    name = publish(ssm, NAP)
    values = [f"v{index}" for index in range(6)]
    parent_id = by_parameter_values(ssm, name, values, MaxConcurrency="50%", MaxErrors="0")
    parent = ended(ssm, parent_id)
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")
    assert parent["ResolvedTargets"]["ParameterValues"] == values
    assert [step["StepName"] for step in parent["StepExecutions"]] == values  # started in order
    assert peak(local_server, parent_id) == 3  # 50% of 6, reached after the ramp (1, 2, then 3)


def test_target_maps_and_max_errors_stop_starting_children_after_the_threshold(
    ssm: Any, local_server: LocalAutomationServer
) -> None:
    name = publish(ssm, NAP)
    maps = outcome_maps(["fail", "ok", "fail", "ok", "ok"])
    parent_id = start(
        ssm, name, TargetMaps=maps, TargetParameterName="InstanceId", MaxConcurrency="1", MaxErrors="25%"
    )

    parent = ended(ssm, parent_id)
    assert parent["AutomationExecutionStatus"] == "Failed"
    # 25% of 5 targets allows 1 error: the second error stops the fan-out, two targets are never started
    assert [(s["StepName"], s["StepStatus"]) for s in parent["StepExecutions"]] == [
        ("t0", "Failed"),
        ("t1", "Success"),
        ("t2", "Failed"),
    ]
    assert parent["FailureMessage"] == (
        "2 of 5 targets did not succeed (Failed, TimedOut or Cancelled). MaxErrors 25% was exceeded, so 2 "
        "targets were not started."
    )
    failed_child = parent["StepExecutions"][0]["FailureDetails"]["Details"]["ExecutionId"][0]
    assert status_of(ssm, failed_child) == "Failed"
    assert parent["StepExecutions"][0]["FailureMessage"].startswith(
        f"Child execution {failed_child} ended Failed"
    )
    assert parent["TargetsSummary"] == {
        "TotalCount": 5,
        "StartedCount": 3,
        "CompletedCount": 3,
        "SuccessfulCount": 1,
        "FailedCount": 2,
    }
    assert parent["TargetMaps"] == maps
    assert len(children(ssm, parent_id)) == 3
    assert sorted(
        get(ssm, c["AutomationExecutionId"])["Parameters"]["Outcome"][0] for c in children(ssm, parent_id)
    ) == ["fail", "fail", "ok"]


def test_a_failed_child_within_max_errors_fails_the_parent_once_every_target_ran(
    ssm: Any, local_server: LocalAutomationServer
) -> None:
    name = publish(ssm, NAP)
    parent_id = start(ssm, name, TargetMaps=outcome_maps(["ok", "fail", "ok"]), MaxErrors="1")
    parent = ended(ssm, parent_id)
    assert parent["AutomationExecutionStatus"] == "Failed"
    assert parent["FailureMessage"] == "1 of 3 targets did not succeed (Failed, TimedOut or Cancelled)."
    assert parent["TargetsSummary"]["StartedCount"] == 3
    assert "TargetParameterName" not in parent
    assert [step["StepName"] for step in parent["StepExecutions"]] == [
        json.dumps(target_map) for target_map in outcome_maps(["ok", "fail", "ok"])
    ]


@pytest.mark.parametrize(
    ("max_concurrency", "max_errors", "total", "concurrency", "allowed"),
    [
        ("10%", "10%", 200, 20, 20),
        ("10%", "10%", 50, 5, 5),  # 10% of 50 resources: the sixth error stops it (API reference)
        ("10%", "10%", 5, 1, 0),  # rounded down, MaxConcurrency at least 1
        ("3", "3", 50, 3, 3),  # 3 errors allowed: the fourth stops it
        ("100%", None, 7, 7, 0),  # no MaxErrors: the first error stops it
    ],
)
def test_numbers_and_percentages_of_the_target_set(
    max_concurrency: str, max_errors: str | None, total: int, concurrency: int, allowed: int
) -> None:
    fan_out = FanOut(None, None, None, max_concurrency, max_errors)
    fan_out.resolved = [Target(str(index), {}) for index in range(total)]
    assert (fan_out.concurrency(), fan_out.error_limit()) == (concurrency, allowed)
    fan_out.errors = allowed
    assert not fan_out.exceeded()
    fan_out.errors += 1
    assert fan_out.exceeded()


def test_the_first_child_goes_alone_then_the_window_doubles_up_to_max_concurrency() -> None:
    fan_out = FanOut(None, None, None, "5", None)
    fan_out.resolved = [Target(str(index), {}) for index in range(20)]
    windows = []
    for _ in range(5):
        windows.append(fan_out.window())
        fan_out.succeeded += 1
    assert windows == [1, 2, 4, 5, 5]


def test_cancelling_the_parent_cancels_its_running_children_and_starts_no_more(
    ssm: Any, local_server: LocalAutomationServer
) -> None:
    name = publish(ssm, HOLD)
    parent_id = by_parameter_values(ssm, name, ["a", "b", "c"], MaxConcurrency="3")
    (child,) = child_exists(ssm, parent_id)
    child_id = child["AutomationExecutionId"]
    until(ssm, child_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")

    ssm.stop_automation_execution(AutomationExecutionId=parent_id, Type="Cancel")
    parent = ended(ssm, parent_id)
    assert parent["AutomationExecutionStatus"] == "Cancelled"
    assert status_of(ssm, child_id) == "Cancelled"
    assert [(s["StepName"], s["StepStatus"]) for s in parent["StepExecutions"]] == [("a", "Cancelled")]
    assert parent["TargetsSummary"]["StartedCount"] == 1
    assert len(children(ssm, parent_id)) == 1


def test_stop_complete_lets_no_more_children_start_and_reports_completed(
    ssm: Any, local_server: LocalAutomationServer
) -> None:
    name = publish(ssm, HOLD)
    parent_id = by_parameter_values(ssm, name, ["a", "b"])
    (child,) = child_exists(ssm, parent_id)
    until(ssm, child["AutomationExecutionId"], lambda e: e["AutomationExecutionStatus"] == "Waiting")
    ssm.stop_automation_execution(AutomationExecutionId=parent_id, Type="Complete")
    # the held child was cancelled: an error, so the parent completed with failure
    assert ended(ssm, parent_id)["AutomationExecutionStatus"] == "CompletedWithFailure"


def test_children_count_against_the_account_quota_and_wait_pending(
    ssm: Any, fresh_quotas: LocalAutomationServer
) -> None:
    name, holder = hold_the_only_slot(ssm, fresh_quotas, max_queued=1)
    parent_id = by_parameter_values(ssm, name, ["a"])
    (child,) = child_exists(ssm, parent_id)
    child_id = child["AutomationExecutionId"]
    assert status_of(ssm, child_id) == "Pending"  # the holder has the account's only running slot
    assert status_of(ssm, parent_id) == "InProgress"  # the parent counts against its own quota

    ssm.stop_automation_execution(AutomationExecutionId=holder)
    until(ssm, child_id, lambda e: e["AutomationExecutionStatus"] == "Waiting")
    ssm.stop_automation_execution(AutomationExecutionId=parent_id)
    assert ended(ssm, parent_id)["AutomationExecutionStatus"] == "Cancelled"
    assert status_of(ssm, child_id) == "Cancelled"


def test_a_child_refused_by_a_full_account_queue_is_an_error_of_its_target(
    ssm: Any, fresh_quotas: LocalAutomationServer
) -> None:
    name, holder = hold_the_only_slot(ssm, fresh_quotas, max_queued=0)
    try:
        parent = ended(ssm, by_parameter_values(ssm, name, ["a", "b"]))
    finally:
        ssm.stop_automation_execution(AutomationExecutionId=holder)
    assert parent["AutomationExecutionStatus"] == "Failed"
    (step,) = parent["StepExecutions"]
    assert step["StepStatus"] == "Failed"
    assert "AutomationExecutionLimitExceededException" in step["FailureMessage"]
    assert parent["TargetsSummary"]["StartedCount"] == 0


def test_rate_control_executions_have_their_own_quota_of_running_and_queued(
    ssm: Any, fresh_quotas: LocalAutomationServer
) -> None:
    engine = fresh_quotas.engine
    assert engine is not None
    engine.rate_quotas = ExecutionQuotas(max_running=1, max_queued=2)
    name = publish(ssm, HOLD)
    first = by_parameter_values(ssm, name, ["a"])
    child_exists(ssm, first)
    second = by_parameter_values(ssm, name, ["b"])
    third = by_parameter_values(ssm, name, ["c"])
    assert [status_of(ssm, second), status_of(ssm, third)] == ["Pending", "Pending"]
    refused = error_of(lambda: by_parameter_values(ssm, name, ["d"]))
    assert refused["Code"] == "AutomationExecutionLimitExceededException"
    assert status_of(ssm, first) == "InProgress"
    ssm.stop_automation_execution(AutomationExecutionId=third)  # stopped while queued: never begins
    assert status_of(ssm, third) == "Cancelled"
    assert children(ssm, third) == []

    ssm.stop_automation_execution(AutomationExecutionId=first)
    assert ended(ssm, first)["AutomationExecutionStatus"] == "Cancelled"
    child_exists(ssm, second)  # its turn came: it began and started its child
    ssm.stop_automation_execution(AutomationExecutionId=second)
    assert ended(ssm, second)["AutomationExecutionStatus"] == "Cancelled"


def test_resource_group_targets_use_the_group_tag_query_and_refuse_other_queries(
    ssm: Any, ec2: Any, boto_client: Callable[..., Any]
) -> None:
    groups = boto_client("resource-groups")
    tier = unique("tier")
    ids = tagged_instances(ec2, 2, "Tier", tier)
    query = {"ResourceTypeFilters": ["AWS::EC2::Instance"], "TagFilters": [{"Key": "Tier", "Values": [tier]}]}
    group = unique("group")
    groups.create_group(Name=group, ResourceQuery={"Type": "TAG_FILTERS_1_0", "Query": json.dumps(query)})
    name = publish(ssm, NAP)
    targets = [{"Key": "ResourceGroup", "Values": [group]}]
    parent = ended(ssm, start(ssm, name, TargetParameterName="InstanceId", Targets=targets))
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")
    assert sorted(parent["ResolvedTargets"]["ParameterValues"]) == sorted(ids)
    listed = ssm.describe_automation_executions(Filters=[{"Key": "TargetResourceGroup", "Values": [group]}])
    assert [m["AutomationExecutionId"] for m in listed["AutomationExecutionMetadataList"]] == [
        parent["AutomationExecutionId"]
    ]

    stack_group = unique("stack-group")
    stack_query = {
        "ResourceTypeFilters": ["AWS::AllSupported"],
        "StackIdentifier": "arn:aws:cloudformation:us-east-1:123456789012:stack/web/1",
    }
    groups.create_group(
        Name=stack_group, ResourceQuery={"Type": "CLOUDFORMATION_STACK_1_0", "Query": json.dumps(stack_query)}
    )
    targets = [{"Key": "ResourceGroup", "Values": [stack_group]}]
    parent = ended(ssm, start(ssm, name, TargetParameterName="InstanceId", Targets=targets))
    assert parent["AutomationExecutionStatus"] == "Failed"
    assert (
        "CLOUDFORMATION_STACK_1_0 query, which the local runtime cannot evaluate" in parent["FailureMessage"]
    )


def test_tag_resolution_uses_the_parent_identity_which_needs_tag_get_resources(
    ssm: Any, ec2: Any, new_role: Callable[..., str]
) -> None:
    role, name = publish_as_role(ssm, new_role, "rate-role")
    fleet = unique("db")
    tagged_instances(ec2, 1, "Fleet", fleet)
    parent = ended(
        ssm,
        start(
            ssm,
            name,
            Parameters={"AutomationAssumeRole": [role]},
            TargetParameterName="InstanceId",
            Targets=[{"Key": "tag:Fleet", "Values": [fleet]}],
        ),
    )
    assert parent["AutomationExecutionStatus"] == "Failed"
    assert "tag:GetResources" in parent["FailureMessage"], parent["FailureMessage"]
    assert parent["Parameters"]["AutomationAssumeRole"] == [role]


@pytest.mark.parametrize(
    ("request_members", "code", "fragment"),
    [
        (
            {
                "TargetParameterName": "InstanceId",
                "Targets": [{"Key": "ParameterValues", "Values": ["a"]}],
                "TargetMaps": [{"InstanceId": ["b"]}],
            },
            "InvalidAutomationExecutionParametersException",
            "Both Targets and TargetMaps can't be specified together",
        ),
        (
            {"Targets": [{"Key": "ParameterValues", "Values": ["a"]}]},
            "InvalidAutomationExecutionParametersException",
            "TargetParameterName is required with Targets",
        ),
        (
            {"TargetParameterName": "instanceid", "Targets": [{"Key": "ParameterValues", "Values": ["a"]}]},
            "InvalidAutomationExecutionParametersException",
            "'instanceid' is not a parameter of the runbook (names are case sensitive",
        ),
        (
            {"TargetParameterName": "InstanceId", "Targets": [{"Key": "InstanceIds", "Values": ["i-1"]}]},
            "InvalidTarget",
            "Target key 'InstanceIds' is not one Automation targets by",
        ),
        (
            {"MaxConcurrency": "5"},
            "InvalidAutomationExecutionParametersException",
            "MaxConcurrency apply only to a rate-control start",
        ),
        (
            {
                "TargetParameterName": "InstanceId",
                "Targets": [{"Key": "ParameterValues", "Values": ["a"]}],
                "Parameters": {"InstanceId": ["b"]},
            },
            "InvalidAutomationExecutionParametersException",
            "InstanceId take their values from the targets",
        ),
        (
            {
                "TargetParameterName": "InstanceId",
                "Targets": [{"Key": "ParameterValues", "Values": ["a"]}],
                "Mode": "Interactive",
            },
            "InvalidAutomationExecutionParametersException",
            "Mode Interactive cannot be used with Targets",
        ),
        (
            {"TargetMaps": [{"Outcome": ["ok"]}]},
            "InvalidAutomationExecutionParametersException",
            'Target {"Outcome": ["ok"]}: invalid runbook parameters: InstanceId: required',
        ),
        (
            {
                "TargetParameterName": "InstanceId",
                "Targets": [{"Key": "tag:A", "Values": ["a"]}, {"Key": "tag:B", "Values": ["b"]}],
            },
            "ValidationException",
            "Member must have length less than or equal to 1",
        ),
        (
            {"TargetMaps": [{"InstanceId": ["a"]}], "MaxConcurrency": "0"},
            "ValidationException",
            "maxConcurrency",
        ),
    ],
)
def test_malformed_rate_control_starts_are_refused_with_the_api_error(
    ssm: Any, request_members: dict[str, Any], code: str, fragment: str
) -> None:
    name = publish(ssm, NAP)
    refused = error_of(lambda: ssm.start_automation_execution(DocumentName=name, **request_members))
    assert refused["Code"] == code
    assert fragment in refused["Message"]
    started = ssm.describe_automation_executions(Filters=[{"Key": "DocumentNamePrefix", "Values": [name]}])
    assert started["AutomationExecutionMetadataList"] == []


def test_a_fleet_of_200_tagged_instances_at_10_percent_never_runs_more_than_20_children(
    ssm: Any, ec2: Any, fresh_quotas: LocalAutomationServer
) -> None:
    fleet = unique("fleet")
    ids = tagged_instances(ec2, 200, "Fleet", fleet)
    name = publish(ssm, NAP)
    targets = [{"Key": "tag:Fleet", "Values": [fleet]}]
    parent_id = start(ssm, name, TargetParameterName="InstanceId", Targets=targets, MaxConcurrency="10%")

    parent = ended(ssm, parent_id, timeout=240)
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")
    assert peak(fresh_quotas, parent_id) == 20  # reached, and never exceeded (the engine's own count)
    assert parent["TargetsSummary"]["SuccessfulCount"] == 200
    assert parent["ResolvedTargets"]["Truncated"] is True
    assert len(parent["ResolvedTargets"]["ParameterValues"]) == 100
    assert parent["StepExecutionsTruncated"] is True
    assert parent["ProgressCounters"]["SuccessSteps"] == 200
    kids = children(ssm, parent_id)
    assert sorted(kid["Target"] for kid in kids) == sorted(ids)
    assert {kid["AutomationExecutionStatus"] for kid in kids} == {"Success"}


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Writes the delegation policy file the hook reads (AIRFLOW__SSM_DELEGATE__POLICY_FILE)."""
    path = tmp_path / "policy.yaml"
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(path))

    def write(text: str) -> None:
        path.write_text(text)

    return write


def test_the_hook_starts_a_rate_controlled_run_against_the_runtime(
    ssm: Any,
    new_role: Callable[..., str],
    aws_conn_env: Callable[..., dict[str, Any]],
    policy_file: Callable[[str], None],
    local_server: LocalAutomationServer,
) -> None:
    from airflow_ssm_delegate.hooks.automation import SsmAutomationHook
    from airflow_ssm_delegate.policy import PolicyViolation

    role, name = publish_as_role(ssm, new_role, "rate-hook-role")
    policy_file(
        f"documents:\n  {name}:\n    roles: ['{role}']\n    default_role: {role}\n"
        "    fan_out: {max_concurrency: 2}\n"
    )
    hook = SsmAutomationHook()
    targets = [{"Key": "ParameterValues", "Values": ["a", "b", "c"]}]
    with pytest.raises(PolicyViolation, match="MaxConcurrency 3 exceeds"):
        hook.start_automation_execution(
            name, target_parameter_name="InstanceId", targets=targets, max_concurrency="3"
        )

    execution_id = hook.start_automation_execution(
        name, target_parameter_name="InstanceId", targets=targets, max_concurrency="2", max_errors="0"
    )
    parent = ended(ssm, execution_id)
    assert parent["AutomationExecutionStatus"] == "Success", parent.get("FailureMessage")
    assert parent["Parameters"]["AutomationAssumeRole"] == [role]
    assert parent["TargetsSummary"]["SuccessfulCount"] == 3
    assert peak(local_server, execution_id) == 2
    kids = hook.describe_automation_executions(
        [kid["AutomationExecutionId"] for kid in children(ssm, execution_id)]
    )
    assert sorted(kid["Target"] for kid in kids) == ["a", "b", "c"]
    assert {kid["AutomationExecutionStatus"] for kid in kids} == {"Success"}


def test_an_execute_automation_step_starts_a_rate_controlled_child_and_waits_for_it(
    ssm: Any, local_server: LocalAutomationServer
) -> None:
    child_name = publish(ssm, NAP)
    inputs = {
        "DocumentName": child_name,
        "TargetParameterName": "InstanceId",
        "Targets": [{"Key": "ParameterValues", "Values": ["x", "y"]}],
        "MaxConcurrency": "2",
    }
    step = {"name": "fleet", "action": "aws:executeAutomation", "inputs": inputs}
    top = ended(ssm, start(ssm, publish(ssm, {"schemaVersion": "0.3", "mainSteps": [step]})))
    assert top["AutomationExecutionStatus"] == "Success", top.get("FailureMessage")
    (fleet_id,) = top["StepExecutions"][0]["Outputs"]["ExecutionId"]
    fleet = get(ssm, fleet_id)
    assert fleet["ParentAutomationExecutionId"] == top["AutomationExecutionId"]
    assert fleet["TargetsSummary"]["SuccessfulCount"] == 2
    assert sorted(kid["Target"] for kid in children(ssm, fleet_id)) == ["x", "y"]


def test_all_instances_target_lists_every_instance_not_terminated(ec2: Any) -> None:
    from airflow_ssm_delegate.local.ratecontrol import _all_instances

    running, terminated = tagged_instances(ec2, 2, "Fleet", unique("all"))
    ec2.terminate_instances(InstanceIds=[terminated])
    arns = _all_instances(ec2)
    assert f"arn:aws:ec2:::instance/{running}" in arns
    assert f"arn:aws:ec2:::instance/{terminated}" not in arns
