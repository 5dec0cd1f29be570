"""Conformance: every published runbook of the corpus is accepted by the hook, lint and the local runtime.

A runbook that AWS accepts and runs is valid by definition, so each one must pass three layers, each its
own test case per runbook:

- the hook's delegation-policy check, with valid parameters generated from the runbook's declarations,
  against a policy that lists the runbook and a role (botocore Stubber; StartAutomationExecution must be
  called with those parameters);
- ``airflow-ssm-delegate lint --format json``: no finding of severity ``error``;
- the local runtime: CreateDocument under the runbook's name, then StartAutomationExecution through
  boto3 (Interactive mode, so no step runs) returns an execution, which is then cancelled: running it is
  tests/test_conformance_e2e.py's job.

The corpus lives outside git (see tests/corpus_support.py); without it every case skips, naming where
the corpus was looked for.
"""

from __future__ import annotations

import contextlib
import json
import re
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from airflow_ssm_delegate import cli
from airflow_ssm_delegate.hooks.automation import SsmAutomationHook
from tests import corpus_support
from tests.corpus_runtime import all_actions_role, publish
from tests.corpus_support import (
    ROLE_ARN,
    CorpusEntry,
    SampleResources,
    api_form,
    assume_role_parameter,
    load_manifest,
    normalised,
    parse_document,
    runbook_text,
    sample_value,
    valid_parameters,
)
from tests.fixtures.local_runtime import client_for, unique

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_ssm_delegate.local.server import LocalAutomationServer

ENTRIES = load_manifest()
EXECUTION_ID = "11111111-2222-3333-4444-555555555555"


def by_runbook() -> Any:
    return pytest.mark.parametrize("entry", ENTRIES, ids=[entry.test_id for entry in ENTRIES])


def test_the_manifest_lists_enough_licensed_runbooks() -> None:
    """The corpus is what issue 9 asks for: 50+ published runbooks, each with provenance and a licence."""
    assert len(ENTRIES) >= 50
    assert len({entry.document_name for entry in ENTRIES}) == len(ENTRIES)
    for entry in ENTRIES:
        assert len(entry.commit) == 40 and int(entry.commit, 16) >= 0, entry
        assert entry.licence in {"MIT", "MIT-0", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause"}, entry
        assert len(entry.sha256) == 64, entry


def test_without_a_corpus_the_cases_skip_naming_both_places(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(corpus_support.CORPUS_ENV, raising=False)
    monkeypatch.setattr(corpus_support, "DEFAULT_ROOT", tmp_path / "absent")
    with pytest.raises(pytest.skip.Exception) as skipped:
        runbook_text(ENTRIES[0])
    assert corpus_support.CORPUS_ENV in str(skipped.value)
    assert str(tmp_path / "absent") in str(skipped.value)


def test_a_corpus_file_that_differs_from_the_manifest_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry = ENTRIES[0]
    (tmp_path / entry.file).parent.mkdir(parents=True)
    (tmp_path / entry.file).write_text("schemaVersion: '0.3'\n")
    monkeypatch.setenv(corpus_support.CORPUS_ENV, str(tmp_path))
    with pytest.raises(AssertionError, match="differs from the manifest"):
        runbook_text(entry)


# ------------------------------------------------------------------------------------------ hook


@pytest.fixture(scope="module")
def hook() -> SsmAutomationHook:
    return SsmAutomationHook(aws_conn_id=None, region_name="us-east-1")


def _policy_file(tmp_path: Path, name: str, with_role: bool) -> Path:
    """A delegation policy listing this runbook: under a role, or (no assumeRole) without one."""
    if with_role:
        text = f"""\
        require_service_role: true
        documents:
          {name}:
            roles: ["{ROLE_ARN}"]
        """
    else:
        text = f"""\
        require_service_role: false
        documents:
          {name}: {{}}
        """
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@by_runbook()
def test_the_hook_policy_check_accepts_it(
    entry: CorpusEntry, hook: SsmAutomationHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = runbook_text(entry)
    document = parse_document(text)
    role_parameter = assume_role_parameter(document)
    uses_role = role_parameter is not None or bool(document.get("assumeRole"))
    monkeypatch.setenv(
        "AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(_policy_file(tmp_path, entry.document_name, uses_role))
    )
    values = valid_parameters(document, SampleResources())
    sent: dict[str, Any] = {}

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.update(params)

    hook.conn.meta.events.register("provide-client-params.ssm.StartAutomationExecution", capture)
    try:
        with Stubber(hook.conn) as stubber:
            stubber.add_response(
                "get_document",
                {
                    "Name": entry.document_name,
                    "DocumentVersion": "1",
                    "Content": text,
                    "DocumentType": "Automation",
                    "DocumentFormat": entry.document_format,
                },
                {"Name": entry.document_name},
            )
            stubber.add_response(
                "describe_document",
                {
                    "Document": {
                        "Name": entry.document_name,
                        "DocumentVersion": "1",
                        "Hash": entry.sha256,
                        "DocumentType": "Automation",
                    }
                },
                {"Name": entry.document_name, "DocumentVersion": "1"},
            )
            stubber.add_response("start_automation_execution", {"AutomationExecutionId": EXECUTION_ID})
            execution_id = hook.start_automation_execution(
                entry.document_name,
                values,
                service_role_arn=ROLE_ARN if role_parameter is not None else None,
            )
            stubber.assert_no_pending_responses()
    finally:
        hook.conn.meta.events.unregister("provide-client-params.ssm.StartAutomationExecution", capture)
    assert execution_id == EXECUTION_ID
    assert sent["DocumentName"] == entry.document_name
    assert sent["DocumentVersion"] == "1"
    parameters = sent.get("Parameters", {})
    expected = {name: api_form(value) for name, value in values.items()}
    if role_parameter is not None:
        expected[role_parameter] = [ROLE_ARN]
    assert {name: normalised(items) for name, items in parameters.items() if name in expected} == {
        name: normalised(items) for name, items in expected.items()
    }


# ------------------------------------------------------------------------------------------ lint


@by_runbook()
def test_lint_finds_no_error(entry: CorpusEntry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = runbook_text(entry)
    path = tmp_path / entry.path.rsplit("/", 1)[-1]
    path.write_text(text)
    cli.main(["lint", "--format", "json", str(path)])
    findings = json.loads(capsys.readouterr().out)
    # Until lint reports severities every finding is an error; with them, only severity "error" counts.
    errors = [finding for finding in findings if finding.get("severity", "error") == "error"]
    assert errors == [], f"{entry.document_name} ({entry.repo} {entry.path}): {errors}"


# --------------------------------------------------------------------------------------- runtime


@pytest.fixture(scope="module")
def corpus_role(local_server: LocalAutomationServer) -> str:
    """A service role the runbooks may run under."""
    return all_actions_role(local_server, "CorpusAutomationRole")


class LocalResources(SampleResources):
    """Real resources on the local runtime, for runbooks whose parameters must name existing ones."""

    def __init__(self, server: LocalAutomationServer, role_arn: str) -> None:
        self.ec2 = client_for(server, "ec2")
        self.server = server
        self.role = role_arn

    def instance_id(self) -> str:
        instance = self.ec2.run_instances(ImageId="ami-04681a1dbd79675a5", MinCount=1, MaxCount=1)
        return str(instance["Instances"][0]["InstanceId"])

    def image_id(self) -> str:
        return str(
            self.ec2.create_image(InstanceId=self.instance_id(), Name=unique("corpus-image"))["ImageId"]
        )

    def volume_id(self) -> str:
        return str(self.ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])

    def snapshot_id(self) -> str:
        return str(self.ec2.create_snapshot(VolumeId=self.volume_id())["SnapshotId"])

    def bucket_name(self) -> str:
        name = unique("corpus-bucket").lower()
        client_for(self.server, "s3").create_bucket(Bucket=name)
        return name

    def role_arn(self) -> str:
        return self.role


@pytest.fixture
def cancel_afterwards(local_server: LocalAutomationServer) -> Iterator[list[str]]:
    """Execution ids to cancel at the end of the test (only the start is under test here)."""
    started: list[str] = []
    yield started
    ssm = client_for(local_server, "ssm")
    for execution_id in started:
        with contextlib.suppress(ClientError):  # already ended
            ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")


SSM_REFERENCE = re.compile(r"^\{\{\s*ssm:([^}\s]+)\s*\}\}$")


def provide_parameter_store_defaults(ssm: Any, document: dict[str, Any], resources: SampleResources) -> None:
    """A default written ``{{ssm:/name}}`` needs that parameter, which the runbook's deployment creates."""
    for name, declaration in (document.get("parameters") or {}).items():
        found = SSM_REFERENCE.match(str((declaration or {}).get("default", "")).strip())
        if found and not found.group(1).startswith("/aws/"):
            without_default = {key: value for key, value in declaration.items() if key != "default"}
            value = api_form(sample_value(name, without_default, resources))[0]
            ssm.put_parameter(Name=found.group(1), Value=value, Type="String", Overwrite=True)


@by_runbook()
def test_the_local_runtime_accepts_it_at_start(entry: CorpusEntry, request: pytest.FixtureRequest) -> None:
    text = runbook_text(entry)  # first: without a corpus, skip before starting the runtime
    local_server: LocalAutomationServer = request.getfixturevalue("local_server")
    corpus_role: str = request.getfixturevalue("corpus_role")
    cancel_afterwards: list[str] = request.getfixturevalue("cancel_afterwards")
    document = parse_document(text)
    ssm = client_for(local_server, "ssm")
    publish(ssm, entry, text)
    resources = LocalResources(local_server, corpus_role)
    provide_parameter_store_defaults(ssm, document, resources)
    parameters = {name: api_form(value) for name, value in valid_parameters(document, resources).items()}
    role_parameter = assume_role_parameter(document)
    if role_parameter is not None:
        parameters[role_parameter] = [corpus_role]
    # Interactive: accepted, but no step runs before a StartStep signal, so nothing touches the shared
    # account (e.g. account-wide settings) before the execution is cancelled.
    arguments: dict[str, Any] = {"DocumentName": entry.document_name, "Mode": "Interactive"}
    if parameters:
        arguments["Parameters"] = parameters
    execution_id = ssm.start_automation_execution(**arguments)["AutomationExecutionId"]
    cancel_afterwards.append(execution_id)
    execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
    assert execution["DocumentName"] == entry.document_name
    sent = {name: normalised(items) for name, items in execution["Parameters"].items() if name in parameters}
    assert sent == {name: normalised(items) for name, items in parameters.items()}
