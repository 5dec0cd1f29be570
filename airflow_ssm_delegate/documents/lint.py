"""Offline runbook lint: the mistakes AWS would otherwise report only when the runbook runs.

Structural rules come from the model (the same checks that make the runtime refuse a document); the
semantic ones only an author needs live in ``lint_steps`` (actions and inputs, reachability, references,
outputs) and ``lint_document`` (parameter defaults, the service role, durations and the 12-hour limit).
Every finding has a code (``RULES``) and the source line, printed as ``file:line: CODE message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path as FilePath
from typing import Any

from airflow_ssm_delegate.documents import lint_document, lint_inputs, lint_steps
from airflow_ssm_delegate.documents.model import structural_problems
from airflow_ssm_delegate.documents.source import Path, SourceError, format_path, line_of, load_source

RULES: dict[str, str] = {
    "SSM001": "document structure (keys, types, required fields)",
    "SSM002": "schemaVersion is '0.3'",
    "SSM003": "action is a documented aws:* action",
    "SSM004": "required inputs of the action are present",
    "SSM005": "inputs are ones the action accepts",
    "SSM006": "step names are valid",
    "SSM007": "step names are unique",
    "SSM008": "nextStep / onFailure / onCancel / branch targets exist",
    "SSM009": "every step is reachable",
    "SSM010": "every {{ }} reference resolves",
    "SSM011": "parameter declarations are well-formed",
    "SSM012": "defaults and allowedValues are consistent with the parameter's type and constraints",
    "SSM013": "allowedPattern is a valid regular expression",
    "SSM014": "runbook outputs name real step outputs",
    "SSM015": "assumeRole is a reference to a declared String parameter",
    "SSM016": "a runbook that can run over 12 hours has a service role",
    "SSM017": "executeAwsApi / assert / waitFor name a real Service and Api",
    "SSM018": "step output Selectors are valid JSONPath",
    "SSM019": "aws:sleep Duration is ISO-8601 (at most 7 days) or Timestamp",
    "SSM020": "literal input values are ones the action accepts (states, tag lists, counts)",
}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lint_data(data: Any, lines: Mapping[Path, int], filename: str) -> list[Finding]:
    """Every finding for already-loaded runbook ``data``, in source order."""
    problems = structural_problems(data)
    if isinstance(data, Mapping):
        steps = lint_steps.steps_of(data)
        for step in [*steps, *lint_steps.loop_bodies(steps)]:
            problems.extend(lint_steps.action_problems(step))
            problems.extend(lint_inputs.input_value_problems(step))
        problems.extend(lint_steps.reachability_problems(steps))
        problems.extend(lint_steps.reference_problems(data, steps))
        problems.extend(lint_steps.output_problems(data, steps))
        problems.extend(lint_document.pattern_problems(data))
        problems.extend(lint_document.parameter_value_problems(data))
        problems.extend(lint_document.role_problems(data))
        problems.extend(lint_document.sleep_problems(data, steps))
        problems.extend(lint_document.session_problems(data, steps))
    findings = [Finding(filename, line_of(dict(lines), p.path) or 1, p.code, p.message) for p in problems]
    return sorted(findings, key=_source_order)


def lint_text(content: str | bytes, filename: str = "<runbook>") -> list[Finding]:
    """Lint runbook text (YAML or JSON)."""
    try:
        source = load_source(content)
    except SourceError as exc:
        return [Finding(filename, exc.line or 1, "SSM001", str(exc))]
    repeated = [
        Finding(
            filename,
            line,
            "SSM001",
            f"key {format_path(path)} is written twice; YAML keeps only the last",
        )
        for path, line in source.duplicates
    ]
    return sorted([*repeated, *lint_data(source.data, source.lines, filename)], key=_source_order)


def _source_order(finding: Finding) -> tuple[int, str]:
    return finding.line, finding.code


def lint_file(path: str | FilePath) -> list[Finding]:
    """Lint the runbook file at ``path``; an unreadable file is a finding, not a crash."""
    try:
        content = FilePath(path).read_bytes()
    except OSError as exc:
        return [Finding(str(path), 1, "SSM001", f"cannot read the file: {exc.strerror or exc}")]
    return lint_text(content, str(path))


__all__ = ["RULES", "Finding", "lint_data", "lint_file", "lint_text"]


__all__ = ["RULES", "Finding", "lint_data", "lint_file", "lint_text"]
