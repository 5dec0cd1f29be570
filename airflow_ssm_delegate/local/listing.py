"""Filters and paging of DescribeAutomationExecutions and DescribeAutomationStepExecutions.

Page tokens name the last item returned (an execution's creation sequence, a step's position), so a
page never repeats or skips items when new executions start between calls.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.errors import AutomationApiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_ssm_delegate.local.execution import Execution

MAX_RESULTS = 50
MAX_FILTERS = 10
MAX_FILTER_VALUES = 10


def _time(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AutomationApiError(
            "InvalidFilterValue", f"{value!r} is not a time like 2026-01-01T00:00:00Z."
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _checked_filters(filters: list[dict[str, Any]], keys: frozenset[str]) -> list[tuple[str, list[str]]]:
    if not isinstance(filters, list) or len(filters) > MAX_FILTERS:
        raise AutomationApiError(
            "InvalidFilterValue", f"Filters must be a list of at most {MAX_FILTERS} filters."
        )
    checked = []
    for item in filters:
        key = item.get("Key") if isinstance(item, dict) else None
        if key not in keys:
            raise AutomationApiError(
                "InvalidFilterKey",
                f"Filter key {key!r} is not supported; use one of {', '.join(sorted(keys))}.",
            )
        values = item.get("Values")
        if (
            not isinstance(values, list)
            or not 1 <= len(values) <= MAX_FILTER_VALUES
            or not all(isinstance(v, str) and v for v in values)
        ):
            raise AutomationApiError(
                "InvalidFilterValue", f"Filter {key} needs 1 to {MAX_FILTER_VALUES} non-empty string Values."
            )
        checked.append((str(key), list(values)))
    return checked


def _limit(max_results: int | None) -> int:
    if max_results is None:
        return MAX_RESULTS
    if (
        isinstance(max_results, bool)
        or not isinstance(max_results, int)
        or not 1 <= max_results <= MAX_RESULTS
    ):
        raise AutomationApiError(
            "ValidationException", f"MaxResults must be 1 to {MAX_RESULTS}, got {max_results!r}."
        )
    return max_results


def _token(next_token: str | None, prefix: str) -> int | None:
    if next_token is None:
        return None
    if (
        not isinstance(next_token, str)
        or not next_token.startswith(prefix)
        or not next_token[len(prefix) :].isdigit()
    ):
        raise AutomationApiError(
            "InvalidNextToken", "NextToken is not one this API returned; start without it."
        )
    return int(next_token[len(prefix) :])


def _time_matches(started: float | None, key: str, values: list[str]) -> bool:
    if started is None:
        return False
    if key.endswith("Before"):
        return any(started < _time(v) for v in values)
    return any(started >= _time(v) for v in values)


_EXECUTION_MATCHERS: dict[str, Callable[[dict[str, Any], Execution, list[str]], bool]] = {
    "ExecutionId": lambda meta, _e, values: meta["AutomationExecutionId"] in values,
    "ExecutionStatus": lambda meta, _e, values: meta["AutomationExecutionStatus"] in values,
    "DocumentNamePrefix": lambda meta, _e, values: any(meta["DocumentName"].startswith(v) for v in values),
    "ParentExecutionId": lambda meta, _e, values: meta.get("ParentAutomationExecutionId") in values,
    "CurrentAction": lambda meta, _e, values: meta.get("CurrentAction") in values,
    "AutomationType": lambda meta, _e, values: meta.get("AutomationType") in values,
    "TagKey": lambda _m, execution, values: any(tag["Key"] in values for tag in execution.tags),
    "TargetResourceGroup": lambda meta, _e, values: any(
        target["Key"] == "ResourceGroup" and set(target["Values"]) & set(values)
        for target in meta.get("Targets") or ()
    ),
    "StartTimeBefore": lambda meta, _e, values: _time_matches(
        meta.get("ExecutionStartTime"), "Before", values
    ),
    "StartTimeAfter": lambda meta, _e, values: _time_matches(meta.get("ExecutionStartTime"), "After", values),
}


def page_executions(
    executions: list[Execution],
    filters: list[dict[str, Any]],
    max_results: int | None,
    next_token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Matching executions' metadata, newest first, one page."""
    checked = _checked_filters(filters, frozenset(_EXECUTION_MATCHERS))
    limit, after = _limit(max_results), _token(next_token, "e")
    page: list[dict[str, Any]] = []
    last_sequence = 0
    for execution in sorted(executions, key=lambda e: e.sequence, reverse=True):
        if after is not None and execution.sequence >= after:
            continue
        with execution.lock:
            meta = execution.metadata()
        if all(_EXECUTION_MATCHERS[key](meta, execution, values) for key, values in checked):
            if len(page) == limit:
                return page, f"e{last_sequence}"
            page.append(meta)
            last_sequence = execution.sequence
    return page, None


_STEP_MATCHERS: dict[str, Callable[[dict[str, Any], list[str]], bool]] = {
    "StepExecutionStatus": lambda step, values: step["StepStatus"] in values,
    "StepExecutionId": lambda step, values: step["StepExecutionId"] in values,
    "StepName": lambda step, values: step["StepName"] in values,
    "Action": lambda step, values: step["Action"] in values,
    "StartTimeBefore": lambda step, values: _time_matches(step.get("ExecutionStartTime"), "Before", values),
    "StartTimeAfter": lambda step, values: _time_matches(step.get("ExecutionStartTime"), "After", values),
}


def page_steps(
    steps: list[dict[str, Any]],
    filters: list[dict[str, Any]],
    max_results: int | None,
    next_token: str | None,
    reverse_order: bool,
) -> tuple[list[dict[str, Any]], str | None]:
    """Matching step executions in run order (or reversed), one page."""
    checked = _checked_filters(filters, frozenset(_STEP_MATCHERS))
    limit, after = _limit(max_results), _token(next_token, "s")
    positions = range(len(steps) - 1, -1, -1) if reverse_order else range(len(steps))
    page: list[dict[str, Any]] = []
    last = 0
    for position in positions:
        if after is not None and (position >= after if reverse_order else position <= after):
            continue
        step = steps[position]
        if all(_STEP_MATCHERS[key](step, values) for key, values in checked):
            if len(page) == limit:
                return page, f"s{last}"
            page.append(step)
            last = position
    return page, None
