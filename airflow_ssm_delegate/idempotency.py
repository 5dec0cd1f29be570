"""Deterministic ClientTokens, so a new try of a task instance re-attaches instead of starting twice.

Airflow 3 clears XCom at the start of every try, so the execution id of a try that was killed is lost
there. Two things survive: the task instance's identity (dag_id, task_id, run_id, map_index) and, on
Airflow 3.3+, the task state store. The token is a UUID5 of the identity (plus an optional user key), and
StartAutomationExecution with the same token and request returns the execution already started.

When the execution a previous try started has *failed*, a retry must start a fresh one: the token is
then derived from the failed execution's id as well, which is again deterministic (a third try that
finds the second one's execution in the store re-attaches to it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

# A fixed namespace: changing it would make every running task start a second execution on its next try.
TOKEN_NAMESPACE = uuid.UUID("6f2b9a4e-3c1d-5e8f-9a7b-2d4c6e8f0a1b")
STATE_STORE_KEY = "ssm_automation_execution_id"


@dataclass(frozen=True)
class TaskIdentity:
    """What makes two tries "the same task instance"."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> TaskIdentity:
        """Read the identity from a task's execution context (its ``ti``)."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=str(ti.dag_id),
            task_id=str(ti.task_id),
            run_id=str(ti.run_id),
            map_index=-1 if map_index is None else int(map_index),
        )


def derive_client_token(
    identity: TaskIdentity, idempotency_key: str | None = None, replaces_execution_id: str | None = None
) -> str:
    """The ClientToken for ``identity``; ``replaces_execution_id`` names a failed execution being retried."""
    parts = [
        identity.dag_id,
        identity.task_id,
        identity.run_id,
        str(identity.map_index),
        idempotency_key or "",
    ]
    if replaces_execution_id:
        parts.append(f"after:{replaces_execution_id}")
    return str(uuid.uuid5(TOKEN_NAMESPACE, "|".join(parts)))


def replacement_token(client_token: str, replaces_execution_id: str | None) -> str:
    """A user-given ClientToken, or (when retrying its failed execution) a token derived from both."""
    if not replaces_execution_id:
        return client_token
    return str(uuid.uuid5(TOKEN_NAMESPACE, f"{client_token}|after:{replaces_execution_id}"))
