"""1,000 deferred executions watched by one triggerer-like process (one event loop, one batched poller).

Half of the executions sit in a 2-hour ``aws:sleep``; the other half wait at an ``aws:pause`` that nobody
answers during the run — nothing bounds their end, so they are polled every ``waiter_delay`` (30 s) and
only batching keeps the call rate down. The local runtime serves them on a simulated clock
(``TIME_SCALE``) shared with the triggers.

- ``fanout_1000_calls_per_sim_min``: SSM calls per simulated minute over ``WINDOW_SIM_S``, measured after a
  warm-up in which every trigger has made its first poll (and the sleepers fetched their step records).
- ``fanout_1000_rss_growth_mb``: growth of this process's resident memory from just before the triggers
  start to the highest sample while they run (the in-process runtime's own growth is included).
- ``fanout_1000_loop_lag_p99_ms``: 99th percentile of how late a 50 ms ``asyncio.sleep`` on that loop wakes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_ssm_delegate.clocks import use_clock
from airflow_ssm_delegate.local.server import LocalAutomationServer
from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger
from benchmarks.bench_watch import (
    CallCounter,
    client,
    first_event,
    publish,
    service_role,
    use_airflow_connection,
)

EXECUTIONS = 1000
TIME_SCALE = 10.0
WAITER_DELAY = 30.0
WARM_UP_SIM_S = 180.0
WINDOW_SIM_S = 600.0
PROBE_INTERVAL_S = 0.05
PAGE = os.sysconf("SC_PAGE_SIZE")


def _runbook(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemaVersion": "0.3",
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {"AutomationAssumeRole": {"type": "String"}},
        "mainSteps": [
            *steps,
            {
                "name": "check",
                "action": "aws:executeAwsApi",
                "inputs": {"Service": "ec2", "Api": "DescribeInstances"},
            },
        ],
    }


SLEEPING = _runbook({"name": "window", "action": "aws:sleep", "inputs": {"Duration": "PT2H"}})
PAUSED = _runbook({"name": "hold", "action": "aws:pause", "inputs": {}})


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def start_all(server: LocalAutomationServer, role: str) -> list[str]:
    documents = [publish(server, SLEEPING), publish(server, PAUSED)]
    ssm = client(server, "ssm")

    def start(index: int) -> str:
        response = ssm.start_automation_execution(
            DocumentName=documents[index % 2], Parameters={"AutomationAssumeRole": [role]}
        )
        return str(response["AutomationExecutionId"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(start, range(EXECUTIONS)))


async def watch(ids: list[str], counter: CallCounter, clock: Any) -> dict[str, float]:
    baseline = rss_mb()
    peak = baseline
    lags: list[float] = []
    tasks = [
        asyncio.create_task(first_event(SsmAutomationExecutionTrigger(i, waiter_delay=WAITER_DELAY)))
        for i in ids
    ]
    started = clock.now()
    window_start_calls: int | None = None
    while True:
        before = time.perf_counter()
        await asyncio.sleep(PROBE_INTERVAL_S)
        lags.append((time.perf_counter() - before - PROBE_INTERVAL_S) * 1000)
        peak = max(peak, rss_mb())
        elapsed = (clock.now() - started).total_seconds()
        if window_start_calls is None and elapsed >= WARM_UP_SIM_S:
            window_start_calls = counter.calls
        if elapsed >= WARM_UP_SIM_S + WINDOW_SIM_S:
            break
    assert window_start_calls is not None
    calls = counter.calls - window_start_calls
    ended = [task for task in tasks if task.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if ended:
        raise RuntimeError(
            f"{len(ended)} triggers fired early (e.g. {ended[0].result()}); the set-up is wrong"
        )
    return {
        "fanout_1000_calls_per_sim_min": round(calls / (WINDOW_SIM_S / 60), 1),
        "fanout_1000_rss_growth_mb": round(peak - baseline, 1),
        "fanout_1000_loop_lag_p99_ms": round(statistics.quantiles(lags, n=100)[98], 1),
    }


def run() -> dict[str, float]:
    # All 1,000 running (AWS would run 100 and queue 900 as Pending): this measures watching running ones.
    with LocalAutomationServer(time_scale=TIME_SCALE, enforce_iam=True, max_running=EXECUTIONS) as server:
        assert server.clock is not None
        use_airflow_connection(server)
        ids = start_all(server, service_role(server))
        with CallCounter().installed() as counter, use_clock(server.clock):
            return asyncio.run(watch(ids, counter, server.clock))


if __name__ == "__main__":
    print(run())
