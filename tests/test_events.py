"""Automation's EventBridge events: the runtime's shapes (against AWS's documented examples), the SQS
consumer, and the trigger watching by event: lost, duplicated, reordered, forged events, no queue."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.clocks import use_clock
from airflow_ssm_delegate.local.events import (
    EXECUTION_DETAIL_TYPE,
    STEP_DETAIL_TYPE,
    event_time_text,
    route_events_to_queue,
)
from airflow_ssm_delegate.triggers import events as feed_module
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger
from airflow_ssm_delegate.triggers.events import (
    EventFeed,
    News,
    QueueReachable,
    QueueUnreachable,
    parse_event_time,
    parse_news,
)
from airflow_ssm_delegate.triggers.progress import StepProgress
from tests.fixtures.local_runtime import client_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

# AWS's documented examples ("Amazon EventBridge event examples for Systems Manager"): the envelope keys, the
# detail keys of each detail-type, and the forms of their values.
ENVELOPE_KEYS = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
EXECUTION_DETAIL_KEYS = {
    "ExecutionId",
    "Definition",
    "DefinitionVersion",
    "Status",
    "StartTime",
    "EndTime",
    "Time",
    "ExecutedBy",
}
STEP_DETAIL_KEYS = (EXECUTION_DETAIL_KEYS - {"ExecutedBy"}) | {"StepName", "Action"}
EVENT_TIME = re.compile(
    r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$"
)  # "Nov 29, 2024 7:43:26 PM"
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")  # "2024-11-29T19:43:35Z"

TWO_SLEEPS = {
    "schemaVersion": "0.3",
    "mainSteps": [
        {"name": "first", "action": "aws:sleep", "inputs": {"Duration": "PT10M"}},
        {"name": "second", "action": "aws:sleep", "inputs": {"Duration": "PT20M"}},
    ],
}


def test_event_time_text_is_aws_form() -> None:
    moment = datetime(2024, 11, 29, 19, 43, 26, tzinfo=timezone.utc)
    assert event_time_text(moment) == "Nov 29, 2024 7:43:26 PM"
    assert event_time_text(moment.replace(hour=0)) == "Nov 29, 2024 12:43:26 AM"
    assert parse_event_time("Nov 29, 2024 7:43:26 PM") == moment
    assert parse_event_time("2024-11-29") is None


@pytest.fixture
def events_queue(local_server: LocalAutomationServer) -> str:
    """An SQS queue fed by an EventBridge rule matching Automation's events (as an administrator makes)."""
    name = f"events-{uuid.uuid4().hex[:10]}"
    return route_events_to_queue(
        client_for(local_server, "events"), client_for(local_server, "sqs"), name, rule_name=name
    )


@pytest.fixture
def fast(local_server: LocalAutomationServer) -> Iterator[LocalAutomationServer]:
    """The runtime at 200x (a 30-minute runbook in 9 s) with every watch on its clock; events intact."""
    assert local_server.clock is not None and local_server.events is not None
    scale = local_server.time_scale
    local_server.time_scale = 200
    with use_clock(local_server.clock):
        yield local_server
    local_server.time_scale = scale
    local_server.events.tamper = None


def start(server: LocalAutomationServer, content: dict[str, Any] = TWO_SLEEPS) -> str:
    ssm = client_for(server, "ssm")
    name = f"Events-{uuid.uuid4().hex[:10]}"
    ssm.create_document(
        Name=name, Content=json.dumps(content), DocumentType="Automation", DocumentFormat="JSON"
    )
    return str(ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"])


def drain(
    server: LocalAutomationServer, queue_url: str, until: Callable[[list[dict[str, Any]]], bool]
) -> list:
    sqs = client_for(server, "sqs")
    events: list[dict[str, Any]] = []
    for _ in range(60):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        events += [json.loads(m["Body"]) for m in messages.get("Messages", [])]
        if until(events):
            return events
    raise AssertionError(f"the events never came: {events}")


def test_the_runtime_emits_aws_documented_events(fast: LocalAutomationServer, events_queue: str) -> None:
    execution_id = start(fast)
    ended = lambda events: any(  # noqa: E731
        e["detail-type"] == EXECUTION_DETAIL_TYPE and e["detail"]["Status"] == "Success" for e in events
    )
    events = [e for e in drain(fast, events_queue, ended) if e["detail"]["ExecutionId"] == execution_id]
    region, account = fast.region, fast.account_id
    for event in events:
        # moto's EventBridge drops "account" from what it delivers to targets (its default input template)
        assert set(event) | {"account"} == ENVELOPE_KEYS
        assert (event["version"], event["source"], event["region"]) == ("0", "aws.ssm", region)
        assert ISO_TIME.match(event["time"])
        definition = event["detail"]["Definition"]
        assert event["resources"] == [
            f"arn:aws:ssm:{region}:{account}:automation-execution/{execution_id}",
            f"arn:aws:ssm:{region}:{account}:automation-definition/{definition}:1",
        ]
        detail = event["detail"]
        assert detail["DefinitionVersion"] == 1.0 and isinstance(detail["DefinitionVersion"], float)
        assert EVENT_TIME.match(detail["StartTime"])
        assert isinstance(detail["Time"], float)
    steps = [
        (e["detail"]["StepName"], e["detail"]["Status"])
        for e in events
        if e["detail-type"] == STEP_DETAIL_TYPE
    ]
    assert steps == [
        ("first", "InProgress"),
        ("first", "Success"),
        ("second", "InProgress"),
        ("second", "Success"),
    ]
    executions = [e["detail"]["Status"] for e in events if e["detail-type"] == EXECUTION_DETAIL_TYPE]
    assert executions == ["InProgress", "Success"]
    final = next(
        e["detail"] for e in events if e["detail-type"] == EXECUTION_DETAIL_TYPE and "EndTime" in e["detail"]
    )
    assert set(final) == EXECUTION_DETAIL_KEYS
    assert final["ExecutedBy"].startswith(f"arn:aws:iam::{account}:")
    step_done = next(
        e["detail"] for e in events if e["detail"].get("StepName") == "first" and "EndTime" in e["detail"]
    )
    assert set(step_done) == STEP_DETAIL_KEYS and step_done["Action"] == "aws:sleep"
    # Time: the duration in ms (AWS's example: 2630.0 for a step from 7:43:23 to 7:43:25 PM) — the step's own
    # start and end as GetAutomationExecution reports them; a 10-minute sleep lasts at least 10 minutes
    execution = client_for(fast, "ssm").get_automation_execution(AutomationExecutionId=execution_id)
    first = execution["AutomationExecution"]["StepExecutions"][0]
    duration_ms = (first["ExecutionEndTime"] - first["ExecutionStartTime"]).total_seconds() * 1000
    assert abs(step_done["Time"] - duration_ms) < 1_000  # to the second, as StartTime/EndTime are written
    assert step_done["Time"] >= 600_000


def test_the_envelope_carries_the_account(fast: LocalAutomationServer) -> None:
    """What the runtime hands EventBridge (before moto's target templating) names the account."""
    execution_id = start(fast)
    assert fast.events is not None and fast.engine is not None
    routed: list[dict[str, Any]] = []

    def keep(entry: dict[str, Any]) -> dict[str, Any]:
        routed.append(entry)
        return entry

    fast.events.tamper = keep
    client_for(fast, "ssm").stop_automation_execution(AutomationExecutionId=execution_id)
    fast.events.flush()
    from moto.events.models import events_backends

    assert events_backends[fast.account_id][fast.region].account_id == fast.account_id
    assert any(json.loads(entry["Detail"])["Status"] in ("Cancelling", "Cancelled") for entry in routed)
    assert all(entry["Source"] == "aws.ssm" for entry in routed)


async def watch(server: LocalAutomationServer, execution_id: str, **kwargs: Any) -> dict[str, Any]:
    trigger = SsmAutomationExecutionTrigger(execution_id, **kwargs)
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


class SsmCalls:
    """Counts the SSM requests of the triggers' hooks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow_ssm_delegate.connection import ConnectionSettings

        self.names: list[str] = []
        original = ConnectionSettings.build_hook

        def build(settings: ConnectionSettings) -> Any:
            hook = original(settings)
            hook.conn.meta.events.register(
                "before-call.ssm", lambda model, **_: self.names.append(model.name)
            )
            return hook

        monkeypatch.setattr(ConnectionSettings, "build_hook", build)


def trigger_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TRIGGER_LOG]


TRIGGER_LOG = "test.trigger"


@pytest.fixture(autouse=True)
def _plain_trigger_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trigger's log (structlog in Airflow 3, the task log in a triggerer) as a std logger caplog sees."""
    monkeypatch.setattr(
        SsmAutomationExecutionTrigger, "log", property(lambda self: logging.getLogger(TRIGGER_LOG))
    )


async def test_the_trigger_ends_by_event_with_three_ssm_calls(
    fast: LocalAutomationServer,
    events_queue: str,
    aws_conn_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    calls = SsmCalls(monkeypatch)
    execution_id = start(fast)
    event = await watch(fast, execution_id, events_queue_url=events_queue, events_safety_delay=3600)
    assert event["status"] == "success"
    assert calls.names == ["DescribeAutomationExecutions", "GetDocument", "GetAutomationExecution"]
    lines = trigger_lines(caplog)
    assert any(
        line.startswith("Step second (aws:sleep): Success at ") and "(simulated)" in line for line in lines
    )
    summary = next(line for line in lines if line.startswith(f"Automation execution {execution_id}: Success"))
    assert "first (aws:sleep): Success, 10m 0" in summary and "second (aws:sleep): Success, 20m 0" in summary


async def test_lost_events_the_safety_net_notices_the_end(
    fast: LocalAutomationServer, events_queue: str, aws_conn_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert fast.events is not None and fast.clock is not None
    fast.events.tamper = lambda entry: None  # EventBridge is best effort: here it delivers nothing
    execution_id = start(fast)
    event = await watch(fast, execution_id, events_queue_url=events_queue, events_safety_delay=120)
    noticed = fast.clock.now()
    assert event["status"] == "success"
    ended = client_for(fast, "ssm").get_automation_execution(AutomationExecutionId=execution_id)
    late = (noticed - ended["AutomationExecution"]["ExecutionEndTime"]).total_seconds()
    assert 0 <= late <= 120 + 240  # one safety delay, plus slack for a loaded machine (1.2 wall s at 200x)
    # the end (or a step's change before it) is reported as news from the safety-net poll
    assert any("safety-net poll" in line for line in trigger_lines(caplog))


async def test_unreachable_queue_falls_back_to_polling_and_says_so_once(
    fast: LocalAutomationServer, aws_conn_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    missing = f"{fast.endpoint_url}/{fast.account_id}/no-such-queue-{uuid.uuid4().hex[:6]}"
    execution_id = start(fast)
    event = await watch(fast, execution_id, events_queue_url=missing, waiter_delay=60)
    assert event["status"] == "success"
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    per_trigger = [w for w in warnings if execution_id in w]
    assert len(per_trigger) == 1 and "polling instead" in per_trigger[0]


async def wait_for_line(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in trigger_lines(caplog)):
        assert time.monotonic() < deadline, f"never logged {text!r}: {trigger_lines(caplog)}"
        await asyncio.sleep(0.1)


def feed_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == feed_module.__name__ and r.levelno >= logging.WARNING
    ]


async def test_a_queue_created_late_is_used_without_a_restart(
    fast: LocalAutomationServer,
    aws_conn_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The queue does not exist yet: the watch polls, the feed keeps trying it (bounded backoff), and once
    an administrator creates it the watch goes back to events and ends by one; each change is said once."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(feed_module, "RECHECK_FIRST_S", 0.2)
    monkeypatch.setattr(feed_module, "RECHECK_MAX_S", 0.5)
    name = f"late-{uuid.uuid4().hex[:10]}"
    queue_url = f"{fast.endpoint_url}/{fast.account_id}/{name}"
    execution_id = start(fast)
    watching = asyncio.ensure_future(
        watch(fast, execution_id, events_queue_url=queue_url, events_safety_delay=3600)
    )
    await wait_for_line(caplog, "polling instead")
    from airflow_ssm_delegate.connection import ConnectionSettings
    from airflow_ssm_delegate.triggers.events import get_feed

    feed = get_feed(queue_url, ConnectionSettings())
    tried = feed.calls
    await asyncio.sleep(1.5)
    assert feed.calls > tried  # still trying in the background
    created = route_events_to_queue(client_for(fast, "events"), client_for(fast, "sqs"), name, rule_name=name)
    assert created == queue_url
    event = await asyncio.wait_for(watching, timeout=120)
    await feed.close()
    assert event["status"] == "success"
    lines = trigger_lines(caplog)
    assert sum("polling instead" in line for line in lines) == 1
    assert sum("read again" in line for line in lines) == 1
    assert any(f"{execution_id} ended Success (noticed by its event)" in line for line in lines)
    warnings = feed_warnings(caplog)  # however many attempts failed: one line each way
    assert len(warnings) == 2, warnings
    assert "cannot be read" in warnings[0] and "read again" in warnings[1]


async def test_rights_granted_late_bring_the_events_back_to_every_watcher(
    fast: LocalAutomationServer, events_queue: str, new_user: Callable[..., dict[str, str]]
) -> None:
    """Credentials without sqs rights: each watcher (also one joining meanwhile) is told once that the queue
    cannot be read, the feed keeps trying, and once the right is granted each is told once, then gets its
    events."""
    from airflow_ssm_delegate.iam_compile import events_consumer_statement

    sqs = client_for(fast, "sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    creds = new_user([])
    user = client_for(fast, "sts", creds).get_caller_identity()["Arn"].rsplit("/", 1)[-1]
    feed = EventFeed(
        events_queue,
        lambda: client_for(fast, "sqs", creds),
        wait_time_seconds=1,
        recheck_delay=0.1,
        max_recheck_delay=0.4,
    )
    execution_id = start(fast)
    early = feed.watch(execution_id)
    told = await asyncio.wait_for(early.get(), timeout=30)
    assert isinstance(told, QueueUnreachable) and "AccessDenied" in told.reason, told
    late = feed.watch(execution_id)
    assert isinstance(late.get_nowait(), QueueUnreachable)
    tried = feed.calls
    while feed.calls < tried + 3:  # a few more refused attempts: nobody is told again
        await asyncio.sleep(0.1)
    assert early.empty() and late.empty()
    client_for(fast, "iam").put_user_policy(
        UserName=user,
        PolicyName="watch-automation-events",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [events_consumer_statement(queue_arn)]}
        ),
    )
    for inbox in (early, late):
        assert isinstance(await asyncio.wait_for(inbox.get(), timeout=30), QueueReachable)
        news = await asyncio.wait_for(inbox.get(), timeout=60)
        assert not isinstance(news, (QueueUnreachable, QueueReachable)), news
        assert news.execution_id == execution_id
        news.done()
    assert feed.unreachable is None
    feed.leave(late)
    # stopped, and read to its last event: no event of it reaches the queues of the tests that follow
    client_for(fast, "ssm").stop_automation_execution(AutomationExecutionId=execution_id)
    while not (isinstance(news, News) and not news.is_step and news.status == "Cancelled"):
        news = await asyncio.wait_for(early.get(), timeout=60)
        if isinstance(news, News):
            news.done()
    feed.leave(early)
    await feed.close()


def _step_event(execution_id: str, step: str, status: str, when: datetime, **detail: Any) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": STEP_DETAIL_TYPE,
            "source": "aws.ssm",
            "account": "123456789012",
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "ExecutionId": execution_id,
                "Status": status,
                "StepName": step,
                "Action": "aws:sleep",
                "StartTime": event_time_text(when),
                **detail,
            },
        }
    )


async def test_duplicated_reordered_and_forged_events_are_harmless(
    fast: LocalAutomationServer,
    events_queue: str,
    aws_conn_env: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every real event twice, a stale InProgress after the step's Success, and a forged "Success" of the
    execution while it still runs: one log line per transition, and the watch ends only at the real end."""
    caplog.set_level(logging.INFO)
    assert fast.events is not None and fast.clock is not None
    sqs = client_for(fast, "sqs")
    events = fast.events

    def twice_and_late(entry: dict[str, Any]) -> None:
        events._put(entry)
        events._put(entry)  # the duplicate EventBridge may deliver
        detail = json.loads(entry["Detail"])
        if (detail.get("StepName"), detail["Status"]) == ("first", "Success"):  # then a stale one
            stale = {**detail, "Status": "InProgress"}
            stale.pop("EndTime")
            events._put({**entry, "Detail": json.dumps(stale), "Time": entry["Time"] - 600})

    events.tamper = twice_and_late
    execution_id = start(fast)
    forged = json.loads(_step_event(execution_id, "x", "Success", fast.clock.now()))
    forged["detail-type"] = EXECUTION_DETAIL_TYPE
    forged["detail"] = {"ExecutionId": execution_id, "Status": "Success"}
    sqs.send_message(QueueUrl=events_queue, MessageBody=json.dumps(forged))
    event = await watch(fast, execution_id, events_queue_url=events_queue, events_safety_delay=3600)
    assert event["status"] == "success"
    lines = trigger_lines(caplog)
    for step in ("first", "second"):
        assert sum(line.startswith(f"Step {step} (aws:sleep): Success") for line in lines) == 1
    assert sum(line.startswith("Step first (aws:sleep): InProgress") for line in lines) == 1
    assert any("still watching" in line for line in lines)  # the forged end was checked and refused
    ended = client_for(fast, "ssm").get_automation_execution(AutomationExecutionId=execution_id)
    assert ended["AutomationExecution"]["AutomationExecutionStatus"] == "Success"


def test_progress_ignores_older_and_repeated_events() -> None:
    lines: list[str] = []

    class Log:
        def info(self, message: str, *args: Any) -> None:
            lines.append(message % args if args else message)

    progress = StepProgress(Log(), "exec-1")  # type: ignore[arg-type]
    t0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert progress.step_changed("a", "aws:sleep", "InProgress", t0)
    assert progress.step_changed("a", "aws:sleep", "Success", t0 + timedelta(hours=1))
    assert not progress.step_changed("a", "aws:sleep", "Success", t0 + timedelta(hours=1))  # duplicate
    assert not progress.step_changed("a", "aws:sleep", "InProgress", t0)  # reordered, older
    # same second: the later status wins whatever the order of arrival
    assert progress.step_changed("b", "aws:executeAwsApi", "Success", t0 + timedelta(hours=2))
    assert not progress.step_changed("b", "aws:executeAwsApi", "InProgress", t0 + timedelta(hours=2))
    assert len(lines) == 3


def test_approval_step_says_who_may_approve_and_how() -> None:
    lines: list[str] = []

    class Log:
        def info(self, message: str, *args: Any) -> None:
            lines.append(message % args if args else message)

    progress = StepProgress(Log(), "exec-2")  # type: ignore[arg-type]
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    progress.step_changed("approve", "aws:approve", "Waiting", when, approvers=["arn:aws:iam::1:user/ops"])
    assert "approval needed from arn:aws:iam::1:user/ops" in lines[0]
    assert "--signal-type Approve" in lines[0] and "exec-2" in lines[0]


def test_news_parsing_refuses_what_is_not_an_automation_event() -> None:
    assert parse_news("not json") is None
    assert (
        parse_news(json.dumps({"source": "aws.ec2", "detail-type": STEP_DETAIL_TYPE, "detail": {}})) is None
    )
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    news = parse_news(_step_event("e-1", "s", "Waiting", when))
    assert news is not None and news.step_name == "s" and news.start_time == when and news.time == when


async def test_one_consumer_serves_every_watch_in_the_process(
    fast: LocalAutomationServer, events_queue: str, aws_conn_env: Any
) -> None:
    from airflow_ssm_delegate.connection import ConnectionSettings
    from airflow_ssm_delegate.triggers.events import get_feed

    ids = [start(fast) for _ in range(3)]
    results = await asyncio.gather(
        *(watch(fast, i, events_queue_url=events_queue, events_safety_delay=3600) for i in ids)
    )
    assert [r["status"] for r in results] == ["success"] * 3
    feed = get_feed(events_queue, ConnectionSettings())
    assert len({id(feed), id(get_feed(events_queue, ConnectionSettings()))}) == 1
    assert feed.calls < 40  # one long poll at a time for all three, plus batched deletes
    await feed.close()


async def test_the_asset_watcher_trigger_reports_ended_executions_of_its_runbook(
    fast: LocalAutomationServer, events_queue: str, aws_conn_env: Any
) -> None:
    """An execution of the runbook cancelled: one event (duplicates dropped); other runbooks: none."""
    from airflow_ssm_delegate.triggers.asset_events import SsmAutomationEndedTrigger

    ssm = client_for(fast, "ssm")
    name = f"Watched-{uuid.uuid4().hex[:8]}"
    ssm.create_document(
        Name=name, Content=json.dumps(TWO_SLEEPS), DocumentType="Automation", DocumentFormat="JSON"
    )
    other = start(fast)  # another runbook: not reported
    trigger = SsmAutomationEndedTrigger(name, events_queue_url=events_queue)
    _, kwargs = trigger.serialize()
    assert SsmAutomationEndedTrigger(**kwargs).serialize() == trigger.serialize()
    runs = trigger.run()
    first = asyncio.ensure_future(runs.__anext__())
    await asyncio.sleep(0.5)
    execution_id = ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"]
    ssm.stop_automation_execution(AutomationExecutionId=execution_id)
    event = await asyncio.wait_for(first, timeout=60)
    assert event.payload["execution_id"] == execution_id
    assert (event.payload["definition"], event.payload["status"]) == (name, "Cancelled")
    await runs.aclose()  # type: ignore[attr-defined]
    await stopped(fast, other)


async def stopped(server: LocalAutomationServer, execution_id: str) -> None:
    """Stop an execution and wait until its last event is routed: none reaches a later test's queue."""
    ssm = client_for(server, "ssm")
    ssm.stop_automation_execution(AutomationExecutionId=execution_id)
    for _ in range(300):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] == "Cancelled":
            break
        await asyncio.sleep(0.1)
    assert server.events is not None
    server.events.flush()


APPROVAL = {
    "schemaVersion": "0.3",
    "parameters": {"Approvers": {"type": "StringList"}},
    "mainSteps": [
        {
            "name": "approve",
            "action": "aws:approve",
            "inputs": {"Approvers": "{{ Approvers }}", "MinRequiredApprovals": 1, "Message": "ok?"},
        }
    ],
}


@pytest.mark.parametrize(("decision", "outcome"), [("Approve", "Success"), ("Reject", "Failed")])
def test_the_approval_operator_sends_the_persons_decision(
    fast: LocalAutomationServer, aws_conn_env: Any, decision: str, outcome: str
) -> None:
    from airflow_ssm_delegate.operators.approval import SsmAutomationApprovalOperator

    ssm = client_for(fast, "ssm")
    name = f"Approval-{uuid.uuid4().hex[:8]}"
    ssm.create_document(
        Name=name, Content=json.dumps(APPROVAL), DocumentType="Automation", DocumentFormat="JSON"
    )
    admin = client_for(fast, "sts").get_caller_identity()["Arn"]
    execution_id = ssm.start_automation_execution(DocumentName=name, Parameters={"Approvers": [admin]})[
        "AutomationExecutionId"
    ]
    for _ in range(100):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] == "Waiting":
            break
        asyncio.run(asyncio.sleep(0.1))
    operator = SsmAutomationApprovalOperator(task_id="human_approval", execution_id=execution_id)
    answer = {
        "chosen_options": [decision],
        "params_input": {"comment": "window agreed with the app team"},
        "responded_at": datetime.now(timezone.utc),
        "responded_by_user": {"id": "7", "name": "alice"},
    }
    result = operator.execute_complete({}, answer)
    assert result["comment"] == f"{decision} in Airflow by alice: window agreed with the app team"
    for _ in range(100):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] not in ("Waiting", "InProgress"):
            break
        asyncio.run(asyncio.sleep(0.1))
    assert execution["AutomationExecutionStatus"] == outcome


async def test_the_consumer_needs_only_receive_and_delete(
    fast: LocalAutomationServer, events_queue: str, new_user: Callable[..., dict[str, str]]
) -> None:
    """The statement the README gives the connection's identity (sqs:ReceiveMessage, sqs:DeleteMessage) is
    enough: events are received, and deleted once applied (DeleteMessageBatch needs sqs:DeleteMessage)."""
    from airflow_ssm_delegate.iam_compile import events_consumer_statement

    sqs = client_for(fast, "sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    creds = new_user([events_consumer_statement(queue_arn)])
    execution_id = start(fast)
    feed = EventFeed(events_queue, lambda: client_for(fast, "sqs", creds), wait_time_seconds=1)
    inbox = feed.watch(execution_id)
    seen: list[tuple[str | None, str]] = []
    # the execution's own Success is the last event the runtime emits for it: once it is read, nothing of
    # this execution arrives after the watch is left (a late event would rightly be left for other triggerers)
    while not {("second", "Success"), (None, "Success")} <= set(seen):
        news = await asyncio.wait_for(inbox.get(), timeout=60)
        assert not isinstance(news, QueueUnreachable), news
        seen.append((news.step_name, news.status))
        news.done()
    feed.leave(inbox)  # what it did not read yet is acknowledged too (the watch is over)
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

    def left() -> tuple[str, str]:
        counts = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=names)["Attributes"]
        return counts[names[0]], counts[names[1]]

    deadline = time.monotonic() + 60  # the deletes run in the consumer's own task: wait for them to land
    while left() != ("0", "0") and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    await feed.close()
    assert feed.unreachable is None
    assert left() == ("0", "0")
