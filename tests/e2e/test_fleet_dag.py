"""``airflow dags test fleet_patch_maintenance`` against the local runtime: two accounts x two Regions.

The runtime runs in its own process with the admins of the two fleet accounts (``--account``); the story
provisions the central account as for every e2e test (operator denied ec2:*, the service role, the runbooks
and the delegation policy with the fleet rule). What a platform team then sets up for multi-account
Automation comes from ``airflow-ssm-delegate iam``'s compilation of that same policy: the administration
role's policy (here the service role, the runbook's default_role) and, in each fleet account, the execution
role with its trust and per-account policy. Each account-Region pair gets three instances tagged for the
patch group and one that is not.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.examples import FLEET_ACCOUNTS, FLEET_ALARM, FLEET_REGIONS, FLEET_RUNBOOK
from airflow_ssm_delegate.fanout import DEFAULT_EXECUTION_ROLE_NAME
from airflow_ssm_delegate.iam import Scope
from airflow_ssm_delegate.iam_compile import compile_policies
from airflow_ssm_delegate.local.story import LOCAL_AMI_ID
from airflow_ssm_delegate.policy import DelegationPolicy
from tests.e2e.support import LocalRuntime, install_fast_polling, local_runtime, story_env

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.story import Story
    from tests.fixtures.airflow_stack import SqliteAirflow

pytestmark = pytest.mark.slow

DAG_ID = "fleet_patch_maintenance"
PATCH_GROUP = "web"
TAGGED_PER_LOCATION = 3


def put_policy(iam: Any, role: str, name: str, document: dict[str, Any]) -> None:
    iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(document))


def provision_fleet(runtime: LocalRuntime, story: Story) -> dict[tuple[str, str], set[str]]:
    """Roles from the compiled policy, the required alarm, tagged instances; the tagged ids per location."""
    policy = DelegationPolicy.from_file(story.files.policy_file)
    compiled = compile_policies(
        policy, Scope(story.account_id, runtime.region), [runbook_path(FLEET_RUNBOOK)]
    ).policies
    central_iam, service_role = runtime.client("iam"), story.service_role_arn.rsplit("/", 1)[1]
    # Also lets it read the required alarm: the start polls it as the administration role.
    put_policy(central_iam, service_role, "AutomationAdministration", compiled["administration_role_policy"])
    runtime.client("cloudwatch").put_metric_alarm(
        AlarmName=FLEET_ALARM,
        Namespace="Fleet",
        MetricName="PatchErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    tagged: dict[tuple[str, str], set[str]] = {}
    for account in FLEET_ACCOUNTS:
        iam = runtime.client("iam", account)
        iam.create_role(
            RoleName=DEFAULT_EXECUTION_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(compiled["execution_role_trust_policy"]),
        )
        put_policy(
            iam, DEFAULT_EXECUTION_ROLE_NAME, "FleetPatch", compiled["execution_role_policies"][account]
        )
        for region in FLEET_REGIONS:
            ec2 = runtime.client("ec2", account, region)
            launched = ec2.run_instances(
                ImageId=LOCAL_AMI_ID,
                InstanceType="t3.micro",
                MinCount=TAGGED_PER_LOCATION,
                MaxCount=TAGGED_PER_LOCATION,
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": "PatchGroup", "Value": PATCH_GROUP}]}
                ],
            )
            tagged[(account, region)] = {i["InstanceId"] for i in launched["Instances"]}
            ec2.run_instances(ImageId=LOCAL_AMI_ID, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    return tagged


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalRuntime, Story, dict[tuple[str, str], set[str]]]]:
    workdir = tmp_path_factory.mktemp("fleet-dag")
    with local_runtime(workdir / "runtime", time_scale=600, accounts=FLEET_ACCOUNTS) as runtime:
        story = runtime.provision_story(workdir / "story")
        yield runtime, story, provision_fleet(runtime, story)


def test_the_story_policy_carries_the_fleet_rule(
    fleet: tuple[LocalRuntime, Story, dict[tuple[str, str], set[str]]],
) -> None:
    _, story, _ = fleet
    rule = yaml.safe_load(story.files.policy_file.read_text())["documents"][FLEET_RUNBOOK]
    assert rule["fan_out"]["accounts"] == list(FLEET_ACCOUNTS)
    assert rule["required_alarm"] == FLEET_ALARM


def test_dags_test_patches_every_tagged_instance_in_every_location(
    fleet: tuple[LocalRuntime, Story, dict[tuple[str, str], set[str]]],
    sqlite_airflow: Callable[..., SqliteAirflow],
) -> None:
    runtime, story, tagged = fleet
    airflow = sqlite_airflow(extra_env=story_env(story))
    install_fast_polling(airflow.home)

    done = airflow.airflow("dags", "test", DAG_ID, timeout=480)

    assert airflow.sql("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)) == [("success",)]
    [execution] = runtime.executions(FLEET_RUNBOOK)  # the one start, in the central account
    parent = runtime.execution(execution["AutomationExecutionId"])
    assert parent["AutomationExecutionStatus"] == "Success"
    assert parent["AlarmConfiguration"]["Alarms"] == [{"Name": FLEET_ALARM}]
    assert parent["Parameters"]["AutomationAssumeRole"] == [story.service_role_arn]
    steps = {
        (step["TargetLocation"]["Accounts"][0], step["TargetLocation"]["Regions"][0]): step
        for step in parent["StepExecutions"]
    }
    assert set(steps) == set(tagged)  # 2 accounts x 2 Regions, as the form offered by default
    log = done.stdout + done.stderr
    for (account, region), step in steps.items():
        child_id = step["Outputs"]["AutomationExecutionId"][0]
        # The location's child, read where it ran: rate-controlled over exactly the tagged instances.
        ssm = runtime.client("ssm", account, region)
        child = ssm.get_automation_execution(AutomationExecutionId=child_id)["AutomationExecution"]
        assert child["AutomationExecutionStatus"] == "Success"
        assert set(child["ResolvedTargets"]["ParameterValues"]) == tagged[(account, region)]
        assert (child["MaxConcurrency"], child["MaxErrors"]) == ("20%", "10%")
        per_instance = ssm.describe_automation_executions(
            Filters=[{"Key": "ParentExecutionId", "Values": [child_id]}]
        )["AutomationExecutionMetadataList"]
        assert {e["AutomationExecutionStatus"] for e in per_instance} == {"Success"}
        assert len(per_instance) == TAGGED_PER_LOCATION
        # Each location's child is in the task log of report_locations.
        assert f"{account} {region}: Success, child execution {child_id}" in log, log[-3000:]


def test_the_required_alarm_in_alarm_stops_the_fleet_and_fails_the_run(
    fleet: tuple[LocalRuntime, Story, dict[tuple[str, str], set[str]]],
    sqlite_airflow: Callable[..., SqliteAirflow],
) -> None:
    runtime, story, _ = fleet
    before = {e["AutomationExecutionId"] for e in runtime.executions(FLEET_RUNBOOK)}
    cloudwatch = runtime.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=FLEET_ALARM, StateValue="ALARM", StateReason="e2e: patch errors")
    airflow = sqlite_airflow(extra_env=story_env(story))
    install_fast_polling(airflow.home)
    try:
        done = airflow.airflow("dags", "test", DAG_ID, timeout=480, check=False)
    finally:
        cloudwatch.set_alarm_state(AlarmName=FLEET_ALARM, StateValue="OK", StateReason="e2e: reset")

    assert airflow.sql("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)) == [("failed",)]
    [stopped] = [e for e in runtime.executions(FLEET_RUNBOOK) if e["AutomationExecutionId"] not in before]
    execution = runtime.execution(stopped["AutomationExecutionId"])
    assert execution["AutomationExecutionStatus"] == "Cancelled"
    assert execution["TriggeredAlarms"] == [{"Name": FLEET_ALARM, "State": "ALARM"}]
    assert f"Stopped by alarm {FLEET_ALARM}." in done.stdout + done.stderr
