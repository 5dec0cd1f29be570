"""Scalar values as AWS reads them in a runbook: ``"true"`` is a boolean and ``"3"`` an integer.

AWS's own runbooks write ``isCritical: 'false'``, ``isEnd: 'true'``, ``timeoutSeconds: '600'`` and
``maxAttempts: '3'``, and AWS accepts and runs them, so the model, lint and the runtime read them the
same way through these two functions. Anything else (``"yes"``, ``1.5``, ``"ten"``) is refused.
"""

from __future__ import annotations

import re
from typing import Any

_INTEGER = re.compile(r"[+-]?\d{1,18}")


def as_bool(value: Any) -> bool | None:
    """``True``/``False`` or ``"true"``/``"false"`` (any case) as a bool; None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def as_int(value: Any) -> int | None:
    """An integer or a string of decimal digits as an int; None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None
