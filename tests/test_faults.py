"""The operator and trigger on the local Automation runtime (real hook, real policy checks): in health, then
with faults injected.

Faults covered here (no Airflow processes needed): a worker killed mid-execution then retried 20 times,
30 % of API calls throttled, the endpoint unreachable for a while, malformed responses. The process-level ones
(triggerer restart, clear while deferred) live with the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import TYPE_CHECKING, Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from airflow_ssm_delegate.clocks import use_clock
from airflow_ssm_delegate.compat import AirflowException, TaskDeferred
from airflow_ssm_delegate.connection import ConnectionSettings
from airflow_ssm_delegate.idempotency import STATE_STORE_KEY
from airflow_ssm_delegate.operators.automation import SsmStartAutomationExecutionOperator
from airflow_ssm_delegate.retry import Backoff
from airflow_ssm_delegate.triggers import poller as poller_module
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger
from tests.fixtures.local_runtime import SSM_TRUST, client_for, unique
from tests.test_operator import FakeStateStore, FakeTaskInstance, context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

EC2_ALL = {"Effect": "Allow", "Action": ["ec2:*"], "Resource": "*"}


def runbook(*steps: dict[str, Any]) -> str:
    return json.dumps(
        {
            "schemaVersion": "0.3",
            "assumeRole": "{{ AutomationAssumeRole }}",
            "parameters": {"AutomationAssumeRole": {"type": "String"}, "Marker": {"type": "String"}},
            "mainSteps": list(steps),
        }
    )


LAUNCH: dict[str, Any] = {
    "name": "launch",
    "action": "aws:runInstances",
    "inputs": {
        "ImageId": "ami-12c6146b",
        "InstanceType": "t3.micro",
        "MinInstanceCount": 1,
        "MaxInstanceCount": 1,
    },
}
MARKER_TAG = [{"ResourceType": "instance", "Tags": [{"Key": "Marker", "Value": "{{ Marker }}"}]}]
LAUNCH_AND_WAIT = runbook(
    {**LAUNCH, "inputs": {**LAUNCH["inputs"], "TagSpecifications": MARKER_TAG}},
    {"name": "window", "action": "aws:sleep", "inputs": {"Duration": "PT6H"}},
)
SHORT = runbook(
    {"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT2M"}},
    {"name": "look", "action": "aws:executeAwsApi", "inputs": {"Service": "ec2", "Api": "DescribeRegions"}},
)


@pytest.fixture
def role(new_role: Callable[..., str]) -> str:
    return new_role([SSM_TRUST], [EC2_ALL], prefix="fault-role")


@pytest.fixture
def publish(local_server: LocalAutomationServer) -> Callable[[str], str]:
    def make(content: str) -> str:
        name = unique("Fault")
        client_for(local_server, "ssm").create_document(
            Name=name, Content=content, DocumentType="Automation", DocumentFormat="JSON"
        )
        return name

    return make


@pytest.fixture
def fast_time(local_server: LocalAutomationServer) -> Iterator[Any]:
    """Simulated minutes pass in wall milliseconds, on the runtime and in the trigger's waits alike."""
    clock = local_server.clock
    assert clock is not None
    previous = clock.time_scale
    clock.time_scale = 600.0
    with use_clock(clock):
        yield clock
    clock.time_scale = previous


def start_operator(
    document: str, role: str, marker: str, **kwargs: Any
) -> SsmStartAutomationExecutionOperator:
    return SsmStartAutomationExecutionOperator(
        task_id="launch",
        document_name=document,
        parameters={"Marker": marker},
        service_role_arn=role,
        deferrable=True,
        **kwargs,
    )


def executions_of(server: LocalAutomationServer, document: str) -> list[dict[str, Any]]:
    ssm = client_for(server, "ssm")
    pages = ssm.get_paginator("describe_automation_executions").paginate(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [document]}]
    )
    return [item for page in pages for item in page["AutomationExecutionMetadataList"]]


def instances_tagged(server: LocalAutomationServer, marker: str) -> list[str]:
    ec2 = client_for(server, "ec2")
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Marker", "Values": [marker]}])[
        "Reservations"
    ]
    return [instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"]]


def wait_until_running(server: LocalAutomationServer, execution_id: str) -> None:
    ssm = client_for(server, "ssm")
    for _ in range(500):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution.get("CurrentStepName") == "window":
            return
        asyncio.run(asyncio.sleep(0.01))
    raise AssertionError(f"{execution_id} never reached its sleep window")


def test_worker_killed_then_retried_20_times_starts_one_execution_and_one_instance(
    local_server: LocalAutomationServer, aws_conn_env: Any, role: str, publish: Callable[[str], str]
) -> None:
    document, marker = publish(LAUNCH_AND_WAIT), unique("marker")
    store = FakeStateStore()
    run_id = unique("scheduled")
    seen: set[str] = set()
    for attempt in range(21):  # the first try, then 20 retries after the worker was killed
        # Half of the kills land between the start and the state-store write: the id is lost there too.
        try_store = store if attempt % 2 == 0 else FakeStateStore()
        ti = FakeTaskInstance(run_id=run_id)
        with pytest.raises(TaskDeferred) as deferred:
            start_operator(document, role, marker).execute(context(ti, try_store))
        seen.add(deferred.value.trigger.serialize()[1]["execution_id"])
        if attempt == 0:
            wait_until_running(local_server, next(iter(seen)))
    try:
        assert len(seen) == 1
        assert [e["AutomationExecutionId"] for e in executions_of(local_server, document)] == list(seen)
        assert len(instances_tagged(local_server, marker)) == 1
        assert store.get(STATE_STORE_KEY) in seen
    finally:
        client_for(local_server, "ssm").stop_automation_execution(AutomationExecutionId=seen.pop())


class FaultInjector:
    """A botocore ``before-send`` handler that answers some calls itself instead of the server."""

    def __init__(self, decide: Callable[[Any], AWSResponse | Exception | None]) -> None:
        self.decide = decide
        self.calls = 0
        self.injected = 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        self.calls += 1
        outcome = self.decide(request)
        if outcome is None:
            return None
        self.injected += 1
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def error_response(status: int, code: str, message: str) -> AWSResponse:
    body = json.dumps({"__type": code, "message": message}).encode()
    return AWSResponse("http://local", status, {"x-amzn-ErrorType": code}, _RawBody(body))


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Callable[[FaultInjector], None]:
    """Install a fault injector on every hook the triggers' pollers build."""

    def install(injector: FaultInjector) -> None:
        original = ConnectionSettings.build_hook

        def build(self: ConnectionSettings) -> Any:
            hook = original(self)
            hook.conn.meta.events.register("before-send.ssm", injector)
            return hook

        monkeypatch.setattr(ConnectionSettings, "build_hook", build)

    return install


def start_short(document: str, role: str, count: int) -> list[str]:
    ids = []
    for index in range(count):
        operator = start_operator(document, role, unique("m"), idempotency_key=str(index))
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context(FakeTaskInstance(run_id=unique("run"))))
        ids.append(deferred.value.trigger.serialize()[1]["execution_id"])
    return ids


async def watch_all(ids: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    async def first(trigger: SsmAutomationExecutionTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    triggers = [SsmAutomationExecutionTrigger(i, waiter_delay=30, **kwargs) for i in ids]
    return await asyncio.gather(*(first(t) for t in triggers))


def test_thirty_percent_throttled_calls_still_track_every_execution(
    aws_conn_env: Any, role: str, publish: Callable[[str], str], fast_time: Any, inject: Any
) -> None:
    ids = start_short(publish(SHORT), role, 5)
    counter = itertools.count()
    injector = FaultInjector(  # 3 calls in every 10, starting with the first
        lambda _: (
            error_response(400, "ThrottlingException", "Rate exceeded")
            if next(counter) % 10 in (0, 3, 6)
            else None
        )
    )
    inject(injector)
    # botocore's own retries off: every throttle reaches the trigger's backoff
    events = asyncio.run(watch_all(ids, botocore_config={"retries": {"max_attempts": 1, "mode": "standard"}}))
    assert [event["status"] for event in events] == ["success"] * 5
    assert injector.injected >= 0.3 * injector.calls - 1


def test_endpoint_unreachable_for_a_while_then_recovers(
    aws_conn_env: Any, role: str, publish: Callable[[str], str], fast_time: Any, inject: Any
) -> None:
    ids = start_short(publish(SHORT), role, 2)
    outage = {"left": 6}

    def unreachable(request: Any) -> Exception | None:
        if outage["left"] > 0:
            outage["left"] -= 1
            return EndpointConnectionError(endpoint_url=request.url)
        return None

    inject(FaultInjector(unreachable))
    events = asyncio.run(watch_all(ids, botocore_config={"retries": {"max_attempts": 1, "mode": "standard"}}))
    assert [event["status"] for event in events] == ["success", "success"]
    assert outage["left"] == 0


def test_outage_longer_than_the_backoff_fails_the_try_and_the_retry_reattaches(
    *,
    local_server: LocalAutomationServer,
    aws_conn_env: Any,
    role: str,
    publish: Callable[[str], str],
    fast_time: Any,
    inject: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = publish(SHORT)
    store = FakeStateStore()
    ti = FakeTaskInstance(run_id=unique("outage"))
    with pytest.raises(TaskDeferred) as deferred:
        start_operator(document, role, "m").execute(context(ti, store))
    execution_id = deferred.value.trigger.serialize()[1]["execution_id"]
    monkeypatch.setattr(poller_module, "POLL_BACKOFF", Backoff(base=1, cap=5, max_attempts=3))
    outage = {"on": True}
    inject(
        FaultInjector(
            lambda request: EndpointConnectionError(endpoint_url=request.url) if outage["on"] else None
        )
    )
    no_retries = {"retries": {"max_attempts": 1, "mode": "standard"}}
    (event,) = asyncio.run(watch_all([execution_id], botocore_config=no_retries))
    assert event["status"] == "error"
    with pytest.raises(AirflowException, match=r"Lost track of automation execution .* a retry of this task"):
        start_operator(document, role, "m").execute_complete(context(ti, store), event)
    outage["on"] = False  # the endpoint is back
    with pytest.raises(TaskDeferred) as retried:
        start_operator(document, role, "m").execute(context(FakeTaskInstance(run_id=ti.run_id), store))
    assert retried.value.trigger.serialize()[1]["execution_id"] == execution_id
    assert len(executions_of(local_server, document)) == 1


def test_malformed_responses_give_a_clear_error(
    aws_conn_env: Any, role: str, publish: Callable[[str], str], fast_time: Any, inject: Any
) -> None:
    (execution_id,) = start_short(publish(SHORT), role, 1)
    garbage = AWSResponse("http://local", 200, {}, _RawBody(b"<html>proxy error</html>"))
    inject(FaultInjector(lambda _: garbage))
    (event,) = asyncio.run(watch_all([execution_id]))
    assert event["status"] == "error"
    assert "MalformedResponseError" in event["message"]
    assert "is the endpoint really SSM?" in event["message"]
    with pytest.raises(AirflowException, match=f"Lost track of automation execution {execution_id}"):
        start_operator("x", "y", "m").execute_complete(context(), event)


def test_response_without_a_status_is_a_clear_error(
    aws_conn_env: Any, role: str, publish: Callable[[str], str], fast_time: Any, inject: Any
) -> None:
    (execution_id,) = start_short(publish(SHORT), role, 1)
    body = json.dumps({"AutomationExecutionMetadataList": [{"AutomationExecutionId": execution_id}]}).encode()
    inject(FaultInjector(lambda _: AWSResponse("http://local", 200, {}, _RawBody(body))))
    (event,) = asyncio.run(watch_all([execution_id], step_aware=False))
    assert event["status"] == "error"
    assert "no AutomationExecutionStatus" in event["message"]


# -- in health ------------------------------------------------------------------------------------


def with_outputs(content: str) -> str:
    document = json.loads(content)
    document["outputs"] = ["launch.InstanceIds"]
    return json.dumps(document)


def test_blocking_run_returns_the_runbook_outputs(
    local_server: LocalAutomationServer,
    aws_conn_env: Any,
    role: str,
    publish: Callable[[str], str],
    fast_time: Any,
) -> None:
    document = publish(with_outputs(runbook(LAUNCH)))
    operator = start_operator(document, role, "m")
    operator.deferrable = False
    result = operator.execute(context(FakeTaskInstance(run_id=unique("run"))))
    assert result["status"] == "Success"
    (instance_id,) = result["outputs"]["launch.InstanceIds"]
    reservations = client_for(local_server, "ec2").describe_instances(InstanceIds=[instance_id])[
        "Reservations"
    ]
    assert reservations[0]["Instances"][0]["State"]["Name"] == "running"


def test_deferred_run_resumes_with_the_outputs(
    aws_conn_env: Any, role: str, publish: Callable[[str], str], fast_time: Any
) -> None:
    document = publish(
        with_outputs(
            runbook(LAUNCH, {"name": "window", "action": "aws:sleep", "inputs": {"Duration": "PT20M"}})
        )
    )
    ti = FakeTaskInstance(run_id=unique("run"))
    with pytest.raises(TaskDeferred) as deferred:
        start_operator(document, role, "m").execute(context(ti))
    _, kwargs = deferred.value.trigger.serialize()
    event = asyncio.run(watch_all_from_kwargs(kwargs))  # as the triggerer rebuilds it
    result = start_operator(document, role, "m").execute_complete(context(ti), event)
    assert result["status"] == "Success"
    assert result["outputs"]["launch.InstanceIds"][0].startswith("i-")


def test_trigger_on_kill_cancels_and_the_runbook_cleans_up(
    local_server: LocalAutomationServer,
    aws_conn_env: Any,
    role: str,
    publish: Callable[[str], str],
    fast_time: Any,
) -> None:
    window = {
        "name": "window",
        "action": "aws:sleep",
        "inputs": {"Duration": "PT6H"},
        "onCancel": "step:cleanup",
    }
    cleanup = {
        "name": "cleanup",
        "action": "aws:changeInstanceState",
        "inputs": {"InstanceIds": "{{ launch.InstanceIds }}", "DesiredState": "terminated"},
        "isEnd": True,
    }
    document = publish(runbook(LAUNCH, window, cleanup))
    with pytest.raises(TaskDeferred) as deferred:
        start_operator(document, role, "m").execute(context(FakeTaskInstance(run_id=unique("run"))))
    _, kwargs = deferred.value.trigger.serialize()
    execution_id = kwargs["execution_id"]
    ssm = client_for(local_server, "ssm")

    async def kill_while_sleeping() -> None:
        while (
            ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"].get(
                "CurrentStepName"
            )
            != "window"
        ):
            await asyncio.sleep(0.01)
        await SsmAutomationExecutionTrigger(**kwargs).on_kill()

    asyncio.run(kill_while_sleeping())
    for _ in range(500):
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] not in ("InProgress", "Cancelling", "Pending"):
            break
        asyncio.run(asyncio.sleep(0.01))
    assert execution["AutomationExecutionStatus"] == "Cancelled"
    steps = {step["StepName"]: step["StepStatus"] for step in execution["StepExecutions"]}
    assert steps.get("cleanup") == "Success"


def test_a_failed_step_fails_the_task_with_its_reason(
    aws_conn_env: Any, new_role: Callable[..., str], publish: Callable[[str], str], fast_time: Any
) -> None:
    weak_role = new_role([SSM_TRUST], [], prefix="weak-role")  # may not run instances
    document = publish(runbook(LAUNCH))
    operator = start_operator(document, weak_role, "m")
    operator.deferrable = False
    with pytest.raises(AirflowException, match=r"step 'launch' \(aws:runInstances\) Failed: .*RunInstances"):
        operator.execute(context(FakeTaskInstance(run_id=unique("run"))))


async def watch_all_from_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the trigger from its serialized kwargs, as the triggerer does, and wait for its event."""
    async for event in SsmAutomationExecutionTrigger(**kwargs).run():
        return event.payload
    raise AssertionError("no event")
