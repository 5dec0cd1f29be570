"""The demo reads the watch's progress from a task log, whichever Airflow minor wrote it."""

from __future__ import annotations

import pytest

from airflow_ssm_delegate.local.events import progress_lines

END = "Automation execution e-1 ended Success (noticed by its event)."
STEP = "Step verify (aws:assertAwsResourceProperty): Success at 2026-12-02 02:06:21 UTC (simulated)"


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "[2026-12-01T07:28:53.316+0000] ",
        "2026-12-01T07:32:46.474228Z [info     ] ",  # structlog (Airflow 3.1+), logger name after the text
        "[2026-12-01T07:28:53.316+0000] {monitor.py:291} INFO - ",  # Airflow 3.0's deferred task log
    ],
)
def test_progress_lines_are_found_under_each_minors_log_prefix(prefix: str) -> None:
    suffix = " [airflow_ssm_delegate.triggers.automation] loc=monitor.py:291" if "Z [" in prefix else ""
    log = f"{prefix}{STEP}{suffix}\n{prefix}{END}{suffix}\n{prefix}Sending request msg=SucceedTask\n"
    assert progress_lines(log) == [STEP, END]
