"""publish_document against moto's SSM: create, idempotent re-publish, update, default version, share."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.documents.lint import lint_file
from airflow_ssm_delegate.documents.publish import PublishError, publish_document

if TYPE_CHECKING:
    from collections.abc import Iterator

LAUNCH = runbook_path("LaunchTaggedInstance")


@pytest.fixture
def ssm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def test_create_then_republish_makes_no_new_version(ssm: Any) -> None:
    first = publish_document(ssm, LAUNCH)
    assert (first.name, first.version, first.created, first.new_version) == (
        "LaunchTaggedInstance",
        "1",
        True,
        True,
    )
    assert first.sha256 == hashlib.sha256(LAUNCH.read_bytes()).hexdigest()
    again = publish_document(ssm, LAUNCH)
    assert (again.version, again.created, again.new_version, again.sha256) == (
        "1",
        False,
        False,
        first.sha256,
    )
    assert ssm.describe_document(Name="LaunchTaggedInstance")["Document"]["LatestVersion"] == "1"


def test_changed_content_becomes_the_default_version(ssm: Any, tmp_path: Path) -> None:
    publish_document(ssm, LAUNCH, "Launch")
    changed = tmp_path / "Launch.yaml"
    changed.write_text(LAUNCH.read_text().replace("Apply the corporate tags.", "Apply the tags."))
    result = publish_document(ssm, changed)
    assert (result.version, result.created, result.new_version) == ("2", False, True)
    assert ssm.describe_document(Name="Launch")["Document"]["DefaultVersion"] == "2"
    # Publishing the first content again reuses version 1 and makes it the default (a rollback).
    rollback = publish_document(ssm, LAUNCH.read_text(), "Launch")
    assert (rollback.version, rollback.new_version) == ("1", False)
    assert ssm.describe_document(Name="Launch")["Document"]["DefaultVersion"] == "1"


def test_share_with_accounts(ssm: Any) -> None:
    result = publish_document(ssm, LAUNCH, share_accounts=["111122223333", "111122223333"])
    assert result.shared_with == ("111122223333",)
    permission = ssm.describe_document_permission(Name="LaunchTaggedInstance", PermissionType="Share")
    assert permission["AccountIds"] == ["111122223333"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"share_accounts": ["All"]}, "public sharing is refused"),
        ({"share_accounts": "111122223333"}, r"must be a list .* write \['111122223333'\]"),
        ({"name": "AWS-Mine"}, "not starting with aws"),
        ({"name": "x"}, "is invalid"),
    ],
)
def test_bad_requests_are_refused_before_any_call(kwargs: dict[str, Any], message: str) -> None:
    # No mock_aws and no endpoint: any AWS call would fail differently.
    with pytest.raises(PublishError, match=message):
        publish_document(object(), LAUNCH, **kwargs)


def test_lint_errors_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "Bad.yaml"
    bad.write_text(LAUNCH.read_text().replace("aws:createTags", "aws:createTag"))
    with pytest.raises(PublishError, match=r"1 lint error.*SSM003"):
        publish_document(object(), bad)


def test_text_needs_a_name() -> None:
    with pytest.raises(PublishError, match="give the document name"):
        publish_document(object(), LAUNCH.read_text())


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="cannot read runbook"):
        publish_document(object(), Path(tmp_path / "missing.yaml"))


def test_a_document_of_another_type_is_not_overwritten(ssm: Any) -> None:
    command = '{"schemaVersion": "2.2", "description": "x", "mainSteps": [{"action": "aws:runShellScript", '
    command += '"name": "run", "inputs": {"runCommand": ["echo hi"]}}]}'
    ssm.create_document(Content=command, Name="Shared", DocumentType="Command", DocumentFormat="JSON")
    with pytest.raises(PublishError, match="exists as a Command document"):
        publish_document(ssm, LAUNCH, "Shared")


def test_warnings_alone_do_not_stop_a_publish(tmp_path: Path) -> None:
    unused = tmp_path / "Unused.yaml"
    unused.write_text(
        LAUNCH.read_text().replace(
            "parameters:\n", "parameters:\n  NotUsed:\n    type: String\n    default: x\n", 1
        )
    )
    assert [(f.code, f.severity) for f in lint_file(unused)] == [("SSM025", "warning")]
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        assert publish_document(ssm, unused).version == "1"
