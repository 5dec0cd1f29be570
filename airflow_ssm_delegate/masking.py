"""Keep secret runbook parameters out of task logs and rendered template fields.

A parameter is secret when its name looks secret (password, secret, token, key, credential, private, or
a name Airflow's ``[core] sensitive_var_conn_names`` lists) or when the delegation policy marks it. Its
values are registered with Airflow's secrets masker, so every later log line is redacted too, and the
copy returned for logging shows ``***`` whatever the value's length (the masker skips very short values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Sequence

# connection_string: on Airflow's own list of sensitive names only from 3.1; masked on every minor here.
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|private|key|connection_?string", re.IGNORECASE
)
REDACTED = "***"


def is_secret_name(name: str, declared_secret: Collection[str] = ()) -> bool:
    """Whether values of parameter ``name`` must never be shown."""
    from airflow_ssm_delegate.compat import redact

    if name in declared_secret or SECRET_NAME.search(name):
        return True
    # Airflow redacts values of names it deems sensitive (its defaults plus the deployment's list).
    return redact("x", name) != "x"


def mask_parameters(
    parameters: Mapping[str, Sequence[str]], declared_secret: Collection[str] = ()
) -> dict[str, list[str]]:
    """Register secret values with Airflow's masker; return a copy of ``parameters`` that is safe to log."""
    from airflow_ssm_delegate.compat import mask_secret

    loggable: dict[str, list[str]] = {}
    for name, values in parameters.items():
        if is_secret_name(name, declared_secret):
            for value in values:
                mask_secret(value)  # no name: Airflow would then mask only names on its own list
            loggable[name] = [REDACTED] * len(values)
        else:
            loggable[name] = list(values)
    return loggable


def mask_parameter_values(parameters: Mapping[str, Any], declared_secret: Collection[str] = ()) -> None:
    """Register the secret values of task-level parameters (Python values, before API conversion).

    Operators call this right after templates are rendered, so the rendered-fields view in the UI and
    every log line show ``***`` instead of the value.
    """
    from airflow_ssm_delegate.compat import mask_secret

    for name, value in parameters.items():
        if is_secret_name(name, declared_secret):
            for leaf in _leaves(value):
                mask_secret(leaf)


def mask_task_parameters(document_name: Any, parameters: Mapping[str, Any] | None) -> None:
    """One call for operators, after rendering: mask secret-named and policy-declared secret values."""
    from airflow_ssm_delegate.policy import DelegationPolicy

    declared = DelegationPolicy.from_config().secret_parameters_for(str(document_name))
    mask_parameter_values(parameters or {}, declared)


def _leaves(value: Any) -> Iterator[str]:
    """Every scalar inside ``value`` as text (the masker's own dict walk only masks secret-named keys)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _leaves(item)
    elif value is not None and value != "":
        yield str(value)
