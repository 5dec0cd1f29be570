"""``airflow dags test`` of fleet DAGs against the local runtime: the fleet example over two accounts x two
Regions, and a rate-controlled start over 200 instances.

The runtime runs in its own process with the admins of the two fleet accounts (``--account``), so the story
provisions what ``make airflow`` and docker-compose provision: the central account as for every e2e test
(operator denied ec2:*, the service role, the runbooks and the delegation policy with the fleet rule) and
the fleet (:mod:`airflow_ssm_delegate.local.story_fleet`: roles from ``airflow-ssm-delegate iam``'s
compilation of that policy, the required alarm, in each account-Region pair three instances tagged for the
patch group and one that is not).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_ssm_delegate.examples import FLEET_ACCOUNTS, FLEET_ALARM, FLEET_RUNBOOK
from airflow_ssm_delegate.iam_locations import TARGET_RESOLUTION_ACTIONS
from airflow_ssm_delegate.local.story import LOCAL_AMI_ID
from airflow_ssm_delegate.local.story_fleet import FLEET_TAGGED_PER_LOCATION, launch_instances
from tests.e2e.support import (
    LocalRuntime,
    install_fast_polling,
    local_runtime,
    most_at_once,
    story_env,
)
from tests.fixtures.airflow_stack import write_dags

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

    from airflow_ssm_delegate.local.story import Story
    from airflow_ssm_delegate.local.story_fleet import Fleet
    from tests.fixtures.airflow_stack import SqliteAirflow

pytestmark = pytest.mark.slow

DAG_ID = "fleet_patch_maintenance"
# Fast enough for the scale test's 200 children of 20 simulated minutes each (2 s apiece), slow enough that
# 20 of them are in flight together.
TIME_SCALE = 600

# Issue 13: a run over 200 tagged instances at MaxConcurrency 10% never has more than 20 children at once.
SCALE_DAG_ID = "e2e_fleet_scale"
SCALE_DOCUMENT = "E2eFleetScaleWait"
SCALE_INSTANCES = 200
SCALE_TAG = ("ScaleGroup", "e2e-200")
SCALE_MAX_CONCURRENCY = "10%"
SCALE_MOST_AT_ONCE = 20  # 10 % of 200
SCALE_RUNBOOK = """\
schemaVersion: '0.3'
description: A short wait on one instance of a fleet (the fleet scale test's runbook).
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole:
    type: String
    description: The service role the runbook runs as.
  InstanceId:
    type: String
    description: The instance (given per target by TargetParameterName).
mainSteps:
  - name: wait
    action: aws:sleep
    isEnd: true
    inputs:
      Duration: PT20M
"""
SCALE_DAG = f'''
from datetime import datetime, timezone

from airflow.sdk import DAG

from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

START = datetime(2026, 11, 1, tzinfo=timezone.utc)

with DAG("{SCALE_DAG_ID}", schedule=None, start_date=START, catchup=False):
    SsmStartAutomationExecutionOperator(
        task_id="wait_on_each",
        document_name="{SCALE_DOCUMENT}",
        target_parameter_name="InstanceId",
        targets=[{{"Key": "tag:{SCALE_TAG[0]}", "Values": ["{SCALE_TAG[1]}"]}}],
        max_concurrency="{SCALE_MAX_CONCURRENCY}",
        max_errors="0",
        deferrable=True,
    )
'''


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRuntime, Story, Fleet]]:
    """The runtime with the fleet accounts, the story provisioned on it with its fleet (and the scale
    test's runbook approved too)."""
    workdir = tmp_path_factory.mktemp("fleet-dag")
    scale_runbook = workdir / f"{SCALE_DOCUMENT}.yaml"
    scale_runbook.write_text(SCALE_RUNBOOK)
    with local_runtime(workdir / "runtime", time_scale=TIME_SCALE, accounts=FLEET_ACCOUNTS) as runtime:
        story = runtime.provision_story(workdir / "story", extra_runbooks=[scale_runbook])
        assert story.fleet is not None  # the runtime has every fleet account's admin
        yield runtime, story, story.fleet


def test_the_story_policy_carries_the_fleet_rule(
    fleet: tuple[LocalRuntime, Story, Fleet],
) -> None:
    _, story, _ = fleet
    rule = yaml.safe_load(story.files.policy_file.read_text())["documents"][FLEET_RUNBOOK]
    assert rule["fan_out"]["accounts"] == list(FLEET_ACCOUNTS)
    assert rule["required_alarm"] == FLEET_ALARM


def test_dags_test_patches_every_tagged_instance_in_every_location(
    fleet: tuple[LocalRuntime, Story, Fleet],
    sqlite_airflow: Callable[..., SqliteAirflow],
) -> None:
    runtime, story, provisioned = fleet
    tagged = provisioned.tagged
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
        assert set(child["ResolvedTargets"]["ParameterValues"]) == set(tagged[(account, region)])
        assert (child["MaxConcurrency"], child["MaxErrors"]) == ("20%", "10%")
        per_instance = ssm.describe_automation_executions(
            Filters=[{"Key": "ParentExecutionId", "Values": [child_id]}]
        )["AutomationExecutionMetadataList"]
        assert {e["AutomationExecutionStatus"] for e in per_instance} == {"Success"}
        assert len(per_instance) == FLEET_TAGGED_PER_LOCATION
        # Each location's child is in the task log of report_locations.
        assert f"{account} {region}: Success, child execution {child_id}" in log, log[-3000:]


def test_the_required_alarm_in_alarm_stops_the_fleet_and_fails_the_run(
    fleet: tuple[LocalRuntime, Story, Fleet],
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


def test_dags_test_over_200_tagged_instances_at_10_percent_runs_at_most_20_children_at_once(
    fleet: tuple[LocalRuntime, Story, Fleet],
    sqlite_airflow: Callable[..., SqliteAirflow],
    tmp_path: Path,
) -> None:
    runtime, story, _ = fleet
    # A start with Targets resolves its tags as its AutomationAssumeRole (here the service role, which the
    # runbook's aws:sleep gives no rights): the administrator grants it what AWS's execution role template
    # grants for resolving targets. `iam` compiles that into the execution roles only (TargetLocations).
    runtime.client("iam").put_role_policy(
        RoleName=story.service_role_arn.rsplit("/", 1)[1],
        PolicyName="ResolveTargets",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": list(TARGET_RESOLUTION_ACTIONS), "Resource": "*"}
                ],
            }
        ),
    )
    # the operator holds only what `iam --policy` compiles: the children are started by the service
    instances = launch_instances(runtime.client("ec2"), LOCAL_AMI_ID, SCALE_INSTANCES, dict([SCALE_TAG]))
    dags = write_dags(tmp_path / "dags", {f"{SCALE_DAG_ID}.py": SCALE_DAG})
    airflow = sqlite_airflow(dags_folder=dags, extra_env=story_env(story))
    install_fast_polling(airflow.home)

    airflow.airflow("dags", "test", SCALE_DAG_ID, timeout=480)

    assert airflow.sql("SELECT state FROM dag_run WHERE dag_id = ?", (SCALE_DAG_ID,)) == [("success",)]
    assert airflow.sql("SELECT state FROM task_instance WHERE dag_id = ?", (SCALE_DAG_ID,)) == [("success",)]
    [parent] = [e for e in runtime.executions(SCALE_DOCUMENT) if not e.get("ParentAutomationExecutionId")]
    assert parent["AutomationExecutionStatus"] == "Success"
    assert parent["MaxConcurrency"] == SCALE_MAX_CONCURRENCY
    children = runtime.children(parent["AutomationExecutionId"])
    assert len(children) == SCALE_INSTANCES
    assert sorted(child["Target"] for child in children) == sorted(instances)  # each instance once
    assert {child["AutomationExecutionStatus"] for child in children} == {"Success"}
    at_once = most_at_once(_spans(children))
    print(f"{len(children)} children, at most {at_once} at once (MaxConcurrency {SCALE_MAX_CONCURRENCY})")
    # Never more than 10 % of 200; and the cap is reached (the 20-minute waits outlast the ramp-up).
    assert at_once == SCALE_MOST_AT_ONCE


def _spans(executions: Iterable[dict[str, Any]]) -> list[tuple[float, float]]:
    """Each execution's [ExecutionStartTime, ExecutionEndTime): while the account's quota counts it."""
    return [(e["ExecutionStartTime"].timestamp(), e["ExecutionEndTime"].timestamp()) for e in executions]
