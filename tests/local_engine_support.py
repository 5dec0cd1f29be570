"""Test harness for the local Automation engine alone: a plain moto server and a recording Authorizer.

A pytest plugin (see conftest): fixtures ``moto_url`` and ``h`` (the harness).

The Authorizer here is a test double of the engine's own interface (``local.identity.Authorizer``);
tests of IAM as AWS decides it go through ``LocalAutomationServer`` (fixture ``local_server``).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from moto.server import ThreadedMotoServer

from airflow_ssm_delegate.documents.model import Runbook, parse_runbook
from airflow_ssm_delegate.local.clock import SimulatedClock
from airflow_ssm_delegate.local.engine import AutomationEngine
from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.identity import Caller, Credentials
from tests.fixtures.local_runtime import unique

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

REGION = "us-east-1"
ACCOUNT = "123456789012"
CALLER = Caller("arn:aws:iam::123456789012:user/operator", Credentials("AKIACALLER", "caller-secret"))
ROLE_ARN = "arn:aws:iam::123456789012:role/AutomationRole"
ROLE_CREDENTIALS = Credentials("ASIAROLE", "role-secret", "role-token")


@dataclass
class RecordingAuthorizer:
    """Allows everything unless told otherwise; remembers what it was asked."""

    refuse_start: str | None = None
    refuse_role: str | None = None
    starts: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    assumed: list[tuple[str, str]] = field(default_factory=list)

    def authorize_start(
        self,
        caller: Caller,
        document_name: str,
        document_version: str,
        role_arn: str | None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.starts.append((caller.arn, document_name, document_version, role_arn))
        if self.refuse_start:
            raise AutomationApiError("AccessDeniedException", self.refuse_start)

    def assume_service_role(self, role_arn: str, execution_id: str) -> Credentials:
        self.assumed.append((role_arn, execution_id))
        if self.refuse_role:
            raise AutomationApiError("AccessDenied", self.refuse_role)
        return ROLE_CREDENTIALS


class Documents:
    """In-memory documents for ``load_document``: name -> list of versions (1-based)."""

    def __init__(self) -> None:
        self.versions: dict[str, list[Runbook]] = {}

    def add(self, name: str, content: Mapping[str, Any]) -> str:
        self.versions.setdefault(name, []).append(parse_runbook(content, name))
        return str(len(self.versions[name]))

    def load(self, name: str, version: str | None) -> tuple[str, str, Runbook]:
        if name not in self.versions:
            raise AutomationApiError("AutomationDefinitionNotFoundException", f"No document {name}")
        versions = self.versions[name]
        number = len(versions) if version in (None, "$DEFAULT", "$LATEST") else int(str(version))
        if not 1 <= number <= len(versions):
            raise AutomationApiError("AutomationDefinitionVersionNotFoundException", f"No version {version}")
        return name, str(number), versions[number - 1]


@contextmanager
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class Harness:
    engine: AutomationEngine
    documents: Documents
    authorizer: RecordingAuthorizer
    clock: SimulatedClock

    def run(
        self, content: Mapping[str, Any], parameters: Mapping[str, Any] | None = None, **request: Any
    ) -> str:
        """Register ``content`` under a fresh name and start it; the execution id."""
        name = f"Doc{len(self.documents.versions)}"
        self.documents.add(name, content)
        body = {
            "DocumentName": name,
            "Parameters": {k: v if isinstance(v, list) else [v] for k, v in (parameters or {}).items()},
        }
        body.update(request)
        return self.engine.start(body, CALLER)

    def finish(self, execution_id: str, timeout: float = 20.0) -> dict[str, Any]:
        result = self.engine.wait(execution_id, timeout)
        assert result["AutomationExecutionStatus"] not in (
            "Pending",
            "InProgress",
            "Waiting",
            "Cancelling",
        ), result
        return result

    def until(self, execution_id: str, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        """Poll GetAutomationExecution until ``predicate(execution)`` holds (fails the test on timeout)."""
        end = time.monotonic() + timeout
        while True:
            execution = self.engine.get(execution_id)
            if predicate(execution):
                return execution
            assert time.monotonic() < end, f"condition never held; last state {execution}"
            time.sleep(0.01)


@contextmanager
def harness(endpoint: str, time_scale: float = 1.0) -> Iterator[Harness]:
    clock = SimulatedClock(time_scale)
    documents = Documents()
    authorizer = RecordingAuthorizer()
    engine = AutomationEngine(
        clock=clock,
        endpoint_url=endpoint,
        region=REGION,
        account_id=ACCOUNT,
        authorizer=authorizer,
        load_document=documents.load,
    )
    try:
        yield Harness(engine, documents, authorizer, clock)
    finally:
        engine.shutdown()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A plain moto server (no IAM enforcement) shared by the tests of one module."""
    with moto_endpoint() as url:
        yield url


@pytest.fixture
def h(moto_url: str) -> Iterator[Harness]:
    """A fresh engine on ``moto_url`` whose clock runs 3600x, so runbook sleeps pass in seconds."""
    with harness(moto_url, time_scale=3600) as made:
        yield made


def runbook(*steps: Mapping[str, Any], **top: Any) -> dict[str, Any]:
    """A schema-0.3 runbook with these mainSteps (and other top-level keys)."""
    return {"schemaVersion": "0.3", "mainSteps": list(steps), **top}


def role_runbook(*steps: Mapping[str, Any], role_default: str | None = None, **top: Any) -> dict[str, Any]:
    """A schema-0.3 runbook that runs as the role its ``AutomationAssumeRole`` parameter names
    (``role_default``: that parameter's default; without one the parameter is required)."""
    role: dict[str, Any] = {"type": "String"}
    if role_default is not None:
        role["default"] = role_default
    return runbook(
        *steps, assumeRole="{{ AutomationAssumeRole }}", parameters={"AutomationAssumeRole": role}, **top
    )


def start_as_role(ssm: Any, prefix: str, content: Mapping[str, Any], role_arn: str) -> str:
    """Publish ``content`` (a ``role_runbook``) as a new Automation document named after ``prefix`` and start
    it with ``role_arn`` as its AutomationAssumeRole: the execution id."""
    name = unique(prefix)
    ssm.create_document(
        Name=name, Content=json.dumps(content), DocumentType="Automation", DocumentFormat="JSON"
    )
    started = ssm.start_automation_execution(
        DocumentName=name, Parameters={"AutomationAssumeRole": [role_arn]}
    )
    return str(started["AutomationExecutionId"])


def step(name: str, action: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "action": action, **keys}


def steps_by_name(execution: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["StepName"]: s for s in execution["StepExecutions"]}
