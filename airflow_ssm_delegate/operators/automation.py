"""Operators that start, stop and signal SSM Automation executions.

Importing this module costs little: nothing from boto3, botocore or the Amazon provider is imported until
a task actually runs (see ``airflow_ssm_delegate.connection`` for why the Amazon ``AwsBaseOperator`` is
not the base class). All policy checks (approved runbook, service role, pins, parameter validation, audit
tags, secret masking) happen inside ``SsmAutomationHook.start_automation_execution``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.clocks import sleep_blocking
from airflow_ssm_delegate.compat import AirflowException, conf, trigger_on_kill_note
from airflow_ssm_delegate.connection import CONNECTION_TEMPLATE_FIELDS
from airflow_ssm_delegate.idempotency import (
    STATE_STORE_KEY,
    TaskIdentity,
    derive_client_token,
    replacement_token,
)
from airflow_ssm_delegate.links.automation import SsmAutomationExecutionLink
from airflow_ssm_delegate.operators.base import SsmAutomationBaseOperator
from airflow_ssm_delegate.polling import (
    DEFAULT_MAX_POLL_INTERVAL,
    ExecutionWatch,
    PollSchedule,
    read_execution,
)
from airflow_ssm_delegate.status import SUCCESS_STATUSES, TERMINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import Sequence

    import jinja2
    from airflow.sdk import Context

    from airflow_ssm_delegate.documents.model import Runbook
    from airflow_ssm_delegate.hooks.automation import SsmAutomationHook

log = logging.getLogger(__name__)

EXECUTION_ID_XCOM_KEY = "execution_id"
SIGNAL_TYPES = ("Approve", "Reject", "StartStep", "StopStep", "Resume", "Revoke")
STOP_TYPES = ("Cancel", "Complete")


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``, so a deployment switches every task at once."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def execution_result(hook: SsmAutomationHook, execution_id: str) -> dict[str, Any]:
    """``{"execution_id", "status", "outputs"}`` of an ended execution; raises with AWS's reason if it failed.

    Parameter values are deliberately absent: they may hold secrets and XCom is readable by every DAG author.
    """
    execution = read_execution(hook.get_automation_execution, execution_id)
    status = str(execution.get("AutomationExecutionStatus"))
    if status not in SUCCESS_STATUSES:
        raise AirflowException(hook.describe_failure(execution))
    outputs = {name: list(values) for name, values in (execution.get("Outputs") or {}).items()}
    return {"execution_id": execution_id, "status": status, "outputs": outputs}


def check_trigger_event(event: dict[str, Any] | None, execution_id: str | None) -> str:
    """The execution id of a valid trigger event; a clear error for a malformed or foreign event."""
    if not isinstance(event, dict) or event.get("status") not in ("success", "failure", "error"):
        raise AirflowException(f"Malformed event from SsmAutomationExecutionTrigger: {event!r}")
    event_execution = event.get("execution_id")
    if not event_execution or (execution_id and event_execution != execution_id):
        raise AirflowException(
            f"Trigger event is about execution {event_execution!r}, but this task watches {execution_id!r}"
        )
    if event["status"] == "error":
        raise AirflowException(
            f"Lost track of automation execution {event_execution}: {event.get('message')}. The execution "
            "itself may still be running; a retry of this task re-attaches to it."
        )
    return str(event_execution)


def _error_code(exc: BaseException) -> str | None:
    """``retry.error_code``, imported on first use: ``retry`` imports botocore, which DAG parsing must not."""
    from airflow_ssm_delegate.retry import error_code

    return error_code(exc)


class SsmStartAutomationExecutionOperator(SsmAutomationBaseOperator):
    """Start an SSM Automation runbook (only under an approved service role); by default wait for its end.

    Returns ``{"execution_id", "status", "outputs"}`` where outputs are the runbook's outputs (e.g.
    ``launch.InstanceIds``). A Failed/Cancelled/TimedOut/Rejected execution fails the task with the failed
    step, its action and AWS's message.

    :param document_name: runbook name or ARN.
    :param document_version: version to run (``$DEFAULT`` if omitted, unless the delegation policy pins one).
    :param parameters: runbook parameters as Python values (str, int, bool, list, dict), converted following
        the runbook's declared types. Templated.
    :param service_role_arn: role the runbook runs as; defaults to the policy's ``default_role``. Templated.
    :param tags: extra execution tags (the Airflow audit tags and the policy's required tags are added).
    :param wait_for_completion: wait for the execution to end (otherwise return right after the start).
    :param waiter_delay: seconds between status checks when nothing is known about the time left; also the
        longest the end of the execution goes unnoticed. Wall seconds, also against a local runtime whose
        clock runs faster (its simulated clock is read from its answers).
    :param waiter_max_attempts: give up waiting after ``waiter_delay * waiter_max_attempts`` seconds (the
        execution keeps running). ``None``: wait as long as the execution runs.
    :param max_poll_interval: the longest pause between status checks during provably long waits (sleeps).
    :param step_aware: poll rarely while the runbook provably cannot end (aws:sleep windows).
    :param client_token: explicit ClientToken; by default one is derived from the task instance.
    :param idempotency_key: mixed into the derived ClientToken: change it to start a new execution on purpose.
    :param reattach: a new try of the same task instance re-attaches to the execution an earlier try started
        (deterministic ClientToken + the task state store); if that execution failed, the retry starts a fresh
        one (its token derives from the failed id). ``False`` starts a new execution on every try (no token).
        Without a task state store (Airflow < 3.3) the earlier execution is found by its identity tag
        ``airflow:ti:<token>`` (one of AWS's 5 tags at start) and DescribeAutomationExecutions.
    :param cancel_on_kill: cancel the execution (its onCancel steps run) when the task is killed, cleared or
        marked failed — running or deferred. Never on a triggerer restart.
    :param mode: ``Auto`` or ``Interactive``.
    :param alarm_configuration: AlarmConfiguration (``{"Alarms": [{"Name": ...}]}``): a CloudWatch alarm that
        stops the execution; the delegation policy's ``required_alarm`` must be named here. Templated.
    :param deferrable: wait in the triggerer, not a worker slot (default ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = (
        "document_name",
        "document_version",
        "parameters",
        "service_role_arn",
        "tags",
        "client_token",
        "idempotency_key",
        "target_parameter_name",
        "targets",
        "target_maps",
        "max_concurrency",
        "max_errors",
        "target_locations",
        "alarm_configuration",
        *CONNECTION_TEMPLATE_FIELDS,
    )
    template_fields_renderers = {"parameters": "json", "targets": "json", "tags": "json"}
    operator_extra_links = (SsmAutomationExecutionLink(),)
    ui_color = "#f7c7a3"

    def __init__(
        self,
        *,
        document_name: str,
        document_version: str | None = None,
        parameters: dict[str, Any] | None = None,
        service_role_arn: str | None = None,
        tags: dict[str, str] | None = None,
        wait_for_completion: bool = True,
        waiter_delay: float = 30,
        waiter_max_attempts: int | None = None,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        step_aware: bool = True,
        client_token: str | None = None,
        idempotency_key: str | None = None,
        reattach: bool = True,
        cancel_on_kill: bool = True,
        mode: str = "Auto",
        target_parameter_name: str | None = None,
        targets: list[dict[str, Any]] | None = None,
        target_maps: list[dict[str, list[str]]] | None = None,
        max_concurrency: str | None = None,
        max_errors: str | None = None,
        target_locations: list[dict[str, Any]] | None = None,
        alarm_configuration: dict[str, Any] | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not document_name:
            raise ValueError(f"{type(self).__name__} needs document_name (the runbook's name or ARN)")
        if mode not in ("Auto", "Interactive"):
            raise ValueError(f"mode must be 'Auto' or 'Interactive', got {mode!r}")
        if waiter_max_attempts is not None and waiter_max_attempts < 1:
            raise ValueError(f"waiter_max_attempts must be at least 1 (or None), got {waiter_max_attempts!r}")
        self.schedule = PollSchedule(waiter_delay=waiter_delay, max_poll_interval=max_poll_interval)
        self.document_name = document_name
        self.document_version = document_version
        self.parameters = parameters
        self.service_role_arn = service_role_arn
        self.tags = tags
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.max_poll_interval = max_poll_interval
        self.step_aware = step_aware
        self.client_token = client_token
        self.idempotency_key = idempotency_key
        self.reattach = reattach
        self.cancel_on_kill = cancel_on_kill
        self.mode = mode
        self.target_parameter_name = target_parameter_name
        self.targets = targets
        self.target_maps = target_maps
        self.max_concurrency = max_concurrency
        self.max_errors = max_errors
        self.target_locations = target_locations
        self.alarm_configuration = alarm_configuration
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.execution_id: str | None = None

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render, then mask secret parameter values (rendered fields reach the API server before execute)."""
        super().render_template_fields(context, jinja_env)
        from airflow_ssm_delegate.masking import mask_task_parameters

        mask_task_parameters(self.document_name, self.parameters)

    @property
    def max_wait_seconds(self) -> float | None:
        return None if self.waiter_max_attempts is None else self.waiter_delay * self.waiter_max_attempts

    # -- execute ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        self.execution_id = self._start_or_reattach(context)
        # Downstream tasks (e.g. one answering an approval step) read the id while this task is deferred.
        context["ti"].xcom_push(key=EXECUTION_ID_XCOM_KEY, value=self.execution_id)
        self._persist_link(context, self.execution_id)
        if not self.wait_for_completion:
            execution = read_execution(self.hook.get_automation_execution, self.execution_id)
            status = str(execution.get("AutomationExecutionStatus"))
            return {"execution_id": self.execution_id, "status": status, "outputs": {}}
        if self.deferrable:
            # A retry may re-attach to an execution that already ended: report it now rather than defer
            # (a trigger firing at once races the worker's exit on Airflow 3.3.2, apache/airflow#72716).
            retry = getattr(context["ti"], "try_number", 1) > 1
            if not retry or self._status_or_none(self.execution_id) not in TERMINAL_STATUSES:
                self._defer(self.execution_id)
        else:
            self._wait(self.execution_id)
        return execution_result(self.hook, self.execution_id)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: validate the event, then report the execution's outcome."""
        self.execution_id = check_trigger_event(event, None)
        return execution_result(self.hook, self.execution_id)

    def _defer(self, execution_id: str) -> None:
        from airflow_ssm_delegate.triggers.automation import SsmAutomationExecutionTrigger

        trigger = SsmAutomationExecutionTrigger(
            execution_id,
            **self.connection_settings.as_kwargs(),
            waiter_delay=self.waiter_delay,
            max_poll_interval=self.max_poll_interval,
            step_aware=self.step_aware,
            cancel_on_kill=self.cancel_on_kill,
        )
        note = trigger_on_kill_note(execution_id) if self.cancel_on_kill else None
        if note:  # Airflow < 3.3: say once, in the task log, what clearing this deferred task does
            self.log.warning(note)
        max_wait = self.max_wait_seconds
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=max_wait) if max_wait is not None else None,
        )

    # -- start (idempotent) -----------------------------------------------------------------------

    def _start_or_reattach(self, context: Context) -> str:
        """Start the runbook, or find the execution an earlier try of this task instance started.

        Airflow 3.3+ keeps the id in the task state store; before, the execution is found by its identity
        tag (``airflow_ssm_delegate.reattach``). Either way the deterministic ClientToken is the second line.
        """
        if not self.reattach:
            return self._start(self.client_token, self.tags)
        identity = TaskIdentity.from_context(context)
        store = context.get("task_state_store")
        base_token = self.client_token or derive_client_token(identity, self.idempotency_key)
        tags: Any = self.tags
        if store is not None:
            known = store.get(STATE_STORE_KEY)
        else:
            known, tags = self._find_by_identity_tag(base_token, identity)
        replaces: str | None = None
        if known:
            status = self._status_or_none(str(known))
            if status is not None and (status not in TERMINAL_STATUSES or status in SUCCESS_STATUSES):
                self.log.info("Re-attaching to execution %s (%s) started by an earlier try.", known, status)
                return str(known)
            replaces = str(known) if status is not None else None
        token = (
            replacement_token(self.client_token, replaces)
            if self.client_token
            else derive_client_token(identity, self.idempotency_key, replaces)
        )
        execution_id = self._start(token, tags)  # a changed request raises the hook's ClientTokenConflict
        if store is not None:
            store.set(STATE_STORE_KEY, execution_id)
        return execution_id

    def _find_by_identity_tag(self, base_token: str, identity: TaskIdentity) -> tuple[str | None, Any]:
        """No task state store (Airflow < 3.3): this task instance's newest execution, and the start's tags.

        The tags gain the identity tag that lets the next try find the execution this try starts. When the
        policy's required tags leave no room for it, re-attach rests on the ClientToken alone (logged).
        """
        from airflow_ssm_delegate.hooks.automation import _tag_mapping
        from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS
        from airflow_ssm_delegate.reattach import identity_tag, identity_tag_fits, latest_tagged_execution

        key, value = identity_tag(base_token, identity.map_index)
        task_tags = _tag_mapping(self.tags)
        if not identity_tag_fits(self.document_name, task_tags, AUDIT_TAG_KEYS):
            self.log.warning(
                "No room for the identity tag %s (AWS takes 5 tags at start: 3 audit + the task's + the "
                "policy's required tags), and this Airflow has no task state store: a retry re-attaches by "
                "its ClientToken only, so after a failed execution it reports that failure again.",
                key,
            )
            return None, self.tags
        try:
            latest = latest_tagged_execution(self.hook.conn, key)
        except Exception as exc:  # e.g. DescribeAutomationExecutions not allowed: the token still protects
            self.log.warning("Cannot look up executions by tag %s (%s): re-attach by token only", key, exc)
            latest = None
        known = str(latest["AutomationExecutionId"]) if latest else None
        if known:
            self.log.info("Found execution %s of an earlier try by its identity tag %s.", known, key)
        return known, {**task_tags, key: value}

    def _status_or_none(self, execution_id: str) -> str | None:
        """The status of an execution, or None if AWS no longer knows it."""
        try:
            return str(self.hook.get_automation_execution(execution_id).get("AutomationExecutionStatus"))
        except Exception as exc:
            if _error_code(exc) == "AutomationExecutionNotFoundException":
                return None
            raise

    def _start(self, client_token: str | None, tags: Any) -> str:
        """StartAutomationExecution; the account's concurrency limit means "wait and retry", not failure."""
        from airflow_ssm_delegate.retry import START_LIMIT_ERROR_CODE, Backoff, call_with_backoff

        def start() -> str:
            return self.hook.start_automation_execution(
                self.document_name,
                self.parameters,
                document_version=self.document_version,
                service_role_arn=self.service_role_arn,
                client_token=client_token,
                tags=tags,
                mode=self.mode,
                target_parameter_name=self.target_parameter_name,
                targets=self.targets,
                target_maps=self.target_maps,
                max_concurrency=self.max_concurrency,
                max_errors=self.max_errors,
                target_locations=self.target_locations,
                alarm_configuration=self.alarm_configuration,
            )

        def on_limit(exc: BaseException, delay: float) -> None:
            self.log.warning(
                "Too many running automations in this account; retrying the start in %.0f s", delay
            )

        execution_id = call_with_backoff(
            start,
            should_retry=lambda exc: _error_code(exc) == START_LIMIT_ERROR_CODE,
            backoff=Backoff(base=30, cap=300, max_attempts=20),
            sleep=sleep_blocking,
            on_retry=on_limit,
        )
        self.log.info("Automation execution %s of runbook %s", execution_id, self.document_name)
        return execution_id

    def _persist_link(self, context: Context, execution_id: str) -> None:
        SsmAutomationExecutionLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            execution_id=execution_id,
        )

    # -- blocking wait ----------------------------------------------------------------------------

    def _wait(self, execution_id: str) -> None:
        """Poll until the execution ends (step-aware, transient errors absorbed), in this worker."""
        from airflow_ssm_delegate.clocks import ServerClock, clock_or, settings_scale
        from airflow_ssm_delegate.retry import call_with_backoff

        server_clock = ServerClock()
        server_clock.attach(self.hook.conn)
        watch = ExecutionWatch(self.schedule, step_aware=self.step_aware)
        runbook = self._runbook_or_none() if self.step_aware else None
        started = None
        while True:
            execution = call_with_backoff(
                lambda: read_execution(self.hook.get_automation_execution, execution_id), sleep=sleep_blocking
            )
            status = str(execution["AutomationExecutionStatus"])
            if status in TERMINAL_STATUSES:
                return
            steps = None
            if watch.needs_step_records(execution, runbook):
                steps = execution.get("StepExecutions")
                if execution.get("StepExecutionsTruncated") or steps is None:
                    steps = self._step_records_or_none(execution_id)
            clock = clock_or(server_clock)  # read after the first answer: it carries the runtime's clock
            scale = settings_scale(clock)
            now = clock.now()
            started = started or now
            delay = watch.next_delay(execution, runbook, now, steps, scale)
            max_wait = self.max_wait_seconds
            if max_wait is not None and (now - started).total_seconds() + delay >= max_wait * scale:
                raise AirflowException(
                    f"Automation execution {execution_id} is still {status} after {max_wait:.0f} s "
                    "(waiter_delay x waiter_max_attempts); it keeps running in AWS."
                )
            step = execution.get("CurrentStepName")
            wall = clock.wall_seconds(delay)
            self.log.info(
                "Execution %s is %s (step %s); next check in %.0f s", execution_id, status, step, wall
            )
            time.sleep(wall)

    def _step_records_or_none(self, execution_id: str) -> list[dict[str, Any]]:
        """Step records for step-aware polling; none (poll every waiter_delay) if they cannot be read."""
        try:
            return self.hook.get_step_executions(execution_id)
        except Exception as exc:
            self.log.warning("No step records for %s (%s): polling every waiter_delay", execution_id, exc)
            return []

    def _runbook_or_none(self) -> Runbook | None:
        """The runbook for step-aware polling; None (poll every waiter_delay) if it cannot be read."""
        try:
            runbook, _ = self.hook.get_runbook(self.document_name, self.document_version)
        except Exception as exc:
            self.log.warning(
                "Cannot read the runbook for step-aware polling (%s): polling every %s s",
                exc,
                self.waiter_delay,
            )
            return None
        return runbook

    def on_kill(self) -> None:
        """Cancel the execution when the running (not deferred) task is killed."""
        if not (self.cancel_on_kill and self.execution_id):
            return
        try:
            self.hook.stop_automation_execution(self.execution_id, "Cancel")
        except Exception as exc:
            from airflow_ssm_delegate.retry import ALREADY_ENDED_CODES

            if _error_code(exc) not in ALREADY_ENDED_CODES:
                raise
        self.log.info("Cancelled automation execution %s because the task was killed.", self.execution_id)


class SsmStopAutomationExecutionOperator(SsmAutomationBaseOperator):
    """Stop an execution: ``Cancel`` (runs the runbook's onCancel steps) or ``Complete``.

    :param execution_id: the execution to stop. Templated (e.g. from the start task's XCom).
    :param stop_type: ``Cancel`` (default) or ``Complete``.
    """

    template_fields: Sequence[str] = ("execution_id", *CONNECTION_TEMPLATE_FIELDS)

    def __init__(self, *, execution_id: str, stop_type: str = "Cancel", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if stop_type not in STOP_TYPES:
            raise ValueError(f"stop_type must be one of {', '.join(STOP_TYPES)}; got {stop_type!r}")
        self.execution_id = execution_id
        self.stop_type = stop_type

    def execute(self, context: Context) -> None:
        self.hook.stop_automation_execution(self.execution_id, self.stop_type)


class SsmSendAutomationSignalOperator(SsmAutomationBaseOperator):
    """Answer a waiting step: ``Approve``/``Reject`` an ``aws:approve``, ``Resume`` an ``aws:pause``, ...

    :param execution_id: the execution to signal. Templated.
    :param signal_type: Approve, Reject, StartStep, StopStep, Resume or Revoke.
    :param payload: the signal's payload, values a string or list of strings, e.g. ``{"Comment": "ok"}``,
        ``{"StepName": "window"}`` (StartStep/Resume), ``{"StepExecutionId": "..."}`` (StopStep). Templated.
    """

    template_fields: Sequence[str] = ("execution_id", "payload", *CONNECTION_TEMPLATE_FIELDS)
    REQUIRED_PAYLOAD = {"StartStep": "StepName", "StopStep": "StepExecutionId"}

    def __init__(
        self, *, execution_id: str, signal_type: str, payload: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if signal_type not in SIGNAL_TYPES:
            raise ValueError(f"signal_type must be one of {', '.join(SIGNAL_TYPES)}; got {signal_type!r}")
        self.execution_id = execution_id
        self.signal_type = signal_type
        self.payload = payload

    def execute(self, context: Context) -> None:
        required = self.REQUIRED_PAYLOAD.get(self.signal_type)
        if required and not (self.payload or {}).get(required):
            raise ValueError(
                f"A {self.signal_type} signal needs payload {{{required!r}: ...}} naming the step to act on"
            )
        self.hook.send_automation_signal(self.execution_id, self.signal_type, self.payload)
