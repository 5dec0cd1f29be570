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
    assert "2 file(s) clean" in captured.err


def test_findings_print_file_line_code_and_fail(capsys: pytest.CaptureFixture[str]) -> None:
    path = CASES / "SSM007_fail.yaml"
    assert main(["lint", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{path}:11: SSM007 step name 'wait' is used twice; step names must be unique"]


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    path = CASES / "SSM014_fail.yaml"
    assert main(["lint", "--format", "json", str(path), str(CASES / "SSM014_pass.yaml")]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert [(f["file"], f["line"], f["code"]) for f in findings] == [
        (str(path), 13, "SSM014"),
        (str(path), 14, "SSM014"),
    ]
    assert all("not an output of a step" in f["message"] for f in findings)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"mainSteps: [unclosed\n", ":2: SSM001 not valid YAML/JSON"),
        (b"\xff\xfe", ":1: SSM001 not UTF-8 text"),
        (b"- just\n- a list\n", ":1: SSM001 a runbook must be a mapping"),
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
