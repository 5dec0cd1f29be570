"""The HTTP side of the local runtime: parse an AWS request from WSGI, answer in the service's own shape.

Each AWS protocol reports errors differently and botocore only extracts the error code from the right
shape, so every refusal is rendered per the service's botocore protocol: ``json`` (SSM:
``{"__type": code}``), ``rest-json`` (``x-amzn-ErrorType``), ``query`` (IAM/STS ``<ErrorResponse>``),
``ec2`` (``<Response><Errors>``) and ``rest-xml`` (S3 ``<Error>``).
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import botocore.session
from botocore.exceptions import UnknownServiceError

if TYPE_CHECKING:
    from collections.abc import Mapping

Response = tuple[int, list[tuple[str, str]], bytes]

# botocore service names whose SigV4 signing name differs.
_SERVICE_BY_SIGNING_NAME = {"monitoring": "cloudwatch", "email": "ses", "states": "stepfunctions"}


@lru_cache(maxsize=64)
def protocol_of(service: str) -> str:
    """The botocore protocol of a service by signing name (``json`` if unknown)."""
    try:
        model = botocore_session().get_service_model(_SERVICE_BY_SIGNING_NAME.get(service, service))
    except UnknownServiceError:
        return "json"
    return str(model.metadata.get("protocol", "json"))


@lru_cache(maxsize=64)
def _operations(service: str) -> tuple[str, frozenset[str]] | None:
    try:
        model = botocore_session().get_service_model(_SERVICE_BY_SIGNING_NAME.get(service, service))
    except UnknownServiceError:
        return None
    return str(model.metadata.get("protocol", "json")), frozenset(model.operation_names)


def unknown_operation(service: str, operation: str) -> Response | None:
    """The protocol's error for an operation the service's model does not have (None if it has it)."""
    known = _operations(service)
    if known is None or operation in known[1]:
        return None
    protocol = known[0]
    if protocol == "json":
        return error_response(
            protocol, "UnknownOperationException", f"{operation} is not an operation of {service}.", 400
        )
    if protocol in ("query", "ec2"):
        return error_response(
            protocol, "InvalidAction", f"The action {operation} is not valid for this web service.", 400
        )
    return None


@lru_cache(maxsize=1)
def botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


@dataclass
class AwsRequest:
    """An incoming request: enough to authenticate it, name its operation and read its parameters."""

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes
    remote_addr: str = ""
    service: str | None = None
    region: str | None = None
    operation: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    body_is_valid_json: bool = True

    @property
    def protocol(self) -> str:
        return protocol_of(self.service) if self.service else "json"

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


def read_request(environ: dict[str, Any]) -> AwsRequest:
    """Parse a WSGI request; the body is buffered and put back for moto to read again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    headers = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = str(environ[key])
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
    host = headers.get(
        "Host", f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    )
    request = AwsRequest(
        method=str(environ.get("REQUEST_METHOD", "GET")),
        url=f"http://{host}{raw_uri}",
        path=str(environ.get("PATH_INFO", "/")),
        headers=headers,
        body=body,
        remote_addr=str(environ.get("REMOTE_ADDR", "")),
    )
    _read_scope(request)
    _read_operation(request, str(environ.get("QUERY_STRING", "")))
    return request


def _read_scope(request: AwsRequest) -> None:
    """Service and region from the SigV4 credential scope (``AK/date/region/service/aws4_request``)."""
    authorization = request.header("Authorization") or ""
    scope = authorization.partition("Credential=")[2].partition(",")[0].split("/")
    if len(scope) == 5:
        request.region, request.service = scope[2], scope[3]


def _read_operation(request: AwsRequest, query_string: str) -> None:
    target = request.header("X-Amz-Target")
    if target:
        request.operation = target.rpartition(".")[2]
        try:
            parsed = json.loads(request.body or b"{}")
            request.params = parsed if isinstance(parsed, dict) else {}
            request.body_is_valid_json = isinstance(parsed, dict)
        except (ValueError, UnicodeDecodeError):
            request.body_is_valid_json = False
        return
    form: dict[str, Any] = dict(parse_qsl(query_string, keep_blank_values=True))
    if "x-www-form-urlencoded" in (request.header("Content-Type") or ""):
        form.update(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    request.params = form
    if "Action" in form:
        request.operation = str(form["Action"])
    elif request.service:
        request.operation = _rest_operation(request)


def _rest_operation(request: AwsRequest) -> str | None:
    """REST protocols name the operation by method + path: ask moto's router."""
    from moto.core.request import Request
    from moto.core.routing import NotFound, get_service_router

    try:
        router = get_service_router(_SERVICE_BY_SIGNING_NAME.get(str(request.service), str(request.service)))
        environ = {
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "wsgi.input": io.BytesIO(request.body),
            "HTTP_HOST": request.header("Host") or "localhost",
        }
        operation, _ = router.match(Request(environ))
        return str(operation.name)
    except (NotFound, NotImplementedError, UnknownServiceError, KeyError, ValueError):
        return None


def _request_id() -> str:
    return str(uuid.uuid4())


def error_response(protocol: str, code: str, message: str, status: int) -> Response:
    """An error as the protocol's botocore parser expects it."""
    request_id = _request_id()
    text = escape(message)
    if protocol in ("json", "rest-json"):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
        if protocol == "rest-json":
            headers.append(("x-amzn-ErrorType", code))
        return status, headers, body
    if protocol == "ec2":
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{escape(code)}</Code>'
            f"<Message>{text}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    elif protocol == "query":
        xml = (
            f'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{text}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    else:
        xml = (
            f"<Error><Code>{escape(code)}</Code><Message>{text}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()


# (code, HTTP status) per protocol family for each kind of refusal.
_REFUSALS: Mapping[str, Mapping[str, tuple[str, int]]] = {
    "denied": {
        "json": ("AccessDeniedException", 400),
        "rest-json": ("AccessDeniedException", 403),
        "ec2": ("UnauthorizedOperation", 403),
        "query": ("AccessDenied", 403),
        "rest-xml": ("AccessDenied", 403),
    },
    "unknown-key": {
        "json": ("UnrecognizedClientException", 400),
        "rest-json": ("UnrecognizedClientException", 403),
        "ec2": ("AuthFailure", 401),
        "query": ("InvalidClientTokenId", 403),
        "rest-xml": ("InvalidAccessKeyId", 403),
    },
    "signature": {
        "json": ("InvalidSignatureException", 400),
        "rest-json": ("InvalidSignatureException", 403),
        "ec2": ("AuthFailure", 401),
        "query": ("SignatureDoesNotMatch", 403),
        "rest-xml": ("SignatureDoesNotMatch", 403),
    },
    "missing": {
        "json": ("MissingAuthenticationTokenException", 400),
        "rest-json": ("MissingAuthenticationTokenException", 403),
        "ec2": ("AuthFailure", 401),
        "query": ("MissingAuthenticationToken", 403),
        "rest-xml": ("AccessDenied", 403),
    },
}


def refusal(protocol: str, kind: str, message: str) -> Response:
    """A refusal of ``kind`` (denied, unknown-key, signature, missing) in the protocol's own shape."""
    table = _REFUSALS.get(kind, _REFUSALS["unknown-key"])
    code, status = table.get(protocol, table["json"])
    if protocol == "ec2" and kind == "denied":
        message = f"You are not authorized to perform this operation. {message}"
    return error_response(protocol, code, message, status)


def json_response(payload: Mapping[str, Any]) -> Response:
    """A JSON 1.1 success body (timestamps as epoch seconds, as the protocol encodes them)."""
    body = json.dumps(payload, default=_encode).encode()
    return 200, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", _request_id())], body


def _encode(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
