"""The local Automation runtime: moto's AWS services plus SSM Automation executions, with IAM enforced.

Entry points: ``local.server.LocalAutomationServer`` (in-process) and the ``ssm-delegate-local`` console
(``local.cli``). Kept import-light on purpose: the engine's modules import ``local.identity`` without
pulling in moto's server.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.server import LocalAutomationServer

__all__ = ["LocalAutomationServer"]


def __getattr__(name: str) -> Any:
    """``from airflow_ssm_delegate.local import LocalAutomationServer`` without importing moto eagerly."""
    if name == "LocalAutomationServer":
        from airflow_ssm_delegate.local.server import LocalAutomationServer

        return LocalAutomationServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
