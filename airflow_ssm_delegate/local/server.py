"""``LocalAutomationServer``: moto's AWS services plus SSM Automation, with IAM as AWS decides it.

One server per process at a time: moto keeps every service's state in process-global backends, so two
servers would share (and reset) each other's AWS state. ``start()`` refuses a second running server,
``stop()`` shuts the engine down, resets this account's moto state and frees the port.

Use it as a context manager::

    with LocalAutomationServer(time_scale=3600) as server:
        ssm = boto3.client("ssm", endpoint_url=server.endpoint_url, **server.admin_credentials,
                           region_name=server.region)
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from typing import TYPE_CHECKING

from moto import settings as moto_settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.base_backend import BackendDict
from moto.core.models import default_user_config
from moto.iam.models import iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from airflow_ssm_delegate.local.api import AutomationApi
from airflow_ssm_delegate.local.authz import IamAuthorizer, PolicyEngine, RequestGuard, policy_json
from airflow_ssm_delegate.local.clock import SimulatedClock
from airflow_ssm_delegate.local.definitions import DocumentLoader
from airflow_ssm_delegate.local.engine import AutomationEngine
from airflow_ssm_delegate.local.events import EventEmitter
from airflow_ssm_delegate.local.gateway import Gateway
from airflow_ssm_delegate.local.principals import PARTITION
from airflow_ssm_delegate.local.quotas import DEFAULT_MAX_QUEUED, DEFAULT_MAX_RUNNING, ExecutionQuotas
from airflow_ssm_delegate.local.resources import Scope

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

log = logging.getLogger(__name__)

ADMIN_USER_NAME = "local-admin"
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_MAX_PORT = 65535


class _RunningServer:
    """The one server running in this process (moto's state is process-global)."""

    lock = threading.Lock()
    server: LocalAutomationServer | None = None


class LocalAutomationServer:
    """An offline AWS endpoint (moto's server) that also runs SSM Automation executions."""

    region = "us-east-1"
    account_id = DEFAULT_ACCOUNT_ID  # "123456789012": moto's default account, where unknown keys land

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 1.0,
        enforce_iam: bool = True,
        *,
        max_running: int = DEFAULT_MAX_RUNNING,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= _MAX_PORT:
            raise ValueError(
                f"port must be a TCP port number 0-{_MAX_PORT} (0 picks a free one), got {port!r}"
            )
        self.host = host
        self.port = port
        SimulatedClock.check_scale(time_scale)
        self._time_scale = float(time_scale)
        self._quotas = ExecutionQuotas(max_running, max_queued)  # the account's Automation quotas
        self._policies = PolicyEngine(Scope(self.region, self.account_id), enforce_iam)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._admin: dict[str, str] = {}
        self._other_admins: dict[str, dict[str, str]] = {}  # account id -> its bootstrap admin's keys
        self._admin_lock = threading.Lock()
        self._gateway = Gateway(
            DomainDispatcherApplication(create_backend_app), RequestGuard(self._policies), None
        )
        self.authorizer = IamAuthorizer(self._policies)  # the engine's Authorizer (IAM as AWS decides it)
        self.engine: AutomationEngine | None = None
        self.clock: SimulatedClock | None = None
        self.events: EventEmitter | None = None  # Automation's EventBridge events (local.events)

    # --- configuration ---------------------------------------------------------------------------

    @property
    def enforce_iam(self) -> bool:
        """Whether requests are authenticated and authorised (switchable while running, e.g. in tests)."""
        return self._policies.enforce

    @enforce_iam.setter
    def enforce_iam(self, value: bool) -> None:
        self._policies.enforce = value

    @property
    def time_scale(self) -> float:
        """Simulated seconds per wall second; settable while running (clients see it on the next response)."""
        return self.clock.time_scale if self.clock is not None else self._time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        SimulatedClock.check_scale(value)
        self._time_scale = float(value)
        if self.clock is not None:
            self.clock.time_scale = value

    @property
    def quotas(self) -> ExecutionQuotas:
        """Running executions allowed at once and Pending ones queued (AWS: 100 and 1,000).

        Its ``max_running``/``max_queued`` are settable; assigning a new ``ExecutionQuotas`` starts counting
        afresh (a test's own executions only), executions already admitted keep running.
        """
        return self._quotas

    @quotas.setter
    def quotas(self, value: ExecutionQuotas) -> None:
        self._quotas = value
        if self.engine is not None:
            self.engine.quotas = value

    @property
    def endpoint_url(self) -> str:
        """The URL clients use (``127.0.0.1`` when bound to all interfaces)."""
        if self._server is None:
            raise RuntimeError(
                "The local runtime is not started: call start() or use it as a context manager."
            )
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    @property
    def admin_credentials(self) -> dict[str, str]:
        """``aws_access_key_id``/``aws_secret_access_key`` of the bootstrap admin (inline ``*:*`` policy)."""
        return self.admin_credentials_for(self.account_id)

    def admin_credentials_for(self, account_id: str) -> dict[str, str]:
        """The bootstrap admin of any account, shaped as ``admin_credentials``.

        Each account is its own world (its own IAM, EC2, SSM...: moto keeps its state per account id and
        routes a request by its access key, as the gateway authorises it): these keys provision another
        account, e.g. the execution roles of a TargetLocations start. The account is reset on ``stop()``.
        """
        if not self._admin:
            raise RuntimeError("The local runtime is not started: the admin user exists only while it runs.")
        if not isinstance(account_id, str) or not _ACCOUNT_ID.match(account_id):
            raise ValueError(f"account_id must be a 12-digit AWS account id, got {account_id!r}")
        with self._admin_lock:
            if account_id == self.account_id:
                self._admin = _bootstrap_admin(account_id, self.region, keep=self._admin)
                return dict(self._admin)
            known = self._other_admins.get(account_id)
            self._other_admins[account_id] = _bootstrap_admin(account_id, self.region, keep=known)
            return dict(self._other_admins[account_id])

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalAutomationServer:
        """Bind the port, create the admin user and the engine, and serve in a background thread."""
        with _RunningServer.lock:
            running = _RunningServer.server
            if running is not None:
                raise RuntimeError(
                    f"A LocalAutomationServer is already running in this process ({running.endpoint_url}); "
                    "moto's state is process-global, so stop it first or share it (tests: the local_server "
                    "fixture)."
                )
            # moto's own IAM check (EC2/SSM against "*", no conditions, no PassRole) stays off: the gateway
            # replaces it. It is off by default; an INITIAL_NO_AUTH_ACTION_COUNT in the environment would
            # turn it on behind our back.
            moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
            # Step Functions executions run through moto's state-machine interpreter (moto's default
            # leaves them RUNNING for ever), so aws:executeStateMachine steps end as on AWS.
            default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True

            self.clock = SimulatedClock(self._time_scale)
            self._gateway.clock = self.clock
            self._policies.now = self.clock.now
            server = self._listen()
            try:
                self._admin = _bootstrap_admin(self.account_id, self.region)
                self._server = server
                self.engine = self._build_engine()
                self._gateway.api = AutomationApi(self.engine)
            except BaseException:
                server.server_close()  # never leave the port bound by a half-started server
                self._server = None
                raise
            self._thread = threading.Thread(
                target=server.serve_forever, name="ssm-delegate-local", daemon=True
            )
            self._thread.start()
            _RunningServer.server = self
        log.info(
            "Local Automation runtime serving on %s (IAM %s)",
            self.endpoint_url,
            "enforced" if self.enforce_iam else "off",
        )
        return self

    def stop(self) -> None:
        """Stop serving, stop the engine, reset this account's moto state and free the port.

        A no-op for a server that is not the one running (it must not reset the running one's state).
        """
        with _RunningServer.lock:
            if _RunningServer.server is not self:
                return
            assert self._server is not None and self._thread is not None and self.engine is not None
            self.engine.shutdown()
            if self.events is not None:
                self.events.close()
                self.events = None
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            for account_id in (self.account_id, *self._other_admins):
                _reset_account(account_id)
            self._other_admins = {}
            self._server, self._thread, self.engine, self._admin = None, None, None, {}
            _RunningServer.server = None

    def __enter__(self) -> LocalAutomationServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- wiring ----------------------------------------------------------------------------------

    def _listen(self) -> BaseWSGIServer:
        """Bind first (an OSError names a busy port; werkzeug itself would print and exit), then serve."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.create_server((self.host, self.port), family=family) as listener:
            return make_server(
                self.host,
                self.port,
                self._gateway,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listener.fileno(),  # werkzeug duplicates it
            )

    def _build_engine(self) -> AutomationEngine:
        assert self.clock is not None
        engine = AutomationEngine(
            clock=self.clock,
            endpoint_url=self.endpoint_url,
            region=self.region,
            account_id=self.account_id,
            authorizer=self.authorizer,
            load_document=DocumentLoader(self.account_id, self.region),
        )
        self.events = EventEmitter(self.clock, self.region, self.account_id)
        engine.observer = self.events
        engine.quotas = self._quotas
        return engine


def _bootstrap_admin(account_id: str, region: str, keep: Mapping[str, str] | None = None) -> dict[str, str]:
    """An IAM user allowed everything, so a fresh runtime can be provisioned through the API.

    With ``keep``, the user is re-created with those same keys: something else in this process (moto's
    ``mock_aws``, a ``/moto-api/reset``) may have reset moto's state, and clients still hold the keys.
    """
    iam = iam_backends[account_id][PARTITION]
    if keep is not None and keep["aws_access_key_id"] in iam.access_keys:
        return dict(keep)
    if ADMIN_USER_NAME not in iam.users:
        iam.create_user(region, ADMIN_USER_NAME)
        iam.put_user_policy(
            ADMIN_USER_NAME,
            "AdministratorAccess",
            policy_json({"Effect": "Allow", "Action": "*", "Resource": "*"}),
        )
    key = iam.create_access_key(ADMIN_USER_NAME)
    if keep is not None:
        del iam.access_keys[key.access_key_id]
        key.access_key_id, key.secret_access_key = keep["aws_access_key_id"], keep["aws_secret_access_key"]
        iam.access_keys[key.access_key_id] = key
    return {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}


def _reset_account(account_id: str) -> None:
    """Reset every moto service's state for ``account_id`` (other accounts are left alone)."""
    for backend_dict in list(BackendDict._instances):  # type: ignore[misc]
        if account_id in backend_dict:
            backend_dict[account_id].reset()
