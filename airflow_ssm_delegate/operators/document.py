"""``SsmPublishDocumentOperator``: publish a runbook from a DAG, idempotently (``publish`` as a task).

Re-running it with unchanged content makes no new version, so it can sit at the head of a deployment DAG
and run on every schedule. Like the other operators, the module imports nothing AWS-related until the task
runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.compat import AirflowFailException
from airflow_ssm_delegate.connection import CONNECTION_TEMPLATE_FIELDS
from airflow_ssm_delegate.operators.base import SsmAutomationBaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class SsmPublishDocumentOperator(SsmAutomationBaseOperator):
    """Create or update an Automation runbook, make it the default version, optionally share it.

    Returns ``{"name", "version", "sha256"}`` — the pin for the delegation policy. The runbook is linted
    first; a runbook with lint errors, a bad name or a bad account id fails the task without retries.

    :param runbook: path of the runbook file (YAML or JSON), e.g. ``runbook_path("LaunchTaggedInstance")``.
        Templated. Give either ``runbook`` or ``content``.
    :param content: the runbook text itself. Templated.
    :param document_name: document name (default: the file stem of ``runbook``). Templated.
    :param share_accounts: 12-digit account ids to share the default version with. Templated.
    """

    template_fields: Sequence[str] = (
        "runbook",
        "content",
        "document_name",
        "share_accounts",
        *CONNECTION_TEMPLATE_FIELDS,
    )
    ui_color = "#f9c915"

    def __init__(
        self,
        *,
        runbook: str | os.PathLike[str] | None = None,
        content: str | None = None,
        document_name: str | None = None,
        share_accounts: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (runbook is None) == (content is None):
            raise ValueError(
                f"{self.task_id}: give exactly one of runbook (a file path) or content (the text)"
            )
        if content is not None and not document_name:
            raise ValueError(f"{self.task_id}: document_name is required when publishing content")
        self.runbook = os.fspath(runbook) if runbook is not None else None
        self.content = content
        self.document_name = document_name
        self.share_accounts = list(share_accounts)

    def execute(self, context: Context) -> dict[str, str]:
        from pathlib import Path

        from airflow_ssm_delegate.documents.publish import PublishError, publish_document

        source: str | Path = Path(self.runbook) if self.runbook is not None else str(self.content)
        try:
            result = publish_document(self.hook.conn, source, self.document_name, self.share_accounts)
        except PublishError as exc:
            raise AirflowFailException(f"Cannot publish runbook: {exc}") from exc
        change = "created" if result.created else "new version" if result.new_version else "unchanged"
        self.log.info(
            "Runbook %s version %s (%s), sha256 %s", result.name, result.version, change, result.sha256
        )
        return {"name": result.name, "version": result.version, "sha256": result.sha256}
