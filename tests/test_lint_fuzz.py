"""Lint and the model never raise on any input: seeded mutations of real runbooks.

Seeds are our bundled runbooks, tests/lint_cases and, when ``SSM_DELEGATE_CORPUS`` names a directory,
the published runbooks in it. Each seed is mutated deterministically (``random.Random(seed)``) into a
bounded number of variants: truncation, byte flips, binary junk, YAML aliases, deep nesting, huge
scalars, hostile ``allowedPattern``s, wrong types in every slot. For each, ``lint_text`` returns
findings (never raises), ``lint`` on the command line exits 0 or 1, and ``parse_runbook`` either
returns a model or raises ``RunbookError`` — nothing else. ``SSM_DELEGATE_FUZZ_CASES`` raises the count.
"""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest
import yaml

from airflow_ssm_delegate.cli import main
from airflow_ssm_delegate.documents.lint import SEVERITIES, lint_text
from airflow_ssm_delegate.documents.model import (
    ParameterValidationError,
    RunbookError,
    parse_runbook,
    resolve_parameters,
)

HERE = Path(__file__).parent
BUNDLED = HERE.parent / "airflow_ssm_delegate" / "documents" / "runbooks"
CASES_PER_SEED = int(os.environ.get("SSM_DELEGATE_FUZZ_CASES", "4"))
MAX_CORPUS_SEEDS = 40


def _seeds() -> list[Path]:
    paths = sorted(BUNDLED.glob("*.y*ml")) + sorted((HERE / "lint_cases").glob("*.*"))
    corpus = os.environ.get("SSM_DELEGATE_CORPUS")
    if corpus and Path(corpus).is_dir():
        found = sorted(p for p in Path(corpus).rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
        paths += found[:MAX_CORPUS_SEEDS]
    return [p for p in paths if p.is_file() and not p.name.endswith(".expect")]


HOSTILE_PATTERNS = ["(", "^(a|aa)+$", "\\", "[", "\\p{", "\\x{110000}", "(?<n>a)\\k<m>", "a{99999999}", "\\Q"]
HOSTILE_VALUES: list[object] = [None, True, 0, -1, 1.5, "", "x" * 100_000, [], {}, [[[]]], {"a": {"b": None}}]


def _mutate_data(data: object, rng: random.Random) -> object:
    """Replace one random value somewhere in ``data`` with a hostile one."""
    if isinstance(data, dict) and data:
        key = rng.choice(list(data))
        if rng.random() < 0.4:
            data[key] = rng.choice(HOSTILE_VALUES)
        elif key == "allowedPattern" or rng.random() < 0.1:
            data[key if rng.random() < 0.5 else "allowedPattern"] = rng.choice(HOSTILE_PATTERNS)
        else:
            data[key] = _mutate_data(data[key], rng)
    elif isinstance(data, list) and data:
        index = rng.randrange(len(data))
        data[index] = _mutate_data(data[index], rng)
    else:
        return rng.choice(HOSTILE_VALUES)
    return data


def _variants(text: bytes, rng: random.Random) -> list[bytes]:
    """``CASES_PER_SEED`` mutated copies of ``text``, each mutation chosen by ``rng``."""
    out: list[bytes] = []
    for _ in range(CASES_PER_SEED):
        kind = rng.randrange(8)
        if kind == 0:
            out.append(text[: rng.randrange(len(text) + 1)])  # truncated
        elif kind == 1:
            flipped = bytearray(text)
            for _ in range(rng.randrange(1, 8)):
                if flipped:
                    flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            out.append(bytes(flipped))
        elif kind == 2:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 512))))  # binary
        elif kind == 3:
            cut = rng.randrange(len(text) + 1)
            out.append(
                text[:cut] + rng.choice([b"{{", b"}}", b"&a ", b"*a", b"\t", b"[", b"- ", b":"]) + text[cut:]
            )
        elif kind == 4:
            laughs = ["a: &a [x, x, x, x, x, x, x, x]"]
            for i in range(9):
                alias = "a" if i == 0 else f"a{i - 1}"
                laughs.append(f"a{i}: &a{i} [" + ", ".join([f"*{alias}"] * 8) + "]")
            out.append("\n".join(laughs).encode())  # a "billion laughs" document
        elif kind == 5:
            depth = rng.choice([50, 500, 5000])
            out.append(b"mainSteps: " + b"[" * depth + b"]" * depth)
        else:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                data = None
            mutated = _mutate_data(data, rng)
            out.append(
                yaml.safe_dump(mutated, allow_unicode=True).encode()
                if kind == 6
                else (yaml.safe_dump(mutated) * 2).encode()
            )
    return out


def _cases() -> list[tuple[str, bytes]]:
    cases = []
    for number, path in enumerate(_seeds()):
        rng = random.Random(f"{path.name}:{number}")
        cases += [
            (f"{path.name}#{i}", variant) for i, variant in enumerate(_variants(path.read_bytes(), rng))
        ]
    return cases


CASES = _cases()


def test_the_fuzz_has_seeds_and_cases() -> None:
    assert len(_seeds()) >= 40 and len(CASES) == len(_seeds()) * CASES_PER_SEED


@pytest.mark.parametrize(("name", "content"), CASES, ids=[name for name, _ in CASES])
def test_lint_and_the_model_never_raise(name: str, content: bytes) -> None:
    findings = lint_text(content, name)
    assert all(f.severity in SEVERITIES and f.line >= 1 and f.code.startswith("SSM") for f in findings)
    try:
        runbook = parse_runbook(content, source=name)
    except RunbookError:
        return
    with contextlib.suppress(ParameterValidationError):
        resolve_parameters(runbook, {})


def test_the_command_line_reports_mutated_files_with_exit_0_or_1(tmp_path: Path) -> None:
    files = []
    for index, (_, content) in enumerate(CASES[::25]):
        path = tmp_path / f"case{index}.yaml"
        path.write_bytes(content)
        files.append(str(path))
    assert main(["lint", "--format", "json", *files]) in (0, 1)
