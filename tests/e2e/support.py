"""The local Automation runtime as a separate process, the story on it, and the Airflow deployment settings
the end-to-end tests share.

The runtime runs as ``ssm-delegate-local`` in its own process (as in docker-compose) rather than in the
pytest process: moto's state is process-global, so a runtime of its own per test module keeps modules
independent of each other and of the session's in-process ``local_server``, and lets each one pick its
simulated time scale.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS
from tests.fixtures.airflow_stack import ManagedProcess, StackError, free_port, wait_until

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Sequence

    from airflow_ssm_delegate.local.story import Story
    from tests.fixtures.airflow_stack import AirflowStack

LOCAL_RUNTIME_BIN = str(Path(sys.executable).with_name("ssm-delegate-local"))
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})

# A deployment-level cluster policy (``$AIRFLOW_HOME/config/airflow_local_settings.py``), the Airflow way to
# adjust every task of a deployment without touching DAG files: the test pace. The local runtime runs an
# hour of runbook time in a second or two, so the example DAGs' production cadence (status checks at least
# every 30 s, approval pokes every 30 s) would only add idle minutes. Step-aware polling stays as shipped:
# during sleeps it follows the runtime's simulated clock (reported in its response headers).
# The maintenance DAG's approval sensor pokes every 5 s here, so its runtime's time scale must leave the
# runbook's 24 h approval timeout well above that (1800: 48 s).
FAST_POLLING_LOCAL_SETTINGS = '''
"""E2E deployment settings: the test pace (see tests/e2e/support.py)."""

import dataclasses

from airflow.sdk import BaseSensorOperator

from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator

WAITER_DELAY = 2.0


def task_policy(task):
    if isinstance(task, SsmStartAutomationExecutionOperator):
        task.waiter_delay = WAITER_DELAY
        task.schedule = dataclasses.replace(task.schedule, waiter_delay=WAITER_DELAY)
    elif isinstance(task, BaseSensorOperator):
        # Not shorter: a reschedule-mode poke re-queued before the scheduler has seen the previous poke's
        # worker exit is failed by Airflow 3.3.2 as a "state mismatch" (same race as apache/airflow#72716).
        task.poke_interval = 5
'''


def install_fast_polling(airflow_home: Path) -> None:
    """Put the fast-polling cluster policy into ``airflow_home`` (Airflow adds its config/ to sys.path)."""
    config_dir = airflow_home / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "airflow_local_settings.py").write_text(FAST_POLLING_LOCAL_SETTINGS)


def set_automation_pool(stack: AirflowStack, slots: int) -> None:
    """The example DAGs' ``ssm_automation`` pool, with ``slots`` slots (deferred tasks count)."""
    from airflow_ssm_delegate.examples import pool_set_command

    stack.airflow(*pool_set_command(slots=slots)[1:])


@dataclass
class LocalRuntime:
    """A running ``ssm-delegate-local`` process: its endpoint and its administrator's keys."""

    endpoint_url: str
    admin_credentials: dict[str, str]
    process: ManagedProcess
    region: str = "us-east-1"
    account_admins: dict[str, dict[str, str]] = field(default_factory=dict)  # other accounts (--account)

    def client(self, service: str, account: str | None = None, region: str | None = None) -> Any:
        """A boto3 client on the runtime as its administrator (sees every execution), or as the admin of
        another ``account`` started with the runtime."""
        credentials = self.account_admins[account] if account else self.admin_credentials
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=region or self.region,
            config=NO_RETRIES,
            **credentials,
        )

    def provision_story(self, output_dir: Path, extra_runbooks: Sequence[Path] = ()) -> Story:
        """The delegated-administration story (operator denied ec2:*, service role, runbooks, policy),
        with ``extra_runbooks`` (``<DocumentName>.yaml`` files) approved alongside the bundled ones; the
        fleet accounts too when the runtime was started with them (``local_runtime(accounts=...)``)."""
        from airflow_ssm_delegate.local.story import provision_story

        return provision_story(
            self.endpoint_url,
            self.admin_credentials,
            output_dir,
            region=self.region,
            extra_runbooks=extra_runbooks,
            account_admins=self.account_admins,
        )

    def executions(self, document_name: str) -> list[dict[str, Any]]:
        """Every execution of ``document_name`` (AutomationExecutionMetadata items, all pages)."""
        found = self._described("DocumentNamePrefix", document_name)
        return [e for e in found if e.get("DocumentName") == document_name]

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        """The child executions of a rate-controlled or multi-location ``parent_id`` (all pages)."""
        return self._described("ParentExecutionId", parent_id)

    def _described(self, key: str, value: str) -> list[dict[str, Any]]:
        ssm = self.client("ssm")
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"Filters": [{"Key": key, "Values": [value]}]}
        while True:
            page = ssm.describe_automation_executions(**kwargs)
            found.extend(page["AutomationExecutionMetadataList"])
            if not page.get("NextToken"):
                return found
            kwargs["NextToken"] = page["NextToken"]

    def execution(self, execution_id: str) -> dict[str, Any]:
        return dict(
            self.client("ssm").get_automation_execution(AutomationExecutionId=execution_id)[
                "AutomationExecution"
            ]
        )


@contextlib.contextmanager
def local_runtime(
    workdir: Path, *, time_scale: float, accounts: Sequence[str] = ()
) -> Iterator[LocalRuntime]:
    """Start ``ssm-delegate-local`` on a free port at ``time_scale`` with admins of the other ``accounts``
    too (TargetLocations targets); always stopped afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    credentials_file = workdir / "admin-credentials.json"
    process = ManagedProcess.spawn(
        "ssm-delegate-local",
        [
            LOCAL_RUNTIME_BIN,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--time-scale",
            str(time_scale),
            "--admin-credentials-file",
            str(credentials_file),
            *(option for account in accounts for option in ("--account", account)),
        ],
        workdir / "ssm-delegate-local.log",
    )
    try:
        credentials, account_admins = wait_until(
            lambda: _read_credentials(credentials_file, process),
            timeout=60,
            what="ssm-delegate-local to write its admin credentials",
            diagnostics=process.tail,
        )
        runtime = LocalRuntime(
            f"http://127.0.0.1:{port}", credentials, process, account_admins=account_admins
        )
        wait_until(
            lambda: runtime.client("sts").get_caller_identity()["Account"],
            timeout=60,
            what="ssm-delegate-local to answer STS GetCallerIdentity",
            diagnostics=process.tail,
        )
        yield runtime
    finally:
        process.stop()


def _read_credentials(
    path: Path, process: ManagedProcess
) -> tuple[dict[str, str], dict[str, dict[str, str]]] | None:
    if not process.alive:
        raise StackError(f"ssm-delegate-local exited {process.popen.returncode}:\n{process.tail()}")
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None  # being written
    keys = ("aws_access_key_id", "aws_secret_access_key")
    others = {account: {k: admin[k] for k in keys} for account, admin in data.get("accounts", {}).items()}
    return {k: data[k] for k in keys}, others


def story_env(story: Story) -> dict[str, str]:
    """The Airflow environment of the story (connection as the operator, policy file, variables)."""
    return {**dict(story.airflow_env), "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def audit_tags(runtime: LocalRuntime, execution_id: str) -> dict[str, str]:
    """The audit tags ``airflow:dag_id``/``run_id``/``task_id`` of an execution (ListTagsForResource);
    not the re-attach identity tag ``airflow:ti:...`` that executions also carry on Airflow < 3.3."""
    tags = runtime.client("ssm").list_tags_for_resource(ResourceType="Automation", ResourceId=execution_id)
    return {tag["Key"]: tag["Value"] for tag in tags["TagList"] if tag["Key"] in AUDIT_TAG_KEYS}


def instance_tags(runtime: LocalRuntime, instance_id: str) -> dict[str, str]:
    reservations = runtime.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    instance = reservations[0]["Instances"][0]
    return {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}


def most_at_once(spans: Iterable[tuple[float, float]]) -> int:
    """The most half-open ``[start, end)`` spans that cover one instant (an end frees its place first)."""
    events = sorted((moment, delta) for start, end in spans for moment, delta in ((start, 1), (end, -1)))
    most = current = 0
    for _, delta in events:
        current += delta
        most = max(most, current)
    return most


def wait_for_execution_status(
    runtime: LocalRuntime, execution_id: str, statuses: Collection[str], timeout: float = 120
) -> dict[str, Any]:
    """Wait until the execution's status is one of ``statuses``; returns the execution."""

    def reached() -> dict[str, Any] | None:
        execution = runtime.execution(execution_id)
        return execution if execution["AutomationExecutionStatus"] in statuses else None

    return wait_until(
        reached,
        timeout=timeout,
        what=f"execution {execution_id} to reach one of {sorted(statuses)}",
        diagnostics=lambda: json.dumps(runtime.execution(execution_id), default=str)[:3000],
    )
