"""Which action, resource ARNs and condition keys a wire request is authorised against."""

from __future__ import annotations

from airflow_ssm_delegate.local.resources import Check, Scope, checks_for, ec2_arn, ssm_document_arn

SCOPE = Scope("us-east-1", "123456789012")


def test_run_instances_needs_every_resource_it_touches() -> None:
    params = {
        "ImageId": "ami-0abc",
        "SubnetId": "subnet-1",
        "SecurityGroupId.1": "sg-1",
        "InstanceType": "t3.micro",
    }
    resources = {c.resource for c in checks_for("ec2", "RunInstances", params, SCOPE)}
    assert resources == {
        "arn:aws:ec2:us-east-1:123456789012:instance/*",
        "arn:aws:ec2:us-east-1:123456789012:network-interface/*",
        "arn:aws:ec2:us-east-1:123456789012:volume/*",
        "arn:aws:ec2:us-east-1:123456789012:subnet/subnet-1",
        "arn:aws:ec2:us-east-1:123456789012:security-group/sg-1",
        "arn:aws:ec2:us-east-1::image/ami-0abc",
    }
    instance = next(
        c for c in checks_for("ec2", "RunInstances", params, SCOPE) if c.resource.endswith("instance/*")
    )
    assert instance.context["ec2:InstanceType"] == "t3.micro"


def test_run_instances_with_tag_specifications_also_needs_create_tags_on_create() -> None:
    params = {
        "ImageId": "ami-0abc",
        "TagSpecification.1.ResourceType": "instance",
        "TagSpecification.1.Tag.1.Key": "Owner",
        "TagSpecification.1.Tag.1.Value": "alice",
    }
    tagging = [c for c in checks_for("ec2", "RunInstances", params, SCOPE) if c.action == "ec2:CreateTags"]
    assert tagging == [
        Check(
            "ec2:CreateTags",
            "arn:aws:ec2:us-east-1:123456789012:instance/*",
            {"aws:RequestTag/Owner": "alice", "aws:TagKeys": ["Owner"], "ec2:CreateAction": "RunInstances"},
        )
    ]


def test_create_tags_is_checked_per_resource_id() -> None:
    params = {"ResourceId.1": "i-1", "ResourceId.2": "ami-2", "Tag.1.Key": "k", "Tag.1.Value": "v"}
    checks = checks_for("ec2", "CreateTags", params, SCOPE)
    assert [c.resource for c in checks] == [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
        "arn:aws:ec2:us-east-1::image/ami-2",
    ]
    assert all(c.context["aws:RequestTag/k"] == "v" for c in checks)


def test_unknown_ec2_ids_and_operations_fall_back_to_star() -> None:
    assert ec2_arn(SCOPE, "weird-123") == "*"
    assert checks_for("ec2", "DescribeInstances", {}, SCOPE) == [Check("ec2:DescribeInstances")]


def test_ssm_resources() -> None:
    assert checks_for("ssm", "GetDocument", {"Name": "Mine"}, SCOPE) == [
        Check("ssm:GetDocument", "arn:aws:ssm:us-east-1:123456789012:document/Mine")
    ]
    assert (
        ssm_document_arn(SCOPE, "AWS-RunShellScript") == "arn:aws:ssm:us-east-1::document/AWS-RunShellScript"
    )
    execution = checks_for("ssm", "StopAutomationExecution", {"AutomationExecutionId": "abc"}, SCOPE)
    assert execution == [
        Check("ssm:StopAutomationExecution", "arn:aws:ssm:us-east-1:123456789012:automation-execution/abc")
    ]
    assert checks_for("ssm", "GetParameter", {"Name": "/app/key"}, SCOPE)[0].resource.endswith(
        ":parameter/app/key"
    )
    command = checks_for(
        "ssm",
        "SendCommand",
        {"DocumentName": "AWS-RunPatchBaseline", "InstanceIds": ["i-0abc", "mi-0def"]},
        SCOPE,
    )
    assert [check.resource for check in command] == [
        "arn:aws:ssm:us-east-1::document/AWS-RunPatchBaseline",
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",  # EC2 instances: ec2's ARN
        "arn:aws:ssm:us-east-1:123456789012:managed-instance/mi-0def",
    ]
    # Authorised by the engine with the resolved version, not at the wire.
    assert checks_for("ssm", "StartAutomationExecution", {"DocumentName": "X"}, SCOPE) == []


def test_iam_and_sts_resources() -> None:
    assert checks_for("iam", "PutRolePolicy", {"RoleName": "R", "PolicyName": "p"}, SCOPE)[0].resource == (
        "arn:aws:iam::123456789012:role/R"
    )
    [assume] = checks_for("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::1:role/R", "ExternalId": "x"}, SCOPE)
    assert (assume.resource, assume.context["sts:ExternalId"]) == ("arn:aws:iam::1:role/R", "x")
