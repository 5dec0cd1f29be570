"""Evaluator rules from AWS's IAM pages that an earlier version got wrong (each case cites its rule)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ssm_delegate.local.iam_eval import Decision, RequestContext, evaluate

ALLOW, DENY, NONE = Decision.ALLOW, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY


def decide(
    statement: dict[str, Any], action: str = "s3:GetObject", resource: str = "*", **context: Any
) -> Decision:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", **statement}],
    }
    return evaluate([document], RequestContext(action, resource, context))


def test_policy_variable_default_value_applies_when_the_key_is_absent() -> None:
    # "Policy variables": ${aws:PrincipalTag/team, 'company-wide'} -> the default when the tag is absent.
    statement = {"Resource": "arn:aws:s3:::bucket/${aws:PrincipalTag/team, 'company-wide'}/*"}
    assert decide(statement, resource="arn:aws:s3:::bucket/company-wide/x") is ALLOW
    tagged = {"aws:PrincipalTag/team": "blue"}
    assert decide(statement, resource="arn:aws:s3:::bucket/blue/x", **tagged) is ALLOW
    assert decide(statement, resource="arn:aws:s3:::bucket/company-wide/x", **tagged) is NONE


def test_unresolved_variable_matches_nothing_and_literal_escapes_are_not_wildcards() -> None:
    assert decide({"Resource": "arn:aws:s3:::b/${aws:username}"}, resource="arn:aws:s3:::b/") is NONE
    literal = {"Resource": "arn:aws:s3:::b/${*}${?}${$}"}
    assert decide(literal, resource="arn:aws:s3:::b/*?$") is ALLOW
    assert decide(literal, resource="arn:aws:s3:::b/xy$") is NONE


def test_variables_are_literal_text_in_a_2008_policy() -> None:
    document = {"Version": "2008-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/${aws:username}"}]}  # fmt: skip
    request = RequestContext("s3:GetObject", "arn:aws:s3:::b/alice", {"aws:username": "alice"})
    assert evaluate([document], request) is NONE
    literal = RequestContext("s3:GetObject", "arn:aws:s3:::b/${aws:username}", {"aws:username": "alice"})
    assert evaluate([document], literal) is ALLOW


def test_wildcard_in_resource_type_matches_nothing() -> None:
    # "IAM identifiers" (incorrect wildcard usage): arn:aws:ec2:us-east-1:123456789012:*/12345.
    instance = "arn:aws:ec2:us-east-1:123456789012:instance/12345"
    assert decide({"Resource": "arn:aws:ec2:us-east-1:123456789012:*/12345"}, resource=instance) is NONE
    assert decide({"Resource": "arn:aws:ec2:us-east-1:123456789012:instance/*"}, resource=instance) is ALLOW
    # S3 ARNs have no resource-type part: arn:aws:s3:::*/* covers every object.
    assert decide({"Resource": "arn:aws:s3:::*/*"}, resource="arn:aws:s3:::b/k") is ALLOW


def test_wildcards_do_not_span_arn_segments() -> None:
    assert (
        decide({"Resource": "arn:aws:ec2:us-*:instance/i-1"}, resource="arn:aws:ec2:us-east-1:1:instance/i-1")
        is NONE
    )
    assert (
        decide({"Resource": "arn:aws:ec2:*:*:instance/i-1"}, resource="arn:aws:ec2:us-east-1:1:instance/i-1")
        is ALLOW
    )


def test_single_valued_operator_on_a_multivalued_key_does_not_match() -> None:
    like = {"Condition": {"StringLike": {"aws:TagKeys": "team*"}}}
    listed: dict[str, Any] = {"aws:TagKeys": ["team"]}
    assert decide(like, **listed) is NONE
    assert decide(like, **{"aws:TagKeys": "team"}) is ALLOW
    for_any = {"Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": "team*"}}}
    two: dict[str, Any] = {"aws:TagKeys": ["team", "x"]}
    assert decide(for_any, **two) is ALLOW


@pytest.mark.parametrize(
    ("operator", "context", "expected"),
    [
        ("ForAllValues:StringEquals", {}, ALLOW),  # absent key: vacuously true
        ("ForAllValues:StringEquals", {"aws:TagKeys": []}, ALLOW),  # empty set: vacuously true
        ("ForAnyValue:StringEquals", {}, NONE),
        ("ForAnyValue:StringEquals", {"aws:TagKeys": []}, NONE),
        ("ForAnyValue:StringEqualsIfExists", {}, ALLOW),
        ("ForAllValues:StringNotEquals", {"aws:TagKeys": ["a", "b"]}, ALLOW),
        ("ForAllValues:StringNotEquals", {"aws:TagKeys": ["a", "team"]}, NONE),
        ("ForAnyValue:StringNotEquals", {"aws:TagKeys": ["a", "team"]}, ALLOW),
        ("ForAnyValue:StringNotEquals", {"aws:TagKeys": ["team"]}, NONE),
        ("StringNotEquals", {}, ALLOW),  # a negated operator holds when the key is absent
    ],
)
def test_set_operators_and_empty_sets(operator: str, context: dict[str, Any], expected: Decision) -> None:
    assert decide({"Condition": {operator: {"aws:TagKeys": "team"}}}, **context) is expected


@pytest.mark.parametrize(
    ("operator", "policy_value", "request_value", "expected"),
    [
        ("StringEquals", "Prod", "prod", NONE),  # values are case-sensitive
        ("StringEqualsIgnoreCase", "Prod", "prod", ALLOW),
        ("StringNotEqualsIgnoreCase", "Prod", "prod", NONE),
        ("NumericGreaterThanEquals", "10", "10", ALLOW),
        ("NumericNotEquals", "10", "10.0", NONE),
        ("NumericLessThan", "10", "ten", NONE),  # not a number: no match
        ("DateGreaterThan", "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", ALLOW),
        ("DateLessThanEquals", "2026-01-01", "1767225600", ALLOW),  # epoch seconds = 2026-01-01
        ("Bool", "true", "TRUE", ALLOW),
        ("Bool", "true", "yes", NONE),
        ("BinaryEquals", "QmluYXJ5", "QmluYXJ5", ALLOW),
        ("IpAddress", "2001:db8::/32", "2001:db8::1", ALLOW),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.9", NONE),
        ("ArnLike", "arn:aws:iam::*:role/Ops*", "arn:aws:iam::1:role/OpsAdmin", ALLOW),
        ("ArnNotEquals", "arn:aws:iam::1:role/A", "arn:aws:iam::1:role/A", NONE),
        ("StringLikeIfExists", "a*", "b", NONE),
    ],
)
def test_every_operator(operator: str, policy_value: str, request_value: str, expected: Decision) -> None:
    assert decide({"Condition": {operator: {"K:Key": policy_value}}}, **{"k:key": request_value}) is expected


def test_null_operator_checks_presence_only() -> None:
    assert (
        decide({"Condition": {"Null": {"aws:RequestTag/team": "false"}}}, **{"aws:RequestTag/team": ""})
        is ALLOW
    )
    assert decide({"Condition": {"Null": {"aws:RequestTag/team": "true"}}}) is ALLOW
    assert decide({"Condition": {"Null": {"aws:RequestTag/team": "false"}}}) is NONE


def test_keys_the_delegation_policy_relies_on() -> None:
    """aws:RequestTag, aws:TagKeys, aws:ResourceTag, iam:PassedToService, ssm:DocumentVersion."""
    tags = {"Condition": {
        "StringEquals": {"aws:RequestTag/team": "${aws:PrincipalTag/team}"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "Name"]},
    }}  # fmt: skip
    ok: dict[str, Any] = {
        "aws:RequestTag/team": "blue",
        "aws:PrincipalTag/team": "blue",
        "aws:TagKeys": ["team"],
    }
    assert decide(tags, **ok) is ALLOW
    assert decide(tags, **{**ok, "aws:TagKeys": ["team", "Owner"]}) is NONE
    assert decide(tags, **{**ok, "aws:RequestTag/team": "red"}) is NONE
    owned = {"Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}}}
    assert decide(owned, **{"aws:ResourceTag/team": "blue"}) is ALLOW
    assert decide(owned) is NONE
    passed = {"Condition": {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}}
    assert decide(passed, **{"iam:PassedToService": "ssm.amazonaws.com"}) is ALLOW
    assert decide(passed, **{"iam:PassedToService": "ec2.amazonaws.com"}) is NONE
    pinned = {"Condition": {"StringEquals": {"ssm:DocumentVersion": ["3"]}}}
    assert decide(pinned, **{"ssm:DocumentVersion": "3"}) is ALLOW
    assert decide(pinned, **{"ssm:DocumentVersion": "$LATEST"}) is NONE
