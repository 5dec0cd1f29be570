"""Lambda's Invoke on the local runtime: run a Python function's handler from its deployment package.

moto stores functions but can run them only in Docker, which these machines lack. The gateway answers
Invoke itself (after IAM allowed lambda:InvokeFunction) by running the handler from moto's stored zip in
a separate process (``actions.python_runner``), as Lambda's Python runtimes call it: ``handler(event,
context)`` with the function's environment variables and its execution role's credentials, limited to
the function's Timeout. The answer has Invoke's shape: the payload; ``X-Amz-Function-Error: Unhandled``
with ``errorMessage``/``errorType``/``stackTrace`` when the handler raised or timed out; the last 4 KB of
output, base64, in ``X-Amz-Log-Result`` when LogType is Tail. Other runtimes and container images are
refused by name.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import uuid
import zipfile
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import lambda_backends
from moto.sts.models import sts_backends

from airflow_ssm_delegate.local.actions.base import StepFailure
from airflow_ssm_delegate.local.actions.python_runner import PythonRun, run_to_end
from airflow_ssm_delegate.local.principals import PARTITION
from airflow_ssm_delegate.local.wire import error_response

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.wire import AwsRequest, Response

MAX_CODE_BYTES = 250 * 1024 * 1024  # Lambda's limit for an unzipped deployment package
LOG_TAIL = 4096
_mint_lock = threading.Lock()


def _error(code: str, message: str, status: int) -> Response:
    return error_response("rest-json", code, message, status)


def _code(zipped: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        if sum(info.file_size for info in archive.infolist()) > MAX_CODE_BYTES:
            raise ValueError("the unzipped deployment package is larger than 250 MB")
        for info in archive.infolist():
            if not info.is_dir():
                files[info.filename] = archive.read(info)
    return files


def _role_environment(function: Any, account_id: str, region: str) -> dict[str, str]:
    """The execution role's session keys, as Lambda gives them to the function's SDK."""
    with _mint_lock:
        session = sts_backends[account_id][PARTITION].assume_role(
            region_name=region,
            role_session_name=str(function.function_name)[:64],
            role_arn=str(function.role),
            policy="",
            duration=3600,
            external_id="",
        )
    return {
        "AWS_ACCESS_KEY_ID": session.access_key_id,
        "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
        "AWS_SESSION_TOKEN": session.session_token,
    }


def _result_response(result: dict[str, Any], function: Any, log_type: str | None) -> Response:
    headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", str(function.version))]
    headers.append(("x-amzn-RequestId", str(uuid.uuid4())))
    if log_type == "Tail":
        tail = str(result.get("log", ""))[-LOG_TAIL:]
        headers.append(("X-Amz-Log-Result", base64.b64encode(tail.encode()).decode()))
    if result.get("ok"):
        return 200, headers, json.dumps(result.get("payload")).encode()
    headers.append(("X-Amz-Function-Error", "Unhandled"))
    error = {
        "errorMessage": result.get("errorMessage"),
        "errorType": result.get("errorType"),
        "stackTrace": result.get("stackTrace", []),
    }
    return 200, headers, json.dumps(error).encode()


def invoke_function(request: AwsRequest, endpoint_url: str, region: str, account_id: str) -> Response:
    """Answer an Invoke request (``POST /2015-03-31/functions/NAME/invocations``) already authorised."""
    name = unquote(request.path.rstrip("/").rsplit("/", 2)[-2])
    qualifier = request.params.get("Qualifier")
    try:
        function = lambda_backends[account_id][region].get_function(name, qualifier)
    except LambdaClientError as error:
        return _error("ResourceNotFoundException", str(error.message), 404)
    runtime = str(function.run_time or "")
    if function.package_type != "Zip" or not runtime.startswith("python3"):
        kind = "container images" if function.package_type != "Zip" else f"runtime {runtime!r}"
        return _error(
            "InvalidRuntimeException",
            f"Function {name}: the local runtime runs only Python 3 functions from a zip; {kind} are not "
            "emulated.",
            502,
        )
    invocation_type = request.header("X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type == "DryRun":
        return 204, [("x-amzn-RequestId", str(uuid.uuid4()))], b""
    try:
        event = json.loads(request.body or b"{}")
        code = _code(function.code_bytes)
    except (ValueError, zipfile.BadZipFile) as error:
        return _error("InvalidRequestContentException", f"Function {name}: {error}", 400)
    module, _, handler = str(function.handler or "").rpartition(".")
    if not module or not handler:
        return _error(
            "InvalidParameterValueException", f"Function {name}: Handler must be FILE.FUNCTION.", 400
        )
    environment = {
        **{str(k): str(v) for k, v in (function.environment_vars or {}).items()},
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": str(function.function_name),
        "AWS_LAMBDA_FUNCTION_VERSION": str(function.version),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        **_role_environment(function, account_id, region),
    }
    request_id = str(uuid.uuid4())
    context = {
        "function_name": str(function.function_name),
        "function_version": str(function.version),
        "invoked_function_arn": str(function.function_arn),
        "memory_limit_in_mb": int(function.memory_size),
        "aws_request_id": request_id,
        "log_group_name": f"/aws/lambda/{function.function_name}",
        "log_stream_name": request_id,
    }
    run = PythonRun(
        code,
        (module.replace("/", "."), handler),
        events=event,
        context=context,
        environment=environment,
        limit=float(function.timeout or 3),
        lambda_context=True,
    )
    if invocation_type == "Event":  # queued: Lambda answers 202 at once and runs it in the background
        threading.Thread(target=_quietly, args=(run,), daemon=True).start()
        return 202, [("x-amzn-RequestId", request_id)], b""
    try:
        result = run_to_end(run)
    except StepFailure as timed_out:
        result = {
            "ok": False,
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"Task timed out after {float(function.timeout or 3):.2f} seconds",
            "log": timed_out.message,
        }
    return _result_response(result, function, request.header("X-Amz-Log-Type"))


def _quietly(run: PythonRun) -> None:
    with contextlib.suppress(StepFailure):  # an asynchronous invocation's timeout has nobody to tell
        run_to_end(run)
