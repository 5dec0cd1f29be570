"""Who calls the local runtime and how the runtime acts for them (shared by engine, actions and authz).

These are the types of the engine/authorizer interface in ``notes/contracts.md``; they live in their own
module so the actions package can use them without importing the engine (``engine`` re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class Credentials:
    """AWS keys the runtime signs step calls with (a role's temporary keys, or the caller's own)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of an API request.

    ``identified`` is False only with IAM off and a key the runtime does not know: the caller then
    stands in as the account root and is held to no identity-based rule (e.g. aws:approve's Approvers).
    """

    arn: str
    credentials: Credentials
    identified: bool = True
    region: str = ""  # the Region the request was signed for ("" inside the engine)


class Authorizer(Protocol):
    """IAM decisions the engine delegates (implemented by ``local/authz.py``)."""

    def authorize_start(
        self,
        caller: Caller,
        document_name: str,
        document_version: str,
        role_arn: str | None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Raise ``AutomationApiError("AccessDeniedException", ...)`` unless ``caller`` may start it
        (``tags``: the start's Tags, as ``aws:RequestTag``/``aws:TagKeys``)."""

    def assume_service_role(self, role_arn: str, execution_id: str) -> Credentials:
        """Temporary keys of ``role_arn`` as ssm.amazonaws.com would get them for ``execution_id``."""

    def assume_role_as(
        self, credentials: Credentials, role_arn: str, session_name: str, region: str
    ) -> Credentials:
        """Temporary keys of ``role_arn`` (any account) assumed by the holder of ``credentials`` (the
        administration role of a TargetLocations start); ``AccessDeniedException`` when STS would refuse."""
