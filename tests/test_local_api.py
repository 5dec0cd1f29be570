"""The Automation wire API: bad input gets the API's own error and the server keeps serving."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fixtures.local_runtime import error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.server import LocalAutomationServer

MISSING_ID = "00000000-0000-4000-8000-000000000000"
SLEEP_RUNBOOK = json.dumps(
    {
        "schemaVersion": "0.3",
        "parameters": {"Note": {"type": "String", "default": "x"}},
        "mainSteps": [{"name": "nap", "action": "aws:sleep", "inputs": {"Duration": "PT1S"}}],
    }
)


def raw_call(server: LocalAutomationServer, operation: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """A correctly signed SSM request with an arbitrary body (boto3 would refuse to send it)."""
    creds = server.admin_credentials
    request = AWSRequest(
        method="POST",
        url=f"{server.endpoint_url}/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"AmazonSSM.{operation}"},
    )
    SigV4Auth(
        Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"]), "ssm", server.region
    ).add_auth(request)
    prepared = urllib.request.Request(request.url, data=body, headers=dict(request.headers), method="POST")
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def ssm(boto_client: Callable[..., Any]) -> Any:
    return boto_client("ssm")


@pytest.fixture
def runbook(ssm: Any) -> str:
    name = unique("Sleepy")
    ssm.create_document(Name=name, Content=SLEEP_RUNBOOK, DocumentType="Automation", DocumentFormat="JSON")
    return name


@pytest.fixture(autouse=True)
def server_still_serves(ssm: Any) -> Any:
    """After every test here, the server must still answer."""
    yield
    assert "DocumentIdentifiers" in ssm.list_documents(MaxResults=1)


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"a string"'], ids=["broken", "array", "binary", "string"]
)
def test_malformed_body_is_a_serialization_error(local_server: LocalAutomationServer, body: bytes) -> None:
    status, payload = raw_call(local_server, "StartAutomationExecution", body)
    assert (status, payload["__type"]) == (400, "SerializationException")


def test_wrong_member_type_is_a_serialization_error(local_server: LocalAutomationServer) -> None:
    status, payload = raw_call(local_server, "StartAutomationExecution", b'{"DocumentName": 5}')
    assert (status, payload["__type"]) == (400, "SerializationException")
    assert "documentName" in payload["message"]


def test_missing_required_member_is_a_validation_error(local_server: LocalAutomationServer) -> None:
    status, payload = raw_call(local_server, "GetAutomationExecution", b"{}")
    assert (status, payload["__type"]) == (400, "ValidationException")
    assert (
        "'automationExecutionId' failed to satisfy constraint: Member must not be null" in payload["message"]
    )


def test_unknown_operation_is_refused(local_server: LocalAutomationServer) -> None:
    status, payload = raw_call(local_server, "StartAutomationExecutionNow", b"{}")
    assert (status, payload["__type"]) == (400, "UnknownOperationException")


def test_oversized_parameter_value_is_a_validation_error(ssm: Any, runbook: str) -> None:
    error = error_of(
        lambda: ssm.start_automation_execution(DocumentName=runbook, Parameters={"Note": ["x" * 513]})
    )
    assert error["Code"] == "ValidationException"
    assert "less than or equal to 512" in error["Message"]


def test_too_many_parameters_is_a_validation_error(ssm: Any, runbook: str) -> None:
    parameters = {f"P{i}": ["v"] for i in range(201)}
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=runbook, Parameters=parameters))
    assert error["Code"] == "ValidationException"
    assert "'parameters'" in error["Message"]


def test_out_of_set_enum_and_bad_id_length(ssm: Any) -> None:
    enum_error = error_of(
        lambda: ssm.stop_automation_execution(AutomationExecutionId=MISSING_ID, Type="Pause")
    )
    assert enum_error["Code"] == "ValidationException"
    assert "enum value set: [Complete, Cancel]" in enum_error["Message"]
    length_error = error_of(lambda: ssm.get_automation_execution(AutomationExecutionId=MISSING_ID + "0"))
    assert length_error["Code"] == "ValidationException"


def test_unknown_execution_ids_are_not_found(ssm: Any) -> None:
    for call in (
        lambda: ssm.get_automation_execution(AutomationExecutionId=MISSING_ID),
        lambda: ssm.stop_automation_execution(AutomationExecutionId=MISSING_ID),
        lambda: ssm.describe_automation_step_executions(AutomationExecutionId=MISSING_ID),
        lambda: ssm.send_automation_signal(AutomationExecutionId=MISSING_ID, SignalType="Approve"),
    ):
        assert error_of(call)["Code"] == "AutomationExecutionNotFoundException"


def test_unknown_document_and_version(ssm: Any, runbook: str) -> None:
    missing = error_of(lambda: ssm.start_automation_execution(DocumentName=unique("Missing")))
    assert missing["Code"] == "AutomationDefinitionNotFoundException"
    version = error_of(lambda: ssm.start_automation_execution(DocumentName=runbook, DocumentVersion="7"))
    assert version["Code"] == "AutomationDefinitionVersionNotFoundException"


def test_unknown_runbook_parameter_is_refused(ssm: Any, runbook: str) -> None:
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=runbook, Parameters={"Nope": ["1"]}))
    assert error["Code"] == "InvalidAutomationExecutionParametersException"
    assert "Nope" in error["Message"]


def test_malformed_runbook_is_refused_at_start(ssm: Any) -> None:
    name = unique("Broken")
    ssm.create_document(
        Name=name, Content='{"schemaVersion": "0.3", "mainSteps": "nope"}', DocumentType="Automation"
    )
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=name))
    assert error["Code"] == "InvalidDocumentContent"
    assert name in error["Message"]


def test_versions_default_latest_and_number(ssm: Any, runbook: str) -> None:
    second = json.loads(SLEEP_RUNBOOK)
    second["description"] = "v2"
    ssm.update_document(
        Name=runbook, Content=json.dumps(second), DocumentVersion="$LATEST", DocumentFormat="JSON"
    )

    def version_of(**kwargs: str) -> str:
        execution_id = ssm.start_automation_execution(DocumentName=runbook, **kwargs)["AutomationExecutionId"]
        return str(
            ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"][
                "DocumentVersion"
            ]
        )

    assert version_of() == "1"
    assert version_of(DocumentVersion="$DEFAULT") == "1"
    assert version_of(DocumentVersion="$LATEST") == "2"
    assert version_of(DocumentVersion="2") == "2"


def test_execution_round_trip_in_the_api_shape(ssm: Any, runbook: str) -> None:
    execution_id = ssm.start_automation_execution(DocumentName=runbook, Parameters={"Note": ["hello"]})[
        "AutomationExecutionId"
    ]
    execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
    listed = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": [execution_id]}])

    assert execution["DocumentName"] == runbook
    assert execution["Parameters"] == {"Note": ["hello"]}
    assert execution["ExecutionStartTime"].tzinfo is not None  # a timestamp botocore could parse
    assert [e["AutomationExecutionId"] for e in listed["AutomationExecutionMetadataList"]] == [execution_id]
    ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")


def test_an_executions_tags_are_listed_by_the_tagging_api(ssm: Any, runbook: str) -> None:
    tags = [{"Key": "airflow:dag_id", "Value": "launch"}, {"Key": "Team", "Value": "ops"}]
    execution_id = ssm.start_automation_execution(DocumentName=runbook, Tags=tags)["AutomationExecutionId"]
    listed = ssm.list_tags_for_resource(ResourceType="Automation", ResourceId=execution_id)["TagList"]
    ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")
    assert {tag["Key"]: tag["Value"] for tag in listed} == {"airflow:dag_id": "launch", "Team": "ops"}
    missing = error_of(lambda: ssm.list_tags_for_resource(ResourceType="Automation", ResourceId=MISSING_ID))
    assert missing["Code"] == "InvalidResourceId"
    # other resource types are still moto's
    assert ssm.list_tags_for_resource(ResourceType="Document", ResourceId=runbook)["TagList"] == []
