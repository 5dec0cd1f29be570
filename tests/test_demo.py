"""``make demo`` end to end: the local runtime, the story and real Airflow (``airflow dags test``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _demo(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_ssm_delegate.local.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_missing_dags_folder_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    result = _demo("--workdir", str(tmp_path), "--dags-folder", str(tmp_path / "nowhere"), timeout=120)
    assert result.returncode == 2
    assert f"DAGs folder {tmp_path / 'nowhere'} not found; pass --dags-folder" in result.stderr


@pytest.mark.slow
def test_make_demo_runs_the_story_through_airflow_and_reports_success(tmp_path: Path) -> None:
    result = _demo("--workdir", str(tmp_path / "demo"))
    output = result.stdout
    assert result.returncode == 0, output[-4000:] + result.stderr[-4000:]
    assert "FAIL" not in output
    assert re.search(
        r"operator's own ec2:RunInstances refused \((UnauthorizedOperation|AccessDenied)\)", output
    )
    assert (
        "bypass: boto3 StartAutomationExecution of Unapproved (not in the delegation policy) with the "
        "operator's keys refused by IAM (AccessDeniedException)"
    ) in output
    # the fleet example's accounts are provisioned too (make airflow triggers fleet_patch_maintenance there)
    assert re.search(
        r"fleet: execution role \S+ in accounts 111122223333, 444455556666; 12 instances", output
    )
    launch = re.search(r"execution (\S+) Success; started by (\S+) under role (\S+)", output)
    assert launch, output
    assert launch.group(2).endswith(":user/airflow-operator")
    assert launch.group(3).endswith(":role/SsmDelegateAutomationRole")
    instance = re.search(r"instance (i-[0-9a-f]+) is running", output)
    assert instance, output
    assert re.search(r"tags .*CostCenter=CC-2002.*Owner=demo@example.com", output)
    maintenance = re.search(r"execution (\S+) Success after ([\d.]+) simulated hours", output)
    assert maintenance and float(maintenance.group(2)) > 12, output
    assert "approval answered at step approveMaintenance" in output
    assert output.rstrip().endswith("Demo finished: Success")
