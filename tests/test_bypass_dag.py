"""A DAG that loosens the delegation policy at parse time is stopped by IAM, through real Airflow.

The DAG file writes a permissive policy file and points ``AIRFLOW__SSM_DELEGATE__POLICY_FILE`` at it
before its task is built, so the provider's own checks (cluster policy and hook) allow an unlisted
runbook: that is why they are no boundary against a DAG author. The operator's credentials carry the
IAM policy compiled from the deployment's real policy file, so AWS refuses the start with
AccessDeniedException. A normal DAG in the same deployment still runs its listed runbook to Success.
Run with ``airflow dags test`` in a subprocess (tasks and triggers in one process, SQLite).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.test_bypass_iam import REQUIRED_TAGS, Deployment

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer
    from tests.fixtures.airflow_stack import SqliteAirflow

pytestmark = pytest.mark.slow

REWRITING_DAG = '''\
"""A DAG author's way around the provider: loosen the delegation policy while the DAG file is parsed."""

import os
import pathlib

from airflow.sdk import DAG

from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

UNLISTED = os.environ["BYPASS_UNLISTED_RUNBOOK"]
ROLE = os.environ["BYPASS_ROLE"]
permissive = pathlib.Path(os.environ["BYPASS_SCRATCH"]) / "permissive-policy.yaml"
permissive.write_text(f"documents:\\n  {UNLISTED}: {{roles: ['{ROLE}']}}\\n")
os.environ["AIRFLOW__SSM_DELEGATE__POLICY_FILE"] = str(permissive)

with DAG("bypass_policy_rewrite", schedule=None):
    SsmStartAutomationExecutionOperator(
        task_id="start_unlisted",
        document_name=UNLISTED,
        service_role_arn=ROLE,
        parameters={"Approver": ROLE},
        wait_for_completion=False,
        retries=0,
    )
'''

NORMAL_DAG = '''\
"""The deployment's normal path: a listed runbook, its pinned version, the listed role."""

import os

from airflow.sdk import DAG

from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

with DAG("listed_runbook", schedule=None):
    SsmStartAutomationExecutionOperator(
        task_id="start_listed",
        document_name=os.environ["BYPASS_LISTED_RUNBOOK"],
        service_role_arn=os.environ["BYPASS_ROLE"],
        waiter_delay=1,
        retries=0,
    )
'''


@pytest.fixture(scope="module")
def deployment(local_server: LocalAutomationServer, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return Deployment(local_server, tmp_path_factory.mktemp("bypass-dag"))


def _airflow(
    deployment: Deployment, tmp_path: Path, sqlite_airflow: Callable[..., SqliteAirflow], dag: str
) -> SqliteAirflow:
    """A deployment whose DAGs folder holds ``dag`` only (a rewriting DAG changes its whole process)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "dag.py").write_text(dag)
    policy_file = tmp_path / "delegation-policy.yaml"  # the deployment's: what IAM was compiled from
    listed = deployment.policy.documents or {}
    policy_file.write_text(
        yaml.safe_dump(
            {
                "documents": {
                    name: {"roles": list(rule.roles), "version": rule.version, "required_tags": REQUIRED_TAGS}
                    for name, rule in listed.items()
                }
            }
        )
    )
    server = deployment.server
    connection = {
        "conn_type": "aws",
        "login": deployment.operator["aws_access_key_id"],
        "password": deployment.operator["aws_secret_access_key"],
        "extra": {"region_name": server.region, "endpoint_url": server.endpoint_url},
    }
    return sqlite_airflow(
        dags_folder=dags,
        extra_env={
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
            "AIRFLOW__SSM_DELEGATE__POLICY_FILE": str(policy_file),
            "BYPASS_UNLISTED_RUNBOOK": deployment.unlisted,
            "BYPASS_LISTED_RUNBOOK": deployment.describe,
            "BYPASS_ROLE": deployment.role,
            "BYPASS_SCRATCH": str(tmp_path),
        },
    )


def dags_test(airflow: SqliteAirflow, dag_id: str) -> tuple[list[tuple[str]], str]:
    """``airflow dags test DAG_ID``: its task states and everything it printed or logged."""
    result = airflow.airflow("dags", "test", dag_id, timeout=300, check=False)
    logs = sorted((airflow.home / "logs").rglob(f"dag_id={dag_id}/**/*.log"))
    output = "\n".join([result.stdout, result.stderr, *(path.read_text() for path in logs)])
    return airflow.sql("SELECT state FROM task_instance WHERE dag_id = ?", (dag_id,)), output


def test_a_dag_that_rewrites_the_policy_at_parse_time_is_refused_by_iam(
    deployment: Deployment, tmp_path: Path, sqlite_airflow: Callable[..., SqliteAirflow]
) -> None:
    states, output = dags_test(
        _airflow(deployment, tmp_path, sqlite_airflow, REWRITING_DAG), "bypass_policy_rewrite"
    )
    # The provider's checks were fooled: they read the DAG's own policy file ...
    assert (tmp_path / "permissive-policy.yaml").exists()
    assert "refused runbook" not in output
    # ... IAM was not: AWS refused the start, and nothing of the unlisted runbook ran.
    # (The hook reads the runbook before starting it: the first call AWS refuses is that read.)
    refusals = [line for line in output.splitlines() if "(AccessDeniedException)" in line]
    assert any(f"/{deployment.unlisted}" in line for line in refusals), output[-3000:]
    assert states == [("failed",)]
    executions = deployment.client("ssm", admin=True).describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [deployment.unlisted]}]
    )["AutomationExecutionMetadataList"]
    assert executions == []


def test_the_normal_dag_path_succeeds_under_the_compiled_policy(
    deployment: Deployment, tmp_path: Path, sqlite_airflow: Callable[..., SqliteAirflow]
) -> None:
    states, output = dags_test(_airflow(deployment, tmp_path, sqlite_airflow, NORMAL_DAG), "listed_runbook")
    assert states == [("success",)], output[-3000:]
