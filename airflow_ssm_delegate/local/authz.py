"""IAM for the local runtime: who is calling, may they, and the engine's service-role decisions.

``RequestGuard`` authenticates every wire request (SigV4 key -> principal, see ``principals``) and
authorises it with ``iam_eval`` against the ARNs and condition keys from ``resources``. ``IamAuthorizer``
implements the engine's ``Authorizer`` protocol: ``authorize_start`` (StartAutomationExecution on the
runbook, iam:PassRole on the service role) and ``assume_service_role`` (the role's trust policy must let
ssm.amazonaws.com assume it, then STS-style session keys are minted in moto's STS backend, so the
guard recognises them and evaluates the role's policies).

With ``enforce`` off everyone is allowed, but keys are still resolved (so callers have their ARN) and
service-role credentials are still minted.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from moto.iam.exceptions import NotFoundException
from moto.iam.models import Role, iam_backends
from moto.sts.models import sts_backends

from airflow_ssm_delegate.local.arns import request_parameters, sar_checks
from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.iam_eval import (
    ContextValue,
    Decision,
    Principal,
    RequestContext,
    evaluate,
)
from airflow_ssm_delegate.local.identity import Caller, Credentials
from airflow_ssm_delegate.local.principals import (
    PARTITION,
    AuthenticatedPrincipal,
    AuthenticationError,
    SignedRequest,
    parse_authorization,
    resolve_access_key,
    verify_signature,
)
from airflow_ssm_delegate.local.resources import (
    ALWAYS_ALLOWED,
    HAND_WRITTEN_SERVICES,
    Check,
    Scope,
    checks_for,
    ssm_document_arn,
    tag_context,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from airflow_ssm_delegate.local.wire import AwsRequest

SSM_SERVICE_PRINCIPAL = "ssm.amazonaws.com"
SERVICE_ROLE_SESSION_SECONDS = 43_200  # the service refreshes them; the engine owns session expiry rules


class AccessDenied(Exception):
    """The principal may not do ``action`` on ``resource``; the message is AWS's wording."""

    def __init__(self, principal_arn: str, action: str, resource: str, decision: Decision) -> None:
        reason = (
            "with an explicit deny in an identity-based policy"
            if decision is Decision.EXPLICIT_DENY
            else f"because no identity-based policy allows the {action} action"
        )
        super().__init__(
            f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource} {reason}"
        )
        self.action = action
        self.resource = resource


def principal_arn(principal: AuthenticatedPrincipal) -> str:
    """``aws:PrincipalArn``: for an assumed-role session that is the role's ARN, not the session's."""
    if principal.kind == "assumed-role":
        return f"arn:aws:iam::{principal.account_id}:role/{principal.name}"
    return principal.arn


class PolicyEngine:
    """Decides one principal's checks: identity policies, intersected with a session policy if any."""

    def __init__(self, scope: Scope, enforce: bool, now: Callable[[], datetime] | None = None) -> None:
        self.scope = scope
        self.enforce = enforce
        self.now = now or (lambda: datetime.now(timezone.utc))  # the server passes its simulated clock

    def global_context(
        self, principal: AuthenticatedPrincipal, source_ip: str = "", region: str | None = None
    ) -> dict[str, ContextValue]:
        """Keys every request carries (``aws:CurrentTime`` is simulated time, like every timestamp;
        ``region``: where the request is addressed, the runtime's own Region when not given)."""
        now = self.now()
        context: dict[str, ContextValue] = {
            "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:EpochTime": str(int(now.timestamp())),
            "aws:PrincipalArn": principal_arn(principal),
            "aws:PrincipalAccount": principal.account_id,
            "aws:RequestedRegion": region or self.scope.region,
            "aws:SecureTransport": "false",
            **principal.context,
        }
        if source_ip:
            context["aws:SourceIp"] = source_ip
        return context

    def decide(
        self, principal: AuthenticatedPrincipal, check: Check, context: Mapping[str, ContextValue]
    ) -> Decision:
        """Identity policies, limited by the session policy and the permissions boundary if any."""
        request = RequestContext(check.action, check.resource, {**context, **check.context})
        decision = evaluate(principal.policies, request)
        for limit in (principal.session_policy, principal.boundary):
            if limit is None or decision is Decision.EXPLICIT_DENY:
                continue
            limited = evaluate([limit], request)
            if limited is not Decision.ALLOW:
                decision = limited
        return decision

    def require(
        self,
        principal: AuthenticatedPrincipal,
        checks: Sequence[Check],
        source_ip: str = "",
        region: str | None = None,
    ) -> None:
        """Raise AccessDenied for the first check that is not allowed (all must be, as on AWS)."""
        if not self.enforce:
            return
        context = self.global_context(principal, source_ip, region)
        for check in checks:
            if check.action in ALWAYS_ALLOWED:
                continue
            decision = self.decide(principal, check, context)
            if decision is not Decision.ALLOW:
                raise AccessDenied(principal.arn, check.action, check.resource, decision)


def _role(account_id: str, role_arn: str) -> Role | None:
    try:
        return iam_backends[account_id][PARTITION].get_role_by_arn(role_arn)
    except NotFoundException:
        return None


def trust_decision(
    trust_policy: str, role_arn: str, principal: Principal, context: Mapping[str, ContextValue]
) -> Decision:
    """Evaluate a role's trust policy for ``sts:AssumeRole`` by ``principal``."""
    return evaluate([trust_policy], RequestContext("sts:AssumeRole", role_arn, context, principal))


class RequestGuard:
    """Authenticates and authorises wire requests; returns the caller for handlers that need it."""

    def __init__(self, policies: PolicyEngine) -> None:
        self.policies = policies

    def authenticate(self, request: AwsRequest) -> AuthenticatedPrincipal | None:
        """The request's principal; None only when IAM is not enforced and the key is unknown/absent."""
        try:
            authorization = request.header("Authorization")
            if not authorization:
                raise AuthenticationError("missing", "Request is missing Authentication Token")
            auth = parse_authorization(authorization)
            principal = resolve_access_key(auth["access_key_id"], request.header("X-Amz-Security-Token"))
            if self.policies.enforce:
                signed = SignedRequest(request.method, request.url, request.headers, request.body)
                verify_signature(signed, auth, principal.credentials)
            return principal
        except AuthenticationError:
            if self.policies.enforce:
                raise
            return None

    def authorize(
        self,
        request: AwsRequest,
        principal: AuthenticatedPrincipal,
        resource_tags: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        """Raise AccessDenied unless every check of the request is allowed (``resource_tags``: the tags of
        a resource by ARN, for ``aws:ResourceTag/K``, where moto does not keep them)."""
        scope = request_scope(request, principal, self.policies.scope)
        if not request.service or not request.operation:
            checks = [Check(f"{request.service or 'unknown'}:{request.operation or 'UnknownOperation'}")]
        else:
            checks = self._checks(request, scope)
        if resource_tags is not None:
            checks = [_with_resource_tags(check, resource_tags) for check in checks]
        if self.policies.enforce and request.service == "sts" and request.operation == "AssumeRole":
            authorize_assume_role(self.policies, principal, checks[0], request.remote_addr, scope.region)
            return
        self.policies.require(principal, checks, request.remote_addr, scope.region)

    def _checks(self, request: AwsRequest, scope: Scope) -> list[Check]:
        """Hand-written rules where there are some (``resources``); the Service Authorization Reference for
        every other operation, and for those the rules leave on ``*`` without a condition key."""
        service, operation = str(request.service), str(request.operation)
        if service in HAND_WRITTEN_SERVICES:
            checks = checks_for(service, operation, request.params, scope)
            if checks != [Check(f"{service}:{operation}")]:
                return checks
        params = request_parameters(service, operation, request.path, request.params, request.body)
        return sar_checks(service, operation, params, scope)


def request_scope(request: AwsRequest, principal: AuthenticatedPrincipal, default: Scope) -> Scope:
    """Where a request lands: the caller's own account (moto keeps one world per account id and routes
    by access key the same way) in the Region the request is signed for."""
    return Scope(request.region or default.region, principal.account_id)


def authorize_assume_role(
    policies: PolicyEngine,
    principal: AuthenticatedPrincipal,
    check: Check,
    source_ip: str = "",
    region: str | None = None,
) -> None:
    """sts:AssumeRole as AWS decides it: the role's trust policy must trust the caller.

    Within one account, a trust policy naming the caller's ARN is enough; one naming only the account
    needs the caller's identity policies to allow too. Across accounts both sides must always allow: the
    trust policy (by ARN or account) and the caller's own sts:AssumeRole permission (IAM User Guide,
    "Cross account resource access in IAM" / "How IAM roles differ from resource-based policies").
    """
    role_account = check.resource.partition(":iam::")[2].partition(":")[0]
    role = _role(role_account, check.resource) if role_account in iam_backends else None
    if role is None:
        raise AccessDenied(principal.arn, check.action, check.resource, Decision.IMPLICIT_DENY)
    context = {**policies.global_context(principal, source_ip, region), **check.context}
    document = role.assume_role_policy_document
    caller_arn = principal_arn(principal)
    named = trust_decision(document, check.resource, Principal(arn=caller_arn), context)
    identity = policies.decide(principal, check, context)
    if Decision.EXPLICIT_DENY in (named, identity):
        raise AccessDenied(principal.arn, check.action, check.resource, Decision.EXPLICIT_DENY)
    if named is Decision.ALLOW and role_account == principal.account_id:
        return
    by_account = trust_decision(
        document, check.resource, Principal(arn=caller_arn, account=principal.account_id), context
    )
    for decision in (by_account, identity):
        if decision is not Decision.ALLOW:
            raise AccessDenied(principal.arn, check.action, check.resource, decision)


def _with_resource_tags(check: Check, resource_tags: Callable[[str], Mapping[str, str]]) -> Check:
    """The check with ``aws:ResourceTag/K`` for each tag of its resource (none for ``*``)."""
    tags = resource_tags(check.resource) if check.resource != "*" else {}
    if not tags:
        return check
    context = {**{f"aws:ResourceTag/{key}": value for key, value in tags.items()}, **check.context}
    return Check(check.action, check.resource, context)


def caller_for(principal: AuthenticatedPrincipal | None, request: AwsRequest, account_id: str) -> Caller:
    """The engine's view of who called: the principal, or (IAM off, unknown key) the account root."""
    region = request.region or ""
    if principal is not None:
        return Caller(principal.arn, principal.credentials, region=region)
    authorization = request.header("Authorization") or ""
    key = authorization.partition("Credential=")[2].partition("/")[0] or "ANONYMOUS"
    return Caller(
        f"arn:aws:iam::{account_id}:root",
        Credentials(key, "not-checked", request.header("X-Amz-Security-Token")),
        identified=False,
        region=region,
    )


@dataclass
class IamAuthorizer:
    """The engine's ``Authorizer``: start permissions and the service role's trust, as AWS decides them."""

    policies: PolicyEngine

    def __post_init__(self) -> None:
        self._mint_lock = threading.Lock()

    @property
    def scope(self) -> Scope:
        return self.policies.scope

    def execution_arn(self, execution_id: str) -> str:
        return f"arn:aws:ssm:{self.scope.region}:{self.scope.account_id}:automation-execution/{execution_id}"

    def definition_arn(self, document_name: str, document_version: str) -> str:
        arn = ssm_document_arn(self.scope, document_name).replace(":document/", ":automation-definition/", 1)
        return f"{arn}:{document_version}"

    def authorize_start(
        self,
        caller: Caller,
        document_name: str,
        document_version: str,
        role_arn: str | None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """StartAutomationExecution on the definition (or document) ARN and on the new execution;
        iam:PassRole on the role.

        Allowed when a statement allows the action on ``automation-definition/NAME:VERSION`` or on
        ``document/NAME`` and neither is explicitly denied (AWS documents both resource forms), and on
        ``automation-execution/*`` (the Service Authorization Reference's required resource type; the
        new execution has no id yet). The start's Tags are ``aws:RequestTag/K`` and ``aws:TagKeys``.
        """
        if not self.policies.enforce:
            return
        principal = self._principal(caller)
        context = self.policies.global_context(principal)
        version: dict[str, ContextValue] = {
            "ssm:DocumentVersion": document_version,
            **tag_context(tags or {}),
        }
        start = [
            Check(
                "ssm:StartAutomationExecution", self.definition_arn(document_name, document_version), version
            ),
            Check("ssm:StartAutomationExecution", ssm_document_arn(self.scope, document_name), version),
        ]
        decisions = [self.policies.decide(principal, check, context) for check in start]
        if Decision.EXPLICIT_DENY in decisions or Decision.ALLOW not in decisions:
            decision = (
                Decision.EXPLICIT_DENY if Decision.EXPLICIT_DENY in decisions else Decision.IMPLICIT_DENY
            )
            self._deny(principal, start[0], decision)
        execution = Check("ssm:StartAutomationExecution", self.execution_arn("*"), version)
        decision = self.policies.decide(principal, execution, context)
        if decision is not Decision.ALLOW:
            self._deny(principal, execution, decision)
        if role_arn:
            pass_role = Check("iam:PassRole", role_arn, {"iam:PassedToService": SSM_SERVICE_PRINCIPAL})
            decision = self.policies.decide(principal, pass_role, context)
            if decision is not Decision.ALLOW:
                self._deny(principal, pass_role, decision)

    def assume_service_role(self, role_arn: str, execution_id: str) -> Credentials:
        """Session keys for ``role_arn`` as ssm.amazonaws.com gets them for ``execution_id``."""
        role = _role(self.scope.account_id, role_arn)
        if role is None:
            raise AutomationApiError(
                "AccessDeniedException",
                f"The defined assume role is unable to be assumed: role {role_arn} does not exist. "
                "Create the role or pass the ARN of an existing one as AutomationAssumeRole.",
            )
        if self.policies.enforce:
            source_arn = (
                f"arn:aws:ssm:{self.scope.region}:{self.scope.account_id}:automation-execution/{execution_id}"
            )
            context = {
                "aws:SourceAccount": self.scope.account_id,
                "aws:SourceArn": source_arn,
                "aws:PrincipalServiceName": SSM_SERVICE_PRINCIPAL,
            }
            trust = trust_decision(
                role.assume_role_policy_document,
                role_arn,
                Principal(service=SSM_SERVICE_PRINCIPAL),
                context,
            )
            if trust is not Decision.ALLOW:
                raise AutomationApiError(
                    "AccessDeniedException",
                    f"The defined assume role is unable to be assumed: the trust policy of {role_arn} "
                    "does not "
                    f"allow {SSM_SERVICE_PRINCIPAL} to call sts:AssumeRole for {source_arn} "
                    f"(checked Principal, aws:SourceAccount and aws:SourceArn). Fix the role's trust policy.",
                )
        return self._mint(role_arn, execution_id[:64], self.scope.region)

    def assume_role_as(
        self, credentials: Credentials, role_arn: str, session_name: str, region: str
    ) -> Credentials:
        """Session keys of ``role_arn`` (any account) assumed by the holder of ``credentials``, as STS
        decides a cross-account AssumeRole (``authorize_assume_role``); AccessDeniedException otherwise."""
        principal = self._principal(Caller("", credentials))
        role_account = role_arn.partition(":iam::")[2].partition(":")[0]
        exists = role_account in iam_backends and _role(role_account, role_arn) is not None
        try:
            if self.policies.enforce:
                check = Check("sts:AssumeRole", role_arn)
                authorize_assume_role(self.policies, principal, check, region=region)
            elif not exists:
                raise AccessDenied(principal.arn, "sts:AssumeRole", role_arn, Decision.IMPLICIT_DENY)
        except AccessDenied as denied:
            raise AutomationApiError("AccessDeniedException", str(denied)) from None
        return self._mint(role_arn, session_name, region)

    def _mint(self, role_arn: str, session_name: str, region: str) -> Credentials:
        """An STS session of ``role_arn`` in moto's STS backend (the role's account's): the guard knows it."""
        with self._mint_lock:
            session = sts_backends[self.scope.account_id][PARTITION].assume_role(
                region_name=region,
                role_session_name=session_name,
                role_arn=role_arn,
                policy="",
                duration=SERVICE_ROLE_SESSION_SECONDS,
                external_id="",
            )
        return Credentials(session.access_key_id, session.secret_access_key, session.session_token)

    def _principal(self, caller: Caller) -> AuthenticatedPrincipal:
        try:
            return resolve_access_key(caller.credentials.access_key_id, caller.credentials.session_token)
        except AuthenticationError as error:
            raise AutomationApiError("UnrecognizedClientException", error.message) from error

    @staticmethod
    def _deny(principal: AuthenticatedPrincipal, check: Check, decision: Decision) -> None:
        denied = AccessDenied(principal.arn, check.action, check.resource, decision)
        raise AutomationApiError("AccessDeniedException", str(denied))


def policy_json(*statements: Mapping[str, object]) -> str:
    """A policy document from statements (used for the bootstrap admin and in tests)."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
