"""Answer a runbook's ``aws:approve`` step from Airflow's own UI (human-in-the-loop, Airflow 3.1+).

``SsmAutomationApprovalOperator`` is Airflow's ``HITLOperator`` (``providers.standard.operators.hitl``)
with the options Approve / Reject: the person answers in Airflow's "Required actions" view, then the
operator sends SendAutomationSignal (Approve or Reject) with a Comment naming that person and their note.
Run it once the execution waits at its approval step (e.g. after a sensor that waits for
``CurrentAction == "aws:approve"``, as the long-running maintenance DAG does).

Who approves on AWS: the signal is sent with the task's AWS connection, so that identity must be one of
the step's ``Approvers`` (AWS checks the signalling principal); the Airflow user's decision and name are
recorded in the Comment. Restrict who may answer in Airflow with ``assigned_users``.

On Airflow older than 3.1 there are no human-in-the-loop operators: importing this module still works,
but building the operator raises an error saying what to do instead (approve in the Systems Manager
console, with ``aws ssm send-automation-signal``, or with ``SsmSendAutomationSignalOperator``).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from airflow_ssm_delegate.compat import hitl_operator_class
from airflow_ssm_delegate.connection import CONNECTION_TEMPLATE_FIELDS, SsmAutomationHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

# Airflow 3.1+ (apache-airflow-providers-standard with human-in-the-loop operators); on 3.0 the import
# raises AirflowOptionalProviderFeatureException, which compat turns into None.
_HITL = hitl_operator_class()
HAS_HITL = _HITL is not None
HITLOperator: Any = _HITL if _HITL is not None else object

APPROVE, REJECT = "Approve", "Reject"
NO_HITL_MESSAGE = (
    "SsmAutomationApprovalOperator needs Airflow 3.1 or later (human-in-the-loop operators of "
    "apache-airflow-providers-standard). On this Airflow, approve the runbook's aws:approve step in the "
    "Systems Manager console, with `aws ssm send-automation-signal --signal-type Approve|Reject`, or from a "
    "DAG with SsmSendAutomationSignalOperator(signal_type='Approve')."
)


def comment_for(decision: str, responded_by: Any, note: str | None) -> str:
    """The SendAutomationSignal Comment recording the Airflow user's decision (AWS allows 4,096 chars)."""
    who = (
        responded_by.get("name") or responded_by.get("id") if isinstance(responded_by, dict) else responded_by
    )
    text = f"{decision} in Airflow by {who or 'an unknown user'}"
    if note:
        text += f": {note}"
    return text[:4096]


class SsmAutomationApprovalOperator(SsmAutomationHookMixin, HITLOperator):
    """Ask a person in Airflow to approve or reject an execution's ``aws:approve`` step, then signal it.

    :param execution_id: the execution waiting at its approval step. Templated.
    :param subject: the headline the person sees. Templated.
    :param body: the details (Markdown). Templated; by default the execution id and how the answer is sent.
    Other arguments as Airflow's ``HITLOperator`` (``assigned_users``, ``response_timeout``,
    ``notifiers``...) and the AWS connection settings.
    Returns the decision: ``{"decision": "Approve"|"Reject", "comment": ..., "execution_id": ...}``.
    """

    template_fields = ("execution_id", "subject", "body", *CONNECTION_TEMPLATE_FIELDS)

    def __init__(
        self,
        *,
        execution_id: str,
        subject: str = "Approve SSM Automation execution {{ task.execution_id }}?",
        body: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not HAS_HITL:
            raise RuntimeError(NO_HITL_MESSAGE)
        from airflow.sdk import Param

        params = kwargs.pop("params", None) or {
            "comment": Param("", type=["null", "string"], title="Comment", description="Recorded on AWS.")
        }
        takes_response_timeout = "response_timeout" in inspect.signature(HITLOperator).parameters
        if "response_timeout" in kwargs and not takes_response_timeout:
            # Airflow 3.1/3.2's HITLOperator bounds the wait by execution_timeout (3.3 renamed it).
            kwargs["execution_timeout"] = kwargs.pop("response_timeout")
        super().__init__(
            subject=subject,
            body=body
            or (
                "The runbook waits at its **aws:approve** step. Your answer is sent to AWS as "
                "SendAutomationSignal (Approve or Reject) for execution `{{ task.execution_id }}`, "
                "with your name in the comment."
            ),
            options=[APPROVE, REJECT],
            defaults=None,
            multiple=False,
            params=params,
            **kwargs,
        )
        self.execution_id = execution_id
        self._init_connection(aws_conn_id, region_name, verify, botocore_config)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """The person answered: send their decision to the execution."""
        answer = super().execute_complete(context, event)
        decision = answer["chosen_options"][0]
        note = (answer.get("params_input") or {}).get("comment")
        comment = comment_for(decision, answer.get("responded_by_user"), note)
        self.hook.send_automation_signal(self.execution_id, decision, {"Comment": comment})
        self.log.info("Sent %s to automation execution %s (%s)", decision, self.execution_id, comment)
        return {"decision": decision, "comment": comment, "execution_id": self.execution_id}
