"""Reading the administrator's policy file: each mistake is a ``PolicyFileError`` naming the key and the fix.

Split from ``policy`` (the decisions) and imported only when a file is loaded, so the cluster policy's
parse-time import of ``policy`` stays light.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from airflow_ssm_delegate.fanout import ACCOUNT_OR_OU, REGION, Cap, FanOutRule
from airflow_ssm_delegate.policy import (
    AUDIT_TAG_KEYS,
    CONFIG_OPTION,
    MAX_START_TAGS,
    ROLE_ARN,
    DelegationPolicy,
    DocumentRule,
    PolicyFileError,
    iam_pattern,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[1-9]\d*$")


@functools.lru_cache(maxsize=8)
def load_policy_file(path: str, mtime_ns: int, size: int) -> DelegationPolicy:
    """One parse per file version: the key changes whenever the administrator edits the file."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyFileError(
            path, CONFIG_OPTION, f"cannot read the file ({error})", "Make it a readable UTF-8 file."
        ) from None
    except yaml.YAMLError as error:
        raise PolicyFileError(
            path, "(syntax)", f"not valid YAML or JSON: {error}", "Fix the syntax at the position shown."
        ) from None
    return parse_policy(data, path)


def parse_policy(data: Any, source: str) -> DelegationPolicy:
    """Validate parsed policy content (YAML or JSON mapping); errors name ``source`` and the key."""
    if not isinstance(data, Mapping):
        raise PolicyFileError(
            source,
            "(top level)",
            f"expected a mapping, got {_kind(data)}",
            "Write a YAML mapping with 'require_service_role' and 'documents' keys.",
        )
    _reject_unknown_keys(source, "", data, {"require_service_role", "documents"})
    require = data.get("require_service_role", True)
    if not isinstance(require, bool):
        raise PolicyFileError(
            source,
            "require_service_role",
            f"expected true or false, got {require!r}",
            "Write require_service_role: true (the default) or false.",
        )
    if "documents" not in data:
        raise PolicyFileError(
            source,
            "documents",
            "missing",
            "List the runbooks that may start (write 'documents: {}' to refuse every runbook).",
        )
    entries = data["documents"] if data["documents"] is not None else {}
    if not isinstance(entries, Mapping):
        raise PolicyFileError(
            source,
            "documents",
            f"expected a mapping of runbook name or ARN to rules, got {_kind(entries)}",
            "Write one entry per runbook, e.g. 'LaunchTaggedInstance: {roles: [...]}'.",
        )
    documents = {
        str(name): _parse_document_rule(source, str(name), entry, require) for name, entry in entries.items()
    }
    return DelegationPolicy(source=source, require_service_role=require, documents=documents)


def _parse_document_rule(source: str, name: str, entry: Any, require_service_role: bool) -> DocumentRule:
    """One ``documents`` entry; a ``default_role`` with no ``roles`` becomes the only role allowed."""
    key = f"documents.{name}"
    if entry is None:
        entry = {}
    if not isinstance(entry, Mapping):
        raise PolicyFileError(
            source,
            key,
            f"expected a mapping of rules, got {_kind(entry)}",
            "Write e.g. '{roles: [arn:aws:iam::123456789012:role/Name]}'.",
        )
    _reject_unknown_keys(
        source,
        key,
        entry,
        {
            "roles",
            "default_role",
            "version",
            "sha256",
            "required_tags",
            "secret_parameters",
            "fan_out",
            "required_alarm",
        },
    )
    roles = tuple(_string_list(source, f"{key}.roles", entry.get("roles", [])))
    for pattern in roles:
        if not pattern.startswith("arn:"):
            raise PolicyFileError(
                source,
                f"{key}.roles",
                f"{pattern!r} is not a role ARN pattern",
                "Write full ARNs; '*' and '?' work as in IAM policies.",
            )
    default_role = entry.get("default_role")
    if default_role is not None:
        if not isinstance(default_role, str) or not ROLE_ARN.match(default_role):
            raise PolicyFileError(
                source,
                f"{key}.default_role",
                f"{default_role!r} is not an IAM role ARN",
                "Write arn:aws:iam::ACCOUNT:role/NAME.",
            )
        if not roles:
            roles = (default_role,)
        elif not any(iam_pattern(p).fullmatch(default_role) for p in roles):
            raise PolicyFileError(
                source,
                f"{key}.default_role",
                f"{default_role} matches none of 'roles'",
                "Add it to roles or pick a default that roles allow.",
            )
    if not roles and require_service_role:
        raise PolicyFileError(
            source,
            f"{key}.roles",
            "missing: with require_service_role the runbook could never start",
            "List the roles it may run under, or set default_role.",
        )
    version = entry.get("version")
    if version is not None and (isinstance(version, bool) or not _VERSION.match(str(version))):
        raise PolicyFileError(
            source,
            f"{key}.version",
            f"{version!r} is not a document version number",
            'Pin a number such as "3" ($DEFAULT and $LATEST are not pins).',
        )
    sha256 = entry.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.match(sha256.lower())):
        raise PolicyFileError(
            source,
            f"{key}.sha256",
            f"{sha256!r} is not a SHA-256 hex digest",
            "Copy the Hash of the approved version from DescribeDocument (64 hex digits).",
        )
    return DocumentRule(
        document=name,
        roles=roles,
        default_role=default_role,
        version=str(version) if version is not None else None,
        sha256=sha256.lower() if sha256 else None,
        required_tags=_required_tags(source, f"{key}.required_tags", entry.get("required_tags") or {}),
        secret_parameters=frozenset(
            _string_list(source, f"{key}.secret_parameters", entry.get("secret_parameters", []))
        ),
        fan_out=_fan_out(source, f"{key}.fan_out", entry["fan_out"]) if "fan_out" in entry else None,
        required_alarm=_required_alarm(source, f"{key}.required_alarm", entry.get("required_alarm")),
    )


_FAN_OUT_CAPS = (
    "max_concurrency",
    "max_errors",
    "target_location_max_concurrency",
    "target_location_max_errors",
)


def _fan_out(source: str, key: str, value: Any) -> FanOutRule:
    """A runbook's ``fan_out`` bounds: accounts/OUs, regions, execution role names and rate caps."""
    if not isinstance(value, Mapping):
        raise PolicyFileError(
            source,
            key,
            f"expected a mapping of fan-out rules, got {_kind(value)}",
            'Write e.g. \'{accounts: ["111122223333"], regions: [eu-west-1], max_concurrency: "10%"}\'.',
        )
    _reject_unknown_keys(source, key, value, {"accounts", "regions", "execution_role_names", *_FAN_OUT_CAPS})
    accounts = _string_list(source, f"{key}.accounts", _as_strings(value.get("accounts", [])))
    for account in accounts:
        if not ACCOUNT_OR_OU.match(account):
            raise PolicyFileError(
                source,
                f"{key}.accounts",
                f"{account!r} is not a 12-digit account id, an OU id (ou-...) or a root id (r-...)",
                'Quote account ids ("011122223333") so YAML keeps leading zeros.',
            )
    regions = _string_list(source, f"{key}.regions", value.get("regions", []))
    for region in regions:
        if not REGION.match(region):
            raise PolicyFileError(
                source, f"{key}.regions", f"{region!r} is not a region name", "Write e.g. eu-west-1."
            )
    caps: dict[str, Cap | None] = {}
    for name in _FAN_OUT_CAPS:
        try:
            caps[name] = Cap.parse(value[name]) if value.get(name) is not None else None
        except ValueError as error:
            raise PolicyFileError(
                source,
                f"{key}.{name}",
                f"not a cap ({error})",
                'Write a number such as 10, a percentage such as "10%", or both as a list: [10, "10%"].',
            ) from None
    return FanOutRule(
        accounts=tuple(accounts),
        regions=tuple(regions),
        execution_role_names=tuple(
            _string_list(source, f"{key}.execution_role_names", value.get("execution_role_names", []))
        ),
        **caps,
    )


def _as_strings(value: Any) -> Any:
    """Account ids written unquoted arrive as ints (a leading 0 even makes YAML read octal): as text, a
    12-digit one is kept and any other fails the account check, whose fix says to quote them."""
    if isinstance(value, list):
        return [str(item) if isinstance(item, int) and not isinstance(item, bool) else item for item in value]
    return value


def _required_alarm(source: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise PolicyFileError(
            source,
            key,
            f"{value!r} is not a CloudWatch alarm name",
            "Write the alarm's name (1-255 characters), e.g. required_alarm: fleet-patch-errors.",
        )
    return value


def _required_tags(source: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise PolicyFileError(
            source,
            key,
            f"expected a mapping of tag key to value, got {_kind(value)}",
            "Write e.g. '{CostCenter: \"cc-1234\"}'.",
        )
    if any(k.lower().startswith("aws:") for k in value):
        raise PolicyFileError(
            source, key, "tag keys starting with 'aws:' are reserved by AWS", "Rename them."
        )
    if len(value) > MAX_START_TAGS - len(AUDIT_TAG_KEYS):
        raise PolicyFileError(
            source,
            key,
            f"{len(value)} required tags leave no room: AWS accepts {MAX_START_TAGS} tags at "
            f"start and Airflow adds {len(AUDIT_TAG_KEYS)} audit tags",
            f"Keep at most {MAX_START_TAGS - len(AUDIT_TAG_KEYS)} required tags.",
        )
    return {k: "" if v is None else str(v) for k, v in value.items()}


def _string_list(source: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise PolicyFileError(
            source,
            key,
            f"expected a list of non-empty strings, got {value!r}",
            "Write a YAML list, e.g. ['a', 'b'].",
        )
    return value


def _reject_unknown_keys(source: str, prefix: str, data: Mapping[Any, Any], known: Collection[str]) -> None:
    for key in data:
        if key not in known:
            raise PolicyFileError(
                source,
                f"{prefix}.{key}" if prefix else str(key),
                "unknown key",
                f"Use one of: {', '.join(sorted(known))} (check the spelling).",
            )


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
