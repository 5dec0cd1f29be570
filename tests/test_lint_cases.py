"""Every lint rule has a failing and a passing example under tests/lint_cases/.

A failing example marks each line a finding must point at with ``# expect: CODE [CODE...]`` (for JSON,
which has no comments, a sidecar ``<file>.expect`` holds ``LINE CODE`` rows). The test asserts the exact
multiset of (line, code) — so line numbers are checked, and so are findings nobody expected.

SSM025 (unused parameter) is counted only in its own examples: most examples declare a parameter they
do not need, and that warning says nothing about the rule each example is about.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from airflow_ssm_delegate.documents.lint import RULES, Finding, lint_file

CASES = Path(__file__).parent / "lint_cases"
FAILING = sorted(p for p in CASES.iterdir() if "_fail" in p.name and p.suffix in (".yaml", ".json"))
PASSING = sorted(p for p in CASES.iterdir() if "_pass" in p.name)
EXPECT = re.compile(r"#\s*expect:\s*((?:SSM\d{3}\s*)+)")


def expected_findings(path: Path) -> Counter[tuple[int, str]]:
    sidecar = path.with_name(path.name + ".expect")
    if sidecar.exists():
        rows = [line.split() for line in sidecar.read_text().splitlines() if line.strip()]
        return Counter((int(line), code) for line, code in rows)
    expected: Counter[tuple[int, str]] = Counter()
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECT.search(text)
        if match:
            expected.update((number, code) for code in match.group(1).split())
    return expected


def findings(path: Path) -> list[Finding]:
    own = path.name.startswith("SSM025")
    return [finding for finding in lint_file(path) if own or finding.code != "SSM025"]


@pytest.mark.parametrize("path", FAILING, ids=lambda p: p.name)
def test_failing_example_reports_exactly_the_marked_findings(path: Path) -> None:
    expected = expected_findings(path)
    assert expected, f"{path.name} marks no expected finding"
    found = Counter((finding.line, finding.code) for finding in findings(path))
    assert found == expected, [str(f) for f in findings(path)]


@pytest.mark.parametrize("path", PASSING, ids=lambda p: p.name)
def test_passing_example_is_clean(path: Path) -> None:
    assert [str(finding) for finding in findings(path)] == []


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_rule_has_a_failing_and_a_passing_example(code: str) -> None:
    failing = [p for p in FAILING if code in {c for _, c in expected_findings(p)}]
    own_failing = [p for p in failing if p.name.startswith(code)]
    assert own_failing, f"no failing example for {code}"
    assert any(p.name.startswith(code) for p in PASSING), f"no passing example for {code}"
