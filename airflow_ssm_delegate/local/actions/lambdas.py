"""aws:invokeLambdaFunction: Lambda's Invoke under the execution's identity.

From AWS's action reference (https://docs.aws.amazon.com/systems-manager/latest/userguide/
automation-action-lamb.html): inputs FunctionName (required), Qualifier, InvocationType (Event |
RequestResponse | DryRun), LogType (None | Tail), ClientContext, InputPayload (a map, passed as the
event; it takes precedence over the legacy Payload, a JSON string); outputs StatusCode, FunctionError,
LogResult, Payload; at most 300 seconds a step. The local runtime answers Invoke itself, running Python
handlers from the function's zip in a separate process (``local.lambda_invoke``); other runtimes are
refused by name there. A function error (FunctionError set) fails the step with the function's message.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from airflow_ssm_delegate.local.actions.base import (
    Done,
    Outcome,
    StepContext,
    StepFailure,
    reject_unknown_inputs,
    require,
)

_INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")
_LOG_TYPES = ("None", "Tail")


def _request(inputs: dict[str, Any]) -> dict[str, Any]:
    reject_unknown_inputs(inputs, "aws:invokeLambdaFunction")
    request: dict[str, Any] = {"FunctionName": require(inputs, "FunctionName", str)}
    for name, allowed in (("InvocationType", _INVOCATION_TYPES), ("LogType", _LOG_TYPES)):
        if inputs.get(name) not in (None, ""):
            if inputs[name] not in allowed:
                raise StepFailure(
                    f"Input {name} {inputs[name]!r} must be one of {', '.join(allowed)}.", "Verification"
                )
            request[name] = inputs[name]
    if inputs.get("Qualifier"):
        request["Qualifier"] = str(inputs["Qualifier"])
    if inputs.get("ClientContext"):
        context = inputs["ClientContext"]
        text = context if isinstance(context, str) else json.dumps(context)
        request["ClientContext"] = base64.b64encode(text.encode()).decode()
    if inputs.get("InputPayload") not in (None, ""):
        if not isinstance(inputs["InputPayload"], dict):
            raise StepFailure("Input InputPayload must be a map (YAML or JSON object).", "Verification")
        request["Payload"] = json.dumps(inputs["InputPayload"]).encode()
    elif inputs.get("Payload") not in (None, ""):
        payload = inputs["Payload"]
        request["Payload"] = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    return request


def invoke_lambda_function(ctx: StepContext) -> Outcome:
    request = _request(ctx.inputs)
    response = ctx.client("lambda").invoke(**request)
    body = response.get("Payload")
    payload = body.read().decode("utf-8", "replace") if body is not None else ""
    outputs = {
        "StatusCode": int(response.get("StatusCode", 0)),
        "FunctionError": response.get("FunctionError", ""),
        "LogResult": response.get("LogResult", ""),
        "Payload": payload,
    }
    if outputs["FunctionError"]:
        try:
            error = json.loads(payload)
        except ValueError:
            error = {}
        message = error.get("errorMessage") if isinstance(error, dict) else None
        kind = error.get("errorType") if isinstance(error, dict) else None
        raise StepFailure(
            f"Lambda function {request['FunctionName']} failed ({outputs['FunctionError']}): "
            f"{kind or 'Error'}: {message or payload}",
            "Action",
        )
    try:
        parsed: Any = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload
    # Selectors read the function's returned JSON (AWS's example: ``Selector: $.Retry``); the built-in
    # outputs are there too under their names, unless the payload has keys of those names
    response = {**outputs, "Payload": parsed, **(parsed if isinstance(parsed, dict) else {})}
    return Done(outputs, response=response)
