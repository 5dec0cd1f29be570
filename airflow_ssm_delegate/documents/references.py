"""``{{ ... }}`` expressions in runbooks: find them (lint, iam) and substitute them (local engine)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

#: ``{{ Name }}``, ``{{ step.Output }}``, ``{{ global:REGION }}``, ``{{ ssm:/path/param }}``. Text such as
#: ``{{ color: red; }}`` inside a script or an HTML body is not a reference (AWS leaves it as written).
REFERENCE = re.compile(r"\{\{\s*([\w-]+(?:[.:][\w./:-]*)?)\s*\}\}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings(item)]
    return []


def find_references(value: Any) -> list[str]:
    """Every ``{{ X }}`` expression (stripped, in order, repeats kept) in any string nested in ``value``."""
    return [match.group(1) for text in _strings(value) for match in REFERENCE.finditer(text)]


def _as_text(value: Any) -> str:
    """How a value reads inside a longer string: JSON for lists, maps and booleans, else ``str``."""
    if isinstance(value, (list, tuple, Mapping, bool)) or value is None:
        return json.dumps(value)
    return str(value)


def render(value: Any, resolve: Callable[[str], Any]) -> Any:
    """A copy of ``value`` with every reference replaced by ``resolve(expression)``.

    A string that is exactly one ``{{ X }}`` becomes the resolved value itself, keeping its type (so an
    ``InstanceIds`` list stays a list, as AWS passes it); inside a longer string each reference becomes
    its text. Mapping keys are left as written. In a list, an item that is exactly one reference to a
    list is spliced in (``InstanceIds: ["{{ find.InstanceIds }}"]`` is the found ids, not a list in a
    list), as published runbooks rely on AWS doing.
    """
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return resolve(whole.group(1))
        return REFERENCE.sub(lambda match: _as_text(resolve(match.group(1))), value)
    if isinstance(value, Mapping):
        return {key: render(item, resolve) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        rendered: list[Any] = []
        for item in value:
            result = render(item, resolve)
            spliced = isinstance(item, str) and REFERENCE.fullmatch(item) and isinstance(result, list)
            rendered.extend(result) if spliced else rendered.append(result)
        return rendered
    return value
