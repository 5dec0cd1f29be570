"""SsmAutomationHook against the local Automation runtime, as the operator persona (denied ec2:*)."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.compat import HAS_TASK_STATE_STORE
from airflow_ssm_delegate.hooks.automation import ClientTokenConflict, SsmAutomationHook
from airflow_ssm_delegate.links.automation import SsmAutomationExecutionLink
from airflow_ssm_delegate.policy import PolicyViolation
from airflow_ssm_delegate.reattach import IDENTITY_TAG_PREFIX
from airflow_ssm_delegate.status import WAITER_NAME
from tests.fixtures.airflow_stack import write_dags
from tests.fixtures.local_runtime import SSM_TRUST

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer
    from tests.fixtures.airflow_stack import SqliteAirflow

OPERATOR_SSM = [
    "ssm:GetDocument",
    "ssm:DescribeDocument",
    "ssm:StartAutomationExecution",
    "ssm:GetAutomationExecution",
    "ssm:DescribeAutomationExecutions",
    "ssm:DescribeAutomationStepExecutions",
    "ssm:StopAutomationExecution",
    "ssm:SendAutomationSignal",
]

RUNBOOK = """\
schemaVersion: "0.3"
description: Look at the account's instances, as the service role
assumeRole: "{{ AutomationAssumeRole }}"
parameters:
  AutomationAssumeRole:
    type: String
  Note:
    type: String
    default: none
  Pin:
    type: String
    default: ""
outputs:
  - look.Reservations
mainSteps:
  - name: look
    action: aws:executeAwsApi
    inputs:
      Service: ec2
      Api: DescribeInstances
    outputs:
      - Name: Reservations
        Selector: $.Reservations
        Type: MapList
"""


def allow(actions: list[str] | str, resource: str = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resource}


class Story:
    """A published runbook, a service role, an operator identity and a policy file naming them."""

    def __init__(self, boto_client: Callable[..., Any], new_role: Callable[..., str], tmp_path: Path) -> None:
        self.ssm = boto_client("ssm")
        self.name = f"HookRunbook-{uuid.uuid4().hex[:10]}"
        self.ssm.create_document(
            Name=self.name, Content=RUNBOOK, DocumentType="Automation", DocumentFormat="YAML"
        )
        self.hash = self.ssm.describe_document(Name=self.name)["Document"]["Hash"]
        self.role = new_role([SSM_TRUST], [allow("ec2:DescribeInstances")], prefix="hook-role")
        self.weak_role = new_role([SSM_TRUST], [], prefix="hook-weak-role")
        self.policy_file = tmp_path / "policy.yaml"
        self.write_policy()

    def write_policy(self, **pins: Any) -> None:
        lines = [
            "documents:",
            f"  {self.name}:",
            f"    roles: ['{self.role.rsplit('/', 1)[0]}/hook-*']",
            f"    default_role: {self.role}",
            "    required_tags: {CostCenter: cc-42}",
            *(f"    {key}: {json.dumps(value)}" for key, value in pins.items()),
        ]
        self.policy_file.write_text("\n".join(lines) + "\n")


@pytest.fixture
def operator_connection(
    new_user: Callable[..., dict[str, str]], aws_conn_env: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """The ``aws_default`` connection as the operator persona: may start and pass roles, denied ec2:*."""
    operator = new_user(
        [allow(OPERATOR_SSM), allow("iam:PassRole"), {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}],
        prefix="hook-operator",
    )
    return aws_conn_env(operator)


@pytest.fixture
def story(
    boto_client: Callable[..., Any],
    new_role: Callable[..., str],
    operator_connection: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Story:
    story = Story(boto_client, new_role, tmp_path)
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(story.policy_file))
    return story


def run_to_end(hook: SsmAutomationHook, execution_id: str) -> dict[str, Any]:
    hook.get_waiter(WAITER_NAME).wait(
        AutomationExecutionId=execution_id, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return hook.get_automation_execution(execution_id)


def test_operator_runs_an_approved_runbook_pinned_tagged_under_the_default_role(
    story: Story, local_server: LocalAutomationServer
) -> None:
    from airflow.sdk.execution_time.context import set_current_context

    story.write_policy(version="1", sha256=story.hash)
    hook = SsmAutomationHook()
    ti = SimpleNamespace(dag_id="hook_local", run_id="manual__1", task_id="start")
    with set_current_context({"ti": ti}):  # type: ignore[typeddict-item]
        execution_id = hook.start_automation_execution(story.name, {"Note": "hello"})

    execution = run_to_end(hook, execution_id)
    assert execution["AutomationExecutionStatus"] == "Success", hook.describe_failure(execution)
    assert execution["DocumentVersion"] == "1"
    assert execution["Parameters"]["AutomationAssumeRole"] == [story.role]
    assert "look.Reservations" in execution["Outputs"]
    assert local_server.engine is not None
    assert {tag["Key"]: tag["Value"] for tag in local_server.engine.tags(execution_id)} == {
        "airflow:dag_id": "hook_local",
        "airflow:run_id": "manual__1",
        "airflow:task_id": "start",
        "CostCenter": "cc-42",
    }
    assert [step["StepName"] for step in hook.get_step_executions(execution_id)] == ["look"]
    (metadata,) = hook.describe_automation_executions([execution_id])
    assert metadata["AutomationExecutionStatus"] == "Success"


def test_a_changed_runbook_is_refused_before_anything_starts(story: Story) -> None:
    story.write_policy(sha256=story.hash)
    story.ssm.update_document(
        Name=story.name,
        Content=RUNBOOK.replace("none", "changed"),
        DocumentVersion="$LATEST",
        DocumentFormat="YAML",
    )
    story.ssm.update_document_default_version(Name=story.name, DocumentVersion="2")
    hook = SsmAutomationHook()
    with pytest.raises(PolicyViolation) as caught:
        hook.start_automation_execution(story.name)
    assert caught.value.rule == "sha256-pin"
    assert "version 2 has content hash" in str(caught.value)
    started = story.ssm.describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [story.name]}]
    )["AutomationExecutionMetadataList"]
    assert started == []


def test_the_role_lacking_a_permission_fails_the_step_with_a_clear_message(story: Story) -> None:
    hook = SsmAutomationHook()
    execution_id = hook.start_automation_execution(story.name, service_role_arn=story.weak_role)
    execution = run_to_end_allowing_failure(hook, execution_id)
    message = hook.describe_failure(execution)
    assert message.startswith(
        f"Automation execution {execution_id} of runbook {story.name} ended Failed: step 'look' "
        "(aws:executeAwsApi) Failed: "
    )
    assert "ec2:DescribeInstances" in message
    assert message.endswith("grant it to the role, not to Airflow.")


def run_to_end_allowing_failure(hook: SsmAutomationHook, execution_id: str) -> dict[str, Any]:
    from botocore.exceptions import WaiterError

    with pytest.raises(WaiterError, match="terminal failure state"):
        run_to_end(hook, execution_id)
    return hook.get_automation_execution(execution_id)


def test_a_reused_client_token_with_other_parameters_is_explained(story: Story) -> None:
    hook = SsmAutomationHook()
    token = str(uuid.uuid4())
    first = hook.start_automation_execution(story.name, {"Note": "one"}, client_token=token)
    assert hook.start_automation_execution(story.name, {"Note": "one"}, client_token=token) == first
    with pytest.raises(ClientTokenConflict, match="was already used to start an execution with different"):
        hook.start_automation_execution(story.name, {"Note": "two"}, client_token=token)
    run_to_end(hook, first)


DAG_ID = "hook_in_a_task"
DAG = """\
from airflow.sdk import DAG
from airflow_ssm_delegate.links.automation import SsmAutomationExecutionLink
from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator


class LinkedStart(SsmStartAutomationExecutionOperator):
    operator_extra_links = (SsmAutomationExecutionLink(),)


with DAG("{dag_id}", schedule=None):
    LinkedStart(
        task_id="start",
        document_name="{document}",
        parameters={{"Note": "from a task", "Pin": "{pin}"}},
        waiter_delay=1,
        deferrable=False,
    )
"""


@pytest.mark.slow
def test_in_a_real_task_the_start_is_audit_tagged_masked_and_linked(
    story: Story,
    operator_connection: dict[str, Any],
    local_server: LocalAutomationServer,
    sqlite_airflow: Callable[..., SqliteAirflow],
    tmp_path: Path,
) -> None:
    """``airflow dags test`` (SQLite): tags from the real task context, secret out of the log, link XCom."""
    story.write_policy(version="1", secret_parameters=["Pin"])
    pin = f"pin-{uuid.uuid4().hex}"
    source = DAG.format(dag_id=DAG_ID, document=story.name, pin=pin)
    airflow = sqlite_airflow(
        dags_folder=write_dags(tmp_path / "dags", {"hook_dag.py": source}),
        extra_env={
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(operator_connection),
            "AIRFLOW__SSM_DELEGATE__POLICY_FILE": str(story.policy_file),
        },
    )

    result = airflow.airflow("dags", "test", DAG_ID, timeout=300)

    ((run_id, state),) = airflow.sql("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,))
    assert state == "success", result.stdout[-3000:]
    execution_id = xcom(airflow, "return_value")["execution_id"]
    assert local_server.engine is not None
    tags = {tag["Key"]: tag["Value"] for tag in local_server.engine.tags(execution_id)}
    identity = {key: value for key, value in tags.items() if key.startswith(IDENTITY_TAG_PREFIX)}
    # Airflow < 3.3 has no task state store: the execution also carries its re-attach identity tag.
    assert len(identity) == (0 if HAS_TASK_STATE_STORE else 1)
    assert {key: value for key, value in tags.items() if key not in identity} == {
        "airflow:dag_id": DAG_ID,
        "airflow:run_id": run_id,
        "airflow:task_id": "start",
        "CostCenter": "cc-42",
    }
    link = SsmAutomationExecutionLink()
    assert xcom(airflow, link.xcom_key) == link.format_url(local_server.region, "aws", execution_id)
    output = result.stdout + result.stderr  # `dags test` runs the task in-process: its log is here
    assert "'Pin': ['***']" in output  # the hook's own line, with the value hidden
    assert pin not in output


def xcom(airflow: SqliteAirflow, key: str) -> Any:
    rows = airflow.sql("SELECT value FROM xcom WHERE dag_id = ? AND key = ?", (DAG_ID, key))
    assert len(rows) == 1, f"expected one XCom {key}, found {rows}"
    return json.loads(rows[0][0])
