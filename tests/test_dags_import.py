"""Every DAG in dags/ imports cleanly, and the example DAGs are configured as their docs promise."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.documents.model import load_runbook
from airflow_ssm_delegate.examples import AUTOMATION_POOL, EXAMPLES_DIR

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.dag_processing.dagbag import DagBag

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
EXAMPLE_POLICY = EXAMPLES_DIR / "delegation-policy.yaml"


@pytest.fixture(scope="module")
def dagbag_and_warnings() -> Iterator[tuple[DagBag, list[warnings.WarningMessage]]]:
    """The DAGs parsed as a deployment would: under the example delegation policy (it names default roles,
    which the package's cluster policy requires of every automation task)."""
    from airflow_ssm_delegate.compat import dag_bag_class

    DagBag = dag_bag_class()
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        patch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(EXAMPLE_POLICY))
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        yield bag, list(caught)


@pytest.fixture(scope="module")
def dagbag(dagbag_and_warnings: tuple[DagBag, list[warnings.WarningMessage]]) -> DagBag:
    return dagbag_and_warnings[0]


def test_every_dag_file_imports_without_errors_or_warnings(
    dagbag_and_warnings: tuple[DagBag, list[warnings.WarningMessage]],
) -> None:
    bag, caught = dagbag_and_warnings
    assert bag.import_errors == {}
    # Warnings raised inside Airflow's own packages are not ours to fix (on Airflow 3.0 every DAG using @task
    # gets one: the standard provider imports BaseBranchOperator from its deprecated 3.0 home).
    assert {
        path: found
        for path, texts in bag.captured_warnings.items()
        if (found := [text for text in texts if "site-packages/airflow/" not in text])
    } == {}
    ours = [
        w
        for w in caught
        if any(part in str(w.filename) for part in (str(DAGS_FOLDER), "airflow_ssm_delegate"))
    ]
    assert ours == [], [f"{w.filename}:{w.lineno}: {w.message}" for w in ours]
    files = {Path(dag.fileloc).name for dag in bag.dags.values()}
    assert files == {p.name for p in DAGS_FOLDER.glob("*.py")}  # each file defines a DAG
    assert {"launch_tagged_instance", "long_running_maintenance", "fleet_patch_maintenance"} <= set(
        bag.dag_ids
    )


def _param_schema(dag: Any, name: str) -> dict[str, Any]:
    return dict(dag.params.get_param(name).schema)


def test_launch_form_refuses_what_the_runbook_refuses(dagbag: DagBag) -> None:
    dag = dagbag.dags["launch_tagged_instance"]
    runbook = load_runbook(runbook_path("LaunchTaggedInstance"))
    assert dag.schedule is None  # triggered from the UI form
    form = {name: _param_schema(dag, name) for name in ("image_id", "instance_type", "cost_center", "owner")}
    for name, schema in form.items():
        param = dag.params.get_param(name)
        assert schema.get("title") and param.description, f"{name} needs a title and a description"
    assert form["instance_type"]["enum"] == list(runbook.parameters["InstanceType"].allowed_values or ())
    assert set(form["instance_type"]["values_display"]) == set(form["instance_type"]["enum"])
    assert form["cost_center"]["enum"] == list(runbook.parameters["CostCenter"].allowed_values or ())
    assert set(form["cost_center"]["values_display"]) == set(form["cost_center"]["enum"])
    assert form["image_id"]["pattern"] == runbook.parameters["ImageId"].allowed_pattern
    assert form["owner"]["pattern"] == runbook.parameters["Owner"].allowed_pattern
    # Every default passes the runbook's own rules, so a plain trigger works.
    assert re.search(form["image_id"]["pattern"], dag.params["image_id"])
    assert re.search(form["owner"]["pattern"], dag.params["owner"])

    launch = dag.get_task("launch")
    assert type(launch).__name__ == "SsmStartAutomationExecutionOperator"
    assert launch.document_name == "LaunchTaggedInstance"
    assert launch.service_role_arn is None  # the delegation policy's default_role decides
    assert set(launch.parameters) <= set(runbook.parameters)
    assert launch.operator_extra_links, "the console link is shown on the task"
    assert dag.get_task("instance_ids").upstream_task_ids == {"launch"}


def test_maintenance_is_scheduled_bounded_deferrable_and_idempotent(dagbag: DagBag) -> None:
    dag = dagbag.dags["long_running_maintenance"]
    runbook = load_runbook(runbook_path("LongRunningMaintenance"))
    assert dag.catchup is True
    assert dag.max_active_runs <= 2
    assert dag.start_date is not None and dag.start_date.year >= 2026
    maintain = dag.get_task("maintain")
    assert maintain.document_name == "LongRunningMaintenance"
    assert maintain.deferrable is True
    assert maintain.pool == AUTOMATION_POOL
    assert maintain.service_role_arn is None
    assert "{{ ds }}" in maintain.idempotency_key  # one execution per logical date
    assert set(maintain.parameters) <= set(runbook.parameters)
    required = {name for name, spec in runbook.parameters.items() if spec.required}
    assert required - {"AutomationAssumeRole"} <= set(maintain.parameters)


def test_maintenance_approval_and_cleanup_paths(dagbag: DagBag) -> None:
    dag = dagbag.dags["long_running_maintenance"]
    approve = dag.get_task("approve")
    assert type(approve).__name__ == "SsmSendAutomationSignalOperator"
    assert approve.signal_type == "Approve"
    assert approve.upstream_task_ids == {"await_approval_request"}
    cleanup = dag.get_task("stop_on_failure")
    assert cleanup.trigger_rule == "one_failed"
    from airflow_ssm_delegate.operators.approval import HAS_HITL

    if not HAS_HITL:  # Airflow 3.0: no human-in-the-loop operators, the DAG approves by signal only
        assert cleanup.upstream_task_ids == {"maintain", "approve"}
        assert "human_approval" not in dag.task_ids
        return
    assert cleanup.upstream_task_ids == {"maintain", "approve", "human_approval"}
    human = dag.get_task("human_approval")  # auto_approve=false: a person answers in Airflow (3.1+ HITL)
    assert type(human).__name__ == "SsmAutomationApprovalOperator"
    assert human.options == ["Approve", "Reject"]
    assert human.upstream_task_ids == {"await_human_approval_request"}


def _example_rule(document: str) -> dict[str, Any]:
    return dict(yaml.safe_load(EXAMPLE_POLICY.read_text())["documents"][document])


def test_fleet_form_offers_exactly_the_locations_the_policy_allows(dagbag: DagBag) -> None:
    dag = dagbag.dags["fleet_patch_maintenance"]
    fan_out = _example_rule("FleetPatchInstance")["fan_out"]
    assert dag.schedule is None  # triggered from the form
    for name, allowed in (("accounts", fan_out["accounts"]), ("regions", fan_out["regions"])):
        schema = _param_schema(dag, name)
        assert schema["type"] == "array" and schema["items"]["enum"] == allowed, schema
        assert schema["examples"] == allowed  # the UI's multi-select pick list
        assert set(schema["values_display"]) == set(allowed)
        assert dag.params[name] == allowed  # all chosen by default: a plain trigger patches everywhere
        assert schema.get("title") and dag.params.get_param(name).description
    assert _param_schema(dag, "regions")["values_display"]["eu-west-1"] == "eu-west-1 — Europe (Ireland)"
    runbook = load_runbook(runbook_path("FleetPatchInstance"))
    assert _param_schema(dag, "operation")["enum"] == list(
        runbook.parameters["Operation"].allowed_values or ()
    )


def test_fleet_patch_is_rate_controlled_located_alarm_guarded_and_deferrable(dagbag: DagBag) -> None:
    dag = dagbag.dags["fleet_patch_maintenance"]
    rule = _example_rule("FleetPatchInstance")
    patch = dag.get_task("patch_fleet")
    assert patch.document_name == "FleetPatchInstance" and patch.service_role_arn is None
    assert patch.deferrable is True and patch.pool == AUTOMATION_POOL
    assert patch.target_parameter_name == "InstanceId"
    assert patch.targets == [{"Key": "tag:PatchGroup", "Values": ["{{ params.patch_group }}"]}]
    assert (patch.max_concurrency, patch.max_errors) == (
        "{{ params.max_concurrency }}",
        "{{ params.max_errors }}",
    )
    [location] = patch.target_locations
    assert location["ExecutionRoleName"] in rule["fan_out"]["execution_role_names"]
    assert int(location["TargetLocationMaxConcurrency"]) <= rule["fan_out"]["target_location_max_concurrency"]
    assert patch.alarm_configuration == {"Alarms": [{"Name": rule["required_alarm"]}]}
    assert dag.get_task("fleet_locations").downstream_task_ids == {"patch_fleet"}
    report = dag.get_task("report_locations")
    assert report.trigger_rule == "all_done" and report.upstream_task_ids == {"patch_fleet"}
    assert report.multiple_outputs is False  # one XCom: location keys hold '/', which 3.0 cannot store


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"target_location_max_concurrency": 1}, "target-location-max-concurrency"),
        ({"execution_role_names": ["FleetPatcher"]}, "execution-role-name"),
        ({"required_alarm": "another-alarm"}, "alarm-required"),
    ],
)
def test_fleet_dag_is_an_import_error_where_its_literals_exceed_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], rule: str
) -> None:
    """The cluster policy checks the DAG's literal fan-out values at parse time, naming the rule."""
    from airflow_ssm_delegate.compat import dag_bag_class

    policy = yaml.safe_load(EXAMPLE_POLICY.read_text())
    entry = policy["documents"]["FleetPatchInstance"]
    for key, value in change.items():
        (entry if key == "required_alarm" else entry["fan_out"])[key] = value
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(policy_file))
    bag = dag_bag_class()(dag_folder=str(DAGS_FOLDER / "fleet_patch_maintenance.py"))
    [error] = bag.import_errors.values()
    assert f"[rule {rule}]" in error, error
