"""iam:SimulateCustomPolicy and iam:SimulatePrincipalPolicy on the local runtime (moto has neither).

Decided by the evaluator that enforces IAM on the runtime (``iam_eval``), answered in the IAM query
protocol's shapes (botocore's iam model): one ``EvaluationResult`` per action and resource with
``EvalDecision`` allowed / explicitDeny / implicitDeny, ``MatchedStatements`` (source policy id and type,
start and end position of the statement in the document text), ``MissingContextValues``,
``PermissionsBoundaryDecisionDetail``, ``EvalDecisionDetails`` and ``ResourceSpecificResults``, paged with
``MaxItems``/``Marker``/``IsTruncated``.

How policies combine ("Policy evaluation logic"): an explicit deny in any identity, boundary or
resource policy wins. Otherwise, in one account, an allow from the identity policies (within the
permissions boundary, when one is given) or from the resource policy allows, unless that policy names
the caller only by its account (which delegates to the identity policies). Across accounts (the
resource's account, from its ARN or else ``ResourceOwner``, differs from ``CallerArn``'s) both must
allow. A Deny with ``NotPrincipal`` in the resource policy denies a caller that has a permissions
boundary, whatever it names.
SCPs/RCPs, session policies and ``ResourceHandlingOption`` are not part of the simulation.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from airflow_ssm_delegate.local.iam_eval import (
    Decision,
    Evaluation,
    Principal,
    RequestContext,
    explain,
    statements_of,
)
from airflow_ssm_delegate.local.policy_text import PolicyDocumentError, statement_spans
from airflow_ssm_delegate.local.principals import identity_policy_sources, role_boundary
from airflow_ssm_delegate.local.simulate_input import (
    InvalidInput,
    PolicySource,
    SimulationInput,
    marker_for,
    owner_account,
    read_simulation,
)
from airflow_ssm_delegate.local.wire import error_response

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_ssm_delegate.local.wire import Response

_EVAL_DECISION = {
    Decision.ALLOW: "allowed",
    Decision.EXPLICIT_DENY: "explicitDeny",
    Decision.IMPLICIT_DENY: "implicitDeny",
}


@dataclass
class _Outcome:
    decision: Decision
    matched: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _matched(sources: list[PolicySource], evaluation: Evaluation) -> list[dict[str, Any]]:
    statements = []
    for match in evaluation.matched:
        source = sources[match.policy_index]
        spans = statement_spans(source.text)
        entry: dict[str, Any] = {"SourcePolicyId": source.policy_id, "SourcePolicyType": source.policy_type}
        if match.statement_index < len(spans):
            start, end = spans[match.statement_index]
            entry["StartPosition"] = {"Line": start.line, "Column": start.column}
            entry["EndPosition"] = {"Line": end.line, "Column": end.column}
        statements.append(entry)
    return statements


def _account_of(arn: str | None) -> str | None:
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def _decide(simulation: SimulationInput, action: str, resource: str, caller_account: str | None) -> _Outcome:
    """One action on one resource, every policy type combined as AWS's evaluation logic does
    (``caller_account`` None: no caller named, the resource is taken to be in the caller's account)."""
    caller = Principal(arn=simulation.caller_arn, account=caller_account) if simulation.caller_arn else None
    request = RequestContext(action, resource, simulation.context)
    parts: list[tuple[list[PolicySource], Evaluation]] = []
    identity = explain([s.document for s in simulation.identity], request)
    parts.append((simulation.identity, identity))
    boundary = None
    if simulation.boundaries:
        boundary = explain([s.document for s in simulation.boundaries], request)
        parts.append((simulation.boundaries, boundary))
    granted = None
    if simulation.resource_policy is not None:
        resource_request = RequestContext(action, resource, simulation.context, caller)
        granted = explain([simulation.resource_policy.document], resource_request)
        if boundary is not None and granted.decision is not Decision.EXPLICIT_DENY:
            granted = (
                _boundary_not_principal_deny(simulation.resource_policy, action, resource, simulation)
                or granted
            )
        parts.append(([simulation.resource_policy], granted))
    missing = sorted({key for _, part in parts for key in part.missing_keys}, key=str.lower)
    denies = [(sources, part) for sources, part in parts if part.decision is Decision.EXPLICIT_DENY]
    outcome = _Outcome(Decision.IMPLICIT_DENY, missing=missing)
    if boundary is not None:
        allowed_by_boundary = boundary.decision is Decision.ALLOW
        outcome.details["PermissionsBoundaryDecisionDetail"] = {
            "AllowedByPermissionsBoundary": allowed_by_boundary
        }
    # The resource's account: its ARN's, else ResourceOwner's, else the caller's (IAM API reference).
    resource_account = _account_of(resource) or owner_account(simulation.resource_owner) or caller_account
    cross_account = caller_account is not None and resource_account != caller_account
    if resource != "*":
        details = {"IAMPolicy": _EVAL_DECISION[identity.decision]} if cross_account else {}
        if cross_account and granted is not None:
            details["ResourcePolicy"] = _EVAL_DECISION[granted.decision]
        outcome.details["EvalDecisionDetails"] = details
    if denies:
        outcome.decision = Decision.EXPLICIT_DENY
        outcome.matched = [m for sources, part in denies for m in _matched(sources, part)]
        return outcome
    identity_ok = identity.decision is Decision.ALLOW and (
        boundary is None or boundary.decision is Decision.ALLOW
    )
    resource_ok = granted is not None and granted.decision is Decision.ALLOW
    if cross_account:
        allowed = identity_ok and resource_ok
    else:  # a resource policy naming only the account delegates to it: the identity policies must allow too
        allowed = identity_ok or (resource_ok and _names_caller(simulation, action, resource))
    if allowed:
        outcome.decision = Decision.ALLOW
        outcome.matched = [m for sources, part in parts for m in _matched(sources, part)]
    return outcome


def _boundary_not_principal_deny(
    policy: PolicySource, action: str, resource: str, simulation: SimulationInput
) -> Evaluation | None:
    """ "Policy elements: NotPrincipal": a Deny with NotPrincipal in a resource policy denies a principal
    that has a permissions boundary whatever NotPrincipal names."""
    anyone = explain([policy.document], RequestContext(action, resource, simulation.context, Principal()))
    statements = statements_of(policy.document)
    if anyone.decision is Decision.EXPLICIT_DENY and any(
        "NotPrincipal" in statements[m.statement_index] for m in anyone.matched
    ):
        return anyone
    return None


def _names_caller(simulation: SimulationInput, action: str, resource: str) -> bool:
    """Whether the resource policy allows the caller by its own ARN (or ``*``), not only by its account."""
    if simulation.resource_policy is None:
        return False
    by_arn = RequestContext(action, resource, simulation.context, Principal(arn=simulation.caller_arn))
    return explain([simulation.resource_policy.document], by_arn).decision is Decision.ALLOW


def _results(simulation: SimulationInput, caller_account: str | None) -> list[dict[str, Any]]:
    results = []
    for action in simulation.actions:
        for resource in simulation.resources:
            outcome = _decide(simulation, action, resource, caller_account)
            decision = _EVAL_DECISION[outcome.decision]
            result: dict[str, Any] = {
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": decision,
                "MatchedStatements": outcome.matched,
                "MissingContextValues": outcome.missing,
                **outcome.details,
            }
            if resource != "*":
                specific = {
                    "EvalResourceName": resource,
                    "EvalResourceDecision": decision,
                    "MatchedStatements": outcome.matched,
                    "MissingContextValues": outcome.missing,
                    **outcome.details,
                }
                result["ResourceSpecificResults"] = [specific]
            results.append(result)
    return results


# --- the query protocol's XML ------------------------------------------------------------------


def _xml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "".join(f"<member>{_xml(item)}</member>" for item in value)
    if isinstance(value, dict):
        return "".join(f"<{key}>{_xml(item)}</{key}>" for key, item in value.items())
    return escape(str(value))


def _map_xml(value: Mapping[str, str]) -> str:
    return "".join(
        f"<entry><key>{escape(k)}</key><value>{escape(v)}</value></entry>" for k, v in value.items()
    )


def _result_xml(result: Mapping[str, Any]) -> str:
    parts = []
    for key, value in result.items():
        if key == "EvalDecisionDetails":
            parts.append(f"<{key}>{_map_xml(value)}</{key}>")
        elif key == "ResourceSpecificResults":
            parts.append(f"<{key}>{''.join(f'<member>{_result_xml(r)}</member>' for r in value)}</{key}>")
        else:
            parts.append(f"<{key}>{_xml(value)}</{key}>")
    return "".join(parts)


def _respond(operation: str, simulation: SimulationInput, caller_account: str | None) -> Response:
    results = _results(simulation, caller_account)
    if simulation.marker > len(results):
        raise InvalidInput("Marker points past the last result; start again without Marker.")
    end = simulation.marker + simulation.max_items
    page = results[simulation.marker : end]
    truncated = end < len(results)
    members = "".join(f"<member>{_result_xml(result)}</member>" for result in page)
    marker = f"<Marker>{marker_for(end)}</Marker>" if truncated else ""
    body = (
        f'<{operation}Response xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><{operation}Result>'
        f"<EvaluationResults>{members}</EvaluationResults><IsTruncated>{_xml(truncated)}</IsTruncated>{marker}"
        f"</{operation}Result><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{operation}Response>"
    )
    return 200, [("Content-Type", "text/xml")], body.encode()


def _answer(build: Callable[[], Response]) -> Response:
    try:
        return build()
    except PolicyDocumentError as error:
        return error_response("query", "MalformedPolicyDocument", str(error), 400)
    except InvalidInput as error:
        return error_response("query", "InvalidInput", str(error), 400)


def simulate_custom_policy(params: Mapping[str, Any]) -> Response:
    """The SimulateCustomPolicy answer (or its MalformedPolicyDocument / InvalidInput error)."""

    def build() -> Response:
        simulation = read_simulation(params, [])
        if not simulation.identity:
            raise InvalidInput("PolicyInputList must hold at least one policy document.")
        return _respond("SimulateCustomPolicy", simulation, _account_of(simulation.caller_arn))

    return _answer(build)


def simulate_principal_policy(params: Mapping[str, Any]) -> Response:
    """The SimulatePrincipalPolicy answer (or its NoSuchEntity / MalformedPolicyDocument / InvalidInput)."""
    source = str(params.get("PolicySourceArn", ""))
    named = identity_policy_sources(source)
    if named is None:
        return error_response(
            "query",
            "NoSuchEntity",
            f"PolicySourceArn {source!r} is not an existing IAM user or role of the local runtime.",
            404,
        )

    def build() -> Response:
        attached = [PolicySource(p.document, p.name, p.kind, _document(p.document)) for p in named]
        simulation = read_simulation(params, attached)
        boundary = role_boundary(source)
        if boundary is not None and not simulation.boundaries:  # the role's own boundary, unless replaced
            simulation.boundaries = [
                PolicySource(boundary, "PermissionsBoundary", "none", _document(boundary))
            ]
        if simulation.caller_arn is None and ":user/" in source:
            simulation.caller_arn = source
        caller_account = _account_of(simulation.caller_arn) or _account_of(source)
        return _respond("SimulatePrincipalPolicy", simulation, caller_account)

    return _answer(build)


def _document(text: str) -> dict[str, Any]:
    """An attached policy (already validated by IAM when it was created)."""
    return dict(json.loads(text))
