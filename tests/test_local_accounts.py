"""Each account its own world on the local runtime, cross-account AssumeRole, and TargetLocations.

AWS behaviour encoded here: "Running automations in multiple AWS Regions and accounts" (Systems Manager User
Guide) and the TargetLocation data type; cross-account role assumption needs both the role's trust policy and
the caller's own permission (IAM User Guide, "Cross account resource access in IAM").
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.local.events import route_events_to_queue
from airflow_ssm_delegate.local.locations import ADMINISTRATION_ROLE_NAME
from tests.accounts_support import (
    PROBE,
    child_of,
    client,
    create_role,
    new_account,
    publish,
    wait,
)
from tests.fixtures.local_runtime import SSM_TRUST, error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.server import LocalAutomationServer

REGIONS = ["us-east-1", "us-west-2"]


@pytest.fixture
def roles(local_server: LocalAutomationServer) -> dict[str, str]:
    """A fresh administration role (home account) allowed to assume a fresh execution role name anywhere."""
    execution_role = unique("Exec")
    admin = create_role(
        local_server,
        local_server.account_id,
        unique("Admin"),
        [SSM_TRUST],
        [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": f"arn:aws:iam::*:role/{execution_role}",
            }
        ],
    )
    return {"admin": admin, "execution_role": execution_role}


def add_execution_role(server: LocalAutomationServer, account_id: str, roles: dict[str, str]) -> str:
    """The execution role in ``account_id``, trusting the administration role, allowed to read EC2."""
    trust = [{"Effect": "Allow", "Principal": {"AWS": roles["admin"]}, "Action": "sts:AssumeRole"}]
    allow = [{"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}]
    return create_role(server, account_id, roles["execution_role"], trust, allow)


def start(
    server: LocalAutomationServer,
    document: str,
    roles: dict[str, str],
    target_parameter: str | None = None,
    **locations: Any,
) -> str:
    ssm = client(server, "ssm", server.admin_credentials)
    location = {"ExecutionRoleName": roles["execution_role"], **locations}
    extra = {"TargetParameterName": target_parameter} if target_parameter else {}
    return str(
        ssm.start_automation_execution(
            DocumentName=document,
            Parameters={"AutomationAssumeRole": [roles["admin"]]},
            TargetLocations=[location],
            **extra,
        )["AutomationExecutionId"]
    )


def run_instance(server: LocalAutomationServer, account_id: str, region: str) -> str:
    ec2 = client(server, "ec2", server.admin_credentials_for(account_id), region)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return str(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])


# --- each account its own world -------------------------------------------------------------------


def test_admin_credentials_for_another_account_is_its_own_world(local_server: LocalAutomationServer) -> None:
    other = new_account()
    creds = local_server.admin_credentials_for(other)
    assert set(creds) == set(local_server.admin_credentials)
    assert local_server.admin_credentials_for(other) == creds  # the same admin on every call
    assert local_server.admin_credentials_for(local_server.account_id) == local_server.admin_credentials
    assert client(local_server, "sts", creds).get_caller_identity()["Account"] == other

    key = unique("key")
    client(local_server, "ec2", creds).create_key_pair(KeyName=key)
    home_keys = client(local_server, "ec2", local_server.admin_credentials).describe_key_pairs()["KeyPairs"]
    other_keys = client(local_server, "ec2", creds).describe_key_pairs()["KeyPairs"]
    assert key in {k["KeyName"] for k in other_keys}
    assert key not in {k["KeyName"] for k in home_keys}
    with pytest.raises(ValueError, match="12-digit"):
        local_server.admin_credentials_for("ou-1234-abcdefgh")


def test_each_account_authorises_with_its_own_iam(local_server: LocalAutomationServer) -> None:
    other = new_account()
    iam = client(local_server, "iam", local_server.admin_credentials_for(other))
    name = unique("reader")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    error = error_of(lambda: client(local_server, "ec2", creds).describe_key_pairs())
    assert f"arn:aws:iam::{other}:user/{name}" in error["Message"]
    iam.put_user_policy(
        UserName=name,
        PolicyName="read",
        PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Action":"ec2:DescribeKeyPairs","Resource":"*"}]}',
    )
    assert "KeyPairs" in client(local_server, "ec2", creds).describe_key_pairs()


# --- cross-account AssumeRole -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "caller_may", "allowed"),
    [
        ("caller", True, True),  # trust names the caller and the caller may: allowed
        ("caller", False, False),  # across accounts the caller's own permission is needed too
        ("account", True, True),  # trust names the caller's account
        ("stranger", True, False),  # trust names another account: the caller's permission is not enough
    ],
)
def test_cross_account_assume_role_needs_trust_and_permission(
    local_server: LocalAutomationServer,
    new_user: Callable[..., dict[str, str]],
    trusted: str,
    caller_may: bool,
    allowed: bool,
) -> None:
    other, role_name = new_account(), unique("shared")
    role_arn = f"arn:aws:iam::{other}:role/{role_name}"
    allow = [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]
    creds = new_user(allow if caller_may else [])
    caller = client(local_server, "sts", creds).get_caller_identity()["Arn"]
    principal = {
        "caller": caller,
        "account": f"arn:aws:iam::{local_server.account_id}:root",
        "stranger": f"arn:aws:iam::{new_account()}:root",
    }[trusted]
    create_role(
        local_server,
        other,
        role_name,
        [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}],
    )
    sts = client(local_server, "sts", creds)
    if not allowed:
        error = error_of(lambda: sts.assume_role(RoleArn=role_arn, RoleSessionName="probe"))
        assert error["Code"] == "AccessDenied"
        assert f"sts:AssumeRole on resource: {role_arn}" in error["Message"]
        return
    session = sts.assume_role(RoleArn=role_arn, RoleSessionName="probe")["Credentials"]
    assumed = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }
    assert client(local_server, "sts", assumed).get_caller_identity()["Account"] == other


def test_same_account_trust_naming_the_caller_is_enough(
    local_server: LocalAutomationServer, new_user: Callable[..., dict[str, str]]
) -> None:
    creds = new_user([])
    caller = client(local_server, "sts", creds).get_caller_identity()["Arn"]
    role_name = unique("local")
    trust = [{"Effect": "Allow", "Principal": {"AWS": caller}, "Action": "sts:AssumeRole"}]
    role_arn = create_role(local_server, local_server.account_id, role_name, trust)
    assert client(local_server, "sts", creds).assume_role(RoleArn=role_arn, RoleSessionName="probe")[
        "Credentials"
    ]


# --- TargetLocations ----------------------------------------------------------------------------------


def test_target_locations_run_in_each_account_and_region(
    local_server: LocalAutomationServer, roles: dict[str, str]
) -> None:
    accounts = [new_account(), new_account()]
    for account_id in accounts:
        add_execution_role(local_server, account_id, roles)
    instance = run_instance(local_server, accounts[1], "us-west-2")
    document = publish(local_server)
    execution_id = start(local_server, document, roles, Accounts=accounts, Regions=REGIONS)
    ssm = client(local_server, "ssm", local_server.admin_credentials)
    parent = wait(ssm, execution_id)

    assert parent["AutomationExecutionStatus"] == "Success"
    assert parent["TargetLocations"] == [
        {
            "Accounts": accounts,
            "Regions": REGIONS,
            "ExecutionRoleName": roles["execution_role"],
            "TargetLocationMaxConcurrency": "1",
            "TargetLocationMaxErrors": "0",
        }
    ]
    steps = parent["StepExecutions"]
    assert [step["StepName"] for step in steps] == [f"{a}_{r}" for a in accounts for r in REGIONS]
    assert {step["Action"] for step in steps} == {"aws:executeAutomation"}
    for earlier, later in itertools.pairwise(steps):  # TargetLocationMaxConcurrency 1: one location at a time
        assert later["ExecutionStartTime"] >= earlier["ExecutionEndTime"]
    for step in steps:
        child = child_of(local_server, step)
        account_id, region = step["TargetLocation"]["Accounts"][0], step["TargetLocation"]["Regions"][0]
        assert child["AutomationExecutionStatus"] == "Success"
        assert child["ParentAutomationExecutionId"] == execution_id
        assert child["Outputs"]["who.Account"] == [account_id]  # the steps ran as the execution role there
        assert child["ExecutedBy"].startswith(
            f"arn:aws:sts::{account_id}:assumed-role/{roles['execution_role']}/"
        )
        found = " ".join(child["Outputs"]["instances.Reservations"])
        assert (instance in found) == (account_id == accounts[1] and region == "us-west-2")

    listed = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": [execution_id]}])
    assert listed["AutomationExecutionMetadataList"][0]["AutomationType"] == "CrossAccount"
    child_id = steps[0]["Outputs"]["AutomationExecutionId"][0]
    error = error_of(lambda: ssm.get_automation_execution(AutomationExecutionId=child_id))
    assert error["Code"] == "AutomationExecutionNotFoundException"  # it lives in the target account


def test_location_concurrency_runs_locations_together(
    local_server: LocalAutomationServer, roles: dict[str, str]
) -> None:
    account_id = new_account()
    add_execution_role(local_server, account_id, roles)
    pause = {**PROBE, "mainSteps": [{"name": "hold", "action": "aws:pause", "inputs": {}}]}
    document = publish(local_server, pause)
    execution_id = start(
        local_server,
        document,
        roles,
        Accounts=[account_id],
        Regions=REGIONS,
        TargetLocationMaxConcurrency="100%",
    )
    ssm = client(local_server, "ssm", local_server.admin_credentials)
    for _ in range(400):
        steps = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"][
            "StepExecutions"
        ]
        if len(steps) == len(REGIONS):
            break
    assert [step["StepStatus"] for step in steps] == ["InProgress", "InProgress"]  # both started, none ended

    ssm.stop_automation_execution(AutomationExecutionId=execution_id, Type="Cancel")
    parent = wait(ssm, execution_id)
    assert parent["AutomationExecutionStatus"] == "Cancelled"
    assert {
        child_of(local_server, step)["AutomationExecutionStatus"] for step in parent["StepExecutions"]
    } == {"Cancelled"}


@pytest.mark.parametrize(("max_errors", "started"), [(None, 1), ("1", 2)])
def test_a_location_whose_role_cannot_be_assumed_fails_and_counts_as_an_error(
    local_server: LocalAutomationServer, roles: dict[str, str], max_errors: str | None, started: int
) -> None:
    missing, present = new_account(), new_account()
    add_execution_role(local_server, present, roles)
    extra = {"TargetLocationMaxErrors": max_errors} if max_errors else {}
    execution_id = start(
        local_server,
        publish(local_server),
        roles,
        Accounts=[missing, present],
        Regions=["us-east-1"],
        **extra,
    )
    parent = wait(client(local_server, "ssm", local_server.admin_credentials), execution_id)

    assert parent["AutomationExecutionStatus"] == "Failed"
    steps = parent["StepExecutions"]
    assert len(steps) == started  # with no error allowed, the second location is never started
    assert steps[0]["StepStatus"] == "Failed"
    assert "is not authorized to perform: sts:AssumeRole" in steps[0]["FailureMessage"]
    assert f"arn:aws:iam::{missing}:role/{roles['execution_role']}" in steps[0]["FailureMessage"]
    if started == 2:
        assert steps[1]["StepStatus"] == "Success"
    else:
        assert (
            "TargetLocationMaxErrors was exceeded, so 1 locations were not started"
            in parent["FailureMessage"]
        )


def test_targets_inside_a_location_rate_control_its_child_there(
    local_server: LocalAutomationServer, roles: dict[str, str]
) -> None:
    account_id = new_account()
    add_execution_role(local_server, account_id, roles)
    content = {
        **PROBE,
        "parameters": {**PROBE["parameters"], "Label": {"type": "String"}},
    }
    execution_id = start(
        local_server,
        publish(local_server, content),
        roles,
        Accounts=[account_id],
        Regions=["us-west-2"],
        Targets=[{"Key": "ParameterValues", "Values": ["a", "b"]}],
        TargetsMaxConcurrency="2",
        target_parameter="Label",
    )
    parent = wait(client(local_server, "ssm", local_server.admin_credentials), execution_id)
    assert parent["AutomationExecutionStatus"] == "Success"
    child = child_of(local_server, parent["StepExecutions"][0])
    assert child["Targets"] == [{"Key": "ParameterValues", "Values": ["a", "b"]}]
    assert child["MaxConcurrency"] == "2"
    assert [step["StepName"] for step in child["StepExecutions"]] == ["a", "b"]
    there = client(local_server, "ssm", local_server.admin_credentials_for(account_id), "us-west-2")
    filters = [{"Key": "ParentExecutionId", "Values": [child["AutomationExecutionId"]]}]
    grandchildren = there.describe_automation_executions(Filters=filters)["AutomationExecutionMetadataList"]
    assert sorted(g["Target"] for g in grandchildren) == ["a", "b"]
    for grandchild in grandchildren:  # each target ran in the location, as its execution role
        assert wait(there, grandchild["AutomationExecutionId"])["Outputs"]["who.Account"] == [account_id]


@pytest.mark.parametrize(
    ("location", "code", "named"),
    [
        (
            {"Accounts": ["ou-ab12-abcd1234"]},
            "InvalidAutomationExecutionParametersException",
            "Organizations",
        ),
        ({"Accounts": ["r-ab12"]}, "InvalidAutomationExecutionParametersException", "Organizations"),
        (
            {"IncludeChildOrganizationUnits": True},
            "InvalidAutomationExecutionParametersException",
            "IncludeChild",
        ),
        (
            {"ExcludeAccounts": ["111122223333"]},
            "InvalidAutomationExecutionParametersException",
            "ExcludeAccounts",
        ),
        ({"Accounts": ["12345"]}, "ValidationException", "12-digit"),
        ({"Regions": ["moon-1"]}, "ValidationException", "Region"),
        ({"TargetLocationMaxErrors": "101%"}, "ValidationException", "targetLocationMaxErrors"),
    ],
)
def test_unsupported_or_malformed_locations_are_refused_by_name(
    local_server: LocalAutomationServer, location: dict[str, Any], code: str, named: str
) -> None:
    ssm = client(local_server, "ssm", local_server.admin_credentials)
    error = error_of(
        lambda: ssm.start_automation_execution(DocumentName=publish(local_server), TargetLocations=[location])
    )
    assert error["Code"] == code
    assert named in error["Message"]


def test_target_locations_url_is_refused_by_name(local_server: LocalAutomationServer) -> None:
    ssm = client(local_server, "ssm", local_server.admin_credentials)
    error = error_of(
        lambda: ssm.start_automation_execution(
            DocumentName=publish(local_server),
            TargetLocationsURL="https://amzn-s3-demo-bucket.s3.amazonaws.com/l.json",
        )
    )
    assert error["Code"] == "InvalidAutomationExecutionParametersException"
    assert "does not support TargetLocationsURL" in error["Message"]


def test_the_default_administration_role_needs_pass_role_and_must_exist(
    local_server: LocalAutomationServer, new_user: Callable[..., dict[str, str]]
) -> None:
    no_role = {key: value for key, value in PROBE.items() if key not in ("assumeRole", "parameters")}
    document = publish(local_server, no_role)
    default_admin = f"arn:aws:iam::{local_server.account_id}:role/{ADMINISTRATION_ROLE_NAME}"
    creds = new_user([{"Effect": "Allow", "Action": "ssm:StartAutomationExecution", "Resource": "*"}])
    ssm = client(local_server, "ssm", creds)
    locations = [{"Accounts": [new_account()], "Regions": ["us-east-1"]}]
    error = error_of(lambda: ssm.start_automation_execution(DocumentName=document, TargetLocations=locations))
    assert error["Code"] == "AccessDeniedException"
    assert f"iam:PassRole on resource: {default_admin}" in error["Message"]

    admin = client(local_server, "ssm", local_server.admin_credentials)  # may pass it, but it does not exist
    execution_id = admin.start_automation_execution(DocumentName=document, TargetLocations=locations)
    parent = wait(admin, execution_id["AutomationExecutionId"])
    assert parent["AutomationExecutionStatus"] == "Failed"
    assert ADMINISTRATION_ROLE_NAME in parent["FailureMessage"]
    assert parent["StepExecutions"] == []


def test_executions_start_in_the_runtime_account_and_region_only(local_server: LocalAutomationServer) -> None:
    document = publish(local_server)
    other = client(local_server, "ssm", local_server.admin_credentials_for(new_account()))
    error = error_of(lambda: other.start_automation_execution(DocumentName=document))
    assert error["Code"] == "UnsupportedOperation"
    assert f"account {local_server.account_id}, Region {local_server.region}" in error["Message"]


def test_an_execute_automation_step_runs_its_child_across_locations(
    local_server: LocalAutomationServer, roles: dict[str, str]
) -> None:
    account_id = new_account()
    add_execution_role(local_server, account_id, roles)
    probe = publish(local_server)
    step = {
        "name": "everywhere",
        "action": "aws:executeAutomation",
        "inputs": {
            "DocumentName": probe,
            "RuntimeParameters": {"AutomationAssumeRole": roles["admin"]},
            "TargetLocations": [
                {"Accounts": [account_id], "Regions": REGIONS, "ExecutionRoleName": roles["execution_role"]}
            ],
        },
    }
    outer = publish(local_server, {"schemaVersion": "0.3", "mainSteps": [step]})
    ssm = client(local_server, "ssm", local_server.admin_credentials)
    execution = wait(ssm, ssm.start_automation_execution(DocumentName=outer)["AutomationExecutionId"])

    assert execution["AutomationExecutionStatus"] == "Success"
    located = wait(ssm, execution["StepExecutions"][0]["Outputs"]["ExecutionId"][0])
    assert located["ParentAutomationExecutionId"] == execution["AutomationExecutionId"]
    assert [s["StepName"] for s in located["StepExecutions"]] == [f"{account_id}_{r}" for r in REGIONS]


def test_a_childs_events_go_to_its_own_accounts_bus_in_its_region(
    local_server: LocalAutomationServer, roles: dict[str, str]
) -> None:
    account_id = new_account()
    add_execution_role(local_server, account_id, roles)
    creds = local_server.admin_credentials_for(account_id)
    queue = route_events_to_queue(
        client(local_server, "events", creds, "us-west-2"),
        client(local_server, "sqs", creds, "us-west-2"),
        "ssm",
    )
    execution_id = start(
        local_server, publish(local_server), roles, Accounts=[account_id], Regions=["us-west-2"]
    )
    parent = wait(client(local_server, "ssm", local_server.admin_credentials), execution_id)
    child_id = parent["StepExecutions"][0]["Outputs"]["AutomationExecutionId"][0]

    sqs, seen = client(local_server, "sqs", creds, "us-west-2"), []
    for _ in range(20):
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        seen += [json.loads(message["Body"]) for message in messages.get("Messages", [])]
        if any(
            event["detail"].get("Status") == "Success" and "StepName" not in event["detail"] for event in seen
        ):
            break
    arn = f"arn:aws:ssm:us-west-2:{account_id}:automation-execution/{child_id}"
    assert seen and all(
        event["resources"][0] == arn for event in seen
    )  # only the child's, none of the parent's
