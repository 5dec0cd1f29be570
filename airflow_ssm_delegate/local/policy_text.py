"""Policy documents as text: AWS's validation errors and where each statement sits.

``MatchedStatements`` of the policy simulator point at a statement by line and column, so the
positions come from the document text as given, not from a re-serialised copy. Validation reuses
moto's port of IAM's policy grammar (its messages are AWS's: "Syntax errors in policy.",
"Policy statement must contain resources.", ...) and adds the rules it lacks for the simulator's
inputs: an identity policy must not name a principal, a resource policy must.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from moto.iam.exceptions import MalformedPolicyDocument
from moto.iam.policy_validation import IAMPolicyDocumentValidator

from airflow_ssm_delegate.local.iam_eval import parse_operator, statements_of


class PolicyDocumentError(ValueError):
    """A policy the simulator refuses: AWS's ``MalformedPolicyDocument`` with what is wrong."""


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a policy document's text."""

    line: int
    column: int


def _position(text: str, offset: int) -> Position:
    line_start = text.rfind("\n", 0, offset) + 1
    return Position(text.count("\n", 0, offset) + 1, offset - line_start + 1)


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def statement_spans(text: str) -> list[tuple[Position, Position]]:
    """(start, end) of each statement: the start at its ``{``, the end just after its ``}``."""
    decoder = json.JSONDecoder()
    spans: list[tuple[int, int]] = []
    index = _skip_space(text, 0)
    if not text.startswith("{", index):
        return []
    index = _skip_space(text, index + 1)
    while index < len(text) and text[index] != "}":
        key, index = decoder.raw_decode(text, index)
        index = _skip_space(text, _skip_space(text, index) + 1)  # past the ':'
        value_start = index
        _, index = decoder.raw_decode(text, index)
        if key == "Statement":
            spans = _element_spans(text, value_start, index, decoder)
        index = _skip_space(text, index)
        if text.startswith(",", index):
            index = _skip_space(text, index + 1)
    return [(_position(text, start), _position(text, end)) for start, end in spans]


def _element_spans(text: str, start: int, end: int, decoder: json.JSONDecoder) -> list[tuple[int, int]]:
    if text[start] != "[":
        return [(start, end)]
    spans = []
    index = _skip_space(text, start + 1)
    while index < end and text[index] != "]":
        _, element_end = decoder.raw_decode(text, index)
        spans.append((index, element_end))
        index = _skip_space(text, element_end)
        if text.startswith(",", index):
            index = _skip_space(text, index + 1)
    return spans


def parse_policy(text: str, where: str, *, resource_policy: bool = False) -> dict[str, Any]:
    """The policy as a dict, or PolicyDocumentError naming the problem (``where``: which input)."""
    try:
        IAMPolicyDocumentValidator(text).validate()
    except MalformedPolicyDocument as error:
        if not (resource_policy and "must contain resources" in error.message):
            raise PolicyDocumentError(f"{error.message} ({where})") from None
    document = dict(json.loads(text))
    for index, statement in enumerate(statements_of(document), start=1):
        names_principal = "Principal" in statement or "NotPrincipal" in statement
        if names_principal and not resource_policy:
            raise PolicyDocumentError(
                f"Policy document should not specify a principal. ({where}, statement {index})"
            )
        if resource_policy and not names_principal:
            raise PolicyDocumentError(f"Missing required field Principal ({where}, statement {index})")
        for operator in statement.get("Condition", {}):
            if parse_operator(str(operator)) is None:
                raise PolicyDocumentError(
                    f"Invalid Condition type : {operator} ({where}, statement {index}); use one of AWS's "
                    "condition operators, optionally with ForAllValues:/ForAnyValue: and IfExists."
                )
    return document
