"""Test session set-up: an isolated AIRFLOW_HOME before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="ssm-delegate-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_HOME, "dags"))
# Never reach real AWS from a test by accident.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)

pytest_plugins = [
    "tests.fixtures.local_runtime",
    "tests.fixtures.stubbed_ssm",
    "tests.local_engine_support",
    "tests.fixtures.airflow_stack",
]

_STACK_FIXTURES = frozenset({"e2e_postgres", "airflow_stacks"})


def pytest_collection_modifyitems(config: object, items: list) -> None:
    """Under pytest-xdist (``make test`` runs ``-n``), every test on a PostgreSQL Airflow stack runs on one
    worker: the metadata template is migrated once, and two stacks never compete for the two cores (run
    side by side, the 300-interval backfill and the 3-interval one hit apache/airflow#72716 under load)."""
    import pytest

    for item in items:
        if item.get_closest_marker("xdist_group"):  # a test that asks for a worker of its own keeps it
            continue
        if _STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("airflow-stack"))
