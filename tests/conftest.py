"""Test session set-up: an isolated AIRFLOW_HOME before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile

import pytest

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


def _worker_group(item: pytest.Item) -> str | None:
    """The pytest-xdist group a test must share a worker with, or None to let xdist place it freely.

    Every test on a PostgreSQL Airflow stack: one group, so the metadata template is migrated once and two
    stacks never compete for the two cores (side by side, the 300-interval backfill and the 3-interval one
    hit apache/airflow#72716 under load). A test using a module-scoped fixture: its module's group, so the
    module's world (a local runtime, a stack, a 300-interval backfill) is built once, not once per worker.
    """
    names = set(getattr(item, "fixturenames", ()))
    if _STACK_FIXTURES & names:
        return "airflow-stack"
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    if any(d.scope == "module" for defs in definitions.values() for d in defs):
        return item.nodeid.split("::", 1)[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook turns xdist_group marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs ``-n``), place tests that share a world on one worker."""
    for item in items:
        if item.get_closest_marker("xdist_group"):  # a test that asks for a worker of its own keeps it
            continue
        group = _worker_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
