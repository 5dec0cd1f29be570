"""``{{ssm:name}}`` in runbook parameters: resolved from the runtime's Parameter Store at the start.

Through boto3 against the local runtime (IAM enforced): the execution's Parameters carry the stored
value, the parameter's own checks apply to that value, and a reference that cannot be read fails the
start with the API's parameter error naming both the runbook parameter and the Parameter Store name.
The corpus case (ASR-EnableEncryptionForSNSTopic) runs only when the runbook corpus is present.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from tests.corpus_support import load_manifest, parse_document, runbook_text
from tests.fixtures.local_runtime import SSM_TRUST, error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PARAMETER_ERROR = "InvalidAutomationExecutionParametersException"


_STARTED: list[str] = []


@pytest.fixture
def ssm(boto_client: Callable[..., Any]) -> Iterator[Any]:
    """The admin's SSM client; executions this test started are cancelled afterwards (only starts matter)."""
    client = boto_client("ssm")
    yield client
    while _STARTED:
        with contextlib.suppress(ClientError):  # already ended
            client.stop_automation_execution(AutomationExecutionId=_STARTED.pop(), Type="Cancel")


def runbook(ssm: Any, parameters: dict[str, Any]) -> str:
    """A published runbook with these parameter declarations and one step that waits for a signal."""
    name = unique("StoreRefs")
    content = {
        "schemaVersion": "0.3",
        "parameters": parameters,
        "mainSteps": [{"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT1H"}}],
    }
    ssm.create_document(
        Name=name, Content=json.dumps(content), DocumentType="Automation", DocumentFormat="JSON"
    )
    return name


def started_parameters(ssm: Any, name: str, parameters: dict[str, list[str]] | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"DocumentName": name, "Mode": "Interactive"}
    if parameters is not None:
        arguments["Parameters"] = parameters
    execution_id = ssm.start_automation_execution(**arguments)["AutomationExecutionId"]
    _STARTED.append(execution_id)
    execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
    return dict(execution["Parameters"])


def test_a_default_reference_is_the_stored_value_checked_by_allowed_pattern(ssm: Any) -> None:
    stored = unique("/corpus9/key")
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-1111-2222-333344445555"
    ssm.put_parameter(Name=stored, Value=key_arn, Type="String")
    name = runbook(
        ssm,
        {
            "KeyArn": {
                "type": "String",
                "default": f"{{{{ssm:{stored}}}}}",
                "allowedPattern": r"^arn:aws:kms:\S+$",
            }
        },
    )
    assert started_parameters(ssm, name)["KeyArn"] == [key_arn]


def test_a_value_given_at_start_may_embed_references(ssm: Any) -> None:
    stored = unique("/corpus9/suffix")
    ssm.put_parameter(Name=stored, Value="blue", Type="String")
    name = runbook(ssm, {"Label": {"type": "String"}})
    given = {"Label": [f"team-{{{{ ssm:{stored} }}}}-a"]}
    assert started_parameters(ssm, name, given)["Label"] == ["team-blue-a"]


def test_a_string_list_reference_gives_one_item_per_stored_entry(ssm: Any) -> None:
    stored = unique("/corpus9/days")
    ssm.put_parameter(Name=stored, Value="Monday,Wednesday,Friday", Type="StringList")
    name = runbook(ssm, {"Days": {"type": "StringList", "default": [f"{{{{ssm:{stored}}}}}", "Sunday"]}})
    assert started_parameters(ssm, name)["Days"] == ["Monday", "Wednesday", "Friday", "Sunday"]


def test_a_given_value_replaces_the_default_reference_without_reading_it(ssm: Any) -> None:
    name = runbook(ssm, {"Mode": {"type": "String", "default": f"{{{{ssm:{unique('/corpus9/absent')}}}}}"}})
    assert started_parameters(ssm, name, {"Mode": ["manual"]})["Mode"] == ["manual"]


def test_the_stored_value_must_pass_the_parameter_checks(ssm: Any) -> None:
    stored = unique("/corpus9/colour")
    ssm.put_parameter(Name=stored, Value="purple", Type="String")
    name = runbook(
        ssm,
        {"Colour": {"type": "String", "default": f"{{{{ssm:{stored}}}}}", "allowedValues": ["red", "blue"]}},
    )
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=name))
    assert error["Code"] == PARAMETER_ERROR
    assert "purple" in error["Message"] and "Colour" in error["Message"]


def test_a_missing_parameter_fails_the_start_naming_both_names(ssm: Any) -> None:
    absent = unique("/corpus9/absent")
    name = runbook(ssm, {"Target": {"type": "String", "default": f"{{{{ssm:{absent}}}}}"}})
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=name))
    assert error["Code"] == PARAMETER_ERROR
    assert absent in error["Message"] and "'Target'" in error["Message"]
    assert "not found" in error["Message"]


def test_a_secure_string_reference_is_refused_by_name(ssm: Any) -> None:
    stored = unique("/corpus9/secret")
    ssm.put_parameter(Name=stored, Value="hunter2", Type="SecureString")
    name = runbook(ssm, {"Password": {"type": "String", "default": f"{{{{ssm:{stored}}}}}"}})
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=name))
    assert error["Code"] == PARAMETER_ERROR
    assert "SecureString" in error["Message"] and stored in error["Message"]
    assert "hunter2" not in error["Message"]


def test_the_caller_needs_get_parameters_on_the_referenced_parameter(
    ssm: Any, boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    stored = unique("/corpus9/guarded")
    ssm.put_parameter(Name=stored, Value="v", Type="String")
    name = runbook(ssm, {"Value": {"type": "String", "default": f"{{{{ssm:{stored}}}}}"}})
    starter = boto_client(
        "ssm", new_user([{"Effect": "Allow", "Action": "ssm:StartAutomationExecution", "Resource": "*"}])
    )
    error = error_of(lambda: starter.start_automation_execution(DocumentName=name))
    assert error["Code"] == "AccessDeniedException"
    assert "ssm:GetParameters" in error["Message"] and stored in error["Message"]


def test_corpus_runbook_with_a_parameter_store_default_starts_with_the_stored_key(
    ssm: Any, new_role: Callable[..., str]
) -> None:
    """ASR-EnableEncryptionForSNSTopic declares KmsKeyArn's default as {{ssm:/Solutions/SO0111/...}}."""
    entry = next(e for e in load_manifest() if e.document_name == "ASR-EnableEncryptionForSNSTopic")
    text = runbook_text(entry)  # skips without a corpus
    document = parse_document(text)
    reference = str(document["parameters"]["KmsKeyArn"]["default"]).strip()
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-1111-2222-333344445555"
    ssm.put_parameter(Name=reference[len("{{ssm:") : -2], Value=key_arn, Type="String", Overwrite=True)
    name = unique("ASR-EnableEncryptionForSNSTopic")
    ssm.create_document(
        Name=name, Content=text, DocumentType="Automation", DocumentFormat=entry.document_format
    )
    role = new_role([SSM_TRUST])
    topic = "arn:aws:sns:us-east-1:123456789012:corpus9-topic"
    parameters = started_parameters(ssm, name, {"AutomationAssumeRole": [role], "TopicArn": [topic]})
    assert parameters["KmsKeyArn"] == [key_arn]


WINDOWS_2016 = "/aws/service/ami-windows-latest/Windows_Server-2016-English-Full-Base"


def test_aws_public_windows_ami_parameter_is_the_newest_emulated_image(
    ssm: Any, boto_client: Callable[..., Any]
) -> None:
    """AWS-CreateManagedWindowsInstance's AmiId default; moto carries no ami-windows-latest parameters."""
    images = boto_client("ec2").describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["Windows_Server-2016-English-Full-Base-*"]}]
    )["Images"]
    newest = max(images, key=lambda image: image["Name"])["ImageId"]
    assert ssm.get_parameter(Name=WINDOWS_2016)["Parameter"]["Value"] == newest
    name = runbook(ssm, {"AmiId": {"type": "String", "default": f"{{{{ssm:{WINDOWS_2016}}}}}"}})
    assert started_parameters(ssm, name)["AmiId"] == [newest]


def test_a_public_windows_ami_parameter_no_emulated_image_has_is_not_found(ssm: Any) -> None:
    absent = "/aws/service/ami-windows-latest/Windows_Server-1999-Klingon-Full-Base"
    assert error_of(lambda: ssm.get_parameter(Name=absent))["Code"] == "ParameterNotFound"
    name = runbook(ssm, {"AmiId": {"type": "String", "default": f"{{{{ssm:{absent}}}}}"}})
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=name))
    assert error["Code"] == PARAMETER_ERROR and absent in error["Message"]


def test_a_reference_in_a_step_input_fails_the_step_saying_where_references_belong(ssm: Any) -> None:
    name = unique("StoreRefInStep")
    content = {
        "schemaVersion": "0.3",
        "mainSteps": [{"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "{{ ssm:/ops/nap }}"}}],
    }
    ssm.create_document(
        Name=name, Content=json.dumps(content), DocumentType="Automation", DocumentFormat="JSON"
    )
    execution_id = ssm.start_automation_execution(DocumentName=name)["AutomationExecutionId"]
    execution: dict[str, Any] = {}
    for _ in range(200):  # the step fails while rendering its inputs: at once
        execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
        if execution["AutomationExecutionStatus"] == "Failed":
            break
        time.sleep(0.05)
    assert execution["AutomationExecutionStatus"] == "Failed"
    message = execution["StepExecutions"][0]["FailureMessage"]
    assert "ssm:/ops/nap" in message and "not in step inputs" in message
