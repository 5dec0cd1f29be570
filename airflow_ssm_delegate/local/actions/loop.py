"""aws:loop: run the step's nested steps for each item, or again while a condition holds.

From AWS's action reference (https://docs.aws.amazon.com/systems-manager/latest/userguide/
automation-action-loop.html): either ``Iterators`` (a list, at most 100 items, typed by
``IteratorDataType``: Boolean, Integer, String or StringMap; default String) for a "for each" loop, or
``LoopCondition`` (a Variable with an operator, And/Or/Not as in aws:branch) for a "do while" loop, whose
condition "is evaluated after the steps in the loop complete"; ``MaxIterations`` caps the runs (at most
100). Nested steps read ``{{ loop.CurrentIteratorValue }}`` and ``{{ loop.CurrentIteration }}``; the loop
step outputs both. The engine runs the nested steps (``Iterate``); this module checks the inputs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.actions.base import (
    Iterate,
    Outcome,
    StepContext,
    StepFailure,
    reject_unknown_inputs,
)
from airflow_ssm_delegate.local.conditions import ChoiceError, evaluate

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_ITERATIONS = 100
#: Inputs the engine must not render when the step starts: the condition reads the nested steps' outputs.
LATE_INPUTS = frozenset({"LoopCondition"})
DATA_TYPES = ("Boolean", "Integer", "String", "StringMap")


def _typed(item: Any, data_type: str, index: int) -> Any:
    where = f"Iterators[{index}]"
    if data_type == "String":
        return (
            item
            if isinstance(item, str)
            else json.dumps(item)
            if isinstance(item, (dict, list))
            else str(item)
        )
    if data_type == "Integer" and not isinstance(item, bool):
        try:
            return int(item)
        except (TypeError, ValueError):
            pass
    if data_type == "Boolean":
        if isinstance(item, bool):
            return item
        if str(item).lower() in ("true", "false"):
            return str(item).lower() == "true"
    if data_type == "StringMap":
        if isinstance(item, dict):
            return item
        try:
            loaded = json.loads(item) if isinstance(item, str) else None
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            return loaded
    raise StepFailure(f"{where} is {item!r}, not a {data_type} (IteratorDataType).", "Verification")


def _max_iterations(inputs: dict[str, Any]) -> int:
    value = inputs.get("MaxIterations", MAX_ITERATIONS)
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise StepFailure(f"Input MaxIterations must be an integer, got {value!r}.", "Verification") from None
    if not 1 <= count <= MAX_ITERATIONS:
        raise StepFailure(f"Input MaxIterations must be 1..{MAX_ITERATIONS}, got {count}.", "Verification")
    return count


def loop(ctx: StepContext) -> Outcome:
    inputs = ctx.inputs
    reject_unknown_inputs(inputs, "aws:loop")
    if not ctx.step.steps:
        raise StepFailure("aws:loop needs at least one step in Steps.", "Verification")
    condition = ctx.step.inputs.get("LoopCondition")
    if ("Iterators" in inputs) == (condition is not None):
        raise StepFailure("aws:loop needs exactly one of Iterators or LoopCondition.", "Verification")
    maximum = _max_iterations(inputs)
    if condition is None:
        items = inputs["Iterators"]
        items = items if isinstance(items, list) else [items]
        if len(items) > MAX_ITERATIONS:
            raise StepFailure(
                f"Iterators has {len(items)} items; aws:loop takes at most 100.", "Verification"
            )
        data_type = str(inputs.get("IteratorDataType", "String"))
        if data_type not in DATA_TYPES:
            raise StepFailure(
                f"IteratorDataType {data_type!r} must be one of {', '.join(DATA_TYPES)}.", "Verification"
            )
        return Iterate(tuple(_typed(item, data_type, i) for i, item in enumerate(items)), maximum)
    if "IteratorDataType" in inputs:
        raise StepFailure("IteratorDataType goes with Iterators, not with LoopCondition.", "Verification")

    def again(render: Callable[[Any], Any]) -> bool:
        try:
            return evaluate(render(condition), "LoopCondition")
        except ChoiceError as error:
            raise StepFailure(str(error), "Verification") from None

    return Iterate(None, maximum, again)
