"""The IAM policy evaluator on its own: each rule with a policy that hits it and one that does not."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ssm_delegate.local.iam_eval import (
    Decision,
    Principal,
    RequestContext,
    arn_like,
    evaluate,
    wildcard_match,
)

INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"
ROLE = "arn:aws:iam::123456789012:role/R"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(statements: list[dict[str, Any]], action: str, resource: str = "*", /, **context: Any) -> Decision:
    return evaluate([policy(*statements)], RequestContext(action, resource, context))


def test_explicit_deny_wins_over_allow_in_another_policy() -> None:
    request = RequestContext("ec2:RunInstances", INSTANCE)
    assert evaluate([policy(allow()), policy(deny("ec2:*"))], request) is Decision.EXPLICIT_DENY
    assert evaluate([policy(allow())], request) is Decision.ALLOW


def test_no_matching_allow_is_an_implicit_deny() -> None:
    assert decide([allow("ssm:GetDocument")], "ec2:RunInstances") is Decision.IMPLICIT_DENY
    assert evaluate([], RequestContext("ec2:RunInstances")) is Decision.IMPLICIT_DENY


def test_actions_match_case_insensitively_with_wildcards() -> None:
    assert decide([allow("EC2:run*")], "ec2:RunInstances") is Decision.ALLOW
    assert decide([allow("ec2:Describe?nstances")], "ec2:DescribeInstances") is Decision.ALLOW
    assert decide([allow("ec2:Describe*")], "ec2:RunInstances") is Decision.IMPLICIT_DENY


def test_not_action_allows_everything_else() -> None:
    statements = [{"Effect": "Allow", "NotAction": "ec2:*", "Resource": "*"}]
    assert decide(statements, "ssm:GetDocument") is Decision.ALLOW
    assert decide(statements, "ec2:RunInstances") is Decision.IMPLICIT_DENY


def test_resources_are_matched_per_arn_segment() -> None:
    statements = [allow("ec2:CreateTags", "arn:aws:ec2:*:123456789012:instance/*")]
    assert decide(statements, "ec2:CreateTags", INSTANCE) is Decision.ALLOW
    other_account = INSTANCE.replace("123456789012", "999999999999")
    assert decide(statements, "ec2:CreateTags", other_account) is Decision.IMPLICIT_DENY
    assert decide(statements, "ec2:CreateTags", "*") is Decision.IMPLICIT_DENY


def test_not_resource_denies_everything_but_the_listed_resources() -> None:
    only_ok = {"Effect": "Deny", "Action": "ssm:*", "NotResource": "arn:aws:ssm:*:*:document/Ok*"}
    statements = [allow(), only_ok]
    ok = decide(statements, "ssm:GetDocument", "arn:aws:ssm:us-east-1:1:document/OkRunbook")
    assert ok is Decision.ALLOW
    denied = decide(statements, "ssm:GetDocument", "arn:aws:ssm:us-east-1:1:document/Other")
    assert denied is Decision.EXPLICIT_DENY


@pytest.mark.parametrize(
    ("operator", "expected", "actual", "holds"),
    [
        ("StringEquals", "ssm.amazonaws.com", "ssm.amazonaws.com", True),
        ("StringEquals", "ssm.amazonaws.com", "ec2.amazonaws.com", False),
        ("StringNotEquals", "prod", "dev", True),
        ("StringNotEquals", "prod", "prod", False),
        ("StringEqualsIgnoreCase", "PROD", "prod", True),
        ("StringLike", "team-*", "team-blue", True),
        ("StringLike", "team-*", "ops-blue", False),
        ("StringNotLike", "team-*", "ops-blue", True),
        (
            "ArnLike",
            "arn:aws:ssm:*:123456789012:automation-execution/*",
            "arn:aws:ssm:us-east-1:123456789012:automation-execution/abc",
            True,
        ),
        (
            "ArnLike",
            "arn:aws:ssm:*:123456789012:automation-execution/*",
            "arn:aws:ssm:us-east-1:999999999999:automation-execution/abc",
            False,
        ),
        ("ArnEquals", "arn:aws:iam::1:role/R", "arn:aws:iam::1:role/R", True),
        ("ArnNotLike", "arn:aws:iam::1:role/R*", "arn:aws:iam::1:role/Other", True),
        ("Bool", "true", "true", True),
        ("Bool", "true", "false", False),
        ("NumericLessThan", "10", "3", True),
        ("NumericLessThan", "10", "30", False),
    ],
)
def test_condition_operators(operator: str, expected: str, actual: str, holds: bool) -> None:
    statements = [allow(Condition={operator: {"test:Key": expected}})]
    outcome = decide(statements, "s:Do", **{"test:Key": actual})
    assert outcome is (Decision.ALLOW if holds else Decision.IMPLICIT_DENY)


def test_condition_keys_are_case_insensitive_and_values_of_one_key_are_ored() -> None:
    statements = [allow(Condition={"StringEquals": {"AWS:SourceAccount": ["111111111111", "123456789012"]}})]
    assert decide(statements, "s:Do", **{"aws:sourceaccount": "123456789012"}) is Decision.ALLOW


def test_all_keys_of_a_condition_block_must_hold() -> None:
    condition = {"StringEquals": {"k:A": "1"}, "StringLike": {"k:B": "x*"}}
    assert decide([allow(Condition=condition)], "s:Do", **{"k:A": "1", "k:B": "xy"}) is Decision.ALLOW
    assert decide([allow(Condition=condition)], "s:Do", **{"k:A": "1", "k:B": "yy"}) is Decision.IMPLICIT_DENY


def test_a_missing_key_fails_a_condition_unless_if_exists() -> None:
    assert decide([allow(Condition={"StringEquals": {"k:A": "1"}})], "s:Do") is Decision.IMPLICIT_DENY
    assert decide([allow(Condition={"StringEqualsIfExists": {"k:A": "1"}})], "s:Do") is Decision.ALLOW
    if_exists = [allow(Condition={"StringEqualsIfExists": {"k:A": "1"}})]
    assert decide(if_exists, "s:Do", **{"k:A": "2"}) is Decision.IMPLICIT_DENY


def test_null_checks_presence() -> None:
    absent = [allow(Condition={"Null": {"k:A": "true"}})]
    assert decide(absent, "s:Do") is Decision.ALLOW
    assert decide(absent, "s:Do", **{"k:A": "x"}) is Decision.IMPLICIT_DENY


def test_set_qualifiers_on_multivalued_keys() -> None:
    any_value = [allow(Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["Owner"]}})]
    all_values = [allow(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["Owner", "CostCenter"]}})]
    assert decide(any_value, "s:Do", **{"aws:TagKeys": ["Name", "Owner"]}) is Decision.ALLOW
    assert decide(any_value, "s:Do", **{"aws:TagKeys": ["Name"]}) is Decision.IMPLICIT_DENY
    assert decide(all_values, "s:Do", **{"aws:TagKeys": ["Owner"]}) is Decision.ALLOW
    assert decide(all_values, "s:Do", **{"aws:TagKeys": ["Owner", "Name"]}) is Decision.IMPLICIT_DENY


def test_a_conditional_deny_only_denies_when_its_condition_holds() -> None:
    statements = [allow(), deny("ssm:*", Condition={"StringNotEquals": {"ssm:DocumentVersion": "3"}})]
    pinned_ok = decide(statements, "ssm:StartAutomationExecution", **{"ssm:DocumentVersion": "3"})
    assert pinned_ok is Decision.ALLOW
    pinned = decide(statements, "ssm:StartAutomationExecution", **{"ssm:DocumentVersion": "4"})
    assert pinned is Decision.EXPLICIT_DENY


def test_unknown_operator_never_applies_and_binary_equals_compares_bytes() -> None:
    assert decide([allow(Condition={"StringSortOf": {"k:A": "x"}})], "s:Do", **{"k:A": "x"}) is (
        Decision.IMPLICIT_DENY
    )
    binary = [allow(Condition={"BinaryEquals": {"k:A": "QQ=="}})]
    assert decide(binary, "s:Do", **{"k:A": "QQ=="}) is Decision.ALLOW
    assert decide(binary, "s:Do", **{"k:A": "Qg=="}) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("operator", "expected", "actual", "holds"),
    [
        ("DateLessThan", "2030-01-01T00:00:00Z", "2026-11-28T00:00:00Z", True),
        ("DateLessThan", "2020-01-01", "2026-11-28T00:00:00Z", False),
        ("DateGreaterThanEquals", "1700000000", "2026-11-28T00:00:00+00:00", True),
        ("DateNotEquals", "2026-11-28T00:00:00Z", "2026-11-28T00:00:00Z", False),
        ("IpAddress", "127.0.0.0/8", "127.0.0.1", True),
        ("IpAddress", "10.0.0.0/8", "127.0.0.1", False),
        ("NotIpAddress", "10.0.0.0/8", "127.0.0.1", True),
        ("IpAddress", "not-a-network", "127.0.0.1", False),
    ],
)
def test_date_and_ip_operators(operator: str, expected: str, actual: str, holds: bool) -> None:
    outcome = decide([allow(Condition={operator: {"k:A": expected}})], "s:Do", **{"k:A": actual})
    assert outcome is (Decision.ALLOW if holds else Decision.IMPLICIT_DENY)


def test_trust_policy_principals() -> None:
    assume = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    trust = policy({**assume, "Principal": {"Service": "ssm.amazonaws.com"}})
    ssm = RequestContext("sts:AssumeRole", ROLE, principal=Principal(service="ssm.amazonaws.com"))
    ec2 = RequestContext("sts:AssumeRole", ROLE, principal=Principal(service="ec2.amazonaws.com"))
    assert evaluate([trust], ssm) is Decision.ALLOW
    assert evaluate([trust], ec2) is Decision.IMPLICIT_DENY
    account_trust = policy({**assume, "Principal": {"AWS": "123456789012"}})
    user = Principal(arn="arn:aws:iam::123456789012:user/u", account="123456789012")
    stranger = Principal(arn="arn:aws:iam::999999999999:user/u", account="999999999999")
    assert evaluate([account_trust], RequestContext("sts:AssumeRole", ROLE, principal=user)) is Decision.ALLOW
    from_stranger = RequestContext("sts:AssumeRole", ROLE, principal=stranger)
    assert evaluate([account_trust], from_stranger) is Decision.IMPLICIT_DENY


def test_wildcards_are_only_star_and_question_mark() -> None:
    assert wildcard_match("a.b*", "a.bcd")
    assert not wildcard_match("a.b", "axb")  # '.' is literal
    assert not wildcard_match("[ab]", "a")  # no character classes
    assert arn_like("arn:aws:iam::*:role/*", "arn:aws:iam::1:role/path/R")
    assert not arn_like("arn:aws:iam::*:role/*", "arn:aws:iam::1:user/R")


def test_policy_variables_resolve_from_the_request() -> None:
    own_keys = [allow("iam:CreateAccessKey", "arn:aws:iam::*:user/${aws:username}")]
    alice = {"aws:username": "alice"}
    assert decide(own_keys, "iam:CreateAccessKey", "arn:aws:iam::1:user/alice", **alice) is Decision.ALLOW
    assert (
        decide(own_keys, "iam:CreateAccessKey", "arn:aws:iam::1:user/bob", **alice) is Decision.IMPLICIT_DENY
    )
    # A role session has no aws:username: the statement matches nothing.
    assert decide(own_keys, "iam:CreateAccessKey", "arn:aws:iam::1:user/") is Decision.IMPLICIT_DENY
    same_owner = [allow(Condition={"StringEquals": {"aws:RequestTag/Owner": "${aws:username}"}})]
    assert decide(same_owner, "s:Do", **{"aws:RequestTag/Owner": "alice"}, **alice) is Decision.ALLOW
    assert decide(same_owner, "s:Do", **{"aws:RequestTag/Owner": "bob"}, **alice) is Decision.IMPLICIT_DENY
