"""A step's outputs: the action's own, plus the runbook's declared ``outputs`` (Name, Selector, Type)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.actions.base import StepFailure
from airflow_ssm_delegate.local.selectors import SelectorError, select

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_ssm_delegate.documents.model import StepSpec

_SCALARS = (str, int, float, bool)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _coerce(value: Any, output_type: str) -> Any:
    """``value`` as the declared output Type; ValueError saying why not."""
    if output_type == "String" and isinstance(value, _SCALARS):
        return _text(value)
    if output_type == "Integer" and not isinstance(value, bool) and isinstance(value, (int, float, str)):
        return int(value)
    if output_type == "Boolean" and (isinstance(value, bool) or _text(value).lower() in ("true", "false")):
        return value if isinstance(value, bool) else _text(value).lower() == "true"
    if output_type in ("StringList", "MapList") and not isinstance(value, list):
        value = [value]  # a selector with a single match still fills a list output
    if (
        output_type == "StringList"
        and isinstance(value, list)
        and all(isinstance(v, _SCALARS) for v in value)
    ):
        return [_text(v) for v in value]
    if output_type == "StringMap" and isinstance(value, dict):
        return value
    if output_type == "MapList" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    raise ValueError(f"{value!r} is not a {output_type}")


def step_outputs(spec: StepSpec, own: Mapping[str, Any], response: Any) -> dict[str, Any]:
    """Outputs by name; Selectors read the API ``response`` (or the action's own outputs if it has none)."""
    values = dict(own)
    source = response if response is not None else dict(own)
    for declared in spec.outputs:
        name, selector, output_type = (
            declared.get("Name"),
            declared.get("Selector"),
            declared.get("Type", "String"),
        )
        try:
            values[str(name)] = _coerce(select(source, str(selector)), str(output_type))
        except (SelectorError, ValueError) as error:
            raise StepFailure(f"Output {name}: {error}", "Verification", stage="Outputs") from None
    return values
