"""The local Automation engine: starts, runs, signals, stops and reports runbook executions.

Design (why it scales to 1,000 concurrent executions without 1,000 threads): an execution is a state
machine, not a thread. Actions return ``Done`` / ``WaitUntil`` / ``WaitForSignal`` (see
``actions.base``); the engine keeps waits as entries in one timer heap (``TimerScheduler``) or in the
execution's signal slot, and runs the short calls between waits on a small worker pool. Every
scheduled call carries the execution's ``generation``; stopping, signalling or timing out bumps it, so
stale timers fall through harmlessly. Every exception inside a step becomes a step failure, and any
unexpected error in the engine itself ends the execution Failed: none stays InProgress forever.

Locks: one per execution, never two at a time; anything crossing executions (a child telling its
parent it ended, a parent cancelling its children) goes through the worker pool.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.documents.model import (
    ParameterValidationError,
    Runbook,
    StepSpec,
    resolve_parameters,
)
from airflow_ssm_delegate.documents.parameters import check_value
from airflow_ssm_delegate.documents.references import render
from airflow_ssm_delegate.local.actions import LATE_INPUTS, REGISTRY, WALL_TIMED_ACTIONS
from airflow_ssm_delegate.local.actions.base import (
    CHILD_FINISHED,
    Continuation,
    Done,
    Iterate,
    Outcome,
    SessionExpired,
    Signal,
    StepFailure,
    WaitForSignal,
    WaitUntil,
)
from airflow_ssm_delegate.local.actions.variables import checked_update, initial_values
from airflow_ssm_delegate.local.alarms import AlarmMonitor, AlarmWatch
from airflow_ssm_delegate.local.clients import ClientCache, GuardedClient
from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.execution import ACTIVE_STEP_STATUSES, Execution, StepRecord
from airflow_ssm_delegate.local.identity import Authorizer, Caller, Credentials
from airflow_ssm_delegate.local.listing import page_executions, page_steps
from airflow_ssm_delegate.local.locations import Locations, Placement, plan_locations
from airflow_ssm_delegate.local.outputs import step_outputs
from airflow_ssm_delegate.local.quotas import ExecutionQuotas
from airflow_ssm_delegate.local.ratecontrol import (
    DEFAULT_MAX_RATE_CONTROL_QUEUED,
    DEFAULT_MAX_RATE_CONTROL_RUNNING,
    RateControl,
    plan_fan_out,
)
from airflow_ssm_delegate.local.scheduler import TimerScheduler
from airflow_ssm_delegate.local.ssm_params import resolve_store_references

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.clock import SimulatedClock

__all__ = ["Authorizer", "AutomationEngine", "Caller", "Credentials", "DocumentLoader"]

log = logging.getLogger(__name__)

DocumentLoader = Callable[[str, "str | None"], tuple[str, str, Runbook]]
#: Without a service role the execution runs on the caller's session, which AWS expires after 12 hours.
CALLER_SESSION_LIFETIME = timedelta(hours=12)
MAX_TAGS = 5
MIN_WALL_GAP = 0.02  # seconds between two polls of one step, whatever the clock's speed
SIGNAL_TYPES = frozenset({"Approve", "Reject", "StartStep", "StopStep", "Resume", "Revoke"})
STOP_TYPES = frozenset({"Cancel", "Complete"})
#: DocumentVersion values that name no version number until the document is read.
SYMBOLIC_VERSIONS = frozenset({"$DEFAULT", "$LATEST"})
#: Request keys of StartAutomationExecution this runtime does not implement (multi-account): refused by
#: name rather than silently ignored. Rate control (Targets, TargetMaps, ...) is ``local.ratecontrol``.
UNSUPPORTED_REQUEST_KEYS = frozenset({"TargetLocationsURL"})


def _session_expired_message(api: str) -> str:
    return (
        f"The caller's session this execution runs on expired 12 hours after the execution started, so "
        f"{api} was refused. The execution has no service role (AutomationAssumeRole): executions that run "
        f"over 12 hours need a service role - pass AutomationAssumeRole."
    )


@dataclass
class _LoopFrame:
    """An aws:loop step running its nested steps: its record (outputs CurrentIteration and
    CurrentIteratorValue as they advance) and what the loop action decided."""

    record: StepRecord
    plan: Iterate
    iteration: int = 0


@dataclass
class _Flow:
    """Per-execution state of runbook variables and running loops (innermost loop last)."""

    variables: dict[str, Any] = field(default_factory=dict)
    loops: list[_LoopFrame] = field(default_factory=list)


class _StepContext:
    """The ``StepContext`` an action gets: rendered inputs, clients, the clock, child executions."""

    def __init__(self, engine: AutomationEngine, execution: Execution, record: StepRecord) -> None:
        self._engine = engine
        self._execution = execution
        self.step: StepSpec = record.spec
        self.started: datetime = record.started or engine.clock.now()
        self.inputs: dict[str, Any] = {}
        self.execution_id = execution.id
        self.state: dict[str, Any] = {}

    def now(self) -> datetime:
        return self._engine.clock.now()

    def later(self, sim_seconds: float, then: Continuation) -> WaitUntil:
        """Call back after ``sim_seconds``, but never sooner than MIN_WALL_GAP real seconds: on a fast
        clock (36000x) a 5-second poll would otherwise call the endpoint back to back."""
        clock = self._engine.clock
        sim_seconds = max(sim_seconds, MIN_WALL_GAP * clock.time_scale)
        return WaitUntil(self.now() + timedelta(seconds=sim_seconds), then)

    def client(self, service: str) -> Any:
        execution = self._execution
        if execution.credentials is None:
            raise StepFailure("The execution has no credentials to call AWS with.", "Internal")
        region = self._engine.where(execution)[1]
        client = self._engine.clients.get(execution.credentials, service, region)
        return GuardedClient(client, self._check_session)

    def _check_session(self, api: str) -> None:
        expires = self._execution.session_expires
        if expires is not None and self.now() >= expires:
            raise SessionExpired(
                _session_expired_message(api), "Permission", {"ErrorCode": ["ExpiredToken"], "Api": [api]}
            )

    def start_child(self, request: dict[str, Any]) -> str:
        execution = self._execution
        if execution.credentials is None:
            raise StepFailure("The execution has no credentials to start a child with.", "Internal")
        self._check_session("ssm:StartAutomationExecution")
        caller = Caller(execution.identity_arn, execution.credentials)
        try:
            child_id = self._engine._start(request, caller, parent=execution)
        except AutomationApiError as error:
            failure_type = "Permission" if "AccessDenied" in error.code else "Action"
            raise StepFailure(
                f"ssm:StartAutomationExecution of the child failed ({error.code}): {error.message}",
                failure_type,
                {"ErrorCode": [error.code], "Api": ["ssm:StartAutomationExecution"]},
            ) from None
        with execution.lock:
            execution.children.append(child_id)
        return child_id

    def child(self, execution_id: str) -> dict[str, Any]:
        return self._engine.get(execution_id)

    def variables(self) -> dict[str, Any]:
        return self._engine._builtins(self._execution)

    def script_environment(self) -> dict[str, str]:
        engine, execution = self._engine, self._execution
        region = engine.where(execution)[1]
        environment = {
            "AWS_ENDPOINT_URL": engine.clients.endpoint_url,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }
        credentials = execution.credentials
        if execution.role_arn and credentials is not None:  # AWS: no service role, no permissions
            environment["AWS_ACCESS_KEY_ID"] = credentials.access_key_id
            environment["AWS_SECRET_ACCESS_KEY"] = credentials.secret_access_key
            if credentials.session_token:
                environment["AWS_SESSION_TOKEN"] = credentials.session_token
        return environment


class AutomationEngine:
    """Executes schema-0.3 runbooks against the local endpoint, as SSM Automation does on AWS."""

    def __init__(
        self,
        *,
        clock: SimulatedClock,
        endpoint_url: str,
        region: str,
        account_id: str,
        authorizer: Authorizer,
        load_document: DocumentLoader,
        workers: int = 8,
    ) -> None:
        self.clock = clock
        self.region = region
        self.account_id = account_id
        self.authorizer = authorizer
        self.load_document = load_document
        self.clients = ClientCache(endpoint_url, region)
        self._scheduler = TimerScheduler(clock, workers)
        self._scheduler.submit(self.clients.warm)
        self._executions: dict[str, Execution] = {}
        self._flows: dict[str, _Flow] = {}  # execution id -> variables and running loops
        self._tokens: dict[str, tuple[str, str]] = {}  # ClientToken -> (request fingerprint, execution id)
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self.steps_started = 0  # for the benchmark: step attempts begun since creation
        #: The account's running limit and Pending queue (AWS: 100 and 1,000); settable for tests.
        self.quotas = ExecutionQuotas()
        #: Rate-control (Targets/TargetMaps) executions' own running limit and queue (AWS: 25 and 1,000).
        self.rate_quotas = ExecutionQuotas(DEFAULT_MAX_RATE_CONTROL_RUNNING, DEFAULT_MAX_RATE_CONTROL_QUEUED)
        self.rate_control = RateControl(self)
        self.locations = Locations(self)  # TargetLocations parents (multi-account, multi-Region)
        #: Told of every execution and step status change (the runtime's EventBridge events).
        self.observer: Callable[[Execution, StepRecord | None], None] | None = None
        self.alarms = AlarmMonitor(self._scheduler, clock, self.clients, self._alarm_stop)

    # ----------------------------------------------------------------------------------------- API
    def start(self, request: dict[str, Any], caller: Caller) -> str:
        """StartAutomationExecution: validate, authorise, then run in the background; the execution id."""
        account_id, region = self._account_of(caller), caller.region or self.region
        if (account_id, region) != (self.account_id, self.region):
            raise AutomationApiError(
                "UnsupportedOperation",
                f"The local runtime starts executions in account {self.account_id}, Region {self.region} "
                f"only (this request: account {account_id}, Region {region}). Start there; TargetLocations "
                "runs the runbook in other accounts and Regions.",
            )
        return self._start(request, caller, parent=None)

    def where(self, execution: Execution) -> tuple[str, str]:
        """The account and Region an execution runs in: its TargetLocations placement, else the runtime's."""
        placement = execution.placement
        return (placement.account_id, placement.region) if placement else (self.account_id, self.region)

    def visible(self, execution_id: str, caller: Caller) -> bool:
        """Whether the caller's account and Region see the execution (a TargetLocations child is read where
        it runs; an API caller's Region is the one its request is signed for)."""
        if not caller.region:
            return True
        execution = self._execution(execution_id)
        account_id, region = self.where(execution)
        same_region = region == caller.region or execution.placement is None
        return self._account_of(caller) == account_id and same_region

    def _account_of(self, caller: Caller) -> str:
        """The caller's account, from its ARN (the runtime's own for an ARN without one)."""
        fields = caller.arn.split(":")
        return fields[4] if len(fields) > 4 and fields[4] else self.account_id

    def get(self, execution_id: str) -> dict[str, Any]:
        """GetAutomationExecution's ``AutomationExecution``."""
        execution = self._execution(execution_id)
        with execution.lock:
            return execution.to_api()

    def tags(self, execution_id: str) -> list[dict[str, str]]:
        """The execution's tags (ListTagsForResource with ResourceType Automation)."""
        execution = self._execution(execution_id)
        with execution.lock:
            return [dict(tag) for tag in execution.tags]

    def describe(
        self,
        filters: list[dict[str, Any]] | None,
        max_results: int | None,
        next_token: str | None,
        visible: Callable[[str], bool] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """DescribeAutomationExecutions: newest first, filters AND-ed, values of one filter OR-ed
        (``visible``: which executions the caller's account and Region see)."""
        with self._lock:
            executions = list(self._executions.values())
        if visible is not None:
            executions = [execution for execution in executions if visible(execution.id)]
        return page_executions(executions, filters or [], max_results, next_token)

    def step_executions(
        self,
        execution_id: str,
        filters: list[dict[str, Any]] | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
        reverse_order: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """DescribeAutomationStepExecutions."""
        execution = self._execution(execution_id)
        with execution.lock:
            records = [record.to_api() for record in execution.steps]
        return page_steps(records, filters or [], max_results, next_token, reverse_order)

    def stop(self, execution_id: str, stop_type: str = "Cancel") -> None:
        """StopAutomationExecution.

        Cancel: Cancelling at once, the running step ends Cancelled, its ``onCancel: step:X`` runs, then
        Cancelled. Complete: no further step runs and no onCancel; the running step is cancelled and the
        execution ends ``CompletedWithSuccess`` (``CompletedWithFailure`` if a critical step had failed),
        the statuses the API defines for an execution completed early.
        """
        if stop_type not in STOP_TYPES:
            raise AutomationApiError("ValidationException", f"Type {stop_type!r} must be Cancel or Complete.")
        execution = self._execution(execution_id)
        with execution.lock:
            if execution.finished:
                raise AutomationApiError(
                    "InvalidAutomationStatusUpdateException",
                    f"Execution {execution_id} already ended with status {execution.status}; only running "
                    "executions can be stopped.",
                )
            if execution.cancelling:
                return  # already stopping: a repeated Cancel is not an error
            if execution.fan_out is not None:  # a rate-control parent: its children are cancelled
                self.rate_control.stop(execution, stop_type)
                return
            if execution.locations is not None:  # a TargetLocations parent: likewise
                self.locations.stop(execution, stop_type)
                return
            if stop_type == "Cancel":
                execution.cancelling = True
                execution.status = "Cancelling"
            if execution.busy:
                execution.stop_requested = stop_type
            else:
                self._stop_now(execution, stop_type)

    def signal(
        self,
        execution_id: str,
        signal_type: str,
        payload: dict[str, Any] | None,
        caller: Caller | None = None,
    ) -> None:
        """SendAutomationSignal; ``caller`` (optional) lets aws:approve check the step's Approvers."""
        if signal_type not in SIGNAL_TYPES:
            raise AutomationApiError(
                "InvalidAutomationSignalException",
                f"SignalType {signal_type!r} is not one of {', '.join(sorted(SIGNAL_TYPES))}.",
            )
        payload = {
            str(k): [str(i) for i in (v if isinstance(v, list) else [v])] for k, v in (payload or {}).items()
        }
        execution = self._execution(execution_id)
        signal = Signal(signal_type, payload, caller.arn if caller else None)
        with execution.lock:
            if execution.finished:
                raise AutomationApiError(
                    "InvalidAutomationSignalException",
                    f"Execution {execution_id} already ended with status {execution.status}.",
                )
            if signal_type == "StartStep":
                self._signal_start_step(execution, signal)
            elif signal_type == "StopStep":
                self._signal_stop_step(execution, signal)
            else:
                self._deliver(execution, signal)

    def wait(self, execution_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the execution ends (or ``timeout`` wall seconds pass); its AutomationExecution."""
        self._execution(execution_id).done.wait(timeout)
        return self.get(execution_id)

    def shutdown(self) -> None:
        self._scheduler.shutdown()

    # ------------------------------------------------------------------------------------ starting
    def _execution(self, execution_id: str) -> Execution:
        with self._lock:
            execution = self._executions.get(str(execution_id))
        if execution is None:
            raise AutomationApiError(
                "AutomationExecutionNotFoundException", f"There is no automation execution {execution_id!r}."
            )
        return execution

    def _start(
        self,
        request: dict[str, Any],
        caller: Caller,
        parent: Execution | None,
        target: str | None = None,
        placement: Placement | None = None,
    ) -> str:
        """Validate, authorise and admit one execution (``target``: a rate-control child's target value;
        ``placement``: a TargetLocations child's account, Region and execution role, inherited by its own
        children). Children of both kinds are started by the service: the caller's IAM was checked once,
        at the parent's start (with its tags), and is not asked again per child."""
        if not isinstance(request, dict):
            raise AutomationApiError("ValidationException", "The request body must be a JSON object.")
        name = request.get("DocumentName")
        if not isinstance(name, str) or not name:
            raise AutomationApiError("ValidationException", "DocumentName is required.")
        unsupported = sorted(UNSUPPORTED_REQUEST_KEYS & set(request))
        if unsupported:
            raise AutomationApiError(
                "InvalidAutomationExecutionParametersException",
                f"The local runtime does not support {', '.join(unsupported)} (it reads a presigned Amazon "
                "S3 URL); pass the same list as TargetLocations.",
            )
        mode = request.get("Mode", "Auto")
        if mode not in ("Auto", "Interactive"):
            raise AutomationApiError("ValidationException", f"Mode {mode!r} must be Auto or Interactive.")
        tags = _checked_tags(request.get("Tags"))
        version = request.get("DocumentVersion")
        tag_map = {tag["Key"]: tag["Value"] for tag in tags}
        placement = placement or (parent.placement if parent is not None else None)
        by_service = placement is not None or target is not None
        document_name, document_version, runbook = (
            self.load_document(name, version)  # the parent's runbook (as the starting account shares it)
            if by_service
            else self._load_authorized(caller, name, version, tag_map)
        )
        _check_supported_actions(runbook)
        located = plan_locations(request, runbook, self.account_id, self.region, nested=placement is not None)
        planned = plan_fan_out(request, runbook) if located is None else None  # Targets: rate control
        runbook = (located or planned or _Unplanned(runbook)).runbook  # without the children's target params
        region = placement.region if placement else None
        ssm = functools.partial(self.clients.get, caller.credentials, "ssm", region)  # read as the caller
        given = resolve_store_references(runbook, request.get("Parameters"), ssm)
        values = _resolved_parameters(runbook, given)
        role_arn = _role_arn(runbook, values)
        if located is not None:
            role_arn = located.administration_role(role_arn, self.account_id)
        if not by_service:  # the concrete version again, and iam:PassRole on the role the parameters name
            self.authorizer.authorize_start(caller, document_name, document_version, role_arn, tag_map)
        token = request.get("ClientToken")
        fingerprint = _request_fingerprint(request, caller)
        with self._lock:
            if token is not None:
                known = self._tokens.get(str(token))
                if known is not None:
                    if known[0] != fingerprint:
                        raise AutomationApiError(
                            "IdempotentParameterMismatch",
                            f"ClientToken {token} was already used by execution {known[1]} with a different "
                            "request; use a new token for a new execution.",
                        )
                    return known[1]
            execution_id = str(uuid.uuid4())
            quotas = self.rate_quotas if planned is not None else self.quotas
            admitted = quotas.admit(execution_id)  # else it waits as Pending, or the start is refused
            execution = Execution(
                id=execution_id,
                sequence=next(self._sequence),
                document_name=document_name,
                document_version=document_version,
                runbook=runbook,
                mode=mode,
                values=values,
                parameters={n: check_value(runbook.parameters[n], v)[0] for n, v in values.items()},
                caller=caller,
                role_arn=role_arn,
                tags=tags,
                started=self.clock.now(),
                parent_id=parent.id if parent else None,
                observer=self.observer,
                alarm=AlarmWatch.from_request(request),
                fan_out=planned.fan_out if planned is not None else None,
                target=target,
                placement=placement,
                locations=located.fan_out if located is not None else None,
            )
            self._executions[execution.id] = execution
            self._flows[execution.id] = _Flow(initial_values(runbook.variables))
            if token is not None:
                self._tokens[str(token)] = (fingerprint, execution.id)
        if admitted:
            self._scheduler.submit(lambda: self._begin(execution))
        return execution.id

    def _load_authorized(
        self, caller: Caller, name: str, version: str | None, tags: dict[str, str]
    ) -> tuple[str, str, Runbook]:
        """The runbook, read only once the caller may start it: IAM before content, as on AWS.

        StartAutomationExecution is authorised on the requested name and version (``$DEFAULT`` when
        none) before the document is read, so a caller who may not start it learns nothing about it:
        not whether it exists, nor its versions, actions or parameter rules. A grant on the concrete
        version a ``$DEFAULT``/``$LATEST`` request resolves to also allows it (that is what a version
        pin grants); until that is known, any document error is reported as the first denial.
        """
        requested = version or "$DEFAULT"
        try:
            self.authorizer.authorize_start(caller, name, requested, None, tags)
        except AutomationApiError as denied:
            if requested not in SYMBOLIC_VERSIONS:
                raise
            try:
                loaded = self.load_document(name, version)
            except AutomationApiError:
                raise denied from None
            self.authorizer.authorize_start(caller, loaded[0], loaded[1], None, tags)
            return loaded
        return self.load_document(name, version)

    def _begin(self, execution: Execution) -> None:
        """First call of an execution, on a worker: take on its identity, then run the first step."""
        credentials = execution.placement.credentials if execution.placement else None
        problem = None
        if execution.role_arn and credentials is None:
            try:
                credentials = self.authorizer.assume_service_role(execution.role_arn, execution.id)
            except AutomationApiError as error:
                problem = (
                    f"The defined assume role {execution.role_arn} is unable to be assumed: {error.message}"
                )
            except Exception as error:
                problem = f"The defined assume role {execution.role_arn} is unable to be assumed: {error}"
        alarm = None  # polled before the first step, with the identity the steps will use
        if execution.alarm is not None and problem is None:
            alarm = self.alarms.check(execution.alarm, credentials or execution.caller.credentials)
        with execution.lock:
            if execution.finished:
                return
            if problem:
                self._finish(execution, "Failed", problem)
                return
            if credentials is not None and execution.role_arn:
                execution.credentials = credentials
                role_name = execution.role_arn.rsplit("/", 1)[-1]
                execution.identity_arn = (
                    f"arn:aws:sts::{self.where(execution)[0]}:assumed-role/{role_name}/{execution.id}"
                )
            else:
                execution.credentials = execution.caller.credentials
                execution.identity_arn = execution.caller.arn
                execution.session_expires = execution.started + CALLER_SESSION_LIFETIME
            if alarm is not None and execution.alarm is not None:
                execution.triggered_alarms = [{"Name": execution.alarm.name, "State": alarm}]
                execution.cancelling = True
            if execution.cancelling:
                self._finish(execution, "Cancelled")
                return
            execution.status = "InProgress"
            if execution.alarm is not None:
                self.alarms.watch(execution)
            if execution.fan_out is not None:  # rate control: its targets are resolved on a worker
                self._scheduler.submit(functools.partial(self.rate_control.begin, execution))
                return
            if execution.locations is not None:  # TargetLocations: its locations start on a worker
                self._scheduler.submit(functools.partial(self.locations.begin, execution))
                return
            self._guard(execution, lambda: self._enter_step(execution, execution.runbook.steps[0]))

    # ------------------------------------------------------------------------------------- running
    def _guard(self, execution: Execution, work: Callable[[], None]) -> None:
        """Run engine bookkeeping; an unexpected error ends the execution Failed instead of hanging it."""
        try:
            work()
        except Exception as error:
            log.exception("engine error in execution %s", execution.id)
            if not execution.finished:
                self._finish(execution, "Failed", f"Internal error of the local runtime: {error!r}")

    def _enter_step(self, execution: Execution, spec: StepSpec) -> None:
        record = StepRecord(spec)
        execution.steps.append(record)
        execution.current = record
        if execution.mode == "Interactive" and not execution.cancelling:
            execution.awaiting_start = True
            execution.status = "Waiting"
            return
        self._run_step(execution, record)

    def _run_step(self, execution: Execution, record: StepRecord) -> None:
        now = self.clock.now()
        record.status = "InProgress"
        record.started = record.started or now
        record.attempt += 1
        record.failure = None
        with self._lock:
            self.steps_started += 1
        if not execution.cancelling:
            execution.status = "InProgress"
        # actions that run code in real time apply timeoutSeconds themselves, in wall-clock seconds
        timeout = None if record.spec.action in WALL_TIMED_ACTIONS else record.spec.timeout_seconds
        execution.deadline = now + timedelta(seconds=timeout) if timeout else None
        context = _StepContext(self, execution, record)
        execution.context = context
        action = REGISTRY[record.spec.action]

        def first_call(ctx: Any) -> Outcome:
            ctx.inputs = self._render_inputs(execution, record)
            return action(ctx)

        self._call_soon(execution, first_call)

    def _builtins(self, execution: Execution) -> dict[str, Any]:
        """The global and automation variables of ``execution`` now."""
        now = self.clock.now()
        account_id, region = self.where(execution)
        return {
            "global:ACCOUNT_ID": account_id,
            "global:REGION": region,
            "global:AWS_PARTITION": "aws",
            "global:DATE": now.strftime("%Y-%m-%d"),
            "global:DATE_TIME": now.strftime("%Y-%m-%d_%H.%M.%S"),
            "automation:EXECUTION_ID": execution.id,
        }

    def _resolver(self, execution: Execution) -> Callable[[str], Any]:
        """What each ``{{ X }}`` means now: global/automation variables, ``variable:NAME``, parameters,
        the running loops' ``CurrentIteration``/``CurrentIteratorValue``, then step outputs."""
        flow = self._flows[execution.id]
        with execution.lock:
            values, step_values = dict(execution.values), execution.step_values()
            variables = {f"variable:{name}": value for name, value in flow.variables.items()}
            step_values.update({frame.record.spec.name: dict(frame.record.values) for frame in flow.loops})
        builtins = {**self._builtins(execution), **variables}

        def resolve(expression: str) -> Any:
            if expression in builtins:
                return builtins[expression]
            if expression in values:
                return values[expression]
            step, dot, name = expression.partition(".")
            if dot and step in step_values and name in step_values[step]:
                return step_values[step][name]
            if expression.startswith("variable:"):
                raise StepFailure(
                    f"{{{{ {expression} }}}}: the runbook declares no such variable, or it has no value "
                    "yet (give it a default, or set it with aws:updateVariable first).",
                    "Verification",
                    stage="Inputs",
                )
            if dot and any(s.name == step for s in execution.runbook.all_steps()):
                raise StepFailure(
                    f"{{{{ {expression} }}}}: step {step} has no output {name} (it has not succeeded, "
                    "or does not declare that output).",
                    "Verification",
                    stage="Inputs",
                )
            if expression.startswith("ssm:"):  # AWS resolves Parameter Store references in parameters only
                raise StepFailure(
                    f"{{{{ {expression} }}}}: Parameter Store references are resolved in the runbook's "
                    "parameters (a default or a value given at start), not in step inputs; declare a "
                    "parameter whose default is this reference, or call ssm GetParameter in a step.",
                    "Verification",
                    stage="Inputs",
                )
            raise StepFailure(
                f"{{{{ {expression} }}}} is not a parameter, a step output or a global/automation variable.",
                "Verification",
                stage="Inputs",
            )

        return resolve

    def _render_inputs(self, execution: Execution, record: StepRecord) -> dict[str, Any]:
        late = LATE_INPUTS.get(record.spec.action, frozenset())  # rendered by the action when it needs them
        spec_inputs = {key: value for key, value in record.spec.inputs.items() if key not in late}
        inputs = render(spec_inputs, self._resolver(execution))
        with execution.lock:
            record.inputs = dict(inputs)
        return dict(inputs)

    def _call_soon(self, execution: Execution, call: Continuation) -> None:
        execution.generation += 1
        execution.next_call = call
        generation = execution.generation
        self._scheduler.submit(lambda: self._work(execution, generation))

    def _call_at(self, execution: Execution, when: datetime, call: Continuation) -> None:
        execution.generation += 1
        execution.next_call = call
        generation = execution.generation
        self._scheduler.call_at(when, lambda: self._work(execution, generation))

    def _work(self, execution: Execution, generation: int) -> None:
        """Run the execution's scheduled call on this worker, then apply what it returned."""
        with execution.lock:
            if execution.generation != generation or execution.next_call is None or execution.finished:
                return
            call, execution.next_call = execution.next_call, None
            execution.busy = True
            context = execution.context
        outcome: Outcome | None = None
        failure: StepFailure | None = None
        try:
            with self.clock.held():  # the runtime's own latency is not simulated time (see clock)
                outcome = call(context)
        except StepFailure as error:
            failure = error
        except Exception as error:
            log.debug("step of %s raised", execution.id, exc_info=True)
            failure = StepFailure(f"{type(error).__name__}: {error}", "Action")
        with execution.lock:
            execution.busy = False
            self._guard(execution, lambda: self._apply(execution, outcome, failure))

    def _apply(self, execution: Execution, outcome: Outcome | None, failure: StepFailure | None) -> None:
        if execution.finished:
            return
        requested, execution.stop_requested = execution.stop_requested, None
        if requested in ("Cancel", "Complete"):
            self._stop_now(execution, requested)
            return
        if requested == "StopStep":
            self._step_stopped(execution)
            return
        deadline = execution.deadline
        if failure is None and deadline is not None and self.clock.now() > deadline:
            failure = self._timeout_failure(execution)
        if failure is not None:
            self._step_failed(execution, failure)
        elif isinstance(outcome, Done):
            self._step_succeeded(execution, outcome)
        elif isinstance(outcome, WaitUntil):
            if deadline is not None and outcome.at > deadline:
                self._call_at(execution, deadline, self._raise_timeout(execution))
            else:
                self._call_at(execution, outcome.at, outcome.then)
        elif isinstance(outcome, WaitForSignal):
            self._wait_for_signal(execution, outcome)
        elif isinstance(outcome, Iterate):
            self._start_loop(execution, outcome)
        else:
            raise TypeError(f"action returned {outcome!r}, not Done/WaitUntil/WaitForSignal/Iterate")

    def _timeout_failure(self, execution: Execution, message: str | None = None) -> StepFailure:
        seconds = execution.current.spec.timeout_seconds if execution.current else None
        return StepFailure(
            message or f"Step timed out after {seconds} seconds (timeoutSeconds).", "Action", timed_out=True
        )

    def _raise_timeout(self, execution: Execution, message: str | None = None) -> Continuation:
        def timed_out(_ctx: Any) -> Outcome:
            raise self._timeout_failure(execution, message)

        return timed_out

    def _wait_for_signal(self, execution: Execution, wait: WaitForSignal) -> None:
        execution.waiting = wait
        execution.generation += 1  # no call scheduled while waiting, only the deadline below
        record = execution.current
        if record is not None:
            record.status = wait.status
        if wait.status == "Waiting" and not execution.cancelling:
            execution.status = "Waiting"
        deadlines = [
            (d, m) for d, m in ((execution.deadline, None), (wait.deadline, wait.deadline_message)) if d
        ]
        if deadlines:
            when, message = min(deadlines, key=lambda item: item[0])
            self._call_at(execution, when, self._raise_timeout(execution, message))
        for buffered in list(execution.buffered):
            if buffered.type in wait.signals:
                execution.buffered.remove(buffered)
                self._deliver(execution, buffered)
                return

    def _deliver(self, execution: Execution, signal: Signal) -> None:
        wait = execution.waiting
        if wait is None or signal.type not in wait.signals or execution.busy:
            if signal.type == CHILD_FINISHED:
                execution.buffered.append(signal)
                return
            where = (
                f"step {execution.current.spec.name} is {execution.current.status}"
                if execution.current
                else ""
            )
            raise AutomationApiError(
                "InvalidAutomationSignalException",
                f"Execution {execution.id} is {execution.status} ({where}) and does not wait for "
                f"{signal.type}.",
            )
        refusal = wait.accepts(signal) if wait.accepts else None
        if refusal:
            raise AutomationApiError("InvalidAutomationSignalException", refusal)
        execution.waiting = None
        if execution.current is not None:
            execution.current.status = "InProgress"
        if not execution.cancelling:
            execution.status = "InProgress"
        handler = wait.then
        self._call_soon(execution, lambda ctx: handler(ctx, signal))

    def _signal_start_step(self, execution: Execution, signal: Signal) -> None:
        name = signal.first("StepName")
        if not execution.awaiting_start or execution.current is None:
            raise AutomationApiError(
                "InvalidAutomationSignalException",
                f"Execution {execution.id} is not waiting for StartStep (Mode {execution.mode}, status "
                f"{execution.status}).",
            )
        try:
            spec = execution.runbook.step(name or "")
        except KeyError:
            raise AutomationApiError(
                "AutomationStepNotFoundException",
                f"StartStep needs Payload StepName naming a step of the runbook; got {name!r}.",
            ) from None
        execution.awaiting_start = False
        execution.current.spec = spec
        self._run_step(execution, execution.current)

    def _signal_stop_step(self, execution: Execution, signal: Signal) -> None:
        step_id = signal.first("StepExecutionId")
        record = next((r for r in execution.steps if r.id == step_id), None)
        if record is None:
            raise AutomationApiError(
                "AutomationStepNotFoundException",
                f"StopStep needs Payload StepExecutionId of a step of execution {execution.id}; "
                f"got {step_id!r}.",
            )
        if record is not execution.current or record.status not in ACTIVE_STEP_STATUSES:
            raise AutomationApiError(
                "InvalidAutomationSignalException",
                f"Step {record.spec.name} is {record.status}, not running.",
            )
        if execution.busy:
            execution.stop_requested = "StopStep"
        else:
            self._step_stopped(execution)

    # ------------------------------------------------------------------------------ step endings
    def _step_succeeded(self, execution: Execution, done: Done) -> None:
        record = execution.current
        assert record is not None
        target = done.next_step
        try:
            if target is not None and not any(s.name == target for s in execution.runbook.all_steps()):
                raise StepFailure(f"aws:branch chose {target!r}, which is not a step.", "Verification")
            record.values = step_outputs(record.spec, done.outputs, done.response)
            updates = [checked_update(execution.runbook.variables, n, v) for n, v in done.variables.items()]
        except StepFailure as failure:
            self._step_failed(execution, failure)
            return
        self._flows[execution.id].variables.update(updates)
        self._close(record, "Success")
        self._continue_with(execution, target or self._next_after(execution, record.spec))

    def _step_failed(self, execution: Execution, failure: StepFailure, status: str | None = None) -> None:
        record = execution.current
        assert record is not None
        retryable = not isinstance(failure, SessionExpired) and status is None and failure.stage != "Inputs"
        if retryable and record.attempt < record.spec.max_attempts and not execution.cancelling:
            self._run_step(execution, record)
            return
        record.failure = failure
        self._close(record, status or ("TimedOut" if failure.timed_out else "Failed"))
        message = f"Step {record.spec.name} {record.status}: {failure.message}"
        if isinstance(failure, SessionExpired):
            self._finish(execution, "Failed", failure.message)
            return
        on_failure = record.spec.on_failure
        if execution.cancelling:
            target = on_failure[5:] if on_failure.startswith("step:") else None
            self._continue_with(execution, target)
            return
        if on_failure == "Abort":
            self._finish(execution, "TimedOut" if failure.timed_out else "Failed", message)
            return
        if record.spec.is_critical:
            execution.critical_failure = True
            execution.failure_message = message
        target = (
            on_failure[5:] if on_failure.startswith("step:") else self._next_after(execution, record.spec)
        )
        self._continue_with(execution, target)

    def _step_stopped(self, execution: Execution) -> None:
        """StopStep: the step ends Cancelled; Interactive waits for the next StartStep, Auto goes on
        as after a failed step (onFailure)."""
        self._step_failed(
            execution, StepFailure("Stopped by a StopStep signal.", "Action"), status="Cancelled"
        )

    def _stop_now(self, execution: Execution, stop_type: str) -> None:
        execution.generation += 1  # drop any timer or queued call
        execution.next_call = None
        execution.waiting = None
        execution.awaiting_start = False
        record = execution.current
        active = record is not None and record.status in ACTIVE_STEP_STATUSES
        if record is not None and active:
            self._close(record, "Cancelled")
        for child_id in execution.children:
            self._scheduler.submit(functools.partial(self._cancel_quietly, child_id))
        if stop_type == "Complete":
            self._finish(
                execution, "CompletedWithFailure" if execution.critical_failure else "CompletedWithSuccess"
            )
            return
        on_cancel = record.spec.on_cancel if record is not None and active else "Abort"
        self._continue_with(execution, on_cancel[5:] if on_cancel.startswith("step:") else None)

    def _alarm_stop(self, execution: Execution, state: str) -> None:
        """The execution's alarm fired (or could not be read): stopped as a Cancel, onCancel runs."""
        assert execution.alarm is not None
        execution.triggered_alarms = [{"Name": execution.alarm.name, "State": state}]
        with contextlib.suppress(AutomationApiError):  # it ended meanwhile
            self.stop(execution.id, "Cancel")

    def _cancel_quietly(self, execution_id: str) -> None:
        with contextlib.suppress(AutomationApiError):  # it already ended
            self.stop(execution_id, "Cancel")

    def _close(self, record: StepRecord, status: str) -> None:
        record.status = status
        record.ended = self.clock.now()

    def _siblings(self, execution: Execution) -> tuple[StepSpec, ...]:
        """The steps the flow moves among now: the innermost running loop's, else ``mainSteps``."""
        loops = self._flows[execution.id].loops
        return loops[-1].record.spec.steps if loops else execution.runbook.steps

    def _following(self, execution: Execution, spec: StepSpec) -> str | None:
        steps = self._siblings(execution)
        index = next(i for i, s in enumerate(steps) if s.name == spec.name)
        return steps[index + 1].name if index + 1 < len(steps) else None

    def _next_after(self, execution: Execution, spec: StepSpec) -> str | None:
        """Where the flow goes after ``spec`` whatever its result (``onFailure: Continue``)."""
        if spec.is_end:
            return None
        return spec.next_step or self._following(execution, spec)

    def _continue_with(self, execution: Execution, target: str | None) -> None:
        execution.deadline = None
        loops = self._flows[execution.id].loops
        if loops:
            if target is None and not execution.cancelling:  # the loop's steps ran (or isEnd): iteration over
                self._iteration_ended(execution)
                return
            if target is not None and not any(s.name == target for s in loops[-1].record.spec.steps):
                self._leave_loops(execution, target)
                return
        if target is None:
            if execution.cancelling:
                self._finish(execution, "Cancelled")
            elif execution.critical_failure:
                self._finish(execution, "Failed", execution.failure_message)
            else:
                self._finish(execution, "Success")
            return
        if not any(s.name == target for s in self._siblings(execution)):
            raise RuntimeError(f"step {target} is inside an aws:loop; only that loop's steps can go to it")
        self._enter_step(execution, execution.runbook.step(target))

    # ----------------------------------------------------------------------------------- aws:loop
    def _start_loop(self, execution: Execution, plan: Iterate) -> None:
        """The loop step's action checked its inputs: run its nested steps, first iteration."""
        record = execution.current
        assert record is not None
        if plan.items is not None and not plan.items:  # for each over nothing: done at once
            record.values = {"CurrentIteration": 0}
            self._close(record, "Success")
            self._continue_with(execution, self._next_after(execution, record.spec))
            return
        self._flows[execution.id].loops.append(_LoopFrame(record, plan))
        self._next_iteration(execution)

    def _next_iteration(self, execution: Execution) -> None:
        frame = self._flows[execution.id].loops[-1]
        frame.iteration += 1
        frame.record.values = {"CurrentIteration": frame.iteration}
        if frame.plan.items is not None:
            frame.record.values["CurrentIteratorValue"] = frame.plan.items[frame.iteration - 1]
        self._enter_step(execution, frame.record.spec.steps[0])

    def _iteration_ended(self, execution: Execution) -> None:
        """Another iteration (items left, or LoopCondition still true), or the loop step succeeds."""
        frame = self._flows[execution.id].loops[-1]
        plan = frame.plan
        if frame.iteration < plan.max_iterations:
            if plan.items is not None:
                more = frame.iteration < len(plan.items)
            else:
                assert plan.again is not None
                resolve = self._resolver(execution)
                try:
                    more = plan.again(lambda value: render(value, resolve))
                except StepFailure as failure:
                    self._loop_failed(execution, failure)
                    return
            if more:
                self._next_iteration(execution)
                return
        self._flows[execution.id].loops.pop()
        execution.current = frame.record
        self._close(frame.record, "Success")
        self._continue_with(execution, self._next_after(execution, frame.record.spec))

    def _loop_failed(self, execution: Execution, failure: StepFailure) -> None:
        """The loop itself failed (its LoopCondition): it ends as a failed step of the outer flow."""
        frame = self._flows[execution.id].loops.pop()
        execution.current = frame.record
        frame.record.attempt = frame.record.spec.max_attempts  # no retry of a half-run loop
        self._step_failed(execution, failure)

    def _leave_loops(self, execution: Execution, target: str) -> None:
        """A nested step went (nextStep, branch, onFailure) to a step outside its loop: the loops it
        leaves end, Success unless the step that left had failed."""
        loops = self._flows[execution.id].loops
        left = execution.current
        status = "Success" if left is None or left.status == "Success" else "Failed"
        while loops and not any(s.name == target for s in loops[-1].record.spec.steps):
            frame = loops.pop()
            self._close(frame.record, status)
            execution.current = frame.record
        self._continue_with(execution, target)

    def _finish(self, execution: Execution, status: str, message: str | None = None) -> None:
        execution.generation += 1
        execution.next_call = None
        execution.waiting = None
        execution.awaiting_start = False
        execution.status = status
        execution.ended = self.clock.now()
        if message:
            execution.failure_message = message
        record = execution.current
        if record is not None and record.status in ACTIVE_STEP_STATUSES:
            self._close(record, "Cancelled" if status != "Failed" else "Failed")
        for frame in reversed(self._flows[execution.id].loops):  # loops the end interrupted
            self._close(frame.record, "Cancelled" if status != "Failed" else "Failed")
        self._flows[execution.id].loops.clear()
        execution.done.set()
        quotas = self.rate_quotas if execution.fan_out is not None else self.quotas
        for queued_id in quotas.release(execution.id):  # Pending executions whose turn has come
            self._scheduler.submit(functools.partial(self._begin_queued, queued_id))
        if execution.parent_id:
            parent_id = execution.parent_id
            self._scheduler.submit(lambda: self._notify_parent(parent_id, execution.id))

    def _begin_queued(self, execution_id: str) -> None:
        self._begin(self._execution(execution_id))

    def _notify_parent(self, parent_id: str, child_id: str) -> None:
        parent = self._execution(parent_id)
        if parent.fan_out is not None:
            self.rate_control.child_ended(parent, child_id)
            return
        if parent.locations is not None:
            self.locations.child_ended(parent, child_id)
            return
        with parent.lock:
            if not parent.finished:
                self._deliver(parent, Signal(CHILD_FINISHED, {"ExecutionId": [child_id]}))


@dataclass(frozen=True)
class _Unplanned:
    """A start that fans out to nothing: its runbook as it is."""

    runbook: Runbook


def _resolved_parameters(runbook: Runbook, api_parameters: Any) -> dict[str, Any]:
    """The request's Parameters as typed values with defaults; any problem is the API's parameter error."""
    api_parameters = api_parameters or {}
    if not isinstance(api_parameters, dict):
        raise AutomationApiError(
            "InvalidAutomationExecutionParametersException", "Parameters must be a map of name to values."
        )
    try:
        return resolve_parameters(runbook, api_parameters)
    except ParameterValidationError as error:
        raise AutomationApiError("InvalidAutomationExecutionParametersException", str(error)) from None
    except (TypeError, ValueError, AttributeError) as error:  # values of shapes no check expects
        raise AutomationApiError(
            "InvalidAutomationExecutionParametersException",
            f"Parameters must map each name to a list of strings: {error}",
        ) from None


def _request_fingerprint(request: Mapping[str, Any], caller: Caller) -> str:
    """What must match for a reused ClientToken to mean "the same start" (the same request and caller)."""
    return json.dumps(
        {"request": {k: v for k, v in request.items() if k != "ClientToken"}, "caller": caller.arn},
        sort_keys=True,
        default=str,
    )


def _checked_tags(tags: Any) -> list[dict[str, str]]:
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(
        isinstance(tag, dict) and isinstance(tag.get("Key"), str) and isinstance(tag.get("Value", ""), str)
        for tag in tags
    ):
        raise AutomationApiError("ValidationException", "Tags must be a list of {Key, Value} string pairs.")
    if len(tags) > MAX_TAGS:
        raise AutomationApiError(
            "ValidationException",
            f"At most {MAX_TAGS} tags can be set when starting an execution, got {len(tags)}.",
        )
    return [{"Key": tag["Key"], "Value": tag.get("Value", "")} for tag in tags]


def _check_supported_actions(runbook: Runbook) -> None:
    """A runbook using an action this runtime does not implement is refused before anything runs.

    The code is InvalidDocumentContent, the SSM API's error for a document that cannot be used as it
    is: the request's parameters are fine, the runbook's content is what this runtime cannot execute.
    """
    unknown = _unsupported(runbook.all_steps())
    if unknown:
        raise AutomationApiError(
            "InvalidDocumentContent",
            "The local Automation runtime does not support "
            + "; ".join(f"action {action} (step {', '.join(names)})" for action, names in unknown.items())
            + f". Supported actions: {', '.join(sorted(REGISTRY))}.",
        )


def _unsupported(steps: Iterable[StepSpec]) -> dict[str, list[str]]:
    unknown: dict[str, list[str]] = {}
    for step in steps:
        if step.action not in REGISTRY:
            unknown.setdefault(step.action, []).append(step.name)
    return unknown


def _role_arn(runbook: Runbook, values: dict[str, Any]) -> str | None:
    """The service role the execution runs as: ``assumeRole`` rendered with the parameters ('' = none)."""
    if not runbook.assume_role:
        return None

    def resolve(expression: str) -> Any:
        if expression not in values:
            raise AutomationApiError(
                "InvalidAutomationExecutionParametersException",
                f"assumeRole references {{{{ {expression} }}}}, which is not a parameter of the runbook.",
            )
        return values[expression]

    role = render(runbook.assume_role, resolve)
    if role in (None, "", []):
        return None
    if not isinstance(role, str) or not role.startswith("arn:"):
        raise AutomationApiError(
            "InvalidAutomationExecutionParametersException",
            f"assumeRole must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got {role!r}.",
        )
    return role
