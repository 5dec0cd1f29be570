"""Authentication for the local runtime: access key -> principal and its identity policies.

Keys are looked up where moto keeps them: IAM users' access keys (``AKIA...``) and STS sessions
(``ASIA...``, from ``AssumeRole`` calls or minted for a service role by ``authz``). The request's SigV4
signature is verified with the key's secret, as AWS does, so knowing an access key id is not enough.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from moto.iam.models import get_account_id_from, iam_backends
from moto.sts.models import sts_backends

from airflow_ssm_delegate.local.identity import Credentials

if TYPE_CHECKING:
    from collections.abc import Mapping

PARTITION = "aws"


class AuthenticationError(Exception):
    """The request cannot be tied to a principal; ``reason`` picks the service's error code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # "missing" | "unknown-key" | "bad-token" | "signature" | "inactive"
        self.message = message


@dataclass(frozen=True)
class AuthenticatedPrincipal:
    """The identity behind an access key, with every identity policy that applies to it."""

    arn: str
    account_id: str
    kind: str  # "user" | "assumed-role"
    name: str  # user name, or role name for an assumed role
    credentials: Credentials
    policies: tuple[str, ...] = ()
    session_policy: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    boundary: str | None = None  # the role's permissions boundary (moto keeps boundaries on roles only)


@dataclass(frozen=True)
class NamedPolicy:
    """An identity policy with the id and type the policy simulator reports for it."""

    name: str
    kind: str  # user | group | role (inline) | aws-managed | user-managed
    document: str


def _managed_sources(managed: Mapping[str, Any]) -> list[NamedPolicy]:
    sources = []
    for arn, policy in managed.items():
        default = next((v for v in policy.versions if v.is_default), None)
        if default is not None:
            kind = "aws-managed" if ":aws:policy/" in str(arn) else "user-managed"
            sources.append(NamedPolicy(policy.name, kind, default.document))
    return sources


def _entity_sources(entity: Any, kind: str) -> list[NamedPolicy]:
    """Inline and attached managed policies of a moto user, group or role."""
    inline = [NamedPolicy(name, kind, document) for name, document in entity.policies.items()]
    return [*inline, *_managed_sources(entity.managed_policies)]


def _own_policies(entity: Any, kind: str = "user") -> list[str]:
    return [source.document for source in _entity_sources(entity, kind)]


def _user_sources(iam: Any, user: Any) -> list[NamedPolicy]:
    sources = _entity_sources(user, "user")
    for group in iam.get_groups_for_user(user.name):
        sources += _entity_sources(group, "group")
    return sources


def _user_policies(iam: Any, user: Any) -> list[str]:
    return [source.document for source in _user_sources(iam, user)]


def identity_policy_sources(arn: str) -> list[NamedPolicy] | None:
    """Every identity policy of the IAM user (with its groups) or role ``arn``; None if there is none."""
    account_id, _, resource = arn.partition(":iam::")[2].partition(":")
    kind, _, name = resource.partition("/")
    name = name.rsplit("/", 1)[-1]
    if account_id not in iam_backends:
        return None
    iam = iam_backends[account_id][PARTITION]
    if kind == "user" and name in iam.users:
        return _user_sources(iam, iam.users[name])
    if kind == "role":
        role = next((r for r in list(iam.get_roles()) if r.name == name), None)
        return None if role is None else _entity_sources(role, "role")
    return None


def permissions_boundary(iam: Any, entity: Any) -> str | None:
    """The default version of the managed policy set as ``entity``'s permissions boundary, if any."""
    arn = getattr(entity, "permissions_boundary_arn", None)
    policy = iam.managed_policies.get(arn) if arn else None
    default = next((v for v in policy.versions if v.is_default), None) if policy is not None else None
    return None if default is None else str(default.document)


def role_boundary(arn: str) -> str | None:
    """The permissions boundary of the IAM role ``arn`` (None without one or for other principals)."""
    account_id = arn.partition(":iam::")[2].partition(":")[0]
    if ":role/" not in arn or account_id not in iam_backends:
        return None
    iam = iam_backends[account_id][PARTITION]
    name = arn.rsplit("/", 1)[-1]
    role = next((r for r in list(iam.get_roles()) if r.name == name), None)
    return None if role is None else permissions_boundary(iam, role)


def identity_policies(arn: str) -> tuple[str, ...] | None:
    """Every identity policy document of the IAM user or role ``arn`` (None if there is no such one)."""
    sources = identity_policy_sources(arn)
    return None if sources is None else tuple(source.document for source in sources)


def _user_principal(account_id: str, access_key_id: str, session_token: str | None) -> AuthenticatedPrincipal:
    iam = iam_backends[account_id][PARTITION]
    key = iam.access_keys.get(access_key_id)
    user = iam.users.get(key.user_name) if key is not None and key.user_name else None
    if key is None or user is None:
        raise AuthenticationError("unknown-key", "The security token included in the request is invalid.")
    if session_token:
        raise AuthenticationError("bad-token", "The security token included in the request is invalid.")
    if key.status != "Active":
        raise AuthenticationError("inactive", "The security token included in the request is invalid.")
    policies = _user_policies(iam, user)
    return AuthenticatedPrincipal(
        arn=user.arn,
        account_id=account_id,
        kind="user",
        name=user.name,
        credentials=Credentials(access_key_id, key.secret_access_key),
        policies=tuple(policies),
        context={"aws:username": user.name, "aws:userid": user.id, "aws:PrincipalType": "User"},
    )


def _session_principal(
    account_id: str, access_key_id: str, session_token: str | None
) -> AuthenticatedPrincipal:
    session = sts_backends[account_id][PARTITION].get_assumed_role_from_access_key(access_key_id)
    if session is None:
        raise AuthenticationError("unknown-key", "The security token included in the request is invalid.")
    if not session_token or not hmac.compare_digest(session_token, session.session_token):
        raise AuthenticationError("bad-token", "The security token included in the request is invalid.")
    role_name = session.role_arn.rsplit("/", 1)[-1]
    iam = iam_backends[session.account_id][PARTITION]
    role = next(
        (r for r in list(iam.get_roles()) if r.arn == session.role_arn), None
    )  # a deleted role has no rights
    policies = [] if role is None else _own_policies(role)
    return AuthenticatedPrincipal(
        arn=session.arn,
        account_id=session.account_id,
        kind="assumed-role",
        name=role_name,
        credentials=Credentials(access_key_id, session.secret_access_key, session.session_token),
        policies=tuple(policies),
        session_policy=session.policy or None,
        context={"aws:PrincipalType": "AssumedRole", "aws:userid": session.user_id},
        boundary=None if role is None else permissions_boundary(iam, role),
    )


def resolve_access_key(access_key_id: str, session_token: str | None = None) -> AuthenticatedPrincipal:
    """The principal owning ``access_key_id``; raises AuthenticationError for unknown or mismatched keys."""
    account_id = get_account_id_from(access_key_id)
    if sts_backends[account_id][PARTITION].get_assumed_role_from_access_key(access_key_id) is not None:
        return _session_principal(account_id, access_key_id, session_token)
    return _user_principal(account_id, access_key_id, session_token)


@dataclass(frozen=True)
class SignedRequest:
    """What the SigV4 check needs of an HTTP request (headers keep their original case)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes


def parse_authorization(header: str) -> dict[str, str]:
    """Split ``AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request, SignedHeaders, Signature``."""
    algorithm, _, rest = header.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        raise AuthenticationError("missing", "Only AWS Signature Version 4 (AWS4-HMAC-SHA256) is supported.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 5 or not fields.get("Signature") or not fields.get("SignedHeaders"):
        raise AuthenticationError("missing", "The Authorization header is not a complete SigV4 signature.")
    return {
        "access_key_id": scope[0],
        "region": scope[2],
        "service": scope[3],
        "signed_headers": fields["SignedHeaders"],
        "signature": fields["Signature"],
    }


def verify_signature(request: SignedRequest, auth: Mapping[str, str], credentials: Credentials) -> None:
    """Recompute the SigV4 signature with the key's secret; raise AuthenticationError if it differs."""
    signed = set(auth["signed_headers"].split(";"))
    headers = {name: value for name, value in request.headers.items() if name.lower() in signed}
    aws_request = AWSRequest(method=request.method, url=request.url, data=request.body, headers=headers)
    timestamp = next((v for k, v in headers.items() if k.lower() == "x-amz-date"), None)
    if timestamp is None:
        raise AuthenticationError("signature", "The request signature does not sign an X-Amz-Date header.")
    aws_request.context["timestamp"] = timestamp
    signer_class = S3SigV4Auth if auth["service"] == "s3" else SigV4Auth
    signer = signer_class(
        BotoCredentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token),
        auth["service"],
        auth["region"],
    )
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, auth["signature"]):
        raise AuthenticationError(
            "signature",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
