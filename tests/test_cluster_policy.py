"""The cluster policy makes a DAG whose automation task could never start an import error (real DagBag)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest

from airflow_ssm_delegate.compat import dag_bag_class
from tests.test_policy import LAUNCH_ROLE, POLICY, write_policy

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

HEADER = """\
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

with DAG("{dag_id}", schedule=None):
"""


def dag_bag(tmp_path: Path, dag_id: str, body: str) -> DagBag:
    folder = tmp_path / "dags"
    folder.mkdir(exist_ok=True)
    text = HEADER.format(dag_id=dag_id) + textwrap.indent(textwrap.dedent(body), "    ")
    (folder / f"{dag_id}.py").write_text(text)
    return dag_bag_class()(dag_folder=folder, bundle_path=folder)


@pytest.fixture(autouse=True)
def builtin_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", raising=False)


def test_the_policy_is_registered_through_the_entry_point() -> None:
    from airflow_ssm_delegate import cluster_policy
    from airflow_ssm_delegate.compat import policy_plugin_manager

    assert cluster_policy in policy_plugin_manager().get_plugins()


def test_a_task_without_service_role_is_an_import_error(tmp_path: Path) -> None:
    bag = dag_bag(
        tmp_path,
        "no_role",
        """
        EmptyOperator(task_id="unrelated")
        SsmStartAutomationExecutionOperator(task_id="launch", document_name="LaunchTaggedInstance")
        """,
    )
    assert bag.dags == {}
    assert list(bag.import_errors.values()) == [
        "AirflowClusterPolicyViolation: DAG 'no_role', task 'launch': Delegation policy (built-in rule) "
        "refused runbook 'LaunchTaggedInstance' under role (none) [rule service-role-required]: no "
        "service_role_arn and no default_role for this runbook in the policy; without a service role a "
        "runbook runs on the caller's session, which expires 12 hours after the start. Set "
        "service_role_arn on the task or ask the administrator for a default_role."
    ]


def test_templated_and_literal_roles_import(tmp_path: Path) -> None:
    bag = dag_bag(
        tmp_path,
        "with_roles",
        f"""
        SsmStartAutomationExecutionOperator(
            task_id="literal", document_name="LaunchTaggedInstance", service_role_arn="{LAUNCH_ROLE}"
        )
        SsmStartAutomationExecutionOperator(
            task_id="templated",
            document_name="LaunchTaggedInstance",
            service_role_arn="{{{{ params.role }}}}",
        )
        """,
    )
    assert bag.import_errors == {}
    assert set(bag.dags["with_roles"].task_dict) == {"literal", "templated"}


def test_mapped_tasks_are_checked_too(tmp_path: Path) -> None:
    good = dag_bag(
        tmp_path,
        "mapped_roles",
        f"""
        SsmStartAutomationExecutionOperator.partial(
            task_id="launch", document_name="LaunchTaggedInstance"
        ).expand(service_role_arn=["{LAUNCH_ROLE}"])
        """,
    )
    assert good.import_errors == {}
    bad = dag_bag(
        tmp_path,
        "mapped_no_role",
        """
        SsmStartAutomationExecutionOperator.partial(
            task_id="launch", document_name="LaunchTaggedInstance"
        ).expand(parameters=[{"Owner": "a"}, {"Owner": "b"}])
        """,
    )
    errors = [error for path, error in bad.import_errors.items() if "mapped_no_role" in path]
    assert len(errors) == 1
    assert "[rule service-role-required]" in errors[0]


def test_with_a_policy_file_unlisted_runbooks_and_refused_roles_fail_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(write_policy(tmp_path, POLICY)))
    bag = dag_bag(
        tmp_path,
        "policy_file",
        """
        SsmStartAutomationExecutionOperator(task_id="default_role", document_name="LaunchTaggedInstance")
        """,
    )
    assert bag.import_errors == {}  # the policy's default_role counts
    bad = dag_bag(
        tmp_path,
        "unlisted",
        f"""
        SsmStartAutomationExecutionOperator(
            task_id="other", document_name="DeleteEverything", service_role_arn="{LAUNCH_ROLE}"
        )
        """,
    )
    errors = [error for path, error in bad.import_errors.items() if "unlisted" in path]
    assert len(errors) == 1
    assert "DAG 'unlisted', task 'other': Delegation policy" in errors[0]
    assert "[rule document-listed]" in errors[0]
    old = dag_bag(
        tmp_path,
        "old_version",
        """
        SsmStartAutomationExecutionOperator(
            task_id="old", document_name="LaunchTaggedInstance", document_version="2"
        )
        """,
    )
    errors = [error for path, error in old.import_errors.items() if "old_version" in path]
    assert len(errors) == 1
    assert "[rule version-pin]: version 2 was requested but the policy pins version 3" in errors[0]


def test_a_broken_policy_file_is_reported_on_the_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(write_policy(tmp_path, "documents: [")))
    bag = dag_bag(
        tmp_path,
        "broken_policy",
        f"""
        SsmStartAutomationExecutionOperator(
            task_id="launch", document_name="LaunchTaggedInstance", service_role_arn="{LAUNCH_ROLE}"
        )
        """,
    )
    (error,) = bag.import_errors.values()
    assert "task 'launch': Delegation policy file" in error
    assert "not valid YAML or JSON" in error
