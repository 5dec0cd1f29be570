"""What ``airflow_ssm_delegate.compat`` decides on the running Airflow minor, and what the demo does with a
work directory another Airflow version made. Runs on every cell of the version matrix."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate import compat
from airflow_ssm_delegate.local import demo
from tests.test_operator import FakeTaskInstance, context

if TYPE_CHECKING:
    from pathlib import Path

# Checked on each minor's wheel: BaseTrigger.on_kill and the task state store arrived in 3.3.
ON_KILL_BY_MINOR = {(3, 0): False, (3, 1): False, (3, 2): False, (3, 3): True}


@pytest.mark.parametrize(
    ("version", "minor"),
    [("3.0.6", (3, 0)), ("3.1.8", (3, 1)), ("3.3.2rc1", (3, 3)), ("3.2.2+local", (3, 2))],
)
def test_minor_of(version: str, minor: tuple[int, int]) -> None:
    assert compat.minor_of(version) == minor


def test_feature_flags_match_this_minor() -> None:
    assert compat.AIRFLOW_MINOR in ON_KILL_BY_MINOR, f"unknown Airflow minor {compat.AIRFLOW_VERSION}"
    assert compat.HAS_TRIGGER_ON_KILL is ON_KILL_BY_MINOR[compat.AIRFLOW_MINOR]
    assert compat.HAS_TASK_STATE_STORE is (compat.AIRFLOW_MINOR >= (3, 3))


def test_hitl_operators_exist_from_3_1() -> None:
    """On 3.0 the standard provider's HITL module raises AirflowOptionalProviderFeatureException on import."""
    assert compat.HAS_HITL is (compat.AIRFLOW_MINOR >= (3, 1))
    operator_class = compat.hitl_operator_class()
    assert (operator_class is not None) is compat.HAS_HITL
    if operator_class is not None:
        assert operator_class.__name__ == "HITLOperator"


def test_names_resolve_to_the_classes_this_airflow_uses() -> None:
    """The exceptions are the ones Airflow's task runner catches (``airflow.sdk.exceptions`` where it has
    them, else ``airflow.exceptions``): a PolicyViolation fails the task without retries on every minor."""
    from airflow_ssm_delegate.policy import PolicyViolation

    sdk_exceptions = importlib.import_module("airflow.sdk.exceptions")
    for name in ("AirflowFailException", "AirflowSkipException", "TaskDeferred"):
        home = (
            sdk_exceptions if hasattr(sdk_exceptions, name) else importlib.import_module("airflow.exceptions")
        )
        assert getattr(compat, name) is getattr(home, name), name
    assert issubclass(PolicyViolation, compat.AirflowFailException)


def test_dag_bag_class_is_the_one_this_airflow_has() -> None:
    bag_class = compat.dag_bag_class()
    expected = (
        "airflow.dag_processing.dagbag"
        if importlib.util.find_spec("airflow.dag_processing.dagbag")
        else "airflow.models.dagbag"
    )
    assert bag_class.__module__ == expected


def test_clearing_a_deferred_task_is_explained_where_triggers_have_no_on_kill() -> None:
    note = compat.trigger_on_kill_note("exec-1")
    if compat.HAS_TRIGGER_ON_KILL:
        assert note is None
    else:
        assert note is not None
        assert compat.AIRFLOW_VERSION in note
        assert "does NOT cancel automation execution exec-1" in note
        assert "re-attaches" in note


def test_the_deferring_task_logs_the_note_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_ssm_delegate.operators import automation

    operator = automation.SsmStartAutomationExecutionOperator(
        task_id="launch", document_name="Doc", service_role_arn="arn:aws:iam::1:role/R", deferrable=True
    )
    logged: list[str] = []
    monkeypatch.setattr(type(operator), "log", property(lambda _: _Recorder(logged)), raising=False)
    with pytest.raises(compat.TaskDeferred):
        operator._defer("exec-2")
    expected = compat.trigger_on_kill_note("exec-2")
    assert logged == ([] if expected is None else [expected])
    operator.cancel_on_kill = False  # nothing would be cancelled anyway: nothing to explain
    logged.clear()
    with pytest.raises(compat.TaskDeferred):
        operator._defer("exec-2")
    assert logged == []


class _Recorder:
    """Collects warning texts (the operator's ``log`` is Airflow's structlog logger on 3.3, stdlib before)."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def warning(self, message: str, *args: Any) -> None:
        self.sink.append(message % args if args else message)

    def info(self, *args: Any) -> None:
        pass


def test_context_without_state_store_is_the_pre_3_3_shape() -> None:
    assert "task_state_store" not in context(FakeTaskInstance(), state_store=False)
    assert "task_state_store" in context(FakeTaskInstance())


# ---------------------------------------------------------------------------------------- demo work dir


def test_a_fresh_or_same_version_work_directory_is_accepted(tmp_path: Path) -> None:
    demo.check_workdir_version(tmp_path / "none", "3.0.6")
    demo.record_workdir_version(tmp_path / "demo", "3.0.6")
    demo.check_workdir_version(tmp_path / "demo", "3.0.6")
    assert (tmp_path / "demo" / demo.AIRFLOW_VERSION_FILE).read_text() == "3.0.6\n"


def test_a_work_directory_of_another_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    demo.record_workdir_version(workdir, "3.3.2")
    with pytest.raises(demo.DemoFailure) as refused:
        demo.check_workdir_version(workdir, "3.0.6")
    message = str(refused.value)
    assert "Airflow 3.3.2" in message
    assert "Airflow 3.0.6" in message
    assert f"rm -rf {workdir}" in message
    assert "--fresh" in message


def test_a_database_without_a_recorded_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "airflow.db").write_bytes(b"")
    with pytest.raises(demo.DemoFailure, match=r"version not recorded"):
        demo.check_workdir_version(tmp_path, "3.1.8")


def test_the_demo_exits_2_on_a_stale_work_directory_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.record_workdir_version(tmp_path, "2.99.0")
    monkeypatch.setattr(demo, "LocalAutomationServer", None)  # starting the runtime would raise TypeError
    assert demo.main(["--workdir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert f"this is Airflow {demo.installed_airflow_version()}" in error
    assert "Traceback" not in error


def test_fresh_replaces_a_stale_work_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "demo"
    demo.record_workdir_version(workdir, "2.99.0")

    class Stop(Exception):
        pass

    def no_server(**_: Any) -> Any:
        raise Stop

    monkeypatch.setattr(demo, "LocalAutomationServer", no_server)
    with pytest.raises(Stop):
        demo.main(["--workdir", str(workdir), "--fresh"])
    assert (workdir / demo.AIRFLOW_VERSION_FILE).read_text() == demo.installed_airflow_version() + "\n"
