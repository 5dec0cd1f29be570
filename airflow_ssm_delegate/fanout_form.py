"""Trigger-form fields for the locations of a fan-out start, offered as the delegation policy allows.

A form that offers any account or Region lets an operator pick one the policy refuses and learn it only when
the task fails. The runbook's ``fan_out`` rule is read when the DAG is parsed (the cluster policy reads the
same file then), so the form offers exactly the accounts and Regions it allows, as labelled multi-selects
(Airflow's ``type: array`` + ``examples`` pick list, ``values_display`` for the labels), all chosen by
default. Without a rule for them the fields are free lists checked against AWS's patterns, and the start
is checked again at run time either way.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import TYPE_CHECKING

from airflow.sdk import Param

from airflow_ssm_delegate.fanout import ACCOUNT_OR_OU, REGION

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_ssm_delegate.policy import DelegationPolicy

ACCOUNTS_PARAM = "accounts"
REGIONS_PARAM = "regions"


def location_params(document_name: str, policy: DelegationPolicy | None = None) -> dict[str, Param]:
    """``accounts`` and ``regions`` Params for starts of ``document_name`` under ``policy``.

    ``policy`` defaults to the deployment's (``[ssm_delegate] policy_file``); a runbook the policy does not
    list gets the free fields (the cluster policy refuses the DAG anyway, naming the rule).
    """
    if policy is None:
        from airflow_ssm_delegate.policy import DelegationPolicy

        policy = DelegationPolicy.from_config()
    rule = (policy.documents or {}).get(document_name)
    fan_out = rule.fan_out if rule is not None else None
    accounts = fan_out.accounts if fan_out is not None else ()
    regions = fan_out.regions if fan_out is not None else ()
    return {
        ACCOUNTS_PARAM: _choice(
            "Accounts",
            "Accounts (or organizational units) to run in",
            accounts,
            {account: _account_label(account) for account in accounts},
            ACCOUNT_OR_OU.pattern,
        ),
        REGIONS_PARAM: _choice(
            "Regions",
            "Regions to run in, in every chosen account",
            regions,
            {region: f"{region} — {_region_names().get(region, region)}" for region in regions},
            REGION.pattern,
        ),
    }


def _choice(title: str, what: str, allowed: Sequence[str], labels: dict[str, str], pattern: str) -> Param:
    if not allowed:
        return Param(
            [],
            type="array",
            items={"type": "string", "pattern": pattern},
            uniqueItems=True,
            title=title,
            description=f"{what}; the delegation policy does not restrict them for this runbook. Empty: the "
            "starting account or Region.",
        )
    return Param(
        list(allowed),
        type="array",
        items={"type": "string", "enum": list(allowed)},
        minItems=1,
        uniqueItems=True,
        examples=list(allowed),
        values_display=labels,
        title=title,
        description=f"{what}: the ones the delegation policy allows for this runbook.",
    )


def _account_label(account: str) -> str:
    if account.startswith("ou-"):
        return f"Organizational unit {account}"
    if account.startswith("r-"):
        return f"Organization root {account}"
    return f"Account {account}"


@functools.cache
def _region_names() -> dict[str, str]:
    """Region descriptions (e.g. "US East (N. Virginia)") from botocore's partitions file: small, and
    read without importing botocore's loaders at parse time."""
    try:
        data = json.loads(files("botocore").joinpath("data", "partitions.json").read_text())
    except (OSError, ValueError, ModuleNotFoundError):
        return {}
    return {
        name: str(region.get("description", name))
        for partition in data.get("partitions", [])
        for name, region in partition.get("regions", {}).items()
    }
