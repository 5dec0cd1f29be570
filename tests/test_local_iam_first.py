"""IAM before content: a caller who may not start a runbook learns nothing about it.

On AWS an unauthorised StartAutomationExecution gets AccessDeniedException whether or not the runbook
exists, has that version, or would accept the parameters. The local runtime authorises the start on the
requested name and version before it reads the document; only iam:PassRole waits for the parameters
(they name the role).
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.local_runtime import error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable

ACCOUNT = "123456789012"
RUNBOOK = {
    "schemaVersion": "0.3",
    "assumeRole": "{{ AutomationAssumeRole }}",
    "parameters": {
        "AutomationAssumeRole": {"type": "String", "default": ""},
        "Size": {"type": "String", "allowedValues": ["small", "large"]},
    },
    "mainSteps": [{"name": "Nap", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}],
}
UNSUPPORTED = {
    "schemaVersion": "0.3",
    "mainSteps": [{"name": "Script", "action": "aws:executeScript", "inputs": {}}],
}


# The Service Authorization Reference's required resource type of a start: the new execution.
EXECUTIONS = {
    "Effect": "Allow",
    "Action": "ssm:StartAutomationExecution",
    "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-execution/*",
}


def _start(runbook: str, version: str = "*") -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "ssm:StartAutomationExecution",
        "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/{runbook}:{version}",
    }


@pytest.fixture
def runbook(boto_client: Callable[..., Any]) -> str:
    """A published runbook (versions 1 and 2, default 1) with a parameter that has allowed values."""
    name = unique("Guarded")
    ssm = boto_client("ssm")
    ssm.create_document(Name=name, Content=json.dumps(RUNBOOK), DocumentType="Automation")
    changed = {**RUNBOOK, "description": "version 2"}
    ssm.update_document(Name=name, Content=json.dumps(changed), DocumentVersion="$LATEST")
    return name


def test_a_caller_not_allowed_to_start_gets_access_denied_before_any_content_error(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]], runbook: str
) -> None:
    unsupported = unique("Unsupported")
    boto_client("ssm").create_document(
        Name=unsupported, Content=json.dumps(UNSUPPORTED), DocumentType="Automation"
    )
    other = unique("Other")
    outsider = boto_client(
        "ssm", new_user([_start(other), EXECUTIONS], prefix="outsider")
    )  # may start another runbook
    attempts: dict[str, dict[str, Any]] = {
        "missing runbook": {"DocumentName": unique("Missing")},
        "missing version": {"DocumentName": runbook, "DocumentVersion": "99"},
        "missing runbook, $LATEST": {"DocumentName": unique("Missing"), "DocumentVersion": "$LATEST"},
        "unknown parameter": {"DocumentName": runbook, "Parameters": {"Nope": ["x"]}},
        "value not allowed": {"DocumentName": runbook, "Parameters": {"Size": ["huge"]}},
        "missing parameter": {"DocumentName": runbook},
        "unsupported action": {"DocumentName": unsupported},
    }
    for what, request in attempts.items():
        error = error_of(partial(outsider.start_automation_execution, **request))
        assert error["Code"] == "AccessDeniedException", (what, error)
        assert "ssm:StartAutomationExecution" in error["Message"], what
        assert "Size" not in error["Message"] and "executeScript" not in error["Message"], what


def test_a_caller_allowed_to_start_sees_the_content_errors(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]], runbook: str
) -> None:
    insider = boto_client("ssm", new_user([_start(runbook), EXECUTIONS], prefix="insider"))
    expected: dict[str, dict[str, Any]] = {
        "AutomationDefinitionVersionNotFoundException": {"DocumentName": runbook, "DocumentVersion": "99"},
        "InvalidAutomationExecutionParametersException": {
            "DocumentName": runbook,
            "Parameters": {"Size": ["huge"]},
        },
    }
    for code, request in expected.items():
        assert error_of(partial(insider.start_automation_execution, **request))["Code"] == code


def test_a_grant_on_the_concrete_version_covers_default_and_latest_requests(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]], runbook: str
) -> None:
    """A pin to version 1 (the default) allows a $DEFAULT start but not $LATEST (version 2)."""
    pinned = boto_client("ssm", new_user([_start(runbook, "1"), EXECUTIONS], prefix="pinned"))
    small = {"Parameters": {"Size": ["small"]}}

    assert pinned.start_automation_execution(DocumentName=runbook, **small)["AutomationExecutionId"]
    assert pinned.start_automation_execution(DocumentName=runbook, DocumentVersion="$DEFAULT", **small)
    bad_value = error_of(
        lambda: pinned.start_automation_execution(DocumentName=runbook, Parameters={"Size": ["huge"]})
    )
    assert bad_value["Code"] == "InvalidAutomationExecutionParametersException"  # allowed: may see it
    latest = error_of(
        lambda: pinned.start_automation_execution(DocumentName=runbook, DocumentVersion="$LATEST", **small)
    )
    assert latest["Code"] == "AccessDeniedException"
    assert f"automation-definition/{runbook}:2" in latest["Message"]
    missing = error_of(lambda: pinned.start_automation_execution(DocumentName=unique("Missing"), **small))
    assert missing["Code"] == "AccessDeniedException"


def test_pass_role_is_checked_once_the_parameters_name_the_role(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]], runbook: str
) -> None:
    starter = boto_client("ssm", new_user([_start(runbook), EXECUTIONS], prefix="no-pass-role"))
    role = f"arn:aws:iam::{ACCOUNT}:role/{unique('role')}"

    bad_value = error_of(
        lambda: starter.start_automation_execution(
            DocumentName=runbook, Parameters={"Size": ["huge"], "AutomationAssumeRole": [role]}
        )
    )
    assert bad_value["Code"] == "InvalidAutomationExecutionParametersException"
    denied = error_of(
        lambda: starter.start_automation_execution(
            DocumentName=runbook, Parameters={"Size": ["small"], "AutomationAssumeRole": [role]}
        )
    )
    assert denied["Code"] == "AccessDeniedException"
    assert "iam:PassRole" in denied["Message"] and role in denied["Message"]
