"""The runbooks shipped in the package (``documents/runbooks/*.yaml``)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLED_RUNBOOKS = ("LaunchTaggedInstance", "LongRunningMaintenance", "FleetPatchInstance")


def runbook_path(name: str) -> Path:
    """Path of the bundled runbook ``name`` (e.g. ``"LaunchTaggedInstance"``)."""
    if name not in BUNDLED_RUNBOOKS:
        raise ValueError(f"no bundled runbook {name!r}; bundled runbooks are {list(BUNDLED_RUNBOOKS)}")
    return Path(str(files("airflow_ssm_delegate.documents").joinpath("runbooks", f"{name}.yaml")))
