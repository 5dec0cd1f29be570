"""Our own cases, one or more per rule of AWS's IAM User Guide, through SimulateCustomPolicy over boto3.

Pages: [ops] "IAM JSON policy elements: Condition operators"; [vars] "IAM policy elements: Variables
and tags"; [eval] "Policy evaluation logic"; [arn] "IAM identifiers" (ARNs); [multi] "Single-valued vs.
multivalued context keys"; [res] "IAM JSON policy elements: Resource". Policies and expectations are ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from collections.abc import Callable

EC2 = "arn:aws:ec2:us-east-1:123456789012"


@dataclass(frozen=True)
class Rule:
    page: str
    statement: dict[str, Any]
    action: str
    resource: str | None
    context: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    expected: str = "allowed"
    version: str = "2012-10-17"


def when(condition: dict[str, Any], action: str = "s3:GetObject") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": "*", "Condition": condition}


def res(resource: str, action: str = "s3:GetObject") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


S, SL, N, B, IP, D, BIN = "string", "stringList", "numeric", "boolean", "ip", "date", "binary"
OBJ = "arn:aws:s3:::bucket/key"
RULES: dict[str, Rule] = {
    # [eval] explicit deny beats allow; no allow is an implicit deny; NotAction.
    "deny-wins": Rule(
        "eval",
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
        "s3:GetObject",
        OBJ,
        expected="explicitDeny",
    ),
    "no-allow": Rule("eval", res("*", "ec2:RunInstances"), "s3:GetObject", OBJ, expected="implicitDeny"),
    "not-action": Rule(
        "eval", {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, "s3:GetObject", OBJ
    ),
    "action-case": Rule("eval", res("*", "S3:getobject"), "s3:GetObject", OBJ),
    # [res]/[arn] ARN matching.
    "arn-glob": Rule("arn", res("arn:aws:s3:::bucket/*"), "s3:GetObject", OBJ),
    "arn-case": Rule("arn", res("arn:aws:s3:::Bucket/*"), "s3:GetObject", OBJ, expected="implicitDeny"),
    "arn-segment": Rule(
        "arn",
        res("arn:aws:ec2:us-*:instance/i-1", "ec2:StopInstances"),
        "ec2:StopInstances",
        f"{EC2}:instance/i-1",
        expected="implicitDeny",
    ),
    "arn-type-wildcard": Rule(
        "arn",
        res("arn:aws:ec2:us-east-1:123456789012:*/i-1", "ec2:StopInstances"),
        "ec2:StopInstances",
        f"{EC2}:instance/i-1",
        expected="implicitDeny",
    ),
    "arn-question": Rule(
        "arn", res(f"{EC2}:instance/i-?", "ec2:StopInstances"), "ec2:StopInstances", f"{EC2}:instance/i-1"
    ),
    "not-resource": Rule(
        "res",
        {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"},
        "s3:GetObject",
        "arn:aws:s3:::secret/k",
        expected="implicitDeny",
    ),
    # [vars] variables, defaults, literal characters, unresolved, version 2008.
    "var": Rule(
        "vars",
        res("arn:aws:s3:::bucket/${aws:username}/*"),
        "s3:GetObject",
        "arn:aws:s3:::bucket/alice/x",
        {"aws:username": (S, ["alice"])},
    ),
    "var-default": Rule(
        "vars",
        res("arn:aws:s3:::bucket/${aws:PrincipalTag/team, 'company-wide'}/*"),
        "s3:GetObject",
        "arn:aws:s3:::bucket/company-wide/x",
    ),
    "var-unresolved": Rule(
        "vars",
        res("arn:aws:s3:::bucket/${aws:username}/*"),
        "s3:GetObject",
        "arn:aws:s3:::bucket//x",
        expected="implicitDeny",
    ),
    "var-literal-star": Rule(
        "vars",
        res("arn:aws:s3:::bucket/${*}"),
        "s3:GetObject",
        "arn:aws:s3:::bucket/x",
        expected="implicitDeny",
    ),
    "var-in-condition": Rule(
        "vars",
        when({"StringEquals": {"aws:RequestTag/owner": "${aws:username}"}}),
        "s3:GetObject",
        OBJ,
        {"aws:username": (S, ["alice"]), "aws:RequestTag/owner": (S, ["alice"])},
    ),
    # [ops] strings: case-sensitive values, case-insensitive keys, IgnoreCase, Like.
    "string-value-case": Rule(
        "ops",
        when({"StringEquals": {"aws:PrincipalTag/team": "Blue"}}),
        "s3:GetObject",
        OBJ,
        {"aws:PrincipalTag/team": (S, ["blue"])},
        "implicitDeny",
    ),
    "string-key-case": Rule(
        "ops",
        when({"StringEquals": {"AWS:PRINCIPALTAG/TEAM": "blue"}}),
        "s3:GetObject",
        OBJ,
        {"aws:PrincipalTag/team": (S, ["blue"])},
    ),
    "string-ignore-case": Rule(
        "ops",
        when({"StringEqualsIgnoreCase": {"aws:PrincipalTag/team": "BLUE"}}),
        "s3:GetObject",
        OBJ,
        {"aws:PrincipalTag/team": (S, ["blue"])},
    ),
    "string-like": Rule(
        "ops",
        when({"StringLike": {"s3:prefix": "home/*"}}, "s3:ListBucket"),
        "s3:ListBucket",
        "arn:aws:s3:::bucket",
        {"s3:prefix": (S, ["home/alice"])},
    ),
    "string-not-equals-absent": Rule(
        "ops", when({"StringNotEquals": {"aws:PrincipalTag/team": "red"}}), "s3:GetObject", OBJ
    ),
    # [ops] numbers, dates, booleans, binary, IP addresses, ARNs, Null, IfExists.
    "numeric": Rule(
        "ops",
        when({"NumericLessThanEquals": {"s3:max-keys": "10"}}, "s3:ListBucket"),
        "s3:ListBucket",
        "arn:aws:s3:::bucket",
        {"s3:max-keys": (N, ["10"])},
    ),
    "numeric-not": Rule(
        "ops",
        when({"NumericNotEquals": {"s3:max-keys": "10"}}, "s3:ListBucket"),
        "s3:ListBucket",
        "arn:aws:s3:::bucket",
        {"s3:max-keys": (N, ["10"])},
        "implicitDeny",
    ),
    "date": Rule(
        "ops",
        when({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
        "s3:GetObject",
        OBJ,
        {"aws:CurrentTime": (D, ["2026-11-30T12:00:00Z"])},
    ),
    "date-after": Rule(
        "ops",
        when({"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
        "s3:GetObject",
        OBJ,
        {"aws:CurrentTime": (D, ["2026-11-30T12:00:00Z"])},
        "implicitDeny",
    ),
    "bool": Rule(
        "ops",
        when({"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
        "s3:GetObject",
        OBJ,
        {"aws:MultiFactorAuthPresent": (B, ["true"])},
    ),
    "bool-absent": Rule(
        "ops",
        when({"Bool": {"aws:MultiFactorAuthPresent": "false"}}),
        "s3:GetObject",
        OBJ,
        expected="implicitDeny",
    ),
    "binary": Rule(
        "ops",
        when({"BinaryEquals": {"k:blob": "QmluYXJ5VmFsdWU="}}),
        "s3:GetObject",
        OBJ,
        {"k:blob": (BIN, ["QmluYXJ5VmFsdWU="])},
    ),
    "ip": Rule(
        "ops",
        when({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
        "s3:GetObject",
        OBJ,
        {"aws:SourceIp": (IP, ["203.0.113.7"])},
    ),
    "not-ip": Rule(
        "ops",
        when({"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
        "s3:GetObject",
        OBJ,
        {"aws:SourceIp": (IP, ["203.0.113.7"])},
        "implicitDeny",
    ),
    "arn-like": Rule(
        "ops",
        when({"ArnLike": {"aws:SourceArn": "arn:aws:ssm:*:123456789012:automation-execution/*"}}),
        "s3:GetObject",
        OBJ,
        {"aws:SourceArn": (S, ["arn:aws:ssm:us-east-1:123456789012:automation-execution/e-1"])},
    ),
    "arn-not-equals": Rule(
        "ops",
        when({"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}}),
        "s3:GetObject",
        OBJ,
        {"aws:SourceArn": (S, ["arn:aws:sns:us-east-1:1:t"])},
        "implicitDeny",
    ),
    "null-true": Rule("ops", when({"Null": {"aws:TokenIssueTime": "true"}}), "s3:GetObject", OBJ),
    "null-false": Rule(
        "ops", when({"Null": {"aws:TokenIssueTime": "false"}}), "s3:GetObject", OBJ, expected="implicitDeny"
    ),
    "if-exists-absent": Rule(
        "ops", when({"StringEqualsIfExists": {"ec2:InstanceType": "t3.micro"}}), "s3:GetObject", OBJ
    ),
    "if-exists-present": Rule(
        "ops",
        when({"StringEqualsIfExists": {"ec2:InstanceType": "t3.micro"}}),
        "s3:GetObject",
        OBJ,
        {"ec2:InstanceType": (S, ["m5.large"])},
        "implicitDeny",
    ),
    # [multi] set operators and multivalued keys.
    "for-all-subset": Rule(
        "multi",
        when({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}),
        "s3:GetObject",
        OBJ,
        {"aws:TagKeys": (SL, ["team"])},
    ),
    "for-all-extra": Rule(
        "multi",
        when({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}),
        "s3:GetObject",
        OBJ,
        {"aws:TagKeys": (SL, ["team", "owner"])},
        "implicitDeny",
    ),
    "for-all-absent": Rule(
        "multi", when({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}), "s3:GetObject", OBJ
    ),
    "for-any-absent": Rule(
        "multi",
        when({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}),
        "s3:GetObject",
        OBJ,
        expected="implicitDeny",
    ),
    "for-any-one": Rule(
        "multi",
        when({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}),
        "s3:GetObject",
        OBJ,
        {"aws:TagKeys": (SL, ["owner", "team"])},
    ),
    "single-op-on-list": Rule(
        "multi",
        when({"StringLike": {"aws:TagKeys": "team*"}}),
        "s3:GetObject",
        OBJ,
        {"aws:TagKeys": (SL, ["team"])},
        "implicitDeny",
    ),
    "all-keys-and": Rule(
        "ops",
        when({"StringEquals": {"aws:PrincipalTag/team": "blue", "aws:PrincipalTag/env": "prod"}}),
        "s3:GetObject",
        OBJ,
        {"aws:PrincipalTag/team": (S, ["blue"])},
        "implicitDeny",
    ),
    "values-or": Rule(
        "ops",
        when({"StringEquals": {"aws:PrincipalTag/team": ["red", "blue"]}}),
        "s3:GetObject",
        OBJ,
        {"aws:PrincipalTag/team": (S, ["blue"])},
    ),
}


@pytest.mark.parametrize("name", list(RULES))
def test_rule(boto_client: Callable[..., Any], name: str) -> None:
    rule = RULES[name]
    policy = json.dumps({"Version": rule.version, "Statement": [rule.statement]})
    entries = [
        {"ContextKeyName": key, "ContextKeyType": kind, "ContextKeyValues": values}
        for key, (kind, values) in rule.context.items()
    ]
    arns = {"ResourceArns": [rule.resource]} if rule.resource else {}
    result = boto_client("iam").simulate_custom_policy(
        PolicyInputList=[policy], ActionNames=[rule.action], ContextEntries=entries, **arns
    )["EvaluationResults"][0]
    assert result["EvalDecision"] == rule.expected, f"[{rule.page}] {name}"


def test_variables_need_the_2012_policy_language(boto_client: Callable[..., Any]) -> None:
    """[vars] Policy variables exist from Version 2012-10-17; IAM refuses them in an older policy."""
    old = json.dumps({"Version": "2008-10-17", "Statement": [res("arn:aws:s3:::bucket/${aws:username}")]})
    with pytest.raises(ClientError) as raised:
        boto_client("iam").simulate_custom_policy(PolicyInputList=[old], ActionNames=["s3:GetObject"])
    assert raised.value.response["Error"]["Code"] == "MalformedPolicyDocument"
