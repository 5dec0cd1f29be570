"""boto3 clients for step calls: cached, and every failure turned into a step failure AWS-style.

Creating a boto3 client costs ~50 ms (it loads the service model), more than most step calls against the
local endpoint, so clients are cached per (credentials, service). Calls go through ``GuardedClient``,
which checks the caller-session expiry first and maps a ``ClientError`` to a ``StepFailure`` whose
FailureType is ``Permission`` for a denied call, naming the IAM action (``ec2:CreateTags``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from airflow_ssm_delegate.local.actions.base import StepFailure
from airflow_ssm_delegate.local.identity import Credentials

if TYPE_CHECKING:
    from collections.abc import Callable


PERMISSION_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "403",
    }
)
THROTTLING_ERROR_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests"}
)

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class ClientCache:
    """One boto3 client per (credentials, service), shared by all executions (clients are thread-safe).

    All clients of the process come from one boto3 session, whose loader caches the parsed service
    models: a client for new credentials then costs milliseconds instead of re-reading the JSON models
    (~0.5 s). Sessions are not thread-safe, so client creation is serialised.
    """

    _session: boto3.session.Session | None = None
    _session_lock = threading.Lock()

    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._clients: dict[tuple[Any, ...], Any] = {}

    def _new_client(self, service: str, credentials: Credentials, region: str | None = None) -> Any:
        with ClientCache._session_lock:
            if ClientCache._session is None:
                ClientCache._session = boto3.session.Session()
            return ClientCache._session.client(
                service,
                region_name=region or self.region,
                endpoint_url=self.endpoint_url,
                config=_CONFIG,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
            )

    def get(self, credentials: Credentials, service: str, region: str | None = None) -> Any:
        """The client for these credentials and service, in ``region`` (default: the runtime's own)."""
        key: tuple[Any, ...] = (credentials, service)
        if region not in (None, self.region):
            key = (credentials, service, region)  # a TargetLocations child in another Region
        client = self._clients.get(key)
        if client is None:
            client = self._clients.setdefault(key, self._new_client(service, credentials, region))
        return client

    def __contains__(self, key: object) -> bool:
        """Whether a client for ``(credentials, service)`` was made (i.e. a step called with them)."""
        return key in self._clients

    def warm(self, services: tuple[str, ...] = ("ec2", "ssm")) -> None:
        """Load these service models now, so the first step of the first execution does not wait."""
        for service in services:
            self._new_client(service, Credentials("warm-up", "warm-up"))


def iam_action(client: Any, operation_name: str) -> str:
    """``ec2:CreateTags`` for EC2's CreateTags: the IAM prefix is the service's signing name."""
    model = client.meta.service_model
    prefix = model.signing_name or model.endpoint_prefix
    return f"{prefix}:{operation_name}"


def failure_from_client_error(client: Any, error: ClientError) -> StepFailure:
    """The step failure AWS reports for a failed API call of a step."""
    code = str(error.response.get("Error", {}).get("Code", "Unknown"))
    message = str(error.response.get("Error", {}).get("Message", "")).strip()
    action = iam_action(client, error.operation_name)
    details = {"ErrorCode": [code], "Api": [action]}
    if code in PERMISSION_ERROR_CODES:
        return StepFailure(
            f"The step's call {action} was denied ({code}): {message or 'not authorized'}. "
            f"Grant {action} to the role the runbook runs as.",
            failure_type="Permission",
            details=details,
        )
    if code in THROTTLING_ERROR_CODES:
        return StepFailure(f"{action} was throttled ({code}): {message}", "Throttling", details)
    return StepFailure(f"{action} failed ({code}): {message}", "Action", details)


class GuardedClient:
    """A boto3 client whose calls run ``before_call`` first and fail as ``StepFailure``."""

    def __init__(self, client: Any, before_call: Callable[[str], None]) -> None:
        self._client = client
        self._before_call = before_call
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith(("get_paginator", "get_waiter", "can_paginate")):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            operation = self._client.meta.method_to_api_mapping.get(name, name)
            self._before_call(iam_action(self._client, operation))
            try:
                return attribute(*args, **kwargs)
            except ClientError as error:
                raise failure_from_client_error(self._client, error) from error
            except BotoCoreError as error:
                raise StepFailure(
                    f"{iam_action(self._client, operation)} could not be called: {error}", "Action"
                ) from error

        return call
