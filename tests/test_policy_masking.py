"""Secret runbook parameters: recognised by name or by the policy, masked before anything is logged."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from airflow.providers.common.compat.sdk import redact

from airflow_ssm_delegate.masking import (
    is_secret_name,
    mask_parameter_values,
    mask_parameters,
    mask_task_parameters,
)
from airflow_ssm_delegate.policy import DelegationPolicy

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("DbPassword", True),
        ("ApiToken", True),
        ("ClientSecret", True),
        ("SshKeyName", True),  # over-masking a key pair name is the safe mistake
        ("connection_string", True),  # on Airflow's own list of sensitive names
        ("InstanceType", False),
        ("Owner", False),
    ],
)
def test_secret_looking_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_names_the_policy_declares_are_secret() -> None:
    assert is_secret_name("Owner", declared_secret={"Owner"})


def test_api_parameters_are_masked_and_a_loggable_copy_returned() -> None:
    value = f"pw-{uuid.uuid4().hex}"
    loggable = mask_parameters(
        {"DbPassword": [value], "InstanceType": ["t3.micro"], "Pin": ["1234"]}, {"Pin"}
    )
    assert loggable == {"DbPassword": ["***"], "InstanceType": ["t3.micro"], "Pin": ["***"]}
    assert redact(f"connecting with {value}") == "connecting with ***"


def test_task_parameters_are_masked_down_to_nested_values() -> None:
    nested, number, plain = f"n-{uuid.uuid4().hex}", 987654321, f"p-{uuid.uuid4().hex}"
    mask_parameter_values({"Credentials": {"user": {"secret": nested}}, "ApiKey": number, "Comment": plain})
    assert redact(f"{nested} {number} {plain}") == f"*** *** {plain}"


def test_secret_parameters_for_a_runbook() -> None:
    policy = DelegationPolicy.from_mapping(
        {"documents": {"R": {"roles": ["arn:aws:iam::123456789012:role/R"], "secret_parameters": ["Pin"]}}},
        "inline",
    )
    assert policy.secret_parameters_for("R") == {"Pin"}
    assert policy.secret_parameters_for("Unlisted") == frozenset()
    assert DelegationPolicy().secret_parameters_for("R") == frozenset()


def test_task_parameters_declared_secret_by_the_deployment_policy_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "documents:\n  R:\n    roles: ['arn:aws:iam::123456789012:role/R']\n    secret_parameters: [Pin]\n"
    )
    monkeypatch.setenv("AIRFLOW__SSM_DELEGATE__POLICY_FILE", str(path))
    pin, plain = f"pin-{uuid.uuid4().hex}", f"plain-{uuid.uuid4().hex}"
    mask_task_parameters("R", {"Pin": pin, "Note": plain})
    assert redact(f"{pin} {plain}") == f"*** {plain}"
