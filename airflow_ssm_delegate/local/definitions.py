"""The engine's ``load_document`` callback: runbooks as published in moto's SSM backend.

Resolves ``$DEFAULT`` (or no version), ``$LATEST`` and version numbers, and accepts a document name or
its ARN (shared documents are started by ARN; the owner account's backend is read). Errors carry the
StartAutomationExecution error codes of the SSM API model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moto.ssm.models import Document, ssm_backends

from airflow_ssm_delegate.documents.model import Runbook, RunbookError, parse_runbook
from airflow_ssm_delegate.local.errors import AutomationApiError

_DOCUMENT_ARN = re.compile(
    r"^arn:aws[\w-]*:ssm:(?P<region>[\w-]+):(?P<account>\d{12}):document/(?P<name>.+)$"
)


@dataclass(frozen=True)
class DocumentLoader:
    """Reads Automation documents of one account and region from moto's SSM backend."""

    account_id: str
    region: str

    def __call__(self, document_name: str, document_version: str | None) -> tuple[str, str, Runbook]:
        """(name, resolved version, parsed runbook) for ``document_name`` at ``document_version``."""
        account_id, region, name = self._locate(document_name)
        documents = ssm_backends[account_id][region]._documents.get(name)
        if documents is None:
            raise AutomationApiError(
                "AutomationDefinitionNotFoundException",
                f"Automation definition {document_name} was not found. Publish it with CreateDocument "
                "(DocumentType Automation) or check the name.",
            )
        document: Document | None
        if document_version in (None, "", "$DEFAULT"):
            document = documents.get_default_version()
        elif document_version == "$LATEST":
            document = documents.get_latest_version()
        else:
            document = documents.find_by_version(document_version)
        if document is None:
            raise AutomationApiError(
                "AutomationDefinitionVersionNotFoundException",
                f"Version {document_version} of automation definition {name} was not found "
                f"(versions: {', '.join(sorted(documents.versions, key=int))}; or use $DEFAULT / $LATEST).",
            )
        if document.document_type != "Automation":
            raise AutomationApiError(
                "AutomationDefinitionNotFoundException",
                f"{name} is a {document.document_type} document, not an Automation runbook.",
            )
        try:
            runbook = parse_runbook(document.content, source=f"{name}:{document.document_version}")
        except RunbookError as error:
            raise AutomationApiError(
                "InvalidDocumentContent",
                f"Automation definition {name} version {document.document_version} is not a valid schema 0.3 "
                f"runbook: {error}. Fix it and publish a new version.",
            ) from error
        return name, str(document.document_version), runbook

    def target_type(self, document_name: str, document_version: str) -> str | None:
        """The document's TargetType as published (CreateDocument's, e.g. ``/AWS::EC2::Instance``), or None;
        rate control keeps only tagged resources of that type."""
        account_id, region, name = self._locate(document_name)
        documents = ssm_backends[account_id][region]._documents.get(name)
        document = documents.find_by_version(document_version) if documents is not None else None
        return getattr(document, "target_type", None) or None

    def _locate(self, document_name: str) -> tuple[str, str, str]:
        match = _DOCUMENT_ARN.match(document_name)
        if match:
            return match["account"], match["region"], match["name"]
        return self.account_id, self.region, document_name
