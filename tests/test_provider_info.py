"""Provider registration: Airflow's ProvidersManager and `airflow providers list` see the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import jsonschema

from airflow_ssm_delegate.get_provider_info import get_provider_info

AIRFLOW = Path(sys.executable).with_name("airflow")


def test_provider_info_matches_airflows_schema() -> None:
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-ssm-delegate"
    assert "connection-types" not in info  # the Amazon provider's "aws" type is reused, not re-registered
    option = info["config"]["ssm_delegate"]["options"]["policy_file"]
    assert option["default"] == ""
    assert "policy" in option["description"]


def test_every_listed_module_and_link_imports() -> None:
    import importlib

    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for module in info[kind][0]["python-modules"]:
            importlib.import_module(module)
    module_name, class_name = info["extra-links"][0].rsplit(".", 1)
    assert getattr(importlib.import_module(module_name), class_name).name == "SSM Automation Execution"


def test_airflow_providers_list_shows_the_package() -> None:
    result = subprocess.run(
        [str(AIRFLOW), "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"},
        check=True,
    )
    providers = {item["package_name"]: item for item in json.loads(result.stdout)}
    assert providers["airflow-ssm-delegate"]["version"] == metadata.version("airflow-ssm-delegate")
