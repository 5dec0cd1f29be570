"""Deterministic ClientTokens: same task instance, same token; another start, another token."""

from __future__ import annotations

import uuid

from airflow_ssm_delegate.idempotency import TaskIdentity, derive_client_token, replacement_token

IDENTITY = TaskIdentity("maintenance", "maintain", "scheduled__2026-11-23T00:00:00+00:00", -1)


def test_token_is_stable_across_processes_and_releases() -> None:
    # A changed derivation would make every running task start a second execution on its next try.
    assert derive_client_token(IDENTITY) == "6d7f2f2f-4e0e-5416-b423-60d325c864d2"


def test_token_is_a_uuid_as_the_api_requires() -> None:
    assert uuid.UUID(derive_client_token(IDENTITY)).version == 5


def test_every_identity_part_and_the_key_change_the_token() -> None:
    variants = {
        derive_client_token(IDENTITY),
        derive_client_token(TaskIdentity("other", "maintain", IDENTITY.run_id)),
        derive_client_token(TaskIdentity("maintenance", "other", IDENTITY.run_id)),
        derive_client_token(TaskIdentity("maintenance", "maintain", "manual__1")),
        derive_client_token(TaskIdentity("maintenance", "maintain", IDENTITY.run_id, 0)),
        derive_client_token(IDENTITY, "key"),
        derive_client_token(IDENTITY, replaces_execution_id="e-1"),
        derive_client_token(IDENTITY, replaces_execution_id="e-2"),
    }
    assert len(variants) == 8


def test_identity_is_read_from_the_task_instance() -> None:
    class TI:
        dag_id, task_id, run_id, map_index = "d", "t", "r", None

    assert TaskIdentity.from_context({"ti": TI()}) == TaskIdentity("d", "t", "r", -1)


def test_user_token_is_kept_unless_it_replaces_a_failed_execution() -> None:
    assert replacement_token("my-token", None) == "my-token"
    replaced = replacement_token("my-token", "e-1")
    assert replaced != "my-token"
    assert replaced == replacement_token("my-token", "e-1")
