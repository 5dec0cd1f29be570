"""The AWS connection settings every operator, sensor and trigger of this package carries.

Why not ``AwsBaseOperator[SsmAutomationHook]`` (the Amazon provider's convention): that base class is
marked internal ("might be changed, renamed or removed without notice") and importing it pulls in boto3,
botocore and the Amazon hooks at DAG-parse time. The dag-processor re-imports every DAG file all day, so
our operator modules import nothing AWS-related until a task runs; the hook is built lazily here, from
the same four settings the Amazon operators take (so ``verify`` and ``botocore_config`` also reach the
trigger — Amazon provider issue #72144).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_ssm_delegate.hooks.automation import SsmAutomationHook

CONNECTION_TEMPLATE_FIELDS: tuple[str, ...] = ("aws_conn_id", "region_name", "verify", "botocore_config")


@dataclass(frozen=True)
class ConnectionSettings:
    """Which AWS connection to use and how to configure its botocore client."""

    aws_conn_id: str | None = "aws_default"
    region_name: str | None = None
    verify: bool | str | None = None
    botocore_config: dict[str, Any] | None = None

    def key(self) -> tuple[Any, ...]:
        """A hashable identity (the batched poller keeps one client per distinct settings)."""
        config = json.dumps(self.botocore_config, sort_keys=True, default=str)
        return (self.aws_conn_id, self.region_name, self.verify, config)

    def as_kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments (for a trigger's serialized form)."""
        return asdict(self)

    def build_hook(self) -> SsmAutomationHook:
        """A hook whose client retries throttling/5xx (botocore adaptive mode) unless configured otherwise."""
        from airflow_ssm_delegate.hooks.automation import SsmAutomationHook
        from airflow_ssm_delegate.retry import merged_botocore_config

        return SsmAutomationHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=merged_botocore_config(self.botocore_config),
        )


class SsmAutomationHookMixin:
    """Gives an operator or sensor ``connection_settings`` and a lazily built ``hook``."""

    aws_conn_id: str | None
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, Any] | None

    def _init_connection(
        self,
        aws_conn_id: str | None,
        region_name: str | None,
        verify: bool | str | None,
        botocore_config: dict[str, Any] | None,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    @property
    def connection_settings(self) -> ConnectionSettings:
        """Read afresh each time: template rendering may change the four fields after ``__init__``."""
        return ConnectionSettings(self.aws_conn_id, self.region_name, self.verify, self.botocore_config)

    @cached_property
    def hook(self) -> SsmAutomationHook:
        """The hook, built on first use (after templates are rendered)."""
        return self.connection_settings.build_hook()
