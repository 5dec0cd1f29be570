"""JSONPath selectors over API responses (outputs' Selector, PropertySelector) and JSON-safe values."""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse

if TYPE_CHECKING:
    from jsonpath_ng import JSONPath


class SelectorError(ValueError):
    """A selector is not valid JSONPath, or selects nothing."""


@lru_cache(maxsize=512)
def _compiled(selector: str) -> JSONPath:
    try:
        return parse(selector)
    except (JsonPathParserError, Exception) as error:  # jsonpath-ng raises several types on bad syntax
        raise SelectorError(f"Selector {selector!r} is not valid JSONPath: {error}") from None


def select(document: Any, selector: str) -> Any:
    """The value ``selector`` picks: one match as itself, several as a list; SelectorError on none."""
    matches = [match.value for match in _compiled(selector).find(document)]
    if not matches:
        raise SelectorError(f"Selector {selector!r} matched nothing in the response.")
    return matches[0] if len(matches) == 1 else matches


def json_safe(value: Any) -> Any:
    """boto3 response values as JSON types: timestamps ISO-8601, bytes base64, no ResponseMetadata."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "read"):  # a streaming body
        return json_safe(value.read())
    return str(value)
