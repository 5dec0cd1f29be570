"""Provider metadata read by Airflow's ProvidersManager (``apache_airflow_provider`` entry point).

Connections reuse the Amazon provider's ``aws`` connection type, so none is registered here: registering
it a second time would make Airflow warn about a duplicate connection type.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

PACKAGE_NAME = "airflow-ssm-delegate"
INTEGRATION = "AWS Systems Manager Automation"


def _version() -> str:
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def _modules(*modules: str) -> dict[str, Any]:
    return {"integration-name": INTEGRATION, "python-modules": [f"airflow_ssm_delegate.{m}" for m in modules]}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider: its modules, extra link and the ``[ssm_delegate]`` configuration section."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "SSM Automation (delegated)",
        "description": (
            "Run AWS Systems Manager Automation runbooks from Airflow under delegated administration: "
            "approved runbooks under approved service roles only, pinned versions, validated parameters, "
            "audit tags and deferrable waiting."
        ),
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": (
                    "https://docs.aws.amazon.com/systems-manager/latest/userguide/systems-manager-automation.html"
                ),
                "tags": ["aws"],
            }
        ],
        "hooks": [_modules("hooks.automation")],
        "operators": [_modules("operators.automation", "operators.document")],
        "sensors": [_modules("sensors.automation")],
        "triggers": [_modules("triggers.automation")],
        "extra-links": ["airflow_ssm_delegate.links.automation.SsmAutomationExecutionLink"],
        "config": {
            "ssm_delegate": {
                "description": "Delegated administration of SSM Automation runbooks started from Airflow.",
                "options": {
                    "policy_file": {
                        "description": (
                            "Path of the delegation policy (YAML or JSON) that says which runbooks may run "
                            "under which service roles, with optional version and SHA-256 pins, required "
                            "tags and secret parameter names. Set by the deployment, never by DAG code. "
                            "When empty, the built-in rule applies: any runbook, but never without a "
                            "service role."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/config/ssm-delegation-policy.yaml",
                        "default": "",
                    }
                },
            }
        },
    }
