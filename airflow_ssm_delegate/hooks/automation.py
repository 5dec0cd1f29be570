"""SsmAutomationHook: the only way this package starts, watches and stops SSM Automation executions.

Every start goes through the delegation policy inside :meth:`SsmAutomationHook.start_automation_execution`,
so no operator, sensor or DAG code path can skip it. It reuses the Amazon provider's ``aws`` connection
type: credentials, region, role chaining and ``endpoint_url`` (e.g. the local runtime) in its extra.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.exceptions import ClientError

from airflow_ssm_delegate.compat import AirflowFailException
from airflow_ssm_delegate.fanout import FanOutRequest
from airflow_ssm_delegate.masking import mask_parameters
from airflow_ssm_delegate.policy import AUDIT_TAG_KEYS, DelegationPolicy, StartRequest
from airflow_ssm_delegate.status import WAITER_FILE, failure_message

if TYPE_CHECKING:
    import os

    from airflow_ssm_delegate.documents.model import Runbook

MAX_IDS_PER_FILTER = 10  # DescribeAutomationExecutions: each filter takes 1-10 values
_TAG_VALUE_FORBIDDEN = re.compile(r"[^\w\s.:/=+\-@]")
_MAX_TAG_VALUE = 256
_NO_SUCH_DOCUMENT_CODES = frozenset({"InvalidDocument", "InvalidDocumentVersion"})


class ClientTokenConflict(AirflowFailException):
    """AWS refused a reused ClientToken because the arguments changed (IdempotentParameterMismatch)."""


class SsmAutomationHook(AwsBaseHook):
    """Interact with SSM Automation under the deployment's delegation policy.

    Takes the ``AwsBaseHook`` arguments (``aws_conn_id``, ``region_name``, ``verify``, ``config``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "ssm"
        super().__init__(*args, **kwargs)

    @cached_property
    def waiter_path(self) -> os.PathLike[str] | None:
        """Our own waiter file: the Amazon hook would look inside the Amazon package, which has none."""
        return WAITER_FILE

    # ------------------------------------------------------------------------------------------ start

    def start_automation_execution(
        self,
        document_name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        document_version: str | None = None,
        service_role_arn: str | None = None,
        client_token: str | None = None,
        tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
        mode: str = "Auto",
        target_parameter_name: str | None = None,
        targets: Sequence[Mapping[str, Any]] | None = None,
        target_maps: Sequence[Mapping[str, Sequence[str]]] | None = None,
        max_concurrency: str | None = None,
        max_errors: str | None = None,
        target_locations: Sequence[Mapping[str, Any]] | None = None,
        alarm_configuration: Mapping[str, Any] | None = None,
    ) -> str:
        """Authorise the start against the delegation policy, then start the runbook; return its execution id.

        The policy reads the runbook (GetDocument/DescribeDocument) and refuses with ``PolicyViolation``
        before StartAutomationExecution is called. The start is pinned to a concrete version, runs as the
        role passed in the runbook's assume-role parameter and carries the Airflow audit tags.
        """
        if parameters is not None and not isinstance(parameters, Mapping):
            raise TypeError(
                f"parameters must be a mapping of runbook parameter name to value, got "
                f"{type(parameters).__name__} {parameters!r:.80}"
            )
        request = StartRequest(
            document_name=document_name,
            document_version=str(document_version) if document_version is not None else None,
            service_role_arn=service_role_arn or None,
            parameters=dict(parameters or {}),
            tags=_tag_mapping(tags),
            audit_tags=current_audit_tags(),
            target_parameter_name=target_parameter_name,
            target_maps=list(target_maps or ()),
            fan_out=FanOutRequest(
                targets=targets,
                target_maps=target_maps,
                max_concurrency=max_concurrency,
                max_errors=max_errors,
                target_locations=target_locations,
                alarm_configuration=alarm_configuration,
            ),
        )
        plan = DelegationPolicy.from_config().authorize_start(request, self.get_runbook)
        loggable = mask_parameters(plan.parameters, plan.secret_parameters)
        self.log.info(
            "Starting runbook %s version %s under role %s with parameters %s and tags %s",
            plan.document_name,
            plan.document_version,
            plan.role_arn or "(none)",
            loggable,
            plan.tags,
        )
        arguments = _without_none(
            DocumentName=plan.document_name,
            DocumentVersion=plan.document_version,
            Parameters=plan.parameters or None,  # the API refuses an empty map (min 1 entry)
            ClientToken=client_token,
            Mode=mode,
            TargetParameterName=target_parameter_name,
            Targets=_list_or_none(targets),
            TargetMaps=_list_or_none(target_maps),
            MaxConcurrency=max_concurrency,
            MaxErrors=max_errors,
            TargetLocations=_list_or_none(target_locations),
            AlarmConfiguration=dict(alarm_configuration) if alarm_configuration else None,
            Tags=plan.api_tags or None,
        )
        try:
            response = self.conn.start_automation_execution(**arguments)
        except ClientError as error:
            if _error_code(error) == "IdempotentParameterMismatch":
                raise ClientTokenConflict(
                    f"Runbook {plan.document_name}: client token {client_token} was already used to start an "
                    "execution with different arguments (parameters, version, role, tags or targets changed "
                    "since an earlier try of this task instance), so AWS refuses to start it again. Restore "
                    "the earlier arguments to re-attach to that execution, or start a deliberately new one "
                    "with a new client_token or idempotency key."
                ) from error
            raise
        execution_id: str = response["AutomationExecutionId"]
        self.log.info(
            "Started runbook %s version %s under role %s: execution %s",
            plan.document_name,
            plan.document_version,
            plan.role_arn or "(none)",
            execution_id,
        )
        return execution_id

    def get_runbook(self, name: str, version: str | None = None) -> tuple[Runbook, dict[str, Any]]:
        """The runbook's parsed content and DescribeDocument's ``Document`` for the concrete version.

        ``$DEFAULT``/``$LATEST``/None resolve to the version number GetDocument reports, so the policy
        checks (and the start) apply to exactly the content that will run.
        """
        from airflow_ssm_delegate.documents.model import RunbookError, parse_runbook

        try:
            document = self.conn.get_document(Name=name, **_without_none(DocumentVersion=version))
        except ClientError as error:
            if _error_code(error) not in _NO_SUCH_DOCUMENT_CODES:
                raise
            raise AirflowFailException(
                f"Runbook {name} version {version or '$DEFAULT'} cannot be read: "
                f"{error.response.get('Error', {}).get('Message', error)} ({_error_code(error)}). Check "
                "document_name and document_version, and that the runbook is published (or shared) in this "
                "account and region."
            ) from error
        concrete = str(document["DocumentVersion"])
        description = self.describe_document(name, concrete)
        description.setdefault("DocumentVersion", concrete)
        try:
            runbook = parse_runbook(document["Content"], source=f"{name} version {concrete}")
        except RunbookError as error:
            raise AirflowFailException(
                f"Runbook {name} version {concrete} cannot be started: {error}"
            ) from error
        return runbook, description

    def describe_document(self, name: str, version: str | None = None) -> dict[str, Any]:
        """DescribeDocument's ``Document`` (Hash, HashType, versions, parameter names and types)."""
        response = self.conn.describe_document(Name=name, **_without_none(DocumentVersion=version))
        return response["Document"]

    # ------------------------------------------------------------------------------------------ watch

    def get_automation_execution(self, execution_id: str) -> dict[str, Any]:
        """GetAutomationExecution's ``AutomationExecution``."""
        return self.conn.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]

    def get_step_executions(self, execution_id: str) -> list[dict[str, Any]]:
        """Every step execution, across all pages of DescribeAutomationStepExecutions."""
        paginator = self.conn.get_paginator("describe_automation_step_executions")
        pages = paginator.paginate(AutomationExecutionId=execution_id)
        return [step for page in pages for step in page.get("StepExecutions", [])]

    def describe_automation_executions(self, execution_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Metadata of many executions in few calls: ExecutionId filters of up to 10 ids, every page.

        A ``ClientError`` (e.g. the filter refused) propagates so callers can fall back to
        :meth:`get_automation_execution` per id.
        """
        unique = list(dict.fromkeys(execution_ids))
        paginator = self.conn.get_paginator("describe_automation_executions")
        found: list[dict[str, Any]] = []
        for batch in _batches(unique, MAX_IDS_PER_FILTER):
            pages = paginator.paginate(Filters=[{"Key": "ExecutionId", "Values": batch}])
            found.extend(item for page in pages for item in page.get("AutomationExecutionMetadataList", []))
        return found

    def describe_failure(self, execution: Mapping[str, Any]) -> str:
        """Why an execution failed, paging its step executions when GetAutomationExecution truncated them."""
        execution = execution.get("AutomationExecution", execution)
        steps = None
        if execution.get("StepExecutionsTruncated"):
            steps = self.get_step_executions(execution["AutomationExecutionId"])
        return failure_message(execution, steps)

    # ------------------------------------------------------------------------------------------ control

    def stop_automation_execution(self, execution_id: str, type: str = "Cancel") -> None:
        """Cancel (runs the runbook's onCancel steps) or Complete an execution."""
        self.log.info("Stopping automation execution %s (%s)", execution_id, type)
        self.conn.stop_automation_execution(AutomationExecutionId=execution_id, Type=type)

    def send_automation_signal(
        self, execution_id: str, signal_type: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Answer an ``aws:approve`` or ``aws:pause`` step: Approve, Reject, Resume, StartStep, StopStep.

        Payload values may be a single value or a list of values (e.g. ``{"Comment": "ok"}``); each
        becomes a string, as the API takes only lists of strings.
        """
        self.log.info("Sending %s to automation execution %s", signal_type, execution_id)
        arguments: dict[str, Any] = {"AutomationExecutionId": execution_id, "SignalType": signal_type}
        if payload:
            arguments["Payload"] = {
                key: [str(item) for item in value] if isinstance(value, (list, tuple)) else [str(value)]
                for key, value in payload.items()
            }
        self.conn.send_automation_signal(**arguments)


def current_audit_tags() -> dict[str, str]:
    """``airflow:dag_id``/``run_id``/``task_id`` of the running task; empty outside a task."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        values = (ti.dag_id, ti.run_id, ti.task_id)
    except (ImportError, RuntimeError, KeyError, AttributeError):
        return {}
    return {key: _tag_value(value) for key, value in zip(AUDIT_TAG_KEYS, values, strict=True)}


def _tag_value(value: Any) -> str:
    """AWS tag values allow letters, digits, spaces and ``_.:/=+-@`` only, up to 256 characters."""
    return _TAG_VALUE_FORBIDDEN.sub("_", str(value))[:_MAX_TAG_VALUE]


def _tag_mapping(tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    """Accept ``{"Key": "Value"}`` or the API's ``[{"Key": ..., "Value": ...}]``."""
    if not tags:
        return {}
    if isinstance(tags, Mapping):
        return {str(key): str(value) for key, value in tags.items()}
    if isinstance(tags, str) or not all(isinstance(tag, Mapping) and "Key" in tag for tag in tags):
        raise TypeError(
            'tags must be a mapping {"Key": "Value"} or a list of {"Key": ..., "Value": ...}, '
            f"got {tags!r:.80}"
        )
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in tags}


def _without_none(**arguments: Any) -> dict[str, Any]:
    return {key: value for key, value in arguments.items() if value is not None}


def _list_or_none(items: Sequence[Any] | None) -> list[Any] | None:
    return [dict(item) for item in items] if items else None


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
