"""Errors the local runtime returns on the wire, with the codes of the real SSM API model."""

from __future__ import annotations


class AutomationApiError(Exception):
    """An SSM API error: botocore turns ``code`` into ``ClientError.response['Error']['Code']``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
