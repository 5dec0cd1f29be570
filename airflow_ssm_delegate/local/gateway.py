"""The WSGI front of the local runtime: IAM on every request, Automation to the engine, the rest to moto.

moto's own IAM check stays off (it checks EC2/SSM against ``*``, ignores conditions and PassRole); this
gateway authenticates and authorises first, then either answers the Automation actions itself or hands
the untouched request to moto's dispatcher. Any failure inside the gateway is answered as the service's
``InternalServerError`` and logged; the server keeps serving.

Every response, moto's and errors included, carries the simulated clock (``airflow_ssm_delegate.simclock``
headers), so clients such as the provider's poller plan on the runtime's time with no configuration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.local.api import (
    AUTOMATION_OPERATIONS,
    AUTOMATION_RESOURCE_TYPE,
    LIST_TAGS_OPERATION,
    AutomationApi,
)
from airflow_ssm_delegate.local.authz import AccessDenied, RequestGuard, caller_for, request_scope
from airflow_ssm_delegate.local.ec2_states import refuse_for_instance_state
from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.lambda_invoke import invoke_function
from airflow_ssm_delegate.local.principals import AuthenticationError
from airflow_ssm_delegate.local.public_params import provide_public_parameters
from airflow_ssm_delegate.local.simulate import simulate_custom_policy, simulate_principal_policy
from airflow_ssm_delegate.local.wire import (
    AwsRequest,
    Response,
    error_response,
    read_request,
    refusal,
    unknown_operation,
)
from airflow_ssm_delegate.simclock import SIM_TIME_HEADER, TIME_SCALE_HEADER

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.clock import SimulatedClock
    from airflow_ssm_delegate.local.identity import Caller
    from airflow_ssm_delegate.local.principals import AuthenticatedPrincipal
    from airflow_ssm_delegate.local.resources import Scope

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Gateway:
    """WSGI middleware in front of moto's ``DomainDispatcherApplication``."""

    def __init__(
        self,
        moto_app: WsgiApp,
        guard: RequestGuard,
        api: AutomationApi | None,
        clock: SimulatedClock | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.guard = guard
        self.api = api
        self.clock = clock  # reported on every response once the server has one

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response = self._with_clock_headers(start_response)
        try:
            response = self._answer(environ)
        except Exception:
            log.exception("The local runtime failed to handle %s", environ.get("PATH_INFO"))
            response = error_response(
                "json", "InternalServerError", "The local runtime failed (see its log).", 500
            )
        if response is None:
            return self._moto(environ, start_response)
        status, headers, body = response
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}", [*headers, ("Content-Length", str(len(body)))]
        )
        return [body]

    def _moto(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """moto's answer; what moto does not implement is refused by name, not a 500 clients retry."""
        try:
            return self.moto_app(environ, start_response)
        except NotImplementedError as error:
            request = environ.get(_REQUEST_KEY)
            status, headers, body = not_emulated(request, error)
            log.info("Not emulated: %s", body.decode("utf-8", "replace"))
            start_response(
                f"{status} {_REASONS.get(status, 'Error')}", [*headers, ("Content-Length", str(len(body)))]
            )
            return [body]

    def _with_clock_headers(self, start_response: Callable[..., Any]) -> Callable[..., Any]:
        """``start_response`` adding the simulated clock, read when the response starts."""
        clock = self.clock
        if clock is None:
            return start_response

        def start_with_clock(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            clock_headers = [
                (SIM_TIME_HEADER, repr(clock.now().timestamp())),
                (TIME_SCALE_HEADER, repr(float(clock.time_scale))),
            ]
            return start_response(status, [*headers, *clock_headers], *exc_info)

        return start_with_clock

    def _answer(self, environ: dict[str, Any]) -> Response | None:
        """The gateway's own response, or None to let moto answer."""
        if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
            return self._moto_api()
        request = read_request(environ)
        environ[_REQUEST_KEY] = request  # for naming what moto does not implement (``_moto``)
        if request.service and request.operation:
            unknown = unknown_operation(request.service, request.operation)
            if unknown is not None:
                return unknown
        try:
            principal = self.guard.authenticate(request)
            if principal is not None:
                self.guard.authorize(request, principal, self._execution_tags)
        except AuthenticationError as error:
            log.info(
                "Refused %s:%s (%s): %s", request.service, request.operation, error.reason, error.message
            )
            return refusal(
                request.protocol,
                error.reason if error.reason in ("missing", "signature") else "unknown-key",
                error.message,
            )
        except AccessDenied as denied:
            log.info("Denied: %s", denied)  # ARNs and actions only, never keys
            return refusal(request.protocol, "denied", str(denied))
        if request.service == "lambda" and request.operation == "Invoke":  # moto would need Docker
            scope = self._scope(request, principal)  # the function runs in the caller's account and Region
            endpoint = "/".join(request.url.split("/", 3)[:3])
            return invoke_function(request, endpoint, scope.region, scope.account_id)
        if request.service == "iam" and request.operation in _SIMULATORS:
            return _SIMULATORS[request.operation](request.params)  # moto has no policy simulator
        if request.service == "ssm" and (
            request.operation in AUTOMATION_OPERATIONS or _lists_execution_tags(request)
        ):
            return self._automation(
                request, caller_for(principal, request, self.guard.policies.scope.account_id)
            )
        if request.service == "ssm" and request.operation:  # AWS's public AMI parameters moto lacks
            scope = self._scope(request, principal)  # as moto reads them
            provide_public_parameters(request.operation, request.params, scope.account_id, scope.region)
        if request.service == "ec2" and request.operation:  # state rules moto does not hold
            scope = self._scope(request, principal)
            return refuse_for_instance_state(
                request.operation, request.params, scope.account_id, scope.region
            )
        return None

    def _scope(self, request: AwsRequest, principal: AuthenticatedPrincipal | None) -> Scope:
        """The caller's own account and Region (each account is its own world), else the runtime's."""
        scope = self.guard.policies.scope
        return scope if principal is None else request_scope(request, principal, scope)

    def _execution_tags(self, arn: str) -> dict[str, str]:
        """An Automation execution's tags by ARN (the engine keeps them), for aws:ResourceTag."""
        _, marker, execution_id = arn.partition(":automation-execution/")
        if not marker or self.api is None:
            return {}
        try:
            return {tag["Key"]: tag["Value"] for tag in self.api.engine.tags(execution_id)}
        except AutomationApiError:  # no such execution: the request fails later with the API's own error
            return {}

    def _automation(self, request: AwsRequest, caller: Caller) -> Response:
        if self.api is None:
            return error_response("json", "InternalServerError", "The Automation engine is not running.", 500)
        return self.api.handle(str(request.operation), request.params, caller, request.body_is_valid_json)

    def _moto_api(self) -> Response | None:
        """moto's management API (reset, auth switches) would bypass IAM: only open without enforcement."""
        if not self.guard.policies.enforce:
            return None
        return error_response(
            "json",
            "AccessDeniedException",
            "The /moto-api management endpoints are disabled while IAM is enforced (they would reset or "
            "bypass it); start the runtime with --no-iam to use them.",
            403,
        )


_SIMULATORS: dict[str, Callable[[Any], Response]] = {
    "SimulateCustomPolicy": simulate_custom_policy,
    "SimulatePrincipalPolicy": simulate_principal_policy,
}


def not_emulated(request: AwsRequest | None, error: NotImplementedError) -> Response:
    """``UnsupportedOperation`` (HTTP 400, so no SDK retries it) naming the operation or filter moto lacks.

    moto raises NotImplementedError for actions it has not written ("The X action has not been
    implemented") and for EC2 filters it cannot evaluate ("... for 'tenancy' ..."); werkzeug would answer
    those with an HTML 500 ("the server is overloaded"), which boto3 retries as a transient server error.
    ``UnsupportedOperation`` is EC2's code for a request AWS understands but will not perform
    (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html); it is used for every
    protocol so the refusal reads the same in a step's failure message.
    """
    service = (request.service if request else None) or "unknown-service"
    operation = (request.operation if request else None) or "this operation"
    protocol = request.protocol if request else "json"
    moto_says = str(error).split(" Feel free", 1)[0].strip()
    named = _UNEMULATED_FILTER.search(moto_says)
    what = f"{service}:{operation}" + (f" with the filter '{named.group(1)}'" if named else "")
    message = (
        f"The local runtime does not emulate {what} (moto: {moto_says}). Run it against AWS, or leave "
        "it out of what runs locally."
    )
    return error_response(protocol, "UnsupportedOperation", message, 400)


_REQUEST_KEY = "airflow_ssm_delegate.request"
_UNEMULATED_FILTER = re.compile(r"filter[^']*'([^']+)'", re.IGNORECASE)


def _lists_execution_tags(request: AwsRequest) -> bool:
    """ListTagsForResource of an Automation execution: the engine holds those tags, not moto."""
    return (
        request.operation == LIST_TAGS_OPERATION
        and request.params.get("ResourceType") == AUTOMATION_RESOURCE_TYPE
    )


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    500: "Internal Server Error",
}
