"""iam:SimulatePrincipalPolicy on the local runtime, decided by the same evaluator that enforces IAM.

moto has no policy simulator, so the author tool ``airflow-ssm-delegate preflight`` could not run
offline. The gateway answers it here: the identity policies of ``PolicySourceArn`` (a user, with its
groups, or a role) evaluated for every action and resource with the given context entries, in the
query protocol's XML. The simulation is of identity policies only, as AWS's is without resource
policies; permissions boundaries and SCPs do not exist in the runtime.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from airflow_ssm_delegate.local.iam_eval import ContextValue, Decision, RequestContext, evaluate
from airflow_ssm_delegate.local.principals import identity_policies
from airflow_ssm_delegate.local.resources import indexed
from airflow_ssm_delegate.local.wire import error_response

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_ssm_delegate.local.wire import Response

_EVAL_DECISION = {
    Decision.ALLOW: "allowed",
    Decision.EXPLICIT_DENY: "explicitDeny",
    Decision.IMPLICIT_DENY: "implicitDeny",
}


def _context(params: Mapping[str, Any]) -> dict[str, ContextValue]:
    """``ContextEntries``: each key with its values (a list for the ``...List`` types)."""
    context: dict[str, ContextValue] = {}
    index = 1
    while f"ContextEntries.member.{index}.ContextKeyName" in params:
        entry = f"ContextEntries.member.{index}"
        values = indexed(params, f"{entry}.ContextKeyValues.member")
        is_list = str(params.get(f"{entry}.ContextKeyType", "string")).endswith("List")
        context[str(params[f"{entry}.ContextKeyName"])] = values if is_list else (values[0] if values else "")
        index += 1
    return context


def simulate_principal_policy(params: Mapping[str, Any]) -> Response:
    """The SimulatePrincipalPolicy answer (or its NoSuchEntity / InvalidInput error)."""
    source = str(params.get("PolicySourceArn", ""))
    actions = indexed(params, "ActionNames.member")
    if not actions:
        return error_response("query", "InvalidInput", "ActionNames must name at least one action.", 400)
    policies = identity_policies(source)
    if policies is None:
        return error_response(
            "query",
            "NoSuchEntity",
            f"PolicySourceArn {source!r} is not an existing IAM user or role of the local runtime.",
            404,
        )
    context = _context(params)
    results = []
    for action in actions:
        for resource in indexed(params, "ResourceArns.member") or ["*"]:
            decision = evaluate(list(policies), RequestContext(action, resource, context))
            results.append(
                "<member>"
                f"<EvalActionName>{escape(action)}</EvalActionName>"
                f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                f"<EvalDecision>{_EVAL_DECISION[decision]}</EvalDecision>"
                "</member>"
            )
    body = (
        '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
        f"<EvaluationResults>{''.join(results)}</EvaluationResults></SimulatePrincipalPolicyResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</SimulatePrincipalPolicyResponse>"
    )
    return 200, [("Content-Type", "text/xml")], body.encode()
