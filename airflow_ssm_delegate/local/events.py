"""Automation's EventBridge events, emitted by the local runtime onto moto's default event bus.

On AWS, Systems Manager sends an event to the account's default bus for every status change of an
automation execution and of each of its steps (best effort). The shapes below follow AWS's documented
examples ("Amazon EventBridge event examples for Systems Manager",
https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-systems-manager-event-examples.html):

- ``detail-type`` "EC2 Automation Execution Status-change Notification" / "EC2 Automation Step
  Status-change Notification", ``source`` "aws.ssm", ``resources`` = [execution ARN, definition ARN];
- ``detail``: ExecutionId, Definition, DefinitionVersion (a float: 1.0), Status, StartTime, EndTime (not
  ISO-8601: "Nov 29, 2024 7:43:26 PM"), Time (milliseconds), ExecutedBy (execution events only);
  step events add StepName and Action, and their Status is the step's.

The events go through moto's ``events`` backend, so the rules and targets an administrator creates
(e.g. a rule matching ``source: aws.ssm`` with an SQS target) route them as on AWS. Times are the runtime's
simulated time. Not documented by AWS, so chosen here: while an execution or step has not ended, EndTime
is omitted and Time is the milliseconds since StartTime; once it ended, Time is its duration in ms
(the documented example's 2630.0 for a 2-second step fits that reading).

Why a delivery thread: the engine reports a change while it holds the execution's lock; building the
event there is cheap, but routing it (rules, SQS) must not run under that lock.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import re
import threading
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.iam_compile import events_consumer_statement

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from airflow_ssm_delegate.local.clock import SimulatedClock
    from airflow_ssm_delegate.local.execution import Execution, StepRecord

log = logging.getLogger(__name__)

SOURCE = "aws.ssm"
EXECUTION_DETAIL_TYPE = "EC2 Automation Execution Status-change Notification"
STEP_DETAIL_TYPE = "EC2 Automation Step Status-change Notification"
DETAIL_TYPES = (EXECUTION_DETAIL_TYPE, STEP_DETAIL_TYPE)
_ENDED_STEP_STATUSES = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})


def _cache_jsonpath_parsing() -> None:
    """moto routes each event to a target through an input template whose eight JSONPath expressions it
    parses anew every time, and jsonpath_ng builds a parser table per parse (~0.1 s each): ~1 s an event.
    The expressions are always the same, so parsing is memoised (for the runtime's process only)."""
    import jsonpath_ng.ext

    if not hasattr(jsonpath_ng.ext.parse, "cache_info"):
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)


def event_time_text(moment: datetime) -> str:
    """AWS's StartTime/EndTime form in these events: ``Nov 29, 2024 7:43:26 PM`` (UTC)."""
    hour = moment.hour % 12 or 12
    return (
        f"{moment:%b} {moment.day}, {moment.year} {hour}:{moment:%M:%S} {'AM' if moment.hour < 12 else 'PM'}"
    )


def execution_arn(region: str, account: str, execution_id: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:automation-execution/{execution_id}"


def definition_arn(region: str, account: str, name: str, version: str) -> str:
    return f"arn:aws:ssm:{region}:{account}:automation-definition/{name}:{version}"


def _version_number(version: str) -> float | None:
    try:
        return float(version)
    except ValueError:
        return None


class EventEmitter:
    """Turns the engine's status changes into PutEvents entries and routes them on a background thread.

    ``tamper`` (tests, benchmarks) sees every entry before it is routed and may change it or drop it
    (return None), to play lost events; ``emitted`` counts entries routed.
    """

    def __init__(self, clock: SimulatedClock, region: str, account_id: str) -> None:
        self.clock = clock
        self.region = region
        self.account_id = account_id
        self.tamper: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
        self.emitted = 0
        _cache_jsonpath_parsing()
        self._outbox: queue.SimpleQueue[dict[str, Any] | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._deliver, name="ssm-local-events", daemon=True)
        self._thread.start()

    # -- the engine's observer (called under the execution's lock) --------------------------------

    def __call__(self, execution: Execution, record: StepRecord | None) -> None:
        try:
            self._outbox.put(self.entry(execution, record))
        except Exception:  # never let event emission break an execution
            log.exception("Could not build the Automation event of execution %s", execution.id)

    def entry(self, execution: Execution, record: StepRecord | None) -> dict[str, Any]:
        """The PutEvents entry for the current status of ``execution`` (or of its step ``record``)."""
        now = self.clock.now()
        if record is None:
            status, started = execution.status, execution.started
            ended = now if execution.finished else None
        else:
            status, started = record.status, record.started or now
            ended = now if record.status in _ENDED_STEP_STATUSES else None
        detail: dict[str, Any] = {
            "ExecutionId": execution.id,
            "Definition": execution.document_name,
            "DefinitionVersion": _version_number(execution.document_version),
            "Status": status,
            "StartTime": event_time_text(started),
        }
        if ended is not None:
            detail["EndTime"] = event_time_text(ended)
        detail["Time"] = round(((ended or now) - started).total_seconds() * 1000, 1)
        if record is None:
            detail["ExecutedBy"] = execution.caller.arn
        else:
            detail["StepName"] = record.spec.name
            detail["Action"] = record.spec.action
        placement = execution.placement  # a TargetLocations child: its events are its account's and Region's
        account_id, region = (
            (placement.account_id, placement.region) if placement else (self.account_id, self.region)
        )
        return {
            "Source": SOURCE,
            "DetailType": STEP_DETAIL_TYPE if record else EXECUTION_DETAIL_TYPE,
            "Detail": json.dumps(detail),
            "Resources": [
                execution_arn(region, account_id, execution.id),
                definition_arn(region, account_id, execution.document_name, execution.document_version),
            ],
            "Time": now.timestamp(),
        }

    # -- delivery ---------------------------------------------------------------------------------

    def _deliver(self) -> None:
        while (entry := self._outbox.get()) is not None:
            if isinstance(entry, threading.Event):
                entry.set()
                continue
            try:
                tampered = self.tamper(entry) if self.tamper else entry
                if tampered is not None:
                    self._put(tampered)
                    self.emitted += 1
            except Exception:
                log.exception("Could not route an Automation event")

    def _put(self, entry: dict[str, Any]) -> None:
        from moto.events.models import events_backends

        fields = str((entry.get("Resources") or [""])[0]).split(":")  # the execution ARN says where it ran
        region, account_id = (fields[3], fields[4]) if len(fields) > 4 else (self.region, self.account_id)
        events_backends[account_id][region].put_events([entry])

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every event reported so far has been routed (tests)."""
        done = threading.Event()
        self._outbox.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self._outbox.put(None)
        self._thread.join(timeout=5)


#: The EventBridge rule pattern an administrator creates (on AWS as here) to feed a watch queue.
EVENT_PATTERN: dict[str, Any] = {"source": [SOURCE], "detail-type": list(DETAIL_TYPES)}


def route_events_to_queue(events: Any, sqs: Any, name: str, *, rule_name: str | None = None) -> str:
    """Create an SQS queue and an EventBridge rule sending Automation's events to it; the queue URL.

    ``events``/``sqs`` are boto3 clients (of the local runtime or of AWS). The queue policy lets only that
    rule send (what AWS needs for an EventBridge target; see the README).
    """
    queue_url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = rule_name or f"{name}-automation-events"
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps(EVENT_PATTERN), State="ENABLED")["RuleArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AutomationEventsFromEventBridge",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=rule, Targets=[{"Id": "watch-queue", "Arn": queue_arn}])
    return queue_url


def connection_env_with_queue(env: dict[str, str], conn_id: str, queue_url: str) -> dict[str, str]:
    """``env``'s ``AIRFLOW_CONN_<ID>`` JSON connection with the ``events_queue_url`` extra set."""
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    connection = json.loads(env[key])
    connection.setdefault("extra", {})["events_queue_url"] = queue_url
    return {key: json.dumps(connection)}


def grant_consumer(iam: Any, user_arn: str, queue_url: str, sqs: Any) -> None:
    """Let the IAM user ``user_arn`` consume the events queue (the local demo's operator).

    The statement is the one ``iam --events-queue-arn`` compiles (one source for what the consumer calls).
    """
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    document = {"Version": "2012-10-17", "Statement": [events_consumer_statement(queue_arn)]}
    iam.put_user_policy(
        UserName=user_arn.rsplit("/", 1)[-1],
        PolicyName="watch-automation-events",
        PolicyDocument=json.dumps(document),
    )


def setup_demo_events(story: Any, conn_id: str, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The local demo as an administrator sets it up on AWS: the rule and queue, the operator allowed to
    consume it, and the Airflow connection naming it. (queue URL, environment entries to apply)."""
    sqs = story.client("sqs")
    queue_url = route_events_to_queue(story.client("events"), sqs, "airflow-automation-events")
    grant_consumer(story.client("iam"), story.operator.arn, queue_url, sqs)
    return queue_url, connection_env_with_queue(env, conn_id, queue_url)


# A log record's prefix, as Airflow minors write it: "time [level] " (structlog, 3.1+), "[time] ", or
# "[time] {file.py:N} LEVEL - " (3.0's task log of a deferred task).
_LOG_PREFIX = re.compile(r"^(?:\S{10,40} )?\[[^\]]{0,60}\] (?:\{[^}]{0,80}\} [A-Z]+ - )?")
_PROGRESS = ("Watching automation execution", "Step ", "Automation execution ", "  ", "The events queue")


def progress_lines(task_log: str) -> list[str]:
    """The watch's progress lines in a task log (what the demo shows): steps, the end, the summary."""
    lines = []
    for raw in task_log.splitlines():
        text = _LOG_PREFIX.sub("", raw, count=1)
        text = text.split(" [airflow_ssm_delegate.", 1)[0].rstrip()
        if text.startswith(_PROGRESS) and ("Step " in text or "execution" in text or "(aws:" in text):
            lines.append(text)
    return lines
