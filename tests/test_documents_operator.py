"""SsmPublishDocumentOperator against the local runtime through a real Airflow ``aws`` connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.compat import AirflowFailException
from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.operators.document import SsmPublishDocumentOperator
from tests.fixtures.local_runtime import client_for, unique

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer

LAUNCH = runbook_path("LaunchTaggedInstance")


def test_publishes_once_and_is_idempotent(
    local_server: LocalAutomationServer, aws_conn_env: Callable[..., dict[str, Any]]
) -> None:
    name = unique("Published")
    first = SsmPublishDocumentOperator(task_id="publish", runbook=LAUNCH, document_name=name).execute({})
    assert first["name"] == name and first["version"] == "1" and len(first["sha256"]) == 64
    again = SsmPublishDocumentOperator(
        task_id="again", content=LAUNCH.read_text(), document_name=name
    ).execute({})
    assert again == first
    document = client_for(local_server, "ssm").describe_document(Name=name)["Document"]
    assert (document["LatestVersion"], document["DefaultVersion"], document["Hash"]) == (
        "1",
        "1",
        first["sha256"],
    )


def test_invalid_runbook_fails_without_retry(
    tmp_path: Path, local_server: LocalAutomationServer, aws_conn_env: Callable[..., dict[str, Any]]
) -> None:
    bad = tmp_path / "Bad.yaml"
    bad.write_text(LAUNCH.read_text().replace("{{ Owner }}", "{{ Ownr }}"))
    with pytest.raises(AirflowFailException, match="SSM010"):
        SsmPublishDocumentOperator(task_id="publish", runbook=str(bad)).execute({})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of runbook"),
        ({"runbook": "a.yaml", "content": "x"}, "exactly one of runbook"),
        ({"content": "x"}, "document_name is required"),
    ],
)
def test_arguments_are_checked_at_definition(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SsmPublishDocumentOperator(task_id="publish", **kwargs)
