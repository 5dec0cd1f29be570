"""The base class that gives every operator and the sensor of this package its AWS connection arguments."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from airflow_ssm_delegate.connection import SsmAutomationHookMixin


class SsmAutomationBaseOperator(SsmAutomationHookMixin, BaseOperator):
    """Takes the Amazon operators' four connection arguments (same names) and builds the hook lazily.

    A ``BaseOperator`` subclass rather than a plain mixin on purpose: Airflow fills ``default_args`` and
    validates ``partial()``/``expand()`` arguments only from the ``__init__`` of operator classes. The
    sensor mixes it in before ``BaseSensorOperator``.
    """

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_connection(aws_conn_id, region_name, verify, botocore_config)
