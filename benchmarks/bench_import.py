"""Import cost of our operator module, relative to the Amazon provider's SSM operator module.

``import_overhead_ratio`` = (import ours - import airflow.sdk) / (import amazon ssm - import airflow.sdk),
fresh processes, median of several. Each fresh process first imports ``airflow.sdk`` and then times the
module import alone: that increment *is* "module minus airflow.sdk", measured without airflow.sdk's own
multi-second (and, on a loaded machine, very noisy) import in the subtraction.

Byte-code is compiled once into a private cache before measuring (this environment sets
PYTHONDONTWRITEBYTECODE, which would otherwise charge every process for compiling both packages; an
installed wheel ships compiled byte-code).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

OURS = "airflow_ssm_delegate.operators.automation"
AMAZON = "airflow.providers.amazon.aws.operators.ssm"
# What a module in the Amazon provider's style (AwsBaseOperator[SsmAutomationHook]) must import: reported
# so the design choice (no AWS imports at DAG-parse time) is documented with numbers.
GENERIC = "airflow.providers.amazon.aws.operators.base_aws, airflow_ssm_delegate.hooks.automation"
ROUNDS = 5
_PROBE = (
    "import time, airflow.sdk\n"
    "started = time.perf_counter()\n"
    "import {module}\n"
    "print(time.perf_counter() - started)\n"
)


def _environment(cache_dir: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache_dir
    return env


def _increment(module: str, env: dict[str, str]) -> float:
    """Seconds a fresh interpreter spends importing ``module`` on top of an imported airflow.sdk."""
    output = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(output.strip().splitlines()[-1])


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-import-pyc-") as cache_dir:
        env = _environment(cache_dir)
        subprocess.run(
            [sys.executable, "-c", f"import airflow.sdk, {OURS}, {AMAZON}, {GENERIC}"],
            env=env,
            check=True,
            capture_output=True,
        )
        ours, amazon, generic = [], [], []
        for _ in range(ROUNDS):  # interleaved, so a busy moment hurts all sides alike
            ours.append(_increment(OURS, env))
            amazon.append(_increment(AMAZON, env))
            generic.append(_increment(GENERIC, env))
    ours_s, amazon_s = statistics.median(ours), statistics.median(amazon)
    return {
        "import_overhead_ratio": round(ours_s / amazon_s, 3),
        "import_ours_ms": round(ours_s * 1000, 1),
        "import_amazon_ssm_ms": round(amazon_s * 1000, 1),
        "import_generic_design_ratio": round(statistics.median(generic) / amazon_s, 3),
    }


if __name__ == "__main__":
    print(run())
