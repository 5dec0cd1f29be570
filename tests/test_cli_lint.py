"""``airflow-ssm-delegate lint``: output formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_ssm_delegate.cli import main
from airflow_ssm_delegate.documents.bundled import BUNDLED_RUNBOOKS, runbook_path

CASES = Path(__file__).parent / "lint_cases"


def test_bundled_runbooks_lint_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", *(str(runbook_path(name)) for name in BUNDLED_RUNBOOKS)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{len(BUNDLED_RUNBOOKS)} file(s) clean" in captured.err


def test_findings_print_file_line_code_and_fail(capsys: pytest.CaptureFixture[str]) -> None:
    path = CASES / "SSM007_fail.yaml"
    assert main(["lint", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}:11: error: SSM007 step name 'wait' is used twice; step names must be unique"]


def test_json_format_has_file_line_code_severity_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    path = CASES / "SSM014_fail.yaml"
    assert main(["lint", "--format", "json", str(path), str(CASES / "SSM014_pass.yaml")]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert [(f["file"], f["line"], f["code"], f["severity"]) for f in findings] == [
        (str(path), 13, "SSM022", "warning"),
        (str(path), 14, "SSM014", "error"),
    ]
    assert "does not name a step" in findings[1]["message"]
    assert all(set(f) == {"file", "line", "code", "severity", "message"} for f in findings)


def test_warnings_alone_exit_0_and_text_shows_the_severity(capsys: pytest.CaptureFixture[str]) -> None:
    path = CASES / "SSM009_fail.yaml"
    assert main(["lint", str(path)]) == 0
    captured = capsys.readouterr()
    assert all(": warning: SSM009 " in line for line in captured.out.splitlines())
    assert "0 error, 0 policy, 1 warning in 1 file(s)" in captured.err


def test_a_policy_finding_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(CASES / "SSM016_fail.yaml")]) == 1
    assert ": policy: SSM016 " in capsys.readouterr().out


def test_errors_only_drops_policy_and_warning_findings(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(CASES / name) for name in ("SSM016_fail.yaml", "SSM009_fail.yaml", "SSM007_fail.yaml")]
    assert main(["lint", "--errors-only", "--format", "json", *files[:2]]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["lint", "--errors-only", "--format", "json", *files]) == 1
    assert {f["severity"] for f in json.loads(capsys.readouterr().out)} == {"error"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"mainSteps: [unclosed\n", ":2: error: SSM001 not valid YAML/JSON"),
        (b"\xff\xfe", ":1: error: SSM001 not UTF-8 text"),
        (b"- just\n- a list\n", ":1: error: SSM001 a runbook must be a mapping"),
    ],
)
def test_unparsable_files_are_findings_not_crashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert main(["lint", str(path)]) == 1
    assert expected in capsys.readouterr().out


def test_missing_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read the file" in capsys.readouterr().out
