"""What an action is, what it returns, and how it fails.

Actions never block a thread while they wait. An action is a function ``(StepContext) -> Outcome``:
``Done`` when the step is over, ``WaitUntil`` to be called back at a simulated time (sleeps, polling a
resource), ``WaitForSignal`` to be called back when a signal arrives (pause, approve, a child
execution ending). The engine keeps waiting steps in a timer heap and a signal table, so 1,000 sleeping
executions cost 1,000 small records, not 1,000 threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.model import StepSpec

#: Internal signal a child execution sends its parent's aws:executeAutomation step when it ends.
CHILD_FINISHED = "_ChildFinished"


class StepFailure(Exception):
    """The step failed; ``failure_type`` is AWS's FailureType (Action, Permission, Throttling, ...)."""

    def __init__(
        self,
        message: str,
        failure_type: str = "Action",
        details: Mapping[str, list[str]] | None = None,
        *,
        timed_out: bool = False,
        stage: str = "Execution",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.failure_type = failure_type
        self.details = dict(details or {})
        self.timed_out = timed_out
        self.stage = stage  # AWS FailureStage: Inputs, Execution or Outputs


class SessionExpired(StepFailure):
    """The caller's session the execution runs on has expired: nothing else can succeed, the run ends."""


@dataclass(frozen=True)
class Signal:
    """A SendAutomationSignal as an action sees it (``payload`` in the API's map-of-lists form)."""

    type: str
    payload: Mapping[str, list[str]] = field(default_factory=dict)
    sender: str | None = None

    def first(self, key: str) -> str | None:
        values = self.payload.get(key) or []
        return values[0] if values else None


@dataclass(frozen=True)
class Done:
    """The step succeeded: the action's own outputs, and the raw ``response`` output Selectors read."""

    outputs: Mapping[str, Any] = field(default_factory=dict)
    response: Any = None
    next_step: str | None = None  # aws:branch's choice
    variables: Mapping[str, Any] = field(default_factory=dict)  # aws:updateVariable: "variable:NAME" -> value


@dataclass(frozen=True)
class WaitUntil:
    """Call ``then`` again at simulated time ``at`` (the step stays InProgress)."""

    at: datetime
    then: Continuation


@dataclass(frozen=True)
class WaitForSignal:
    """Call ``then`` when one of ``signals`` arrives (the step and execution show Waiting)."""

    signals: frozenset[str]
    then: SignalHandler
    deadline: datetime | None = None
    deadline_message: str = "The step timed out waiting for a signal."
    accepts: Callable[[Signal], str | None] | None = None
    status: str = "Waiting"  # what the step and execution show meanwhile


@dataclass(frozen=True)
class Iterate:
    """aws:loop: run the step's nested steps once per item of ``items``, or (``items`` None) again while
    ``again(render)`` holds after an iteration; never more than ``max_iterations`` times. ``render``
    renders a value with the execution's current references."""

    items: tuple[Any, ...] | None
    max_iterations: int
    again: Callable[[Callable[[Any], Any]], bool] | None = None


Outcome: TypeAlias = "Done | WaitUntil | WaitForSignal | Iterate"
Continuation: TypeAlias = "Callable[[StepContext], Outcome]"
SignalHandler: TypeAlias = "Callable[[StepContext, Signal], Outcome]"
Action: TypeAlias = Callable[["StepContext"], Outcome]


class StepContext(Protocol):
    """What the engine gives an action for one step attempt."""

    step: StepSpec
    started: datetime  # the step's ExecutionStartTime
    inputs: dict[str, Any]  # rendered inputs
    execution_id: str
    state: dict[str, Any]  # scratch space kept across the continuations of one attempt

    def now(self) -> datetime: ...

    def client(self, service: str) -> Any:
        """A boto3 client with the execution's credentials; calls raise ``StepFailure``."""

    def later(self, sim_seconds: float, then: Continuation) -> WaitUntil: ...

    def start_child(self, request: dict[str, Any]) -> str:
        """Start a child execution (StartAutomationExecution body) as this execution's identity."""

    def child(self, execution_id: str) -> dict[str, Any]:
        """The child's AutomationExecution object."""

    def variables(self) -> Mapping[str, Any]:
        """The global and automation variables by name (``global:REGION``, ``automation:EXECUTION_ID``)."""

    def script_environment(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK in a child process at the runtime: endpoint and
        region, plus the service role's credentials when the execution has a service role."""


def require(inputs: Mapping[str, Any], name: str, kind: type | tuple[type, ...] = object) -> Any:
    """An input the action cannot run without, with a failure naming it when missing or mistyped."""
    if name not in inputs or inputs[name] in (None, ""):
        raise StepFailure(f"Missing required input {name}.", "Verification")
    value = inputs[name]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise StepFailure(f"Input {name} must be {names}, got {type(value).__name__}.", "Verification")
    return value


def string_list(inputs: Mapping[str, Any], name: str) -> list[str]:
    """A StringList input; a single string is accepted as a one-item list, as AWS does."""
    value = require(inputs, name, (list, str))
    items = [value] if isinstance(value, str) else value
    if not items or not all(isinstance(item, str) and item for item in items):
        raise StepFailure(f"Input {name} must be a non-empty list of strings, got {value!r}.", "Verification")
    return list(items)


POLL_SECONDS = 5.0


def poll(
    ctx: StepContext,
    check: Callable[[StepContext], Outcome | None],
    what: str,
    limit: timedelta = timedelta(hours=1),
) -> Outcome:
    """Run ``check`` now and every POLL_SECONDS (simulated) until it returns an outcome, or give up.

    ``limit`` bounds actions that AWS also bounds by default, so a resource that never reaches the
    wanted state fails the step instead of polling forever when the step has no timeoutSeconds.
    """
    if ctx.step.timeout_seconds:
        limit = timedelta(seconds=ctx.step.timeout_seconds)
    give_up = ctx.now() + limit

    def attempt(current: StepContext) -> Outcome:
        outcome = check(current)
        if outcome is not None:
            return outcome
        if current.now() >= give_up:
            raise StepFailure(f"Gave up after {limit} waiting for {what}.", "Action", timed_out=True)
        return current.later(POLL_SECONDS, attempt)

    return attempt(ctx)


def documented_inputs(action: str) -> frozenset[str]:
    """The inputs AWS documents for ``action``: the one table lint and the hook use too
    (``documents.actions.ACTIONS``, including every request member of the API an action wraps)."""
    from airflow_ssm_delegate.documents.actions import ACTIONS  # documents import nothing of local

    return ACTIONS[action].accepted_inputs()


def reject_unknown_inputs(
    inputs: Mapping[str, Any], action: str, allowed: frozenset[str] | None = None
) -> None:
    """An input AWS does not document for ``action`` fails the step naming it (``allowed`` defaults to the
    documented inputs)."""
    allowed = documented_inputs(action) if allowed is None else allowed
    unknown = sorted(set(inputs) - allowed)
    if unknown:
        raise StepFailure(
            f"{action} does not take input(s) {', '.join(unknown)}; it accepts {', '.join(sorted(allowed))}.",
            "Verification",
        )
