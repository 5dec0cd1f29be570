"""SsmAutomationExecutionLink: console URL per partition, and the XCom round trip the worker performs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_ssm_delegate.links.automation import SsmAutomationExecutionLink

EXECUTION_ID = "4c1b7bdc-0a0e-4d8e-9f65-5a1c3b6b8d10"


@pytest.mark.parametrize(
    ("region", "partition", "url"),
    [
        (
            "eu-west-1",
            "aws",
            f"https://eu-west-1.console.aws.amazon.com/systems-manager/automation/execution/{EXECUTION_ID}"
            "?region=eu-west-1",
        ),
        (
            "cn-north-1",
            "aws-cn",
            f"https://cn-north-1.console.amazonaws.cn/systems-manager/automation/execution/{EXECUTION_ID}"
            "?region=cn-north-1",
        ),
        (
            "us-gov-west-1",
            "aws-us-gov",
            f"https://us-gov-west-1.console.amazonaws-us-gov.com/systems-manager/automation/execution/"
            f"{EXECUTION_ID}?region=us-gov-west-1",
        ),
        ("us-iso-east-1", "aws-iso", ""),  # no public console: no link rather than a wrong one
    ],
)
def test_console_url_follows_the_partition(region: str, partition: str, url: str) -> None:
    assert SsmAutomationExecutionLink.format_url(region, partition, EXECUTION_ID) == url


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_persisted_execution_becomes_the_link(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import XCom

    ti = RecordingTaskInstance()
    SsmAutomationExecutionLink.persist(
        {"ti": ti},  # type: ignore[typeddict-item]
        region_name="us-east-1",
        aws_partition="aws",
        execution_id=EXECUTION_ID,
    )
    link = SsmAutomationExecutionLink()
    ti_key = SimpleNamespace(dag_id="d", task_id="t", run_id="r", try_number=1, map_index=-1)
    # The worker reads the XCom back in finalize(); stand in for its XCom store with what was pushed.
    monkeypatch.setattr(XCom, "get_value", lambda *, ti_key, key: ti.pushed.get(key))
    assert link.get_link(None, ti_key=ti_key) == (  # type: ignore[arg-type]
        f"https://us-east-1.console.aws.amazon.com/systems-manager/automation/execution/{EXECUTION_ID}"
        "?region=us-east-1"
    )
    monkeypatch.setattr(XCom, "get_value", lambda *, ti_key, key: None)
    assert link.get_link(None, ti_key=ti_key) == ""  # type: ignore[arg-type]
    assert link.xcom_key == "_link_SsmAutomationExecutionLink"
