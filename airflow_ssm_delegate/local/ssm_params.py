"""Parameter Store references (``{{ssm:name}}``) in runbook parameters, resolved when an execution starts.

AWS lets a runbook parameter's default (and a value passed at start) name a Parameter Store parameter
with ``{{ssm:parameter-name}}``; the execution sees the stored value, and the parameter's own checks
(allowedPattern, allowedValues, type) apply to that value, not to the reference text
(https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-syntax-data-elements-parameters.html).
Only String and StringList parameters can be referenced: "SSM documents currently don't support
references to Secure String parameters"
(https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-about.html), so a
SecureString is refused by name. A stored value is not resolved again: "Parameters can't be referenced or
nested in the values of other parameters"
(https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-about-examples.html).

The values are read with ``ssm:GetParameters`` through the runtime's own endpoint, signed with the
starting caller's credentials, so IAM decides that read as it decides any other call of the caller (AWS
does not document which principal reads them; the start happens before any service role is assumed).
A reference that cannot be read fails the start with ``InvalidAutomationExecutionParametersException``
naming the runbook parameter and the Parameter Store name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from airflow_ssm_delegate.documents.parameters import LIST_TYPES
from airflow_ssm_delegate.local.errors import AutomationApiError

if TYPE_CHECKING:
    from airflow_ssm_delegate.documents.model import Runbook

__all__ = ["REFERENCE", "resolve_store_references"]

REFERENCE = re.compile(r"\{\{\s*ssm:([^\s{}]+)\s*\}\}")
GET_PARAMETERS_BATCH = 10  # GetParameters' Names limit
PARAMETER_ERROR = "InvalidAutomationExecutionParametersException"

#: ``ssm`` client factory: called only when a runbook parameter holds a reference.
ClientFactory = Callable[[], Any]


def resolve_store_references(runbook: Runbook, api_parameters: Any, ssm: ClientFactory) -> Any:
    """The request's Parameters with every ``{{ssm:...}}`` (given or default) replaced by its value.

    Parameters not given and whose default holds a reference are added with the resolved value; all
    others are returned as given. Anything that is not a map of lists is returned untouched, for the
    parameter checks to refuse with their own message.
    """
    if api_parameters is not None and not isinstance(api_parameters, Mapping):
        return api_parameters
    given: dict[str, Any] = dict(api_parameters or {})
    pending: dict[str, list[str]] = {}
    for name, spec in runbook.parameters.items():
        items = _items(given[name]) if name in given else _items(spec.default)
        if items is not None and any(REFERENCE.search(item) for item in items):
            pending[name] = items
    if not pending:
        return api_parameters
    names = sorted({ref for items in pending.values() for item in items for ref in REFERENCE.findall(item)})
    stored = _read(ssm(), names, pending)
    for name, items in pending.items():
        list_typed = runbook.parameters[name].type in LIST_TYPES
        given[name] = [value for item in items for value in _substituted(item, stored, list_typed)]
    return given


def _items(value: Any) -> list[str] | None:
    """A value as the API's list of strings, or None when it cannot hold a reference (numbers, maps)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _substituted(item: str, stored: Mapping[str, tuple[str, str]], list_typed: bool) -> list[str]:
    """One item with its references replaced; a whole-item StringList reference in a list parameter
    gives one item per stored entry (a StringList is stored comma-separated)."""
    whole = REFERENCE.fullmatch(item.strip())
    if whole and list_typed:
        kind, value = stored[whole.group(1)]
        return value.split(",") if kind == "StringList" else [value]
    return [REFERENCE.sub(lambda found: stored[found.group(1)][1], item)]


def _read(client: Any, names: list[str], pending: Mapping[str, list[str]]) -> dict[str, tuple[str, str]]:
    """``{reference: (Type, Value)}`` for every name, or the start's parameter error naming what failed."""
    stored: dict[str, tuple[str, str]] = {}
    missing: list[str] = []
    for start in range(0, len(names), GET_PARAMETERS_BATCH):
        batch = names[start : start + GET_PARAMETERS_BATCH]
        try:
            answer = client.get_parameters(Names=batch)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "Unknown"))
            message = str(error.response.get("Error", {}).get("Message", "")).strip()
            raise AutomationApiError(
                "AccessDeniedException" if "AccessDenied" in code else PARAMETER_ERROR,
                f"Reading the Parameter Store parameters {batch} that {_users(pending, batch)} reference "
                f"failed ({code}): {message}. The caller that starts the automation needs "
                "ssm:GetParameters on them.",
            ) from None
        except BotoCoreError as error:
            raise AutomationApiError(
                "InternalServerError", f"Reading the Parameter Store parameters {batch} failed: {error}"
            ) from None
        missing.extend(answer.get("InvalidParameters", []))
        for parameter in answer.get("Parameters", []):
            requested = _requested_name(parameter, batch)
            stored[requested] = (str(parameter.get("Type", "String")), str(parameter.get("Value", "")))
    missing.extend(name for name in names if name not in stored and name not in missing)
    if missing:
        raise AutomationApiError(
            PARAMETER_ERROR,
            f"Parameter Store parameter(s) {sorted(set(missing))} referenced by {_users(pending, missing)} "
            "not found. Create them (ssm put-parameter) or pass a value for the runbook parameter.",
        )
    secure = sorted(name for name, (kind, _) in stored.items() if kind == "SecureString")
    if secure:
        raise AutomationApiError(
            PARAMETER_ERROR,
            f"Parameter Store parameter(s) {secure} referenced by {_users(pending, secure)} are "
            "SecureString; SSM documents do not support references to SecureString parameters. Store it "
            "as String, or read it in a step (aws:executeAwsApi GetParameter with WithDecryption).",
        )
    return stored


def _requested_name(parameter: Mapping[str, Any], batch: Sequence[str]) -> str:
    """The name as referenced (``name:3``, ``name:label`` or an ARN) that this answer entry is for."""
    name = str(parameter.get("Name", ""))
    if name in batch:
        return name
    selector = str(parameter.get("Selector") or "")
    candidates = [ref for ref in batch if ref == name + selector or ref.endswith(name + selector)]
    return candidates[0] if candidates else name


def _users(pending: Mapping[str, list[str]], references: Sequence[str]) -> str:
    """``runbook parameter(s) ['A', 'B']``: which runbook parameters hold these references."""
    wanted = set(references)
    users = sorted(
        name
        for name, items in pending.items()
        if any(set(REFERENCE.findall(item)) & wanted for item in items)
    )
    return f"runbook parameter(s) {users}"
