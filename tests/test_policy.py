"""DelegationPolicy: the policy file, and one test per refusal with its exact message."""

from __future__ import annotations

import json
import os
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.documents.model import Runbook, parse_runbook
from airflow_ssm_delegate.policy import (
    DelegationPolicy,
    PolicyFileError,
    PolicyViolation,
    StartRequest,
)

if TYPE_CHECKING:
    from pathlib import Path

ACCOUNT = "123456789012"
LAUNCH_ROLE = f"arn:aws:iam::{ACCOUNT}:role/LaunchRole"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/AdminRole"
HASH = "a" * 64

RUNBOOK = """\
schemaVersion: "0.3"
description: Launch an instance for tests
assumeRole: "{{ AutomationAssumeRole }}"
parameters:
  AutomationAssumeRole:
    type: String
  InstanceType:
    type: String
    default: t3.micro
    allowedValues: [t3.micro, t3.small]
  Owner:
    type: String
    allowedPattern: "^[a-z]+$"
  Count:
    type: Integer
    default: 1
  DbPassword:
    type: String
    default: ""
mainSteps:
  - name: pause
    action: aws:sleep
    inputs:
      Duration: PT1S
"""

POLICY = f"""\
require_service_role: true
documents:
  LaunchTaggedInstance:
    roles: ["arn:aws:iam::{ACCOUNT}:role/Launch*"]
    default_role: {LAUNCH_ROLE}
    version: "3"
    sha256: "{HASH}"
    required_tags: {{CostCenter: cc-42}}
    secret_parameters: [Owner]
"""


def runbook_with(assume_role_line: str) -> Runbook:
    """The test runbook with another assumeRole line and no AutomationAssumeRole parameter."""
    text = RUNBOOK.replace('assumeRole: "{{ AutomationAssumeRole }}"', assume_role_line)
    return parse_runbook(text.replace("  AutomationAssumeRole:\n    type: String\n", ""))


class FakeDocuments:
    """Stands for the hook's get_runbook: records what was read, returns a runbook and its description."""

    def __init__(self, runbook: Runbook | None = None, **description: Any) -> None:
        self.runbook = runbook or parse_runbook(RUNBOOK)
        self.description = {"DocumentVersion": "3", "Hash": HASH, "DocumentType": "Automation", **description}
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, name: str, version: str | None) -> tuple[Runbook, dict[str, Any]]:
        self.calls.append((name, version))
        return self.runbook, self.description


def write_policy(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def policy(tmp_path: Path) -> DelegationPolicy:
    return DelegationPolicy.from_file(write_policy(tmp_path))


def request(**overrides: Any) -> StartRequest:
    arguments: dict[str, Any] = {
        "document_name": "LaunchTaggedInstance",
        "parameters": {"Owner": "alice"},
        "audit_tags": {"airflow:dag_id": "d", "airflow:run_id": "r", "airflow:task_id": "t"},
    }
    arguments.update(overrides)
    return StartRequest(**arguments)


def refusal(policy: DelegationPolicy, start: StartRequest, documents: FakeDocuments | None = None) -> str:
    with pytest.raises(PolicyViolation) as caught:
        policy.authorize_start(start, documents or FakeDocuments())
    return str(caught.value)


# ------------------------------------------------------------------------------------ allowed starts


def test_plan_uses_default_role_pinned_version_and_merged_tags(policy: DelegationPolicy) -> None:
    documents = FakeDocuments()
    plan = policy.authorize_start(request(parameters={"Owner": "alice", "Count": 2}), documents)

    assert documents.calls == [("LaunchTaggedInstance", "3")]  # the pin is what gets read
    assert plan.document_version == "3"
    assert plan.role_arn == LAUNCH_ROLE
    assert plan.assume_role_parameter == "AutomationAssumeRole"
    assert plan.parameters == {"Owner": ["alice"], "Count": ["2"], "AutomationAssumeRole": [LAUNCH_ROLE]}
    assert plan.tags == {
        "airflow:dag_id": "d",
        "airflow:run_id": "r",
        "airflow:task_id": "t",
        "CostCenter": "cc-42",
    }
    assert plan.api_tags[-1] == {"Key": "CostCenter", "Value": "cc-42"}
    assert plan.secret_parameters == {"Owner"}


def test_explicit_role_matching_a_wildcard_is_used(policy: DelegationPolicy) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/LaunchOther"
    plan = policy.authorize_start(request(service_role_arn=role), FakeDocuments())
    assert plan.role_arn == role
    assert plan.parameters["AutomationAssumeRole"] == [role]


def test_role_given_as_the_assume_role_parameter_counts_as_the_role(policy: DelegationPolicy) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/LaunchViaParameter"
    plan = policy.authorize_start(
        request(parameters={"Owner": "bob", "AutomationAssumeRole": role}), FakeDocuments()
    )
    assert plan.role_arn == role
    in_api_form = request(parameters={"Owner": "bob", "AutomationAssumeRole": [role]})
    assert policy.authorize_start(in_api_form, FakeDocuments()).parameters["AutomationAssumeRole"] == [role]


def test_version_alias_resolving_to_the_pin_is_allowed(policy: DelegationPolicy) -> None:
    documents = FakeDocuments()
    plan = policy.authorize_start(request(document_version="$LATEST"), documents)
    assert documents.calls == [("LaunchTaggedInstance", "$LATEST")]
    assert plan.document_version == "3"


def test_builtin_rule_allows_any_runbook_with_a_role() -> None:
    documents = FakeDocuments(DocumentVersion="7", Hash="b" * 64)
    plan = DelegationPolicy().authorize_start(
        StartRequest("AnyRunbook", service_role_arn=OTHER_ROLE, parameters={"Owner": "x"}), documents
    )
    assert documents.calls == [("AnyRunbook", None)]
    assert (plan.document_version, plan.role_arn, plan.tags) == ("7", OTHER_ROLE, {})


def test_literal_assume_role_the_policy_allows_runs_as_that_role(tmp_path: Path) -> None:
    policy = DelegationPolicy.from_file(
        write_policy(tmp_path, f"documents:\n  Literal:\n    roles: ['{LAUNCH_ROLE}']\n")
    )
    documents = FakeDocuments(runbook_with(f"assumeRole: {LAUNCH_ROLE}"))
    plan = policy.authorize_start(StartRequest("Literal", parameters={"Owner": "x"}), documents)
    assert plan.role_arn == LAUNCH_ROLE
    assert "AutomationAssumeRole" not in plan.parameters


def test_without_require_service_role_a_roleless_start_is_allowed(tmp_path: Path) -> None:
    policy = DelegationPolicy.from_file(
        write_policy(tmp_path, "require_service_role: false\ndocuments:\n  Free: {}\n")
    )
    plan = policy.authorize_start(
        StartRequest("Free", parameters={"Owner": "x", "AutomationAssumeRole": ""}),
        FakeDocuments(),
    )
    assert plan.role_arn is None


# ------------------------------------------------------------------------------- one test per refusal


def expected(rule: str, document: str, role: str | None, detail: str, source: str) -> str:
    return (
        f"Delegation policy ({source}) refused runbook {document!r} under role {role or '(none)'} "
        f"[rule {rule}]: {detail}"
    )


def test_refuses_a_runbook_the_file_does_not_list(policy: DelegationPolicy) -> None:
    documents = FakeDocuments()
    message = refusal(policy, request(document_name="DeleteEverything"), documents)
    assert message == expected(
        "document-listed",
        "DeleteEverything",
        None,
        "the runbook is not listed in the policy (listed: LaunchTaggedInstance). Use a listed runbook, by "
        "the exact name or ARN the policy lists, or ask the administrator to add it.",
        policy.source,
    )
    assert documents.calls == []  # refused before reading anything


def test_refuses_an_arn_when_only_the_name_is_listed(policy: DelegationPolicy) -> None:
    arn = f"arn:aws:ssm:us-east-1:{ACCOUNT}:document/LaunchTaggedInstance"
    with pytest.raises(PolicyViolation) as caught:
        policy.authorize_start(request(document_name=arn), FakeDocuments())
    assert caught.value.rule == "document-listed"
    assert caught.value.document == arn


def test_refuses_a_role_the_policy_does_not_allow(policy: DelegationPolicy) -> None:
    message = refusal(policy, request(service_role_arn=OTHER_ROLE))
    assert message == expected(
        "role-allowed",
        "LaunchTaggedInstance",
        OTHER_ROLE,
        f"the role is not one the policy allows for this runbook (allowed: arn:aws:iam::{ACCOUNT}:role/"
        "Launch*). Use an allowed role or ask the administrator to allow this one.",
        policy.source,
    )


def test_wildcards_match_like_iam_not_like_shell_globs(tmp_path: Path) -> None:
    policy = DelegationPolicy.from_file(
        write_policy(tmp_path, f"documents:\n  R:\n    roles: ['arn:aws:iam::{ACCOUNT}:role/[ab]?']\n")
    )
    bracket_role = f"arn:aws:iam::{ACCOUNT}:role/[ab]x"
    assert (
        policy.authorize_start(
            StartRequest("R", service_role_arn=bracket_role, parameters={"Owner": "x"}), FakeDocuments()
        ).role_arn
        == bracket_role
    )
    with pytest.raises(PolicyViolation, match="role-allowed"):
        policy.authorize_start(
            StartRequest("R", service_role_arn=f"arn:aws:iam::{ACCOUNT}:role/ax", parameters={"Owner": "x"}),
            FakeDocuments(),
        )


def test_refuses_a_start_without_any_role_under_the_builtin_rule() -> None:
    message = refusal(DelegationPolicy(), StartRequest("AnyRunbook", parameters={"Owner": "x"}))
    assert message == expected(
        "service-role-required",
        "AnyRunbook",
        None,
        "no service role: set service_role_arn on the task or ask the administrator for a default_role "
        "for this runbook.",
        "built-in rule",
    )


def test_refuses_a_role_that_is_not_a_role_arn_under_the_builtin_rule() -> None:
    message = refusal(
        DelegationPolicy(),
        StartRequest("AnyRunbook", service_role_arn="LaunchRole", parameters={"Owner": "x"}),
    )
    assert message == expected(
        "service-role-required",
        "AnyRunbook",
        "LaunchRole",
        "this is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME). Give the role's full ARN.",
        "built-in rule",
    )


def test_refuses_a_version_other_than_the_pin_before_reading_the_runbook(policy: DelegationPolicy) -> None:
    documents = FakeDocuments()
    message = refusal(policy, request(document_version="2"), documents)
    assert message == expected(
        "version-pin",
        "LaunchTaggedInstance",
        None,
        "version 2 was requested but the policy pins version 3. Drop document_version or set it to the "
        "pinned version.",
        policy.source,
    )
    assert documents.calls == []


def test_refuses_an_alias_that_resolves_past_the_pin(policy: DelegationPolicy) -> None:
    message = refusal(policy, request(document_version="$LATEST"), FakeDocuments(DocumentVersion="4"))
    assert message == expected(
        "version-pin",
        "LaunchTaggedInstance",
        None,
        "the requested version resolves to 4 but the policy pins version 3. Drop document_version or set "
        "it to the pinned version.",
        policy.source,
    )


def test_refuses_content_whose_hash_differs_from_the_pin(policy: DelegationPolicy) -> None:
    message = refusal(policy, request(), FakeDocuments(Hash="B" * 64))
    assert message == expected(
        "sha256-pin",
        "LaunchTaggedInstance",
        None,
        f"version 3 has content hash {'b' * 64} but the policy pins {HASH}. The runbook changed since it "
        "was approved: ask the administrator to review it and update the sha256 pin.",
        policy.source,
    )


def test_refuses_a_document_that_is_not_an_automation_runbook() -> None:
    message = refusal(
        DelegationPolicy(),
        StartRequest("RunShell", service_role_arn=LAUNCH_ROLE),
        FakeDocuments(DocumentType="Command"),
    )
    assert message == expected(
        "automation-document",
        "RunShell",
        LAUNCH_ROLE,
        "the document is of type Command, not Automation. Start an Automation runbook.",
        "built-in rule",
    )


def test_refuses_a_runbook_without_assume_role() -> None:
    documents = FakeDocuments(runbook_with(""))
    message = refusal(DelegationPolicy(), StartRequest("NoRole", service_role_arn=LAUNCH_ROLE), documents)
    assert message == expected(
        "assume-role",
        "NoRole",
        LAUNCH_ROLE,
        "the runbook declares no assumeRole, so it would run on the caller's session (which expires 12 "
        "hours after the start) and ignore any role. Add assumeRole: '{{ AutomationAssumeRole }}' with an "
        "AutomationAssumeRole parameter.",
        "built-in rule",
    )


def test_refuses_an_assume_role_expression_that_is_not_a_plain_parameter_reference() -> None:
    documents = FakeDocuments(runbook_with('assumeRole: "arn:aws:iam::{{ global:ACCOUNT_ID }}:role/X"'))
    message = refusal(DelegationPolicy(), StartRequest("Odd", service_role_arn=LAUNCH_ROLE), documents)
    assert message == expected(
        "assume-role",
        "Odd",
        LAUNCH_ROLE,
        "assumeRole 'arn:aws:iam::{{ global:ACCOUNT_ID }}:role/X' is neither a parameter reference such "
        "as '{{ AutomationAssumeRole }}' nor a plain role ARN. Fix the runbook.",
        "built-in rule",
    )


def test_refuses_a_task_role_different_from_the_runbooks_literal_role() -> None:
    documents = FakeDocuments(runbook_with(f"assumeRole: {OTHER_ROLE}"))
    message = refusal(DelegationPolicy(), StartRequest("Literal", service_role_arn=LAUNCH_ROLE), documents)
    assert message == expected(
        "assume-role",
        "Literal",
        LAUNCH_ROLE,
        f"the runbook always runs as its literal assumeRole {OTHER_ROLE}, not as the task's role. Remove "
        "service_role_arn or use a runbook that takes the role as a parameter.",
        "built-in rule",
    )


def test_refuses_a_literal_role_the_policy_does_not_allow(tmp_path: Path) -> None:
    policy = DelegationPolicy.from_file(
        write_policy(tmp_path, f"documents:\n  Literal:\n    roles: ['{LAUNCH_ROLE}']\n")
    )
    documents = FakeDocuments(runbook_with(f"assumeRole: {OTHER_ROLE}"))
    with pytest.raises(PolicyViolation) as caught:
        policy.authorize_start(StartRequest("Literal", parameters={"Owner": "x"}), documents)
    assert (caught.value.rule, caught.value.role) == ("role-allowed", OTHER_ROLE)


def test_refuses_two_different_roles_for_one_start(policy: DelegationPolicy) -> None:
    message = refusal(
        policy,
        request(service_role_arn=LAUNCH_ROLE, parameters={"Owner": "x", "AutomationAssumeRole": OTHER_ROLE}),
    )
    assert message == expected(
        "assume-role",
        "LaunchTaggedInstance",
        LAUNCH_ROLE,
        f"parameter AutomationAssumeRole ({OTHER_ROLE!r}) differs from service_role_arn; give the role "
        "once, as service_role_arn.",
        policy.source,
    )


def test_refuses_a_role_coming_from_rate_control_targets(policy: DelegationPolicy) -> None:
    message = refusal(policy, request(target_parameter_name="AutomationAssumeRole"))
    assert message == expected(
        "assume-role",
        "LaunchTaggedInstance",
        LAUNCH_ROLE,
        "target_parameter_name would set AutomationAssumeRole, the runbook's assume-role parameter, per "
        "target, so roles would bypass the policy. Give the role once, as service_role_arn.",
        policy.source,
    )
    maps = [{"Owner": ["a"]}, {"AutomationAssumeRole": [OTHER_ROLE]}]
    assert "target_maps would set AutomationAssumeRole" in refusal(policy, request(target_maps=maps))
    # Owner is required, but the targets fill it: the start is allowed without it.
    allowed = policy.authorize_start(request(parameters={}, target_parameter_name="Owner"), FakeDocuments())
    assert allowed.role_arn == LAUNCH_ROLE
    assert "Owner" not in allowed.parameters
    mapped = policy.authorize_start(request(parameters={}, target_maps=[{"Owner": ["a"]}]), FakeDocuments())
    assert "Owner" not in mapped.parameters


def test_refuses_bad_parameters_listing_every_problem(policy: DelegationPolicy) -> None:
    bad = {"InstanceType": "m5.24xlarge", "Count": "many", "Colour": "red"}  # Owner missing, too
    with pytest.raises(PolicyViolation) as caught:
        policy.authorize_start(request(parameters=bad), FakeDocuments())
    violation = caught.value
    assert violation.rule == "parameters"
    assert violation.detail.startswith("4 parameter problem(s): ")
    for name in ("InstanceType", "Count", "Colour", "Owner"):
        assert f"{name}: " in violation.detail
    assert str(violation).startswith(
        f"Delegation policy ({policy.source}) refused runbook 'LaunchTaggedInstance' under role "
        f"{LAUNCH_ROLE} [rule parameters]: 4 parameter problem(s): "
    )


def test_refuses_a_value_not_matching_allowed_pattern(policy: DelegationPolicy) -> None:
    with pytest.raises(PolicyViolation) as caught:
        policy.authorize_start(request(parameters={"Owner": "Alice!"}), FakeDocuments())
    assert caught.value.rule == "parameters"
    assert caught.value.detail.startswith("1 parameter problem(s): Owner: ")


def test_refuses_a_tag_conflicting_with_a_required_tag(policy: DelegationPolicy) -> None:
    message = refusal(policy, request(tags={"CostCenter": "cc-1"}))
    assert message == expected(
        "tags",
        "LaunchTaggedInstance",
        LAUNCH_ROLE,
        "tag CostCenter='cc-1' conflicts with the policy's required tag CostCenter='cc-42'. Drop it from "
        "the task's tags.",
        policy.source,
    )


def test_refuses_a_tag_overriding_an_audit_tag(policy: DelegationPolicy) -> None:
    message = refusal(policy, request(tags={"airflow:dag_id": "someone-else"}))
    assert "conflicts with Airflow's audit tag airflow:dag_id='d'" in message


def test_refuses_reserved_aws_tag_keys() -> None:
    message = refusal(
        DelegationPolicy(), StartRequest("AnyRunbook", None, LAUNCH_ROLE, {"Owner": "x"}, {"aws:x": "1"})
    )
    assert message.endswith("[rule tags]: tag key 'aws:x': keys starting with 'aws:' are reserved.")


def test_refuses_more_than_five_tags_with_a_clear_count(policy: DelegationPolicy) -> None:
    message = refusal(policy, request(tags={"Team": "a", "Ticket": "b"}))
    assert message == expected(
        "tags",
        "LaunchTaggedInstance",
        LAUNCH_ROLE,
        "6 tags (airflow:dag_id, airflow:run_id, airflow:task_id, Team, Ticket, CostCenter) but AWS accepts "
        "at most 5 at start: 3 audit, 1 required by the policy, the rest from the task. Remove task tags "
        "until the total is 5 or fewer.",
        policy.source,
    )


def test_violations_are_not_retried() -> None:
    from airflow_ssm_delegate.compat import AirflowFailException

    assert issubclass(PolicyViolation, AirflowFailException)
    assert issubclass(PolicyFileError, AirflowFailException)


# ------------------------------------------------------------------------------- parse-time check


@pytest.mark.parametrize(
    "role",
    [LAUNCH_ROLE, "{{ params.role }}", object()],  # literal, template, XComArg/mapped stand-in
)
def test_task_definition_with_a_role_passes(role: Any) -> None:
    DelegationPolicy().check_task_definition("AnyRunbook", role)


def test_task_definition_without_role_uses_the_policy_default(policy: DelegationPolicy) -> None:
    policy.check_task_definition("LaunchTaggedInstance", None)


def test_task_definition_without_role_or_default_is_refused() -> None:
    with pytest.raises(PolicyViolation) as caught:
        DelegationPolicy().check_task_definition("AnyRunbook", None)
    assert str(caught.value) == expected(
        "service-role-required",
        "AnyRunbook",
        None,
        "no service_role_arn and no default_role for this runbook in the policy; without a service role a "
        "runbook runs on the caller's session, which expires 12 hours after the start. Set "
        "service_role_arn on the task or ask the administrator for a default_role.",
        "built-in rule",
    )


def test_task_definition_with_a_literal_role_the_policy_refuses(policy: DelegationPolicy) -> None:
    with pytest.raises(PolicyViolation, match=r"\[rule role-allowed\]"):
        policy.check_task_definition("LaunchTaggedInstance", OTHER_ROLE)


def test_task_definition_with_a_version_other_than_the_pin(policy: DelegationPolicy) -> None:
    with pytest.raises(PolicyViolation, match=r"\[rule version-pin\]: version 2 was requested"):
        policy.check_task_definition("LaunchTaggedInstance", None, "2")
    for allowed in ("3", 3, "$LATEST", "{{ params.version }}", None):
        policy.check_task_definition("LaunchTaggedInstance", None, allowed)


def test_task_definition_of_an_unlisted_runbook_is_refused_unless_templated(policy: DelegationPolicy) -> None:
    with pytest.raises(PolicyViolation, match=r"\[rule document-listed\]"):
        policy.check_task_definition("Unlisted", LAUNCH_ROLE)
    policy.check_task_definition("{{ params.runbook }}", LAUNCH_ROLE)


# ------------------------------------------------------------------------------------- policy file


def test_from_config_reads_only_the_deployment_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", raising=False)
    assert DelegationPolicy.from_config() == DelegationPolicy()
    path = write_policy(tmp_path)
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(path))
    loaded = DelegationPolicy.from_config()
    assert loaded.source == str(path.resolve())
    assert loaded.documents is not None and set(loaded.documents) == {"LaunchTaggedInstance"}


def test_policy_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    first = DelegationPolicy.from_file(path)
    assert DelegationPolicy.from_file(path) is first
    path.write_text(POLICY.replace('version: "3"', 'version: "4"'))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = DelegationPolicy.from_file(path)
    assert changed.documents is not None
    assert changed.documents["LaunchTaggedInstance"].version == "4"


def test_json_policy_files_work(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"documents": {"Runbook": {"roles": [LAUNCH_ROLE]}}}))
    policy = DelegationPolicy.from_file(path)
    assert policy.documents is not None
    assert policy.documents["Runbook"].roles == (LAUNCH_ROLE,)


def test_default_role_alone_is_the_allowed_role(tmp_path: Path) -> None:
    policy = DelegationPolicy.from_file(
        write_policy(tmp_path, f"documents:\n  Runbook:\n    default_role: {LAUNCH_ROLE}\n")
    )
    assert policy.documents is not None
    assert policy.documents["Runbook"].roles == (LAUNCH_ROLE,)


BAD_FILES = [
    ("documents: [", "(syntax)", "not valid YAML or JSON", "Fix the syntax at the position shown."),
    ("- a\n- b\n", "(top level)", "expected a mapping, got list", "Write a YAML mapping"),
    ("require_service_role: true\n", "documents", "missing", "write 'documents: {}' to refuse every runbook"),
    (
        "documents: {}\nrequire_servce_role: false\n",
        "require_servce_role",
        "unknown key",
        "check the spelling",
    ),
    (
        "require_service_role: 'no'\ndocuments: {}\n",
        "require_service_role",
        "expected true or false",
        "Write",
    ),
    ("documents: [a]\n", "documents", "expected a mapping of runbook name or ARN", "one entry per runbook"),
    ("documents:\n  R: {role: x}\n", "documents.R.role", "unknown key", "Use one of: default_role"),
    (
        "documents:\n  R: {roles: LaunchRole}\n",
        "documents.R.roles",
        "'LaunchRole' is not a role ARN",
        "full ARNs",
    ),
    (
        "documents:\n  R: {roles: [1]}\n",
        "documents.R.roles",
        "expected a list of non-empty strings",
        "YAML list",
    ),
    ("documents:\n  R: {}\n", "documents.R.roles", "could never start", "List the roles"),
    (
        f"documents:\n  R: {{roles: ['{LAUNCH_ROLE}'], default_role: '{OTHER_ROLE}'}}\n",
        "documents.R.default_role",
        "matches none of 'roles'",
        "Add it to roles",
    ),
    (
        f"documents:\n  R: {{roles: ['{LAUNCH_ROLE}'], version: $LATEST}}\n",
        "documents.R.version",
        "is not a document version number",
        "Pin a number",
    ),
    (
        f"documents:\n  R: {{roles: ['{LAUNCH_ROLE}'], sha256: abc}}\n",
        "documents.R.sha256",
        "is not a SHA-256 hex digest",
        "64 hex digits",
    ),
    (
        f"documents:\n  R: {{roles: ['{LAUNCH_ROLE}'], required_tags: {{a: 1, b: 2, c: 3}}}}\n",
        "documents.R.required_tags",
        "3 required tags leave no room",
        "Keep at most 2 required tags.",
    ),
    (
        f"documents:\n  R: {{roles: ['{LAUNCH_ROLE}'], required_tags: {{'aws:x': 1}}}}\n",
        "documents.R.required_tags",
        "reserved by AWS",
        "Rename them.",
    ),
]


@pytest.mark.parametrize(("text", "key", "problem", "fix"), BAD_FILES)
def test_invalid_policy_files_name_the_file_the_key_and_the_fix(
    tmp_path: Path, text: str, key: str, problem: str, fix: str
) -> None:
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyFileError) as caught:
        DelegationPolicy.from_file(path)
    message = str(caught.value)
    assert message.startswith(f"Delegation policy file {path.resolve()}, key {key!r}: ")
    assert problem in message
    assert fix in message


def test_a_missing_policy_file_is_an_error_not_the_builtin_rule(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError) as caught:
        DelegationPolicy.from_file(tmp_path / "absent.yaml")
    assert str(caught.value) == (
        f"Delegation policy file {tmp_path / 'absent.yaml'}, key 'policy_file': cannot read the file "
        "(No such file or directory). Create it or point [ssm_delegate] policy_file at an existing "
        "policy file."
    )
