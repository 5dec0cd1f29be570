"""``make bench``: run every ``benchmarks/bench_*.py``, print a table against the targets, write results.json.

Each benchmark module's ``run() -> dict[str, float]`` runs in a fresh interpreter: import costs must be
measured from scratch, memory growth must not inherit another benchmark's heap, and the local runtime
allows one server per process. A benchmark that crashes is reported (with the tail of its output) and
makes the command exit non-zero; so does a missed target.
"""

from __future__ import annotations

import json
import operator
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.json"

# Targets of issue 5: key -> (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "import_overhead_ratio": ("<=", 0.25),
    "watch_13h_api_calls": ("<=", 60),
    "watch_13h_detect_delay_s": ("<=", 30),
    "fanout_1000_calls_per_sim_min": ("<=", 200),
    "fanout_1000_rss_growth_mb": ("<=", 150),
    "fanout_1000_loop_lag_p99_ms": ("<=", 100),
    "seed_story_seconds": ("<=", 1.0),
    # issue 12: watching by Automation's EventBridge events (bench_events)
    "watch_13h_events_ssm_calls": ("<=", 3),
    "watch_13h_events_detect_delay_s": ("<=", 2),
    "fanout_1000_events_calls_per_sim_min": ("<=", 10),
    "events_lost_detect_delay_s": ("<=", 900),
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}
_CHILD = (
    "import json, sys\n"
    "sys.path.insert(0, {root!r})\n"
    "from benchmarks import {module} as bench\n"
    "json.dump(bench.run(), open({out!r}, 'w'))\n"
)


def run_module(path: Path) -> tuple[dict[str, float] | None, str]:
    """(results, error text) of one benchmark module run in a fresh interpreter."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    child = _CHILD.format(root=str(ROOT), module=path.stem, out=out)
    done = subprocess.run(
        [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, check=False
    )
    try:
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            return None, f"exit code {done.returncode}:\n{tail}"
        return {key: float(value) for key, value in json.loads(Path(out).read_text()).items()}, ""
    finally:
        Path(out).unlink(missing_ok=True)


def verdict(key: str, value: float) -> tuple[str, str]:
    """(target text, PASS/FAIL/-) for one result."""
    if key not in TARGETS:
        return "", "-"
    comparison, bound = TARGETS[key]
    return f"{comparison} {bound:g}", "PASS" if _COMPARE[comparison](value, bound) else "FAIL"


def main() -> int:
    results: dict[str, float] = {}
    failures: list[str] = []
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        started = time.perf_counter()
        print(f"running {path.name} ...", flush=True)
        values, error = run_module(path)
        if values is None:
            failures.append(f"{path.name} crashed ({error})")
            print(f"  {path.name} FAILED: {error}", flush=True)
            continue
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
        results.update(values)
    width = max((len(key) for key in results), default=10)
    print(f"\n{'metric':<{width}}  {'value':>12}  {'target':>10}  result")
    for key, value in results.items():
        target, outcome = verdict(key, value)
        print(f"{key:<{width}}  {value:>12g}  {target:>10}  {outcome}")
        if outcome == "FAIL":
            failures.append(f"{key} = {value:g} misses its target {target}")
    missing = sorted(set(TARGETS) - set(results))
    failures.extend(f"{key}: not measured" for key in missing)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
