"""Publish a runbook: create or update the SSM document idempotently, make it the default, share it.

Unchanged content never makes a new version (the version whose SHA-256 matches is reused), so running
publish again — from the CLI or from ``SsmPublishDocumentOperator`` on every DAG run — is safe. The
runbook is linted first: a document with lint errors never reaches AWS. The SHA-256 returned is the
document Hash SSM reports, the value a delegation policy pins.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from airflow_ssm_delegate.documents.lint import WARNING, lint_text

if TYPE_CHECKING:
    from collections.abc import Sequence

ACCOUNT_ID = re.compile(r"\d{12}")
DOCUMENT_NAME = re.compile(r"[a-zA-Z0-9_.\-]{3,128}")
MAX_SHARE_ACCOUNTS = 20  # ModifyDocumentPermission's AccountIdsToAdd limit


class PublishError(ValueError):
    """The runbook cannot be published as asked; the message says why and what to do."""


@dataclass(frozen=True)
class PublishResult:
    name: str
    version: str
    sha256: str
    created: bool  # the document did not exist before
    new_version: bool = False  # a version was added (False: the content was already published)
    shared_with: tuple[str, ...] = ()


def read_content(content: str | bytes | os.PathLike[str]) -> str:
    """A path (``os.PathLike``) is read; ``str``/``bytes`` are the runbook text itself."""
    if isinstance(content, os.PathLike):
        try:
            return Path(content).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PublishError(f"cannot read runbook {os.fspath(content)}: {exc}") from exc
    return content.decode("utf-8") if isinstance(content, bytes) else content


def _format(text: str) -> str:
    try:
        json.loads(text)
    except ValueError:
        return "YAML"
    return "JSON"


def _check_request(text: str, name: str, share_accounts: Sequence[str], source: str) -> None:
    if not DOCUMENT_NAME.fullmatch(name) or name.lower().startswith(("aws", "amazon")):
        raise PublishError(
            f"document name {name!r} is invalid: use 3-128 letters, digits, '_', '-', '.', "
            "not starting with aws or amazon"
        )
    bad = [account for account in share_accounts if not ACCOUNT_ID.fullmatch(account)]
    if bad:
        raise PublishError(f"cannot share with {bad}: give 12-digit account ids (public sharing is refused)")
    if len(set(share_accounts)) > MAX_SHARE_ACCOUNTS:
        raise PublishError(f"share with at most {MAX_SHARE_ACCOUNTS} accounts per publish")
    findings = [f for f in lint_text(text, source) if f.severity != WARNING]  # warnings pass, as in lint
    if findings:
        listing = "; ".join(str(finding) for finding in findings[:10])
        raise PublishError(f"the runbook has {len(findings)} lint error(s), fix them first: {listing}")


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(ssm: Any, name: str, version: str | None = None) -> dict[str, Any] | None:
    try:
        kwargs = {"Name": name, **({"DocumentVersion": version} if version else {})}
        return dict(ssm.describe_document(**kwargs)["Document"])
    except ClientError as error:
        if _error_code(error) == "InvalidDocument":
            return None
        raise


def _version_with_hash(ssm: Any, name: str, latest: str, sha256: str) -> str | None:
    """The existing version whose content hash is ``sha256``, newest first (versions are 1..latest)."""
    for version in range(int(latest), 0, -1):
        try:
            described = _describe(ssm, name, str(version))
        except ClientError as error:
            if _error_code(error) == "InvalidDocumentVersion":  # a deleted version
                continue
            raise
        if described and described.get("Hash") == sha256:
            return str(version)
    return None


def _create_or_update(ssm: Any, text: str, name: str, sha256: str) -> tuple[str, bool, bool]:
    """(version, created, new_version)."""
    document_format = _format(text)
    current = _describe(ssm, name)
    if current is None:
        created = ssm.create_document(
            Content=text, Name=name, DocumentType="Automation", DocumentFormat=document_format
        )
        return str(created["DocumentDescription"]["DocumentVersion"]), True, True
    if current.get("DocumentType", "Automation") != "Automation":
        raise PublishError(
            f"document {name} exists as a {current['DocumentType']} document, not an Automation "
            "runbook; publish under another name"
        )
    existing = _version_with_hash(ssm, name, str(current["LatestVersion"]), sha256)
    if existing is not None:
        return existing, False, False
    try:
        updated = ssm.update_document(
            Content=text, Name=name, DocumentVersion="$LATEST", DocumentFormat=document_format
        )
    except ClientError as error:
        if _error_code(error) != "DuplicateDocumentContent":
            raise
        raise PublishError(
            f"SSM reports the content of {name} exists already but no version has SHA-256 "
            f"{sha256}; check the document's versions"
        ) from error
    return str(updated["DocumentDescription"]["DocumentVersion"]), False, True


def publish_document(
    ssm_client: Any,
    content: str | bytes | os.PathLike[str],
    name: str | None = None,
    share_accounts: Sequence[str] = (),
) -> PublishResult:
    """Create or update the Automation document ``name``, make the published version the default, share it.

    ``name`` defaults to the file stem when ``content`` is a path. Raises ``PublishError`` for a bad
    request (before any AWS call) and lets botocore's ``ClientError`` through for AWS refusals.
    """
    if name is None:
        if not isinstance(content, os.PathLike):
            raise PublishError("give the document name when publishing runbook text")
        name = Path(content).stem
    if isinstance(share_accounts, str):  # iterating it would "share" with one account per character
        raise PublishError(
            f"share_accounts must be a list of 12-digit account ids, got the string {share_accounts!r}; "
            f"write [{share_accounts!r}]"
        )
    text = read_content(content)
    accounts = tuple(dict.fromkeys(share_accounts))
    _check_request(text, name, accounts, os.fspath(content) if isinstance(content, os.PathLike) else name)
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    version, created, new_version = _create_or_update(ssm_client, text, name, sha256)
    current = _describe(ssm_client, name) or {}
    if str(current.get("DefaultVersion")) != version:
        ssm_client.update_document_default_version(Name=name, DocumentVersion=version)
    if accounts:
        ssm_client.modify_document_permission(
            Name=name,
            PermissionType="Share",
            AccountIdsToAdd=list(accounts),
            SharedDocumentVersion="$DEFAULT",
        )  # the API shares $DEFAULT/$LATEST/$ALL only; the default is the version just published
    published = _describe(ssm_client, name, version) or {}
    return PublishResult(name, version, str(published.get("Hash") or sha256), created, new_version, accounts)
