"""Step inputs as the API's types: runbooks write ``"true"`` and ``"5"`` where an API wants a boolean or a
number (YAML quoting, or a ``{{ Param }}`` rendered into text), and AWS Automation converts them. botocore
would refuse them (``ParamValidationError``), so values are converted along the operation's input shape:
booleans from true/false text, numbers from numeric text, strings from numbers and booleans. Anything that
does not convert cleanly is left for botocore to report.
"""

from __future__ import annotations

from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

_INTEGERS = ("integer", "long")
_FLOATS = ("float", "double")


def _scalar(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind in _INTEGERS and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return value
    if kind in _FLOATS and isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    if kind == "string" and isinstance(value, bool):
        return str(value).lower()
    if kind == "string" and isinstance(value, (int, float)):
        return str(value)
    return value


def coerce(shape: Shape | None, value: Any) -> Any:
    """``value`` converted where ``shape`` (a botocore input shape) wants another scalar type."""
    if shape is None:
        return value
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = shape.members
        return {key: coerce(members.get(key), item) for key, item in value.items()}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [coerce(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: coerce(shape.value, item) for key, item in value.items()}
    return _scalar(shape, value)


def coerce_request(client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """The request ``params`` of ``operation`` (its API name, e.g. SendCommand) with values converted."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    return coerce(shape, params) if shape is not None else params
