"""The one place that knows which Airflow 3 minor runs this package.

Every Airflow name whose home moved between 3.0 and 3.3 is imported here, through the ecosystem's own
layer, ``apache-airflow-providers-common-compat`` (``airflow.providers.common.compat.sdk`` tries the
``airflow.sdk`` path first and falls back to the older one). Examples: ``airflow.sdk.conf`` and
``airflow.sdk.exceptions.AirflowFailException`` exist from 3.2 on, ``airflow.sdk.TriggerRule``
from 3.1. The rest of the package imports these names from here, never through try/except of its own.

Feature flags say what degrades on older minors (the README's compatibility table is the user's view):

- ``HAS_TRIGGER_ON_KILL``: Airflow calls ``BaseTrigger.on_kill`` when a user clears or marks a deferred
  task (3.3+). Before, clearing a deferred task cancels nothing: the execution keeps running in AWS and
  the next try re-attaches to it.
- ``HAS_TASK_STATE_STORE``: ``context["task_state_store"]`` (3.3+) keeps the execution id across tries.
  Before, a retry finds its execution by the deterministic ClientToken and by the execution's identity tag
  (DescribeAutomationExecutions with a TagKey filter), see ``airflow_ssm_delegate.reattach``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION
from airflow.exceptions import AirflowClusterPolicyViolation
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    TaskDeferred,
    conf,
)
from packaging.version import Version

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.common.compat.sdk import TaskInstanceKey, TriggerRule, XCom, mask_secret, redact
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    HAS_HITL: bool
    HAS_TRIGGER_ON_KILL: bool

# Imported on first use, not with this module: the operator modules import this one at DAG parse time, and
# e.g. ``airflow.triggers.base`` alone costs ~0.1 s there (the trigger module needs it only when it runs).
_LAZY = {
    "BaseTrigger": "airflow.triggers.base",
    "TriggerEvent": "airflow.triggers.base",
    "TaskInstanceKey": "airflow.providers.common.compat.sdk",
    "TriggerRule": "airflow.providers.common.compat.sdk",
    "XCom": "airflow.providers.common.compat.sdk",
    "mask_secret": "airflow.providers.common.compat.sdk",
    "redact": "airflow.providers.common.compat.sdk",
}


def __getattr__(name: str) -> Any:
    if name == "HAS_HITL":
        return hitl_operator_class() is not None
    if name == "HAS_TRIGGER_ON_KILL":
        # Checked on the class, not by version number: a build that has the hook counts.
        return "on_kill" in vars(__getattr__("BaseTrigger"))
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AIRFLOW_MINOR",
    "AIRFLOW_VERSION",
    "HAS_HITL",
    "HAS_TASK_STATE_STORE",
    "HAS_TRIGGER_ON_KILL",
    "AirflowClusterPolicyViolation",
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseTrigger",
    "TaskDeferred",
    "TaskInstanceKey",
    "TriggerEvent",
    "TriggerRule",
    "XCom",
    "conf",
    "dag_bag_class",
    "hitl_operator_class",
    "mask_secret",
    "policy_plugin_manager",
    "redact",
]


def minor_of(version: str) -> tuple[int, int]:
    """``(3, 1)`` for ``"3.1.8"`` (pre-releases and local versions count as their release)."""
    release = Version(version).release
    return (release[0], release[1] if len(release) > 1 else 0)


AIRFLOW_MINOR = minor_of(AIRFLOW_VERSION)

HAS_TASK_STATE_STORE = AIRFLOW_MINOR >= (3, 3)

TRIGGER_ON_KILL_NOTE = (
    "This Airflow ({version}) does not call a trigger's on_kill (Airflow 3.3 does): clearing this deferred "
    "task, or marking it failed or success, does NOT cancel automation execution {execution_id}; it keeps "
    "running in AWS. A cleared task's next try re-attaches to it. To cancel it, run "
    "SsmStopAutomationExecutionOperator or `aws ssm stop-automation-execution --automation-execution-id "
    "{execution_id}`."
)


def trigger_on_kill_note(execution_id: str) -> str | None:
    """What clearing a deferred task does on this Airflow, when that is not "cancel the execution"."""
    if __getattr__("HAS_TRIGGER_ON_KILL"):
        return None
    return TRIGGER_ON_KILL_NOTE.format(version=AIRFLOW_VERSION, execution_id=execution_id)


def dag_bag_class() -> type[DagBag]:
    """Airflow's DagBag, from ``airflow.dag_processing.dagbag`` (newer minors) or ``airflow.models.dagbag``.

    Imported on call (tests, tools), never at DAG parse: it pulls in the scheduler's models.
    """
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0, 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag


def policy_plugin_manager() -> Any:
    """The pluggy manager of Airflow's cluster policies (``settings.POLICY_PLUGIN_MANAGER`` on 3.0, 3.1)."""
    from airflow import settings

    getter = getattr(settings, "get_policy_plugin_manager", None)
    return getter() if getter is not None else settings.POLICY_PLUGIN_MANAGER


def hitl_operator_class() -> type | None:
    """Airflow's human-in-the-loop ``HITLOperator`` (standard provider, Airflow 3.1+), or None.

    On Airflow 3.0 its import raises ``AirflowOptionalProviderFeatureException``, which is not an
    ``ImportError``: an ``except ImportError`` around it breaks DAG imports there.
    """
    from airflow.exceptions import AirflowOptionalProviderFeatureException

    try:
        from airflow.providers.standard.operators.hitl import HITLOperator
    except (ImportError, AirflowOptionalProviderFeatureException):
        return None
    return HITLOperator
