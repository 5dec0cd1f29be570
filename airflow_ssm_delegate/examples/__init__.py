"""Example configuration shipped with the package, for account 123456789012 (the local runtime's).

- ``delegation-policy.yaml``: the administrator's delegation policy (the one ``make demo`` provisions).
- ``iam-policies.json``: exactly what ``airflow-ssm-delegate iam --policy examples/delegation-policy.yaml
  --account 123456789012 --region us-east-1 documents/runbooks/*.yaml`` prints (a test keeps them equal):
  service role trust + least-privilege policy, and the operator policy compiled from the delegation policy
  (only the pinned runbooks, only the listed role, only executions carrying Airflow's audit tags), author
  policy. The story (``make demo``) gives the operator exactly this policy.

The settings below are shared by the example DAGs and every set-up that creates their Airflow pool
(``make demo``/``make airflow``, docker-compose's ``airflow-init``, the end-to-end tests): no drift.
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent
EXAMPLE_ACCOUNT = "123456789012"
EXAMPLE_REGION = "us-east-1"
EXAMPLE_ROLE_NAME = "SsmDelegateAutomationRole"

# Bounds the number of maintenance executions running at once across all DAG runs and backfills. The pool
# counts deferred tasks (``include_deferred``): a deferred task holds no worker slot, so without that
# neither max_active_tasks nor the pool would limit how many long executions run at once (AWS allows 100
# concurrent automations per account).
AUTOMATION_POOL = "ssm_automation"
AUTOMATION_POOL_SLOTS = 2
AUTOMATION_POOL_DESCRIPTION = (
    "Concurrent SSM Automation executions of the example DAGs (deferred tasks count)"
)


# The fleet example (dags/fleet_patch_maintenance.py, FleetPatchInstance in delegation-policy.yaml): the
# CloudWatch alarm the policy requires on every fleet execution, and where the policy lets it patch.
FLEET_RUNBOOK = "FleetPatchInstance"
FLEET_ALARM = "fleet-patch-errors"
FLEET_ACCOUNTS = ("111122223333", "444455556666")
FLEET_REGIONS = ("us-east-1", "eu-west-1")


def pool_set_command(airflow: str = "airflow", slots: int = AUTOMATION_POOL_SLOTS) -> list[str]:
    """The ``airflow pools set`` command line that creates the example pool (with ``slots`` slots)."""
    return [
        airflow,
        "pools",
        "set",
        AUTOMATION_POOL,
        str(slots),
        AUTOMATION_POOL_DESCRIPTION,
        "--include-deferred",
    ]
