"""The Automation actions of the SSM JSON 1.1 API, served by the local engine.

Request bodies are validated against the botocore model of SSM (required members, types, lengths,
list/map sizes, enums, patterns) before the engine sees them, so bad input gets the API's own error
(``SerializationException`` for a body that is not a JSON object of the right types,
``ValidationException`` for constraint violations) instead of an exception in the server.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.wire import Response, botocore_session, error_response, json_response

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from botocore.model import OperationModel, Shape

    from airflow_ssm_delegate.local.engine import AutomationEngine
    from airflow_ssm_delegate.local.identity import Caller

log = logging.getLogger(__name__)

AUTOMATION_OPERATIONS = frozenset(
    {
        "StartAutomationExecution",
        "GetAutomationExecution",
        "DescribeAutomationExecutions",
        "DescribeAutomationStepExecutions",
        "StopAutomationExecution",
        "SendAutomationSignal",
    }
)
# ListTagsForResource is answered here only for ResourceType "Automation" (moto has no executions).
LIST_TAGS_OPERATION = "ListTagsForResource"
AUTOMATION_RESOURCE_TYPE = "Automation"
_MAX_REPORTED_PROBLEMS = 5


@lru_cache(maxsize=len(AUTOMATION_OPERATIONS) + 1)
def _operation_model(operation: str) -> OperationModel:
    return botocore_session().get_service_model("ssm").operation_model(operation)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


class _Validator:
    """Collects every constraint violation of a JSON value against a botocore shape."""

    def __init__(self) -> None:
        self.type_errors: list[str] = []
        self.problems: list[str] = []

    def check(self, shape: Shape, value: Any, path: str) -> None:
        checker = getattr(self, f"_check_{shape.type_name}", None)
        if checker is not None:
            checker(shape, value, path)

    def _violation(self, value: Any, path: str, constraint: str) -> None:
        self.problems.append(f"Value {_short(value)} at '{path}' failed to satisfy constraint: {constraint}")

    def _wrong_type(self, path: str, expected: str, value: Any) -> None:
        self.type_errors.append(f"'{path}' must be {expected}, not {type(value).__name__}")

    def _within(self, shape: Shape, value: Any, size: int, path: str, unit: str) -> None:
        """The shape's min/max on ``size`` (a length, a map's size, or an integer's own value)."""
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and size < low:
            self._violation(value, path, f"Member must have {unit} greater than or equal to {low}")
        if high is not None and size > high:
            self._violation(value, path, f"Member must have {unit} less than or equal to {high}")

    def _check_structure(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self._wrong_type(path or "body", "an object", value)
            return
        for name in shape.required_members:
            if value.get(name) is None:
                self._violation(None, _join(path, name), "Member must not be null")
        for name, member_value in value.items():
            if name in shape.members and member_value is not None:
                self.check(shape.members[name], member_value, _join(path, name))

    def _check_list(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, list):
            self._wrong_type(path, "a list", value)
            return
        self._within(shape, value, len(value), path, "length")
        for index, item in enumerate(value):
            self.check(shape.member, item, f"{path}.{index + 1}")

    def _check_map(self, shape: Any, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self._wrong_type(path, "an object", value)
            return
        self._within(shape, value, len(value), path, "size")
        for key, item in value.items():
            self.check(shape.key, key, f"{path}.key")
            self.check(shape.value, item, f"{path}.{key}")

    def _check_string(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, str):
            self._wrong_type(path, "a string", value)
            return
        self._within(shape, value, len(value), path, "length")
        if shape.enum and value not in shape.enum:
            self._violation(value, path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = shape.metadata.get("pattern")
        if pattern and not _compiled(pattern).search(value):
            self._violation(value, path, f"Member must satisfy regular expression pattern: {pattern}")

    def _check_integer(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(path, "an integer", value)
            return
        self._within(shape, value, value, path, "value")

    def _check_boolean(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            self._wrong_type(path, "a boolean", value)

    def _check_timestamp(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self._wrong_type(path, "a timestamp", value)


def _join(path: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{path}.{name}" if path else name


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error:  # a Java-only construct: do not reject on a pattern Python cannot read
        return re.compile("")


def validate_request(operation: str, body: Any) -> None:
    """Raise the API's error if ``body`` does not fit the operation's input shape."""
    validator = _Validator()
    validator.check(_operation_model(operation).input_shape, body, "")
    if validator.type_errors:
        raise AutomationApiError("SerializationException", "; ".join(validator.type_errors))
    if validator.problems:
        count = len(validator.problems)
        shown = "; ".join(validator.problems[:_MAX_REPORTED_PROBLEMS])
        plural = "s" if count > 1 else ""
        raise AutomationApiError("ValidationException", f"{count} validation error{plural} detected: {shown}")


class AutomationApi:
    """Dispatches validated Automation requests to the engine and renders its answers."""

    def __init__(self, engine: AutomationEngine) -> None:
        self.engine = engine
        self._handlers: Mapping[str, Callable[[dict[str, Any], Caller], dict[str, Any]]] = {
            "StartAutomationExecution": self._start,
            "GetAutomationExecution": self._get,
            "DescribeAutomationExecutions": self._describe,
            "DescribeAutomationStepExecutions": self._step_executions,
            "StopAutomationExecution": self._stop,
            "SendAutomationSignal": self._signal,
            LIST_TAGS_OPERATION: self._tags,
        }

    def handle(self, operation: str, body: Any, caller: Caller, body_is_valid_json: bool = True) -> Response:
        """Answer one request; every failure becomes an API error, never an exception."""
        try:
            if not body_is_valid_json:
                raise AutomationApiError(
                    "SerializationException", "The request body is not a JSON object; send valid JSON."
                )
            validate_request(operation, body)
            return json_response(self._handlers[operation](body, caller))
        except AutomationApiError as error:
            return error_response("json", error.code, error.message, error.status)
        except Exception:
            log.exception("Automation %s failed inside the local runtime", operation)
            return error_response(
                "json",
                "InternalServerError",
                f"{operation} failed inside the local runtime (see the server log).",
                500,
            )

    def _start(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return {"AutomationExecutionId": self.engine.start(body, caller)}

    def _seen(self, execution_id: str, caller: Caller) -> str:
        """The id, once the caller's account and Region see that execution (a TargetLocations child lives in
        its own account and Region: elsewhere it does not exist, as on AWS)."""
        if not self.engine.visible(execution_id, caller):
            raise AutomationApiError(
                "AutomationExecutionNotFoundException",
                f"There is no automation execution {execution_id!r} in this account and Region.",
            )
        return execution_id

    def _get(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return {"AutomationExecution": self.engine.get(self._seen(body["AutomationExecutionId"], caller))}

    def _describe(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        items, token = self.engine.describe(
            body.get("Filters") or [],
            body.get("MaxResults"),
            body.get("NextToken"),
            lambda execution_id: self.engine.visible(execution_id, caller),
        )
        return _page({"AutomationExecutionMetadataList": items}, token)

    def _step_executions(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        steps, token = self.engine.step_executions(
            self._seen(body["AutomationExecutionId"], caller),
            body.get("Filters") or [],
            body.get("MaxResults"),
            body.get("NextToken"),
            bool(body.get("ReverseOrder", False)),
        )
        return _page({"StepExecutions": steps}, token)

    def _stop(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        self.engine.stop(self._seen(body["AutomationExecutionId"], caller), body.get("Type") or "Cancel")
        return {}

    def _signal(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        # the caller lets aws:approve refuse a decision from anyone not among the step's Approvers
        # (with IAM off, an unidentified caller is allowed everything, approvals included)
        self.engine.signal(
            self._seen(body["AutomationExecutionId"], caller),
            body["SignalType"],
            body.get("Payload"),
            caller=caller if caller.identified else None,
        )
        return {}

    def _tags(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        try:
            return {"TagList": self.engine.tags(self._seen(body["ResourceId"], caller))}
        except AutomationApiError as error:  # the tagging API's own code for an unknown resource
            raise AutomationApiError("InvalidResourceId", error.message) from error


def _page(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        result["NextToken"] = token
    return result
