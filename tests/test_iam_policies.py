"""The policies ``airflow-ssm-delegate iam --policy`` compiles: their shape, and least privilege shown on
the runtime.

The launch story (author publishes, operator reads and starts LaunchTaggedInstance under the service
role with Airflow's audit tags, the role launches and tags, the operator watches it to Success) succeeds
with the compiled policies — and fails with any single statement removed from any of them.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from airflow_ssm_delegate.documents.bundled import BUNDLED_RUNBOOKS, runbook_path
from airflow_ssm_delegate.documents.publish import publish_document
from airflow_ssm_delegate.iam import Scope
from airflow_ssm_delegate.iam_compile import compile_policies
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS, DelegationPolicy
from airflow_ssm_delegate.status import TERMINAL_STATUSES
from tests.fixtures.local_runtime import client_for, policy_document, unique

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.server import LocalAutomationServer

ACCOUNT, REGION = "123456789012", "us-east-1"
LAUNCH = runbook_path("LaunchTaggedInstance")
POLICY_KEYS = ("service_role_trust_policy", "service_role_policy", "operator_policy", "author_policy")
# What the provider puts on every start (the compiled operator policy requires them).
AUDIT_TAGS = [{"Key": key, "Value": "test"} for key in AUDIT_TAG_KEYS]


def policies_for(
    paths: list[Any],
    role: str = "AutomationRole",
    names: dict[str, str] | None = None,
    pinned_versions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What `airflow-ssm-delegate iam --policy` prints for a policy listing ``paths`` under ``role``."""
    documents: dict[str, dict[str, Any]] = {}
    for path in paths:
        name = (names or {}).get(str(path), Path(path).stem)
        documents[name] = {"roles": [f"arn:aws:iam::{ACCOUNT}:role/{role}"]}
        if name in (pinned_versions or {}):
            documents[name]["version"] = (pinned_versions or {})[name]
    policy = DelegationPolicy.from_mapping({"documents": documents}, "test policy")
    return compile_policies(policy, Scope(ACCOUNT, REGION), paths, names).policies


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_four_policies_without_action_wildcards() -> None:
    policies = policies_for([runbook_path(name) for name in BUNDLED_RUNBOOKS])
    assert tuple(policies) == POLICY_KEYS
    for key in POLICY_KEYS:
        for statement in statements(policies[key]):
            assert statement["Effect"] == "Allow"
            assert all("*" not in action for action in as_list(statement["Action"])), (key, statement)


def test_trust_policy_is_ssm_of_this_account_only() -> None:
    (trust,) = statements(policies_for([LAUNCH])["service_role_trust_policy"])
    assert trust["Principal"] == {"Service": "ssm.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ssm:{REGION}:{ACCOUNT}:automation-execution/*"},
    }


def test_service_role_policy_is_scoped_by_the_runbook() -> None:
    grants = {
        (action, resource): statement.get("Condition")
        for statement in statements(policies_for([LAUNCH])["service_role_policy"])
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    instance = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"
    assert grants[("ec2:RunInstances", instance)] == {
        "StringEquals": {"ec2:InstanceType": ["t3.medium", "t3.micro", "t3.small"]}
    }
    assert grants[("ec2:CreateTags", instance)] == {
        "ForAllValues:StringEquals": {"aws:TagKeys": ["CostCenter", "LaunchedBy", "ManagedBy", "Owner"]}
    }
    assert ("ec2:DescribeInstances", "*") in grants
    assert {action for action, _ in grants} == {"ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeInstances"}


def test_operator_policy_starts_exactly_the_runbooks_and_passes_only_the_role() -> None:
    policy = policies_for([LAUNCH], role="Runner", pinned_versions={"LaunchTaggedInstance": "3"})
    by_sid = {s["Sid"]: s for s in statements(policy["operator_policy"])}
    assert by_sid["StartListedRunbooks"]["Resource"] == (
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:automation-definition/LaunchTaggedInstance:3"
    )
    assert (
        by_sid["WatchAndControlAirflowExecutionsOnly"]["Resource"]
        == f"arn:aws:ssm:{REGION}:{ACCOUNT}:automation-execution/*"
    )
    assert by_sid["PassListedRolesToSsmOnly"] == {
        "Sid": "PassListedRolesToSsmOnly",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": f"arn:aws:iam::{ACCOUNT}:role/Runner",
        "Condition": {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
    }
    (author,) = statements(policy["author_policy"])
    assert author["Resource"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:document/LaunchTaggedInstance"


# --- least privilege, shown on the local runtime -------------------------------------------------


def _ablations() -> list[tuple[str, int]]:
    policies = policies_for([LAUNCH])
    return [(key, index) for key in POLICY_KEYS for index in range(len(statements(policies[key])))]


def _without(policies: dict[str, Any], key: str | None, index: int | None) -> dict[str, Any]:
    reduced = copy.deepcopy(policies)
    if key is not None and index is not None:
        del reduced[key]["Statement"][index]
    if not reduced["service_role_trust_policy"][
        "Statement"
    ]:  # a role needs a trust policy: trust EC2 instead
        reduced["service_role_trust_policy"]["Statement"] = [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    return reduced


def _user(server: LocalAutomationServer, policy: dict[str, Any]) -> dict[str, str]:
    iam = client_for(server, "iam")
    name = unique("persona")
    iam.create_user(UserName=name)
    if policy["Statement"]:
        iam.put_user_policy(
            UserName=name, PolicyName="generated", PolicyDocument=policy_document(policy["Statement"])
        )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def watch(ssm: Any, execution_id: str) -> dict[str, Any]:
    """Poll as the provider's trigger does (DescribeAutomationExecutions), then read the result (Get)."""
    for _ in range(600):
        found = ssm.describe_automation_executions(Filters=[{"Key": "ExecutionId", "Values": [execution_id]}])
        (metadata,) = found["AutomationExecutionMetadataList"]
        if metadata["AutomationExecutionStatus"] in TERMINAL_STATUSES:
            break
        time.sleep(0.05)
    return dict(ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"])


def launch_story(server: LocalAutomationServer, key: str | None = None, index: int | None = None) -> str:
    """Run the story with the generated policies (minus one statement); "Success" or what went wrong.

    The operator does what the provider does: read the runbook (the hook's policy check), start it, poll
    its status in batches, read the result.
    """
    role, document = unique("LaunchRole"), unique("Launch")
    policies = _without(policies_for([LAUNCH], role=role, names={str(LAUNCH): document}), key, index)
    iam = client_for(server, "iam")
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=policy_document(statements(policies["service_role_trust_policy"])),
    )
    if policies["service_role_policy"]["Statement"]:
        iam.put_role_policy(
            RoleName=role,
            PolicyName="generated",
            PolicyDocument=policy_document(statements(policies["service_role_policy"])),
        )
    author, operator = _user(server, policies["author_policy"]), _user(server, policies["operator_policy"])
    try:
        publish_document(client_for(server, "ssm", author), LAUNCH, document)
        ssm = client_for(server, "ssm", operator)
        ssm.get_document(Name=document)  # what the provider's hook reads before it starts a runbook
        ssm.describe_document(Name=document)
        execution_id = ssm.start_automation_execution(
            DocumentName=document,
            Parameters={
                "AutomationAssumeRole": [f"arn:aws:iam::{ACCOUNT}:role/{role}"],
                "Owner": ["jane.doe@example.com"],
                "CostCenter": ["CC-2002"],
            },
            Tags=AUDIT_TAGS,
        )["AutomationExecutionId"]
        execution = watch(ssm, execution_id)
        # The hook pages the steps this way when GetAutomationExecution truncates them.
        ssm.describe_automation_step_executions(AutomationExecutionId=execution_id)
    except ClientError as error:
        return f"{error.operation_name}: {error.response['Error']['Code']}"
    if execution["AutomationExecutionStatus"] != "Success":
        return f"{execution['AutomationExecutionStatus']}: {execution.get('FailureMessage')}"
    (instance_id,) = execution["Outputs"]["launch.InstanceIds"]
    tags = client_for(server, "ec2").describe_tags(
        Filters=[{"Name": "resource-id", "Values": [instance_id]}]
    )["Tags"]
    assert {t["Key"]: t["Value"] for t in tags}["LaunchedBy"] == execution_id
    return "Success"


def _clues(statement: dict[str, Any]) -> list[str]:
    """What the failure must mention when ``statement`` is missing."""
    if "Principal" in statement:
        return ["trust policy"]
    actions = as_list(statement["Action"])
    if actions == ["iam:PassRole"]:  # the start is refused for the role it passes
        return ["StartAutomationExecution"]
    return [action.split(":", 1)[1] for action in actions]


@pytest.mark.slow
def test_generated_policies_are_enough_for_the_launch_story(local_server: LocalAutomationServer) -> None:
    assert launch_story(local_server) == "Success"


@pytest.mark.slow
@pytest.mark.parametrize(("key", "index"), _ablations(), ids=str)
def test_any_statement_removed_breaks_the_launch_story(
    local_server: LocalAutomationServer, key: str, index: int
) -> None:
    removed = statements(policies_for([LAUNCH])[key])[index]
    outcome = launch_story(local_server, key, index)
    assert outcome != "Success", f"{key} statement {index} is not needed"
    assert any(clue in outcome for clue in _clues(removed)), outcome


@pytest.mark.slow
def test_a_pinned_operator_can_start_only_the_pinned_version(
    local_server: LocalAutomationServer, tmp_path: Path
) -> None:
    role, document = unique("LaunchRole"), unique("Pinned")
    policies = policies_for(
        [LAUNCH], role=role, names={str(LAUNCH): document}, pinned_versions={document: "1"}
    )
    admin_ssm = client_for(local_server, "ssm")
    publish_document(admin_ssm, LAUNCH, document)
    changed = tmp_path / "changed.yaml"
    changed.write_text(LAUNCH.read_text().replace("Apply the corporate tags.", "Tag it."))
    assert publish_document(admin_ssm, changed, document).version == "2"  # now the default version
    ssm = client_for(local_server, "ssm", _user(local_server, policies["operator_policy"]))
    parameters = {
        "AutomationAssumeRole": [f"arn:aws:iam::{ACCOUNT}:role/{role}"],
        "Owner": ["jane"],
        "CostCenter": ["CC-1001"],
    }
    for version in ("2", "$DEFAULT", "$LATEST"):
        with pytest.raises(ClientError) as refused:
            ssm.start_automation_execution(
                DocumentName=document, DocumentVersion=version, Parameters=parameters, Tags=AUDIT_TAGS
            )
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        assert f"automation-definition/{document}:2" in refused.value.response["Error"]["Message"]
    # Version 1 is allowed (the role does not exist, so the execution itself fails later: not the point here).
    started = ssm.start_automation_execution(
        DocumentName=document, DocumentVersion="1", Parameters=parameters, Tags=AUDIT_TAGS
    )
    assert started["AutomationExecutionId"]
