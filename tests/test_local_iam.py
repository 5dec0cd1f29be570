"""IAM on the local runtime, through boto3: each rule as AWS decides it, in each service's error shape."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.documents.bundled import runbook_path
from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.identity import Caller, Credentials
from tests.fixtures.local_runtime import SSM_TRUST, error_of, policy_document, unique

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.server import LocalAutomationServer

ACCOUNT = "123456789012"
ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


@pytest.fixture
def ami(boto_client: Callable[..., Any]) -> str:
    return str(boto_client("ec2").describe_images()["Images"][0]["ImageId"])


@pytest.fixture
def instance_id(boto_client: Callable[..., Any], ami: str) -> str:
    return str(
        boto_client("ec2").run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    )


def caller(creds: dict[str, str]) -> Caller:
    credentials = Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"])
    return Caller(arn="arn:aws:iam::123456789012:user/test", credentials=credentials)


# --- the delegated-administration story, step (1) --------------------------------------------------


def test_user_denied_ec2_cannot_run_an_instance_directly(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]], ami: str
) -> None:
    operator = new_user([{"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}, ALL], prefix="operator")
    before = boto_client("ec2").describe_instances()["Reservations"]

    error = error_of(lambda: boto_client("ec2", operator).run_instances(ImageId=ami, MinCount=1, MaxCount=1))

    assert error["Code"] == "UnauthorizedOperation"
    assert "ec2:RunInstances" in error["Message"]
    assert "explicit deny" in error["Message"]
    assert boto_client("ec2").describe_instances()["Reservations"] == before  # nothing was launched


# --- step (3): without iam:PassRole the start is refused and nothing starts ----------------------


def test_start_without_pass_role_is_refused_and_starts_nothing(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], new_role: Callable[..., str]
) -> None:

    runbook = unique("LaunchTaggedInstance")
    content = runbook_path("LaunchTaggedInstance").read_text()
    boto_client("ssm").create_document(
        Name=runbook, Content=content, DocumentType="Automation", DocumentFormat="YAML"
    )
    role = new_role([SSM_TRUST], [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}])
    start = {
        "Effect": "Allow",
        "Action": "ssm:StartAutomationExecution",
        "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/{runbook}:*",
    }
    deny_ec2 = {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}
    operator = new_user([deny_ec2, start, EXECUTIONS], prefix="operator")
    parameters = {"AutomationAssumeRole": [role], "Owner": ["alice"], "CostCenter": ["CC-1001"]}

    error = error_of(
        lambda: boto_client("ssm", operator).start_automation_execution(
            DocumentName=runbook, Parameters=parameters
        )
    )

    assert error["Code"] == "AccessDeniedException"
    assert "iam:PassRole" in error["Message"] and role in error["Message"]
    started = boto_client("ssm").describe_automation_executions(
        Filters=[{"Key": "DocumentNamePrefix", "Values": [runbook]}]
    )["AutomationExecutionMetadataList"]
    assert started == []


# --- explicit and implicit deny, in each service's own error shape -------------------------------


def test_explicit_deny_wins_over_an_allow(
    boto_client: Callable[..., Any], new_user: Callable[..., Any]
) -> None:
    creds = new_user([ALL, {"Effect": "Deny", "Action": "ssm:ListDocuments", "Resource": "*"}])
    error = error_of(lambda: boto_client("ssm", creds).list_documents())
    assert error["Code"] == "AccessDeniedException"
    assert "explicit deny" in error["Message"]
    boto_client("ssm", creds).describe_parameters()  # everything else is still allowed


@pytest.mark.parametrize(
    ("service", "call", "code"),
    [
        ("ec2", lambda c: c.describe_instances(), "UnauthorizedOperation"),
        ("ssm", lambda c: c.list_documents(), "AccessDeniedException"),
        ("iam", lambda c: c.list_users(), "AccessDenied"),
        ("sts", lambda c: c.get_session_token(), "AccessDenied"),
    ],
)
def test_no_allow_is_an_implicit_deny_in_the_services_shape(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], service: str, call: Any, code: str
) -> None:
    creds = new_user([{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}])
    error = error_of(lambda: call(boto_client(service, creds)))
    assert error["Code"] == code
    assert "because no identity-based policy allows" in error["Message"]


def test_get_caller_identity_is_always_allowed(
    boto_client: Callable[..., Any], new_user: Callable[..., Any]
) -> None:
    creds = new_user([{"Effect": "Deny", "Action": "*", "Resource": "*"}], prefix="nobody")
    assert ":user/nobody-" in boto_client("sts", creds).get_caller_identity()["Arn"]


# --- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "call", "code"),
    [
        ("ssm", lambda c: c.list_documents(), "UnrecognizedClientException"),
        ("iam", lambda c: c.list_users(), "InvalidClientTokenId"),
        ("sts", lambda c: c.get_caller_identity(), "InvalidClientTokenId"),
        ("ec2", lambda c: c.describe_instances(), "AuthFailure"),
    ],
)
def test_unknown_access_key_is_refused(
    boto_client: Callable[..., Any], service: str, call: Any, code: str
) -> None:
    stranger = {"aws_access_key_id": "AKIAUNKNOWNKEY000000", "aws_secret_access_key": "x" * 40}
    assert error_of(lambda: call(boto_client(service, stranger)))["Code"] == code


def test_wrong_secret_fails_the_signature_check(
    boto_client: Callable[..., Any], new_user: Callable[..., Any]
) -> None:
    creds = {**new_user([ALL]), "aws_secret_access_key": "not-the-secret"}
    assert error_of(lambda: boto_client("ssm", creds).list_documents())["Code"] == "InvalidSignatureException"
    assert error_of(lambda: boto_client("iam", creds).list_users())["Code"] == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "AWS AKIAIOSFODNN7EXAMPLE:signature",
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=x/y",
    ],
    ids=["absent", "sigv2", "garbage", "truncated"],
)
def test_requests_without_a_usable_signature_are_refused(
    local_server: LocalAutomationServer, authorization: str | None
) -> None:

    headers = {"X-Amz-Target": "AmazonSSM.ListDocuments", "Content-Type": "application/x-amz-json-1.1"}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(
        f"{local_server.endpoint_url}/", data=b"{}", headers=headers, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["__type"] == "MissingAuthenticationTokenException"


def test_moto_management_api_is_closed_while_iam_is_enforced(local_server: LocalAutomationServer) -> None:

    request = urllib.request.Request(f"{local_server.endpoint_url}/moto-api/reset", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


# --- resources and conditions --------------------------------------------------------------------


def test_resource_scoped_allow_covers_only_that_resource(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], ami: str
) -> None:
    ec2 = boto_client("ec2")
    mine, other = (
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"] for _ in "ab"
    )
    arn = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{mine}"
    creds = new_user([{"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": arn}])

    boto_client("ec2", creds).create_tags(Resources=[mine], Tags=[{"Key": "k", "Value": "v"}])
    error = error_of(
        lambda: boto_client("ec2", creds).create_tags(Resources=[other], Tags=[{"Key": "k", "Value": "v"}])
    )

    assert error["Code"] == "UnauthorizedOperation"
    assert f"instance/{other}" in error["Message"]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [mine, other]}])["Tags"]
    assert [t["ResourceId"] for t in tags] == [mine]


def test_ssm_document_scoped_allow(boto_client: Callable[..., Any], new_user: Callable[..., Any]) -> None:

    ssm = boto_client("ssm")
    allowed, other = unique("Allowed"), unique("Other")
    for name in (allowed, other):
        ssm.create_document(
            Name=name, Content='{"schemaVersion": "0.3", "mainSteps": []}', DocumentType="Automation"
        )
    creds = new_user(
        [{"Effect": "Allow", "Action": "ssm:GetDocument", "Resource": f"arn:aws:ssm:*:*:document/{allowed}"}]
    )

    assert boto_client("ssm", creds).get_document(Name=allowed)["Name"] == allowed
    assert (
        error_of(lambda: boto_client("ssm", creds).get_document(Name=other))["Code"]
        == "AccessDeniedException"
    )


def test_tag_conditions_on_create_tags(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], instance_id: str
) -> None:
    creds = new_user(
        [
            {
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": "*",
                "Condition": {
                    "StringLike": {"aws:RequestTag/CostCenter": "CC-*"},
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["CostCenter", "Owner"]},
                },
            }
        ]
    )
    ec2 = boto_client("ec2", creds)

    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "CostCenter", "Value": "CC-1001"}])
    wrong_value = error_of(
        lambda: ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "CostCenter", "Value": "X"}])
    )
    extra_key = error_of(
        lambda: ec2.create_tags(
            Resources=[instance_id],
            Tags=[{"Key": "CostCenter", "Value": "CC-1"}, {"Key": "Secret", "Value": "1"}],
        )
    )

    assert wrong_value["Code"] == extra_key["Code"] == "UnauthorizedOperation"


def test_run_instances_with_tags_needs_create_tags_on_create(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], ami: str
) -> None:
    launch = {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*"}
    tag_on_create = {
        "Effect": "Allow",
        "Action": "ec2:CreateTags",
        "Resource": "*",
        "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
    }
    tagged = [{"ResourceType": "instance", "Tags": [{"Key": "Owner", "Value": "alice"}]}]

    without = boto_client("ec2", new_user([launch]))
    error = error_of(
        lambda: without.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=tagged)
    )
    assert "ec2:CreateTags" in error["Message"]
    with_tagging = boto_client("ec2", new_user([launch, tag_on_create]))
    launched = with_tagging.run_instances(ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=tagged)
    assert launched["Instances"][0]["Tags"] == [{"Key": "Owner", "Value": "alice"}]
    # The same CreateTags permission does not allow tagging outside a launch.
    instance = launched["Instances"][0]["InstanceId"]
    later = error_of(
        lambda: with_tagging.create_tags(Resources=[instance], Tags=[{"Key": "a", "Value": "b"}])
    )
    assert later["Code"] == "UnauthorizedOperation"


def test_bool_condition_on_secure_transport(
    boto_client: Callable[..., Any], new_user: Callable[..., Any]
) -> None:
    """The local endpoint is plain HTTP, so aws:SecureTransport is false."""
    deny_plain_http = {
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    creds = new_user([ALL, deny_plain_http])
    assert error_of(lambda: boto_client("ssm", creds).list_documents())["Code"] == "AccessDeniedException"


def test_time_and_source_ip_conditions(
    local_server: LocalAutomationServer, boto_client: Callable[..., Any], new_user: Callable[..., Any]
) -> None:
    clock = local_server.clock
    assert clock is not None

    def until(days: int) -> dict[str, Any]:
        moment = (clock.now() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {**ALL, "Condition": {"DateLessThan": {"aws:CurrentTime": moment}}}

    from_elsewhere = {**ALL, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}
    from_here = {**ALL, "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}

    boto_client("ssm", new_user([until(1)])).list_documents()
    assert error_of(lambda: boto_client("ssm", new_user([until(-1)])).list_documents())["Code"] == (
        "AccessDeniedException"
    )
    boto_client("ssm", new_user([from_here])).list_documents()
    assert error_of(lambda: boto_client("ssm", new_user([from_elsewhere])).list_documents())["Code"] == (
        "AccessDeniedException"
    )


def test_group_and_attached_managed_policies_count(
    boto_client: Callable[..., Any], new_user: Callable[..., Any]
) -> None:

    iam = boto_client("iam")
    creds = new_user([], prefix="member")
    user_name = boto_client("sts", creds).get_caller_identity()["Arn"].rsplit("/", 1)[1]
    assert error_of(lambda: boto_client("ssm", creds).list_documents())["Code"] == "AccessDeniedException"

    group = unique("readers")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user_name)
    managed = iam.create_policy(
        PolicyName=unique("list-docs"),
        PolicyDocument=policy_document([{"Effect": "Allow", "Action": "ssm:ListDocuments", "Resource": "*"}]),
    )["Policy"]["Arn"]
    iam.attach_group_policy(GroupName=group, PolicyArn=managed)
    boto_client("ssm", creds).list_documents()

    iam.put_group_policy(
        GroupName=group,
        PolicyName="deny",
        PolicyDocument=policy_document([{"Effect": "Deny", "Action": "ssm:ListDocuments", "Resource": "*"}]),
    )
    assert error_of(lambda: boto_client("ssm", creds).list_documents())["Code"] == "AccessDeniedException"


def test_policy_variable_limits_users_to_their_own_keys(
    boto_client: Callable[..., Any], new_user: Callable[..., Any]
) -> None:
    own = {
        "Effect": "Allow",
        "Action": "iam:ListAccessKeys",
        "Resource": "arn:aws:iam::*:user/${aws:username}",
    }
    creds = new_user([own], prefix="self-service")
    me = boto_client("sts", creds).get_caller_identity()["Arn"].rsplit("/", 1)[1]
    iam = boto_client("iam", creds)

    assert iam.list_access_keys(UserName=me)["AccessKeyMetadata"][0]["UserName"] == me
    assert error_of(lambda: iam.list_access_keys(UserName="local-admin"))["Code"] == "AccessDenied"


# --- sts:AssumeRole by users ---------------------------------------------------------------------


def test_assume_role_needs_the_trust_policy_and_uses_the_roles_policies(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], new_role: Callable[..., str]
) -> None:
    user = new_user([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}])
    trusting = new_role(
        [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
        [{"Effect": "Allow", "Action": "ssm:ListDocuments", "Resource": "*"}],
    )
    service_only = new_role([SSM_TRUST])
    sts = boto_client("sts", user)

    denied = error_of(lambda: sts.assume_role(RoleArn=service_only, RoleSessionName="session"))
    assert denied["Code"] == "AccessDenied"
    session = sts.assume_role(RoleArn=trusting, RoleSessionName="session")["Credentials"]
    role_creds = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }

    boto_client("ssm", role_creds).list_documents()
    assert (
        error_of(lambda: boto_client("ec2", role_creds).describe_instances())["Code"]
        == "UnauthorizedOperation"
    )
    wrong_token = {**role_creds, "aws_session_token": "forged"}
    assert (
        error_of(lambda: boto_client("ssm", wrong_token).list_documents())["Code"]
        == "UnrecognizedClientException"
    )


def test_a_trust_policy_naming_the_user_needs_no_identity_policy(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], new_role: Callable[..., str]
) -> None:
    user = new_user([], prefix="named")
    user_arn = boto_client("sts", user).get_caller_identity()["Arn"]
    named = new_role([{"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}])
    account_only = new_role([{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}])
    sts = boto_client("sts", user)

    assert sts.assume_role(RoleArn=named, RoleSessionName="session")["AssumedRoleUser"]["Arn"].endswith(
        "/session"
    )
    denied = error_of(lambda: sts.assume_role(RoleArn=account_only, RoleSessionName="session"))
    assert denied["Code"] == "AccessDenied"
    assert "no identity-based policy allows the sts:AssumeRole action" in denied["Message"]


def test_session_policy_narrows_an_assumed_role(
    boto_client: Callable[..., Any], new_user: Callable[..., Any], new_role: Callable[..., str]
) -> None:

    user = new_user([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}])
    role = new_role(
        [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}],
        [{"Effect": "Allow", "Action": ["ssm:ListDocuments", "ssm:DescribeParameters"], "Resource": "*"}],
    )
    narrow = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ssm:ListDocuments", "Resource": "*"}],
        }
    )
    session = boto_client("sts", user).assume_role(RoleArn=role, RoleSessionName="session", Policy=narrow)[
        "Credentials"
    ]
    creds = {
        "aws_access_key_id": session["AccessKeyId"],
        "aws_secret_access_key": session["SecretAccessKey"],
        "aws_session_token": session["SessionToken"],
    }

    boto_client("ssm", creds).list_documents()
    assert (
        error_of(lambda: boto_client("ssm", creds).describe_parameters())["Code"] == "AccessDeniedException"
    )


# --- the engine's Authorizer: StartAutomationExecution and iam:PassRole ---------------------------

START = {
    "Effect": "Allow",
    "Action": "ssm:StartAutomationExecution",
    "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/Runbook:*",
}
# The Service Authorization Reference's required resource type of a start: the new execution.
EXECUTIONS = {**START, "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-execution/*"}


def pass_role(role: str, service: str = "ssm.amazonaws.com") -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": role,
        "Condition": {"StringEquals": {"iam:PassedToService": service}},
    }


def refusal(call: Callable[[], Any]) -> AutomationApiError:
    with pytest.raises(AutomationApiError) as raised:
        call()
    assert raised.value.code == "AccessDeniedException"
    return raised.value


def test_start_is_authorised_on_the_definition_arn_and_version(
    local_server: LocalAutomationServer, new_user: Callable[..., Any]
) -> None:
    authorizer = local_server.authorizer
    pinned = {
        **START,
        "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:automation-definition/Runbook:*",
        "Condition": {"StringEquals": {"ssm:DocumentVersion": "2"}},
    }
    creds = caller(new_user([pinned, EXECUTIONS]))

    authorizer.authorize_start(creds, "Runbook", "2", None)
    assert (
        "automation-definition/Runbook:3"
        in refusal(lambda: authorizer.authorize_start(creds, "Runbook", "3", None)).message
    )
    assert (
        "ssm:StartAutomationExecution"
        in refusal(lambda: authorizer.authorize_start(creds, "OtherRunbook", "2", None)).message
    )


def test_a_start_needs_the_new_execution_and_carries_its_tags(
    local_server: LocalAutomationServer, new_user: Callable[..., Any]
) -> None:
    authorize = local_server.authorizer.authorize_start
    tagged = {
        **EXECUTIONS,
        "Condition": {
            "StringEquals": {"aws:RequestTag/team": "blue"},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]},
        },
    }
    creds = caller(new_user([START, tagged]))
    authorize(creds, "Runbook", "1", None, {"team": "blue"})
    assert (
        "automation-execution/*"
        in refusal(lambda: authorize(creds, "Runbook", "1", None, {"team": "red"})).message
    )
    refusal(lambda: authorize(creds, "Runbook", "1", None, {"team": "blue", "Owner": "x"}))
    only_definition = caller(new_user([START]))
    assert (
        "automation-execution/*" in refusal(lambda: authorize(only_definition, "Runbook", "1", None)).message
    )


def test_a_document_arn_allow_also_covers_the_start(
    local_server: LocalAutomationServer, new_user: Callable[..., Any]
) -> None:
    by_document = {**START, "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:document/Runbook"}
    local_server.authorizer.authorize_start(caller(new_user([by_document, EXECUTIONS])), "Runbook", "1", None)
    deny_document = {"Effect": "Deny", "Action": "ssm:*", "Resource": "arn:aws:ssm:*:*:document/Runbook"}
    creds = caller(new_user([START, EXECUTIONS, deny_document]))
    assert (
        "explicit deny"
        in refusal(lambda: local_server.authorizer.authorize_start(creds, "Runbook", "1", None)).message
    )


def test_passing_a_role_needs_pass_role_to_ssm(
    local_server: LocalAutomationServer, new_user: Callable[..., Any], new_role: Callable[..., str]
) -> None:
    role = new_role([SSM_TRUST])
    authorize = local_server.authorizer.authorize_start

    authorize(caller(new_user([START, EXECUTIONS, pass_role(role)])), "Runbook", "1", role)
    no_pass = caller(new_user([START, EXECUTIONS]))
    assert "iam:PassRole" in refusal(lambda: authorize(no_pass, "Runbook", "1", role)).message
    to_ec2_only = caller(new_user([START, EXECUTIONS, pass_role(role, "ec2.amazonaws.com")]))
    assert "iam:PassRole" in refusal(lambda: authorize(to_ec2_only, "Runbook", "1", role)).message
    authorize(no_pass, "Runbook", "1", None)  # without a role, no PassRole is needed


# --- the service role's trust policy --------------------------------------------------------------


def trust(condition: dict[str, Any]) -> dict[str, Any]:
    return {**SSM_TRUST, "Condition": condition}


def test_service_role_session_uses_the_roles_policies(
    local_server: LocalAutomationServer, boto_client: Callable[..., Any], new_role: Callable[..., str]
) -> None:
    role = new_role(
        [trust({"StringEquals": {"aws:SourceAccount": ACCOUNT}})],
        [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}],
    )
    keys = local_server.authorizer.assume_service_role(role, "0f1e2d3c-0000-4000-8000-000000000001")
    creds = {
        "aws_access_key_id": keys.access_key_id,
        "aws_secret_access_key": keys.secret_access_key,
        "aws_session_token": str(keys.session_token),
    }

    identity = boto_client("sts", creds).get_caller_identity()["Arn"]
    assert identity.endswith(f":assumed-role/{role.rsplit('/', 1)[1]}/0f1e2d3c-0000-4000-8000-000000000001")
    boto_client("ec2", creds).describe_instances()
    error = error_of(
        lambda: boto_client("ec2", creds).create_tags(Resources=["i-1"], Tags=[{"Key": "a", "Value": "b"}])
    )
    assert "ec2:CreateTags" in error["Message"]


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [
        ({"StringEquals": {"aws:SourceAccount": ACCOUNT}}, True),
        ({"StringEquals": {"aws:SourceAccount": "999999999999"}}, False),
        ({"ArnLike": {"aws:SourceArn": f"arn:aws:ssm:*:{ACCOUNT}:automation-execution/*"}}, True),
        ({"ArnLike": {"aws:SourceArn": f"arn:aws:ssm:*:{ACCOUNT}:automation-execution/other-*"}}, False),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:ssm:*:999999999999:automation-execution/*"}}, False),
    ],
)
def test_trust_policy_honours_source_account_and_source_arn(
    local_server: LocalAutomationServer,
    new_role: Callable[..., str],
    condition: dict[str, Any],
    allowed: bool,
) -> None:
    role = new_role([trust(condition)])
    assume = local_server.authorizer.assume_service_role
    if allowed:
        assert assume(role, "exec-1").session_token
    else:
        assert "trust policy" in refusal(lambda: assume(role, "exec-1")).message


def test_trust_policy_must_name_ssm(
    local_server: LocalAutomationServer, new_role: Callable[..., str]
) -> None:
    ec2_trust = {**SSM_TRUST, "Principal": {"Service": "ec2.amazonaws.com"}}
    refusal(lambda: local_server.authorizer.assume_service_role(new_role([ec2_trust]), "exec-2"))
    missing = f"arn:aws:iam::{ACCOUNT}:role/does-not-exist"
    assert (
        "does not exist"
        in refusal(lambda: local_server.authorizer.assume_service_role(missing, "exec-3")).message
    )
