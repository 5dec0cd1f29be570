"""Parse-time cluster policy, registered through the ``airflow.policy`` entry point.

Airflow loads this module while it initialises (``import airflow``), in every process, so it imports
nothing heavy at module level: the delegation policy is imported only when an automation task is checked,
and the operator class is looked up in ``sys.modules`` (a DAG holding one of our tasks has imported it).
"""

from __future__ import annotations

import sys
from typing import Any

from airflow.policies import hookimpl

OPERATORS_MODULE = "airflow_ssm_delegate.operators.automation"
START_OPERATOR = "SsmStartAutomationExecutionOperator"


class _MappedValue:
    """Stands for an argument given through ``.expand()``: present, but known only at run time."""

    def __repr__(self) -> str:
        return "<mapped>"


MAPPED = _MappedValue()
FAN_OUT_FIELDS = (
    "targets",
    "target_maps",
    "max_concurrency",
    "max_errors",
    "target_locations",
    "alarm_configuration",
)


@hookimpl
def task_policy(task: Any) -> None:
    """Make a DAG holding an automation task that could never start (e.g. no service role) an import error.

    Only ``SsmStartAutomationExecutionOperator`` tasks (plain or mapped) are checked; others are left alone.
    """
    fields = _start_task_fields(task)
    if fields is None:
        return
    from airflow_ssm_delegate.compat import AirflowClusterPolicyViolation
    from airflow_ssm_delegate.fanout import FanOutRequest
    from airflow_ssm_delegate.policy import DelegationPolicy, PolicyError

    fan_out = FanOutRequest(**{name: fields.pop(name) for name in FAN_OUT_FIELDS})
    try:
        DelegationPolicy.from_config().check_task_definition(**fields, fan_out=fan_out)
    except PolicyError as error:
        dag_id = getattr(task, "dag_id", None)
        raise AirflowClusterPolicyViolation(f"DAG {dag_id!r}, task {task.task_id!r}: {error}") from error


def _start_task_fields(task: Any) -> dict[str, Any] | None:
    """The checked arguments of a start-automation task (plain or mapped), or None for any other task."""
    module = sys.modules.get(OPERATORS_MODULE)
    operator_class = getattr(module, START_OPERATOR, None)
    if not isinstance(operator_class, type):
        return None
    names = ("document_name", "service_role_arn", "document_version", *FAN_OUT_FIELDS)
    if isinstance(task, operator_class):
        return {name: getattr(task, name, None) for name in names}
    mapped_class = getattr(task, "operator_class", None)  # a MappedOperator made by .partial().expand()
    if not (isinstance(mapped_class, type) and issubclass(mapped_class, operator_class)):
        return None
    expanded = getattr(getattr(task, "expand_input", None), "value", None)
    partial_kwargs = getattr(task, "partial_kwargs", {})
    fields = {}
    for name in names:
        # expand_kwargs() gives no names at parse time: every argument may come from it.
        is_mapped = not isinstance(expanded, dict) or name in expanded
        fields[name] = MAPPED if is_mapped else partial_kwargs.get(name)
    return fields
