"""aws:updateVariable and the runbook's top-level ``variables``.

From AWS's action reference (https://docs.aws.amazon.com/systems-manager/latest/userguide/
automation-action-update-variable.html): ``Name`` is written ``variable:NAME``; ``Value`` "must match the
data type of the variable ... Data type conversions aren't supported"; StringList at most 50 items,
MapList at most 200, strings 1..512 characters. Steps read a variable as ``{{ variable:NAME }}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.documents.parameters import MISSING
from airflow_ssm_delegate.local.actions.base import (
    Done,
    Outcome,
    StepContext,
    StepFailure,
    reject_unknown_inputs,
    require,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_ssm_delegate.documents.parameters import ParameterSpec

PREFIX = "variable:"
_LIMITS = {"StringList": 50, "MapList": 200}


def _matches(declared: str, value: Any) -> bool:
    scalar = {"String": str, "Integer": int, "Boolean": bool}
    if declared in scalar:
        return isinstance(value, scalar[declared]) and (declared == "Boolean" or not isinstance(value, bool))
    if declared == "StringMap":
        return isinstance(value, dict)
    if declared == "StringList":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if declared == "MapList":
        return isinstance(value, list) and all(isinstance(item, dict) for item in value)
    return False


def checked_update(declared: Mapping[str, ParameterSpec], name: str, value: Any) -> tuple[str, Any]:
    """(variable name, value) of an update, after AWS's checks; StepFailure naming what is wrong."""
    if not name.startswith(PREFIX):
        raise StepFailure(f"Input Name {name!r} must be written {PREFIX}NAME.", "Verification")
    variable = name[len(PREFIX) :]
    spec = declared.get(variable)
    if spec is None:
        known = ", ".join(sorted(declared)) or "none"
        raise StepFailure(
            f"{name}: the runbook declares no variable {variable!r} (declared: {known}).", "Verification"
        )
    if not _matches(spec.type, value):
        raise StepFailure(
            f"{name} is a {spec.type}; the value {value!r} is a {type(value).__name__} (aws:updateVariable "
            "converts no types).",
            "Verification",
        )
    limit = _LIMITS.get(spec.type)
    if limit is not None and len(value) > limit:
        raise StepFailure(
            f"{name}: a {spec.type} holds at most {limit} items, got {len(value)}.", "Verification"
        )
    if spec.type == "String" and not 1 <= len(value) <= 512:
        raise StepFailure(f"{name}: a String value must be 1..512 characters.", "Verification")
    return variable, value


def initial_values(declared: Mapping[str, ParameterSpec]) -> dict[str, Any]:
    """Each declared variable's ``default`` (variables without one start unset)."""
    return {name: spec.default for name, spec in declared.items() if spec.default is not MISSING}


def update_variable(ctx: StepContext) -> Outcome:
    reject_unknown_inputs(ctx.inputs, "aws:updateVariable")
    name = require(ctx.inputs, "Name", str)
    if "Value" not in ctx.inputs:
        raise StepFailure("Missing required input Value.", "Verification")
    return Done(variables={name: ctx.inputs["Value"]})
