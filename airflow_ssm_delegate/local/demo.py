"""``make demo``: the delegated-administration story, offline, through real Airflow.

1. Starts the local Automation runtime in this process (its server keeps running in a thread while the
   Airflow subprocesses call it) on a fast simulated clock.
2. Provisions the story (:mod:`airflow_ssm_delegate.local.story`): operator denied ``ec2:*``, service
   role, runbooks published by the author, delegation policy pinning them, and the fleet example's two
   target accounts (execution roles, tagged instances, the required alarm).
3. Shows the operator's direct ``RunInstances`` refused, and a start of a runbook the policy does not list
   made with the operator's keys straight from boto3 (what DAG code could do) refused by IAM.
4. Runs ``launch_tagged_instance`` with ``airflow dags test`` (project-local AIRFLOW_HOME, SQLite).
5. Runs ``long_running_maintenance`` (over 12 simulated hours) the same way, with a progress line; the demo
   answers the runbook's approval step as the approver (``dags test`` runs one task at a time, so the
   DAG's own ``approve`` task could not run while ``maintain`` waits).
6. Prints a short report and exits non-zero if anything did not go as the story says.

``--airflow`` (``make airflow``) instead runs api-server (http://localhost:8080, every visitor is admin —
local use only), scheduler, dag-processor and triggerer against the runtime until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from airflow_ssm_delegate.examples import pool_set_command
from airflow_ssm_delegate.local.events import progress_lines, setup_demo_events
from airflow_ssm_delegate.local.server import LocalAutomationServer
from airflow_ssm_delegate.local.story import (
    AIRFLOW_CONN_ID,
    LOCAL_AMI_ID,
    Story,
    StoryError,
    fleet_summary,
    provision_on_server,
)
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS
from airflow_ssm_delegate.status import SUCCESS_STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from airflow_ssm_delegate.local.clock import SimulatedClock

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"
LAUNCH_DAG = "launch_tagged_instance"
MAINTENANCE_DAG = "long_running_maintenance"
FLEET_DAG = "fleet_patch_maintenance"
# The DAG's first weekly interval (a fixed date, so a repeated demo is the same run).
MAINTENANCE_LOGICAL_DATE = "2026-11-07T02:00:00+00:00"
LAUNCH_CONF = {"instance_type": "t3.small", "cost_center": "CC-2002", "owner": "demo@example.com"}
APPROVAL_STEP_ACTION = "aws:approve"
# The launch runs at real speed (its steps' timeouts are minutes of simulated time, and each HTTP call
# costs simulated time too); the maintenance at an hour per second: its 13 hours in about 13 s.
LAUNCH_TIME_SCALE = 1.0
DEFAULT_TIME_SCALE = 3600.0
# With --airflow both runbooks share one clock: a minute per second keeps the launch's timeouts safe and
# runs the maintenance in about 13 minutes.
AIRFLOW_UI_TIME_SCALE = 60.0
MONITOR_INTERVAL_S = 0.5
# A runbook the delegation policy does not list: the demo's bypass attempt names it.
UNLISTED_RUNBOOK = "Unapproved"


class DemoFailure(RuntimeError):
    """A step of the story did not go as it should; the message says which and why."""


# Written into the work directory: Airflow's metadata database there belongs to that version.
AIRFLOW_VERSION_FILE = "airflow-version"


def installed_airflow_version() -> str:
    """The version of the Airflow whose ``airflow`` command the demo runs (the one beside this Python)."""
    from importlib.metadata import version

    return version("apache-airflow-core")


def check_workdir_version(workdir: Path, version: str) -> None:
    """Refuse a work directory whose database another Airflow version made.

    An older Airflow cannot use a newer one's database (``airflow db migrate`` dies with "Can't locate
    revision"), and a newer one would migrate it so the older can no longer run the demo there.
    """
    marker = workdir / AIRFLOW_VERSION_FILE
    if marker.is_file():
        made_by: str | None = marker.read_text().strip()
    elif (workdir / "airflow" / "airflow.db").exists():
        made_by = None  # made before the demo recorded the version
    else:
        return
    if made_by == version:
        return
    raise DemoFailure(
        f"{workdir} holds the Airflow database of Airflow {made_by or '(version not recorded)'}, but this is "
        f"Airflow {version}, whose `airflow db migrate` cannot use it. Delete it (rm -rf {workdir}) and run "
        f"again, pass --fresh, or give this version a work directory of its own (--workdir .demo-{version})."
    )


def record_workdir_version(workdir: Path, version: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / AIRFLOW_VERSION_FILE).write_text(version + "\n")


@dataclass
class Report:
    """The demo's report, printed as it goes; ``failures`` decides the exit status."""

    failures: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        print(line, flush=True)

    def check(self, ok: bool, line: str) -> None:
        """Record ``line`` as a result, and as a failure unless ``ok``."""
        self.add(("  ok    " if ok else "  FAIL  ") + line)
        if not ok:
            self.failures.append(line)


class Airflow:
    """Runs the ``airflow`` CLI in subprocesses on a project-local AIRFLOW_HOME and SQLite."""

    def __init__(self, home: Path, story: Story, dags_folder: Path, log_dir: Path) -> None:
        self.home = home
        self.log_dir = log_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            # Nothing reaches real AWS: the only credentials are the operator's, in the connection.
            "AWS_DEFAULT_REGION": story.admin.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            **story.airflow_env,
        }
        self.executable = str(Path(sys.executable).with_name("airflow"))

    def command(self, *args: str) -> list[str]:
        return [self.executable, *args]

    def run(self, *args: str, log_name: str) -> None:
        """Run ``airflow ARGS`` to completion; raise :class:`DemoFailure` with the log's tail if it fails."""
        process = self.start(*args, log_name=log_name)
        process.wait()
        self.check_exit(process, args, log_name)

    def start(self, *args: str, log_name: str) -> subprocess.Popen[str]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / log_name).open("w") as log:  # the child keeps its own copy of the handle
            return subprocess.Popen(
                self.command(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True
            )

    def check_exit(self, process: subprocess.Popen[str], args: Sequence[str], log_name: str) -> None:
        """Raise :class:`DemoFailure` with the tail of its log if the finished ``process`` failed."""
        if process.returncode != 0:
            log_file = self.log_dir / log_name
            tail = "\n".join(log_file.read_text().splitlines()[-25:])
            raise DemoFailure(
                f"`airflow {' '.join(args)}` exited {process.returncode}; log {log_file}:\n{tail}"
            )

    def prepare(self) -> None:
        """Migrate the SQLite metadata DB and create the example pool."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.run("db", "migrate", log_name="db-migrate.log")
        self.run(*pool_set_command()[1:], log_name="pools.log")


def _executions(story: Story, document_name: str) -> list[dict[str, Any]]:
    """Executions of ``document_name`` as the administrator sees them, newest first."""
    ssm = story.client("ssm")
    found = ssm.describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [document_name]}]
    )["AutomationExecutionMetadataList"]
    never = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(found, key=lambda e: e.get("ExecutionStartTime") or never, reverse=True)


def _show_direct_launch_refused(story: Story, report: Report) -> None:
    ec2 = story.client("ec2", story.operator)
    try:
        reservation = ec2.run_instances(ImageId=LOCAL_AMI_ID, MinCount=1, MaxCount=1)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        report.check(True, f"operator's own ec2:RunInstances refused ({code}) — no EC2 rights of its own")
        return
    instance = reservation["Instances"][0]["InstanceId"]
    report.check(False, f"operator's own ec2:RunInstances was ALLOWED (launched {instance})")


def _show_unlisted_start_refused(story: Story, report: Report) -> None:
    """What DAG code could try with the operator's keys, skipping the provider: IAM refuses it."""
    ssm = story.client("ssm", story.operator)
    audit = [{"Key": key, "Value": "demo"} for key in AUDIT_TAG_KEYS]
    try:
        started = ssm.start_automation_execution(
            DocumentName=UNLISTED_RUNBOOK,
            Parameters={"AutomationAssumeRole": [story.service_role_arn]},
            Tags=audit,
        )
    except ClientError as error:
        code = error.response["Error"]["Code"]
        report.check(
            True,
            f"bypass: boto3 StartAutomationExecution of {UNLISTED_RUNBOOK} (not in the delegation policy) "
            f"with the operator's keys refused by IAM ({code})",
        )
        return
    report.check(False, f"bypass: {UNLISTED_RUNBOOK} was STARTED ({started['AutomationExecutionId']})")


class Progress(NamedTuple):
    """A progress line; ``stage`` (the line without the clock) changes only when a step or status does."""

    stage: str
    text: str


def _progress(execution: Mapping[str, Any], total_steps: int, now: datetime) -> Progress:
    """A bar of finished steps, the current step, the status, simulated hours so far."""
    steps = execution.get("StepExecutions", [])
    done = sum(
        1 for step in steps if step.get("StepStatus") in {"Success", "Failed", "Cancelled", "TimedOut"}
    )
    width = 24
    filled = int(width * done / max(total_steps, 1))
    current = execution.get("CurrentStepName") or "-"
    elapsed = ""
    started = execution.get("ExecutionStartTime")
    if started is not None:
        hours = max(((execution.get("ExecutionEndTime") or now) - started).total_seconds(), 0) / 3600
        elapsed = f" — {hours:5.1f} simulated h"
    status = execution["AutomationExecutionStatus"]
    stage = f"  [{'#' * filled}{'.' * (width - filled)}] {done}/{total_steps} {current:<18} {status:<10}"
    return Progress(stage, stage + elapsed)


def _run_with_monitor(
    airflow: Airflow,
    args: Sequence[str],
    log_name: str,
    on_tick: Callable[[], Progress],
) -> None:
    """Run ``airflow ARGS`` while ``on_tick`` reports progress: one line redrawn on a terminal, else a
    line per change of step or status."""
    process = airflow.start(*args, log_name=log_name)
    interactive = sys.stdout.isatty()
    last = Progress("", "")
    try:
        while process.poll() is None:
            progress = on_tick()
            if interactive and progress.text != last.text:
                print(f"\r{progress.text}", end="", flush=True)
            elif not interactive and progress.stage != last.stage:
                print(progress.text, flush=True)
            last = progress
            time.sleep(MONITOR_INTERVAL_S)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        if interactive and last.text:
            print(flush=True)
    airflow.check_exit(process, args, log_name)


class MaintenanceWatcher:
    """Follows the maintenance execution: a progress line, and the approval when the runbook asks."""

    def __init__(self, story: Story, total_steps: int, clock: SimulatedClock) -> None:
        self.story = story
        self.clock = clock
        self.total_steps = total_steps
        self.execution_id: str | None = None
        self.approved_at: str | None = None

    def tick(self) -> Progress:
        if self.execution_id is None:
            found = _executions(self.story, "LongRunningMaintenance")
            if not found:
                waiting = "  waiting for Airflow to start the maintenance runbook..."
                return Progress(waiting, waiting)
            self.execution_id = found[0]["AutomationExecutionId"]
        ssm = self.story.client("ssm")
        execution = ssm.get_automation_execution(AutomationExecutionId=self.execution_id)[
            "AutomationExecution"
        ]
        if (
            self.approved_at is None
            and execution.get("CurrentAction") == APPROVAL_STEP_ACTION
            and execution["AutomationExecutionStatus"] == "Waiting"
        ):
            self._approve(execution)
        return _progress(execution, self.total_steps, self.clock.now())

    def _approve(self, execution: Mapping[str, Any]) -> None:
        approver = self.story.client("ssm", self.story.operator)
        approver.send_automation_signal(
            AutomationExecutionId=execution["AutomationExecutionId"],
            SignalType="Approve",
            Payload={"Comment": ["Approved by the demo's approver (the operator identity)"]},
        )
        self.approved_at = execution.get("CurrentStepName") or APPROVAL_STEP_ACTION


def _describe_launch(story: Story, report: Report) -> None:
    found = _executions(story, "LaunchTaggedInstance")
    report.check(len(found) == 1, f"exactly one LaunchTaggedInstance execution (found {len(found)})")
    if not found:
        return
    execution = story.client("ssm").get_automation_execution(
        AutomationExecutionId=found[0]["AutomationExecutionId"]
    )["AutomationExecution"]
    status = execution["AutomationExecutionStatus"]
    role = execution.get("Parameters", {}).get("AutomationAssumeRole", ["(none)"])[0]
    report.check(
        status in SUCCESS_STATUSES,
        f"execution {execution['AutomationExecutionId']} {status}; started by "
        f"{execution.get('ExecutedBy', '?')} under role {role}",
    )
    instance_ids = execution.get("Outputs", {}).get("launch.InstanceIds", [])
    report.check(bool(instance_ids), f"instance ids from the runbook's outputs: {instance_ids}")
    if not instance_ids:
        return
    ec2 = story.client("ec2")
    instance = ec2.describe_instances(InstanceIds=instance_ids)["Reservations"][0]["Instances"][0]
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
    state = instance["State"]["Name"]
    report.check(state == "running", f"instance {instance['InstanceId']} is {state}")
    expected = {"Owner": LAUNCH_CONF["owner"], "CostCenter": LAUNCH_CONF["cost_center"]}
    has_tags = (
        all(tags.get(k) == v for k, v in expected.items())
        and tags.get("LaunchedBy") == execution["AutomationExecutionId"]
    )
    report.check(has_tags, "tags " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())))


def _describe_maintenance(story: Story, watcher: MaintenanceWatcher, report: Report) -> None:
    if watcher.execution_id is None:
        report.check(False, "the maintenance runbook never started")
        return
    execution = story.client("ssm").get_automation_execution(AutomationExecutionId=watcher.execution_id)[
        "AutomationExecution"
    ]
    status = execution["AutomationExecutionStatus"]
    start, end = execution.get("ExecutionStartTime"), execution.get("ExecutionEndTime")
    hours = (end - start).total_seconds() / 3600 if start and end else 0.0
    report.check(
        status in SUCCESS_STATUSES,
        f"execution {watcher.execution_id} {status} after {hours:.1f} simulated hours (> 12 h: service role)",
    )
    report.check(watcher.approved_at is not None, f"approval answered at step {watcher.approved_at}")
    steps = ", ".join(f"{s['StepName']}={s['StepStatus']}" for s in execution.get("StepExecutions", []))
    report.add(f"        steps: {steps}")


def run_story(args: argparse.Namespace, server: LocalAutomationServer) -> Report:
    report = Report()
    workdir: Path = args.workdir.resolve()
    story = provision_on_server(server, workdir / "story")
    report.add("Delegated administration on the local runtime " + server.endpoint_url)
    report.add(f"  administrator  provisioned the story; delegation policy {story.files.policy_file}")
    report.add(f"  author         {story.author.arn} published:")
    for runbook in story.runbooks.values():
        report.add(f"                   {runbook.name} v{runbook.version} sha256 {runbook.sha256[:16]}…")
    report.add(f"  operator       {story.operator.arn} (Airflow's aws_default; denied ec2:*)")
    report.add(f"  service role   {story.service_role_arn} (trusted by ssm.amazonaws.com only)")
    report.add(f"  {fleet_summary(story)}")
    _show_direct_launch_refused(story, report)
    _show_unlisted_start_refused(story, report)

    airflow = Airflow(workdir / "airflow", story, args.dags_folder, workdir / "logs")
    queue_url, events_env = setup_demo_events(story, AIRFLOW_CONN_ID, airflow.env)
    airflow.env.update(events_env)  # issue 12: the deferred maintenance is watched by its events
    report.add(f"  events         EventBridge rule -> SQS {queue_url} (aws_default's events_queue_url)")
    report.add(f"Preparing Airflow in {airflow.home} (SQLite, logs in {airflow.log_dir})")
    airflow.prepare()

    report.add(f"Airflow: `airflow dags test {LAUNCH_DAG}` with {json.dumps(LAUNCH_CONF)}")
    airflow.run("dags", "test", LAUNCH_DAG, "-c", json.dumps(LAUNCH_CONF), log_name=f"{LAUNCH_DAG}.log")
    _describe_launch(story, report)

    if server.clock is None:
        raise DemoFailure("the local runtime stopped before the maintenance")
    server.clock.time_scale = args.time_scale
    report.add(
        f"Airflow: `airflow dags test {MAINTENANCE_DAG} {MAINTENANCE_LOGICAL_DATE}` "
        f"(simulated clock: {args.time_scale:g} s per second)"
    )
    from airflow_ssm_delegate.documents.bundled import runbook_path
    from airflow_ssm_delegate.documents.model import load_runbook

    total_steps = len(load_runbook(runbook_path("LongRunningMaintenance")).steps) - 1  # cleanup step unused
    watcher = MaintenanceWatcher(story, total_steps, server.clock)
    _run_with_monitor(
        airflow,
        [
            "dags",
            "test",
            MAINTENANCE_DAG,
            MAINTENANCE_LOGICAL_DATE,
            "-c",
            json.dumps({"auto_approve": False, "approve_in_airflow": False}),
        ],
        f"{MAINTENANCE_DAG}.log",
        watcher.tick,
    )
    _describe_maintenance(story, watcher, report)
    progress = progress_lines((airflow.log_dir / f"{MAINTENANCE_DAG}.log").read_text())
    report.add("        the maintain task's log while deferred:")
    report.add("\n".join(f"          {line}" for line in progress))
    report.check(
        any("(noticed by its event)" in line for line in progress), "the end was noticed by its event"
    )
    return report


def run_airflow_ui(args: argparse.Namespace, server: LocalAutomationServer) -> int:
    """Airflow's four services against the runtime until Ctrl-C (``make airflow``)."""
    workdir: Path = args.workdir.resolve()
    story = provision_on_server(server, workdir / "story")
    airflow = Airflow(workdir / "airflow", story, args.dags_folder, workdir / "logs")
    # Task processes report to the api-server's execution API, which listens on --port.
    airflow.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = f"http://localhost:{args.port}/execution/"
    airflow.prepare()
    commands = {
        "api-server": ["api-server", "--port", str(args.port)],
        "scheduler": ["scheduler"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer"],
    }
    processes = {name: airflow.start(*argv, log_name=f"{name}.log") for name, argv in commands.items()}
    print(f"Airflow UI: http://localhost:{args.port} (logs in {airflow.log_dir}); Ctrl-C stops everything")
    print(f"Local runtime: {server.endpoint_url}; operator {story.operator.arn}")
    print(
        f"Trigger {LAUNCH_DAG} from its form; unpause {MAINTENANCE_DAG} to run its weekly catch-up "
        f"(approved by the DAG, 2 at a time); trigger {FLEET_DAG} from its form ({fleet_summary(story)})."
    )
    # Stop the services on SIGTERM as on Ctrl-C, and on Ctrl-C even if our parent ignored SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(1)
        died = [name for name, p in processes.items() if p.poll() is not None]
        print(f"error: {', '.join(died)} exited; see the logs in {airflow.log_dir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping Airflow...")
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_ssm_delegate.local.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--airflow", action="store_true", help="run Airflow's UI and services until Ctrl-C")
    parser.add_argument("--workdir", type=Path, default=Path(".demo"), help="AIRFLOW_HOME, story files, logs")
    parser.add_argument("--dags-folder", type=Path, default=REPO_DAGS)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help=f"simulated seconds per second for the maintenance (default {DEFAULT_TIME_SCALE:g}; "
        f"with --airflow, for everything: default {AIRFLOW_UI_TIME_SCALE:g})",
    )
    parser.add_argument("--port", type=int, default=8080, help="api-server port with --airflow")
    parser.add_argument("--fresh", action="store_true", help="delete the work directory first")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.dags_folder.is_dir():
        print(f"error: DAGs folder {args.dags_folder} not found; pass --dags-folder", file=sys.stderr)
        return 2
    if args.fresh:
        shutil.rmtree(args.workdir, ignore_errors=True)
    version = installed_airflow_version()
    try:
        check_workdir_version(args.workdir, version)
    except DemoFailure as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    record_workdir_version(args.workdir, version)
    print(f"Airflow {version}; work directory {args.workdir}", flush=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request of the local runtime
    if args.airflow:
        with LocalAutomationServer(time_scale=args.time_scale or AIRFLOW_UI_TIME_SCALE) as server:
            return run_airflow_ui(args, server)
    args.time_scale = args.time_scale or DEFAULT_TIME_SCALE
    with LocalAutomationServer(time_scale=LAUNCH_TIME_SCALE) as server:
        try:
            report = run_story(args, server)
        except (DemoFailure, StoryError) as error:
            print(f"\nDEMO FAILED: {error}", file=sys.stderr)
            return 1
    if report.failures:
        print(f"\nDEMO FAILED: {len(report.failures)} check(s) failed", file=sys.stderr)
        return 1
    print("\nDemo finished: Success")
    return 0


if __name__ == "__main__":
    sys.exit(main())
