"""iam:SimulateCustomPolicy / SimulatePrincipalPolicy over the wire: AWS's shapes, errors and rules.

Each rule case cites the AWS IAM User Guide page it comes from; the policies and expectations are ours.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.local_runtime import error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable

ACCOUNT = "123456789012"
OTHER = "999999999999"


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def entry(key: str, values: list[str], kind: str = "string") -> dict[str, Any]:
    return {"ContextKeyName": key, "ContextKeyValues": values, "ContextKeyType": kind}


@pytest.fixture
def iam(boto_client: Callable[..., Any]) -> Any:
    return boto_client("iam")


def simulate(
    iam: Any, policies: list[str], action: str, resource: str | None = None, **extra: Any
) -> dict[str, Any]:
    arns = {"ResourceArns": [resource]} if resource else {}
    result = iam.simulate_custom_policy(PolicyInputList=policies, ActionNames=[action], **arns, **extra)
    return dict(result["EvaluationResults"][0])


def decision(iam: Any, policies: list[str], action: str, resource: str | None = None, **extra: Any) -> str:
    return str(simulate(iam, policies, action, resource, **extra)["EvalDecision"])


def test_response_shape_matched_statements_and_positions(iam: Any) -> None:
    text = (
        '{"Version":"2012-10-17","Statement":'
        '[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}'
    )
    result = simulate(iam, [text], "s3:ListAllMyBuckets")
    assert result["EvalActionName"] == "s3:ListAllMyBuckets"
    assert result["EvalResourceName"] == "*"
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"] == [
        {
            "SourcePolicyId": "PolicyInputList.1",
            "SourcePolicyType": "none",
            "StartPosition": {"Line": 1, "Column": 38},  # the statement's '{', as in AWS's CLI example
            "EndPosition": {"Line": 1, "Column": 102},
        }
    ]
    assert result["MissingContextValues"] == []
    assert "ResourceSpecificResults" not in result


def test_explicit_deny_lists_only_the_deny_and_implicit_deny_lists_none(iam: Any) -> None:
    policies = [doc(allow("s3:*")), doc(deny("s3:DeleteObject"))]
    denied = simulate(iam, policies, "s3:DeleteObject", "arn:aws:s3:::b/k")
    assert denied["EvalDecision"] == "explicitDeny"
    assert [m["SourcePolicyId"] for m in denied["MatchedStatements"]] == ["PolicyInputList.2"]
    assert denied["ResourceSpecificResults"][0]["EvalResourceDecision"] == "explicitDeny"
    assert denied["EvalDecisionDetails"] == {}  # same account, a resource ARN: present but empty
    assert simulate(iam, policies, "ec2:RunInstances")["MatchedStatements"] == []


def test_missing_context_values_name_the_keys_the_conditions_need(iam: Any) -> None:
    policy = doc(
        allow(
            "s3:GetObject",
            Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}, "Bool": {"aws:SecureTransport": "true"}},
        )
    )
    result = simulate(
        iam,
        [policy],
        "s3:GetObject",
        "arn:aws:s3:::b/k",
        ContextEntries=[entry("aws:SecureTransport", ["true"], "boolean")],
    )
    assert result["EvalDecision"] == "implicitDeny"
    assert result["MissingContextValues"] == ["aws:SourceIp"]


def test_context_types_and_multivalued_keys(iam: Any) -> None:
    policy = doc(
        allow("ec2:CreateTags", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "Name"]}}),
        deny("ec2:CreateTags", Condition={"NumericGreaterThan": {"ec2:Count": "5"}}),
    )
    keys = entry("aws:TagKeys", ["team"], "stringList")
    assert decision(iam, [policy], "ec2:CreateTags", ContextEntries=[keys]) == "allowed"
    too_many = entry("ec2:Count", ["6"], "numeric")
    assert decision(iam, [policy], "ec2:CreateTags", ContextEntries=[keys, too_many]) == "explicitDeny"
    owner = entry("aws:TagKeys", ["team", "Owner"], "stringList")
    assert decision(iam, [policy], "ec2:CreateTags", ContextEntries=[owner]) == "implicitDeny"
    # "AWS's simulator": a single-valued operator on a stringList key does not match.
    like = doc(allow("ec2:CreateTags", Condition={"StringLike": {"aws:TagKeys": "team*"}}))
    assert decision(iam, [like], "ec2:CreateTags", ContextEntries=[keys]) == "implicitDeny"


@pytest.mark.parametrize(
    ("kind", "value"),
    [("numeric", "ten"), ("boolean", "yes"), ("ip", "300.1.1.1"), ("date", "yesterday"), ("binary", "***")],
)
def test_a_value_not_of_its_context_key_type_is_invalid_input(iam: Any, kind: str, value: str) -> None:
    error = error_of(
        lambda: simulate(iam, [doc(allow())], "s3:GetObject", ContextEntries=[entry("k:Key", [value], kind)])
    )
    assert error["Code"] == "InvalidInput"
    assert "k:Key" in error["Message"] and kind in error["Message"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "Syntax errors in policy."),
        (doc({"Effect": "Allow", "Action": "s3:*"}), "Policy statement must contain resources."),
        (doc({"Effect": "Perhaps", "Action": "s3:*", "Resource": "*"}), "Syntax errors in policy."),
        (doc(allow(Principal="*")), "Policy document should not specify a principal."),
        (doc(allow(Condition={"StringSortOf": {"k:A": "x"}})), "Syntax errors in policy."),
        (doc(allow("GetObject")), "Actions/Conditions must be prefaced by a vendor"),
    ],
)
def test_invalid_policies_are_malformed_policy_document(iam: Any, text: str, problem: str) -> None:
    error = error_of(
        lambda: iam.simulate_custom_policy(PolicyInputList=[doc(allow()), text], ActionNames=["s3:GetObject"])
    )
    assert error["Code"] == "MalformedPolicyDocument"
    assert error["Message"].startswith(problem)
    assert "PolicyInputList.2" in error["Message"]


def test_paging_with_max_items_and_marker(iam: Any) -> None:
    actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    first = iam.simulate_custom_policy(
        PolicyInputList=[doc(allow("s3:Get*"))], ActionNames=actions, MaxItems=2
    )
    assert first["IsTruncated"] is True
    assert [r["EvalActionName"] for r in first["EvaluationResults"]] == actions[:2]
    rest = iam.simulate_custom_policy(
        PolicyInputList=[doc(allow("s3:Get*"))], ActionNames=actions, MaxItems=2, Marker=first["Marker"]
    )
    assert rest["IsTruncated"] is False
    assert [(r["EvalActionName"], r["EvalDecision"]) for r in rest["EvaluationResults"]] == [
        ("s3:DeleteObject", "implicitDeny")
    ]
    paginated = iam.get_paginator("simulate_custom_policy").paginate(
        PolicyInputList=[doc(allow())], ActionNames=actions, PaginationConfig={"PageSize": 1}
    )
    assert len([r for page in paginated for r in page["EvaluationResults"]]) == 3
    error = error_of(
        lambda: iam.simulate_custom_policy(
            PolicyInputList=[doc(allow())], ActionNames=actions, Marker="bogus"
        )
    )
    assert error["Code"] == "InvalidInput"


def test_permissions_boundary_limits_the_identity_policies(iam: Any) -> None:
    boundary = [doc(allow("s3:Get*"))]
    got = simulate(iam, [doc(allow("s3:*"))], "s3:GetObject", PermissionsBoundaryPolicyInputList=boundary)
    assert got["EvalDecision"] == "allowed"
    assert got["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": True}
    put = simulate(iam, [doc(allow("s3:*"))], "s3:PutObject", PermissionsBoundaryPolicyInputList=boundary)
    assert put["EvalDecision"] == "implicitDeny"
    assert put["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": False}


def test_resource_policy_same_account_and_cross_account(iam: Any) -> None:
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    bucket_policy = doc(allow("s3:GetObject", "arn:aws:s3:::b/*", Principal={"AWS": alice}))
    nothing = doc(allow("ec2:DescribeInstances"))
    # Same account: the resource policy alone allows.
    same = simulate(
        iam, [nothing], "s3:GetObject", "arn:aws:s3:::b/k", ResourcePolicy=bucket_policy, CallerArn=alice
    )
    assert same["EvalDecision"] == "allowed"
    assert [m["SourcePolicyType"] for m in same["MatchedStatements"]] == ["resource"]
    # Another account owns the bucket: the identity policy must allow too.
    owner = f"arn:aws:iam::{OTHER}:root"
    cross = simulate(
        iam,
        [nothing],
        "s3:GetObject",
        "arn:aws:s3:::b/k",
        ResourcePolicy=bucket_policy,
        CallerArn=alice,
        ResourceOwner=owner,
    )
    assert cross["EvalDecision"] == "implicitDeny"
    assert cross["EvalDecisionDetails"] == {"IAMPolicy": "implicitDeny", "ResourcePolicy": "allowed"}
    both = simulate(
        iam,
        [doc(allow("s3:*"))],
        "s3:GetObject",
        "arn:aws:s3:::b/k",
        ResourcePolicy=bucket_policy,
        CallerArn=alice,
        ResourceOwner=owner,
    )
    assert both["EvalDecision"] == "allowed"
    error = error_of(
        lambda: simulate(iam, [nothing], "s3:GetObject", CallerArn=f"arn:aws:iam::{ACCOUNT}:role/R")
    )
    assert error["Code"] == "InvalidInput"


def test_simulate_principal_policy_reports_the_attached_policies(
    iam: Any, boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    user = new_user([allow("s3:GetObject", "arn:aws:s3:::b/*")])
    arn = boto_client("sts", user).get_caller_identity()["Arn"]
    results = iam.simulate_principal_policy(
        PolicySourceArn=arn,
        ActionNames=["s3:GetObject"],
        ResourceArns=["arn:aws:s3:::b/k"],
        PolicyInputList=[doc(deny("s3:PutObject"))],
    )["EvaluationResults"]
    matched = results[0]["MatchedStatements"]
    assert results[0]["EvalDecision"] == "allowed"
    assert len(matched) == 1 and matched[0]["SourcePolicyType"] in ("user", "user-managed")
    group = unique("g")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=arn.rsplit("/", 1)[-1])
    iam.put_group_policy(GroupName=group, PolicyName="no-get", PolicyDocument=doc(deny("s3:GetObject")))
    again = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:GetObject"])[
        "EvaluationResults"
    ][0]
    assert again["EvalDecision"] == "explicitDeny"
    assert again["MatchedStatements"][0]["SourcePolicyId"] == "no-get"
    assert again["MatchedStatements"][0]["SourcePolicyType"] == "group"


def test_simulate_custom_policy_is_itself_authorised(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    nosy = new_user([allow("ec2:*")], prefix="nosy")
    error = error_of(
        lambda: boto_client("iam", nosy).simulate_custom_policy(
            PolicyInputList=[doc(allow())], ActionNames=["s3:GetObject"]
        )
    )
    assert error["Code"] == "AccessDenied"
    assert "iam:SimulateCustomPolicy" in error["Message"]


def test_resource_policy_naming_only_the_account_delegates_to_identity_policies(iam: Any) -> None:
    """ "Policy evaluation logic": a resource policy that names the account (not the user) needs the
    identity policies to allow too; across accounts without a resource policy nothing grants access."""
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    to_account = doc(
        allow("s3:GetObject", "arn:aws:s3:::b/*", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    )
    nothing = doc(allow("ec2:DescribeInstances"))
    args = {"ResourcePolicy": to_account, "CallerArn": alice}
    assert decision(iam, [nothing], "s3:GetObject", "arn:aws:s3:::b/k", **args) == "implicitDeny"
    assert (
        decision(iam, [doc(allow("s3:GetObject"))], "s3:GetObject", "arn:aws:s3:::b/k", **args) == "allowed"
    )
    other = f"arn:aws:iam::{OTHER}:root"
    cross = simulate(
        iam, [doc(allow("s3:*"))], "s3:GetObject", "arn:aws:s3:::b/k", CallerArn=alice, ResourceOwner=other
    )
    assert cross["EvalDecision"] == "implicitDeny"
    assert cross["EvalDecisionDetails"] == {"IAMPolicy": "allowed"}


def test_not_principal_deny_always_denies_a_caller_with_a_permissions_boundary(iam: Any) -> None:
    """ "Policy elements: NotPrincipal": with a permissions boundary the Deny applies whatever it names."""
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    fence = doc(
        {"Effect": "Deny", "NotPrincipal": {"AWS": alice}, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}
    )
    args = {"ResourcePolicy": fence, "CallerArn": alice}
    assert decision(iam, [doc(allow("s3:*"))], "s3:GetObject", "arn:aws:s3:::b/k", **args) == "allowed"
    bounded = {**args, "PermissionsBoundaryPolicyInputList": [doc(allow("s3:*"))]}
    assert (
        decision(iam, [doc(allow("s3:*"))], "s3:GetObject", "arn:aws:s3:::b/k", **bounded) == "explicitDeny"
    )
