"""Re-attach on retry without a task state store (Airflow before 3.3).

Airflow clears XCom at the start of every try, and only 3.3 has ``context["task_state_store"]`` to keep the
execution id across tries. Before that, two things find the execution an earlier try started:

1. the deterministic ClientToken (``idempotency``): a same-token start returns that execution — but AWS
   does not document what a same-arguments reuse returns, so it is not relied on alone;
2. an **identity tag** on every execution: key ``airflow:ti:<base token>`` (value: the map index). The base
   token is the task instance's ClientToken without the "after a failed execution" part, so it is the same
   on every try. ``DescribeAutomationExecutions`` with a ``TagKey`` filter lists exactly this task
   instance's executions (the filter matches tag keys, not values — hence the identity in the key).

The newest one decides: running or succeeded → re-attach; failed/cancelled/timed out → start a fresh one
whose token derives from the failed id (so a kill right after *that* start re-attaches to it next time):
never a duplicate execution, never a failed execution reported forever.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

IDENTITY_TAG_PREFIX = "airflow:ti:"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def identity_tag(base_token: str, map_index: int) -> tuple[str, str]:
    """The identity tag of every execution a task instance starts: ``(key, value)``."""
    return f"{IDENTITY_TAG_PREFIX}{base_token}", str(map_index)


def latest_tagged_execution(ssm_client: Any, tag_key: str) -> dict[str, Any] | None:
    """The newest execution carrying ``tag_key`` (DescribeAutomationExecutions, TagKey filter, every page)."""
    paginator = ssm_client.get_paginator("describe_automation_executions")
    pages = paginator.paginate(Filters=[{"Key": "TagKey", "Values": [tag_key]}])
    found = [item for page in pages for item in page.get("AutomationExecutionMetadataList", [])]
    if not found:
        return None
    return max(found, key=lambda item: item.get("ExecutionStartTime") or _EPOCH)


def identity_tag_fits(
    document_name: str, task_tags: Mapping[str, str], audit_tag_keys: tuple[str, ...]
) -> bool:
    """Whether a start can carry one more tag: AWS takes 5 at start (audit + task + the policy's required).

    A runbook the policy does not list counts as "fits": the start is then refused with the policy's
    own, clearer message.
    """
    from airflow_ssm_delegate.policy import MAX_START_TAGS, DelegationPolicy, PolicyError

    try:
        rule = DelegationPolicy.from_config().rule_for(document_name)
    except PolicyError:
        return True
    keys = set(audit_tag_keys) | set(task_tags) | set(rule.required_tags if rule else {})
    return len(keys) < MAX_START_TAGS
