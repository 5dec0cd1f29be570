"""Watching by Automation's EventBridge events (an SQS queue fed by a rule) on the local runtime.

The runtime emits the events onto moto's default bus; a rule (``local.events.EVENT_PATTERN``) sends
them to an SQS queue; the triggers take their news from that queue (one consumer per process) and poll
only as a safety net (``events_safety_delay`` = 600 s).

- ``watch_13h_events_ssm_calls``: SSM calls the trigger makes watching ``bench_watch``'s 13-hour runbook
  (target <= 3: the first status check, the runbook, the final GetAutomationExecution).
- ``watch_13h_events_detect_delay_s``: wall seconds from the execution's end (ExecutionEndTime, simulated,
  turned into wall time by the time scale) to the trigger's event (target <= 2).
- ``events_lost_detect_delay_s``: the same run with every event dropped by the runtime: simulated seconds
  from the end to the event, i.e. how late the safety net notices (target <= 900).
- ``fanout_1000_events_calls_per_sim_min``: all AWS calls (SSM and SQS) per simulated minute while one
  event loop watches ``bench_fanout``'s 1,000 executions by events, after a warm-up (target <= 10).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.clocks import use_clock
from airflow_ssm_delegate.connection import ConnectionSettings
from airflow_ssm_delegate.local.events import route_events_to_queue
from airflow_ssm_delegate.local.server import LocalAutomationServer
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger
from airflow_ssm_delegate.triggers.events import get_feed
from benchmarks import bench_fanout, bench_watch
from benchmarks.bench_watch import CallCounter, client, first_event, use_airflow_connection

if TYPE_CHECKING:
    from datetime import datetime

TIME_SCALE = bench_watch.TIME_SCALE
SAFETY_DELAY = 600.0


def _events_queue(server: LocalAutomationServer, name: str) -> str:
    return route_events_to_queue(client(server, "events"), client(server, "sqs"), name)


async def _event_and_time(
    trigger: SsmAutomationExecutionTrigger, clock: Any
) -> tuple[dict[str, Any], datetime]:
    event = await first_event(trigger)
    return event, clock.now()


def _watch_13h(*, lose_events: bool) -> tuple[float, float, float]:
    """(SSM calls, simulated seconds from the end to the event, time scale) of one 13-hour watch."""
    with LocalAutomationServer(time_scale=TIME_SCALE, enforce_iam=True) as server:
        assert server.clock is not None and server.events is not None
        use_airflow_connection(server)
        queue_url = _events_queue(server, "bench-watch-events")
        if lose_events:
            server.events.tamper = lambda entry: None
        role = bench_watch.service_role(server)
        document = bench_watch.publish(server, bench_watch.RUNBOOK_13H)
        ssm = client(server, "ssm")
        execution_id = ssm.start_automation_execution(
            DocumentName=document, Parameters={"AutomationAssumeRole": [role]}
        )["AutomationExecutionId"]
        stop = threading.Event()
        person = threading.Thread(
            target=bench_watch.answer_pause_late, args=(server, execution_id, stop), daemon=True
        )
        person.start()
        trigger = SsmAutomationExecutionTrigger(
            execution_id,
            waiter_delay=bench_watch.WAITER_DELAY,
            events_queue_url=queue_url,
            events_safety_delay=SAFETY_DELAY,
        )
        with CallCounter().installed() as counter, use_clock(server.clock):
            # timed when the event comes: asyncio.run then waits for the consumer's long poll to return
            event, noticed = asyncio.run(_event_and_time(trigger, server.clock))
        stop.set()
        person.join()
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if event["status"] != "success":
            raise RuntimeError(f"the 13-hour execution did not succeed: {event}")
        late = (noticed - execution["ExecutionEndTime"]).total_seconds()
        return float(counter.calls), late, server.clock.time_scale


async def _fanout(ids: list[str], queue_url: str, counter: CallCounter, clock: Any) -> float:
    tasks = [
        asyncio.create_task(
            first_event(
                SsmAutomationExecutionTrigger(
                    i,
                    waiter_delay=bench_fanout.WAITER_DELAY,
                    events_queue_url=queue_url,
                    events_safety_delay=SAFETY_DELAY,
                )
            )
        )
        for i in ids
    ]
    feed = get_feed(queue_url, ConnectionSettings())
    started = clock.now()
    start_calls: int | None = None
    while True:
        await asyncio.sleep(0.2)
        elapsed = (clock.now() - started).total_seconds()
        if start_calls is None and elapsed >= bench_fanout.WARM_UP_SIM_S:
            start_calls = counter.calls + feed.calls
        if elapsed >= bench_fanout.WARM_UP_SIM_S + bench_fanout.WINDOW_SIM_S:
            break
    assert start_calls is not None
    calls = counter.calls + feed.calls - start_calls
    ended = [task for task in tasks if task.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await feed.close()
    if ended:
        raise RuntimeError(
            f"{len(ended)} triggers fired early (e.g. {ended[0].result()}); the set-up is wrong"
        )
    return round(calls / (bench_fanout.WINDOW_SIM_S / 60), 2)


def fanout() -> float:
    with LocalAutomationServer(
        time_scale=bench_fanout.TIME_SCALE, enforce_iam=True, max_running=bench_fanout.EXECUTIONS
    ) as server:
        assert server.clock is not None
        use_airflow_connection(server)
        queue_url = _events_queue(server, "bench-fanout-events")
        ids = bench_fanout.start_all(server, bench_watch.service_role(server))
        with CallCounter().installed() as counter, use_clock(server.clock):
            return asyncio.run(_fanout(ids, queue_url, counter, server.clock))


def run() -> dict[str, float]:
    started = time.perf_counter()
    calls, late_sim, scale = _watch_13h(lose_events=False)
    _, lost_late_sim, _ = _watch_13h(lose_events=True)
    results = {
        "watch_13h_events_ssm_calls": calls,
        "watch_13h_events_detect_delay_s": round(late_sim / scale, 2),
        "events_lost_detect_delay_s": round(lost_late_sim, 1),
        "fanout_1000_events_calls_per_sim_min": fanout(),
    }
    results["events_bench_wall_s"] = round(time.perf_counter() - started, 1)
    return results


if __name__ == "__main__":
    print(run())
