"""Offline runbook lint: the mistakes AWS would otherwise report only when the runbook runs.

Structural rules come from the model (the same checks that make the runtime refuse a document); the
semantic ones only an author needs live in ``lint_steps`` (actions and inputs, reachability, references,
outputs) and ``lint_document`` (parameter defaults, the service role, durations and the 12-hour limit).
Every finding has a code (``RULES``) and the source line, printed as ``file:line: CODE message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from airflow_ssm_delegate.documents import lint_document, lint_inputs, lint_steps
from airflow_ssm_delegate.documents.model import structural_problems
from airflow_ssm_delegate.documents.source import Path, SourceError, format_path, line_of, load_source

ERROR, POLICY, WARNING = "error", "policy", "warning"
SEVERITIES = (ERROR, POLICY, WARNING)


@dataclass(frozen=True)
class Rule:
    """A lint rule: its severity and what it checks.

    ``error``: AWS would refuse the document or the start, or the step fails at once. ``policy``: AWS
    accepts it, but it breaks delegated administration (no service role, sessions over 12 hours).
    ``warning``: accepted and runs, probably a mistake — or something AWS does not document, where we
    will not claim AWS refuses it.
    """

    severity: str
    summary: str


RULES: dict[str, Rule] = {
    "SSM001": Rule(ERROR, "document structure (keys, types, required fields)"),
    "SSM002": Rule(ERROR, "schemaVersion is '0.3'"),
    "SSM003": Rule(ERROR, "action is a documented aws:* action"),
    "SSM004": Rule(ERROR, "required inputs of the action are present"),
    "SSM005": Rule(WARNING, "inputs are ones the action documents (AWS's handling of others is unknown)"),
    "SSM006": Rule(ERROR, "step names are valid"),
    "SSM007": Rule(ERROR, "step names are unique (loop steps included)"),
    "SSM008": Rule(ERROR, "nextStep / onFailure / onCancel / branch targets exist"),
    "SSM009": Rule(WARNING, "every step is reachable"),
    "SSM010": Rule(ERROR, "every {{ }} reference names a declared parameter, variable or step"),
    "SSM011": Rule(ERROR, "parameter and variable declarations are well-formed"),
    "SSM012": Rule(ERROR, "defaults and allowedValues fit the parameter's type and constraints"),
    "SSM013": Rule(ERROR, "allowedPattern is a valid Java regular expression"),
    "SSM014": Rule(ERROR, "runbook outputs name steps of the runbook"),
    "SSM015": Rule(POLICY, "assumeRole is a reference to a declared role parameter"),
    "SSM016": Rule(POLICY, "a runbook that can run over 12 hours has a service role"),
    "SSM017": Rule(ERROR, "executeAwsApi / assert / waitFor name a real Service and Api"),
    "SSM018": Rule(WARNING, "step output Selectors are valid JSONPath"),
    "SSM019": Rule(ERROR, "aws:sleep Duration is ISO-8601 (at most 7 days) or Timestamp"),
    "SSM020": Rule(ERROR, "literal input values are ones the action accepts (states, tag lists, counts)"),
    "SSM021": Rule(WARNING, "parameter declarations use only documented keys"),
    "SSM022": Rule(WARNING, "a referenced step output is declared or built into the action"),
    "SSM023": Rule(WARNING, "no key is written twice in one mapping"),
    "SSM024": Rule(WARNING, "{{ prefix:NAME }} uses a known prefix (global, automation, variable, ssm)"),
    "SSM025": Rule(WARNING, "every declared parameter is used"),
    "SSM026": Rule(WARNING, "a default fits the parameter's own constraints (AWS does not check it)"),
    # AWS accepts it (AWSSupport-CloneXenEC2WinInstanceAndMigrateToNitro ships one); fails if reached.
    "SSM027": Rule(WARNING, "a referenced step is one the flow can run before the referring step"),
    "SSM028": Rule(WARNING, "an undocumented action AWS's own runbooks use (AWS runs it; not checked)"),
}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    code: str
    message: str
    severity: str = ERROR

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.code} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: ``file``, ``line``, ``code``, ``severity``, ``message``."""
        return {key: getattr(self, key) for key in ("file", "line", "code", "severity", "message")}


def _finding(filename: str, line: int, code: str, message: str) -> Finding:
    return Finding(filename, line, code, message, RULES[code].severity)


def has_failures(findings: list[Finding]) -> bool:
    """Exit status 1: any ``error`` or ``policy`` finding (warnings alone pass)."""
    return any(finding.severity in (ERROR, POLICY) for finding in findings)


def lint_data(data: Any, lines: Mapping[Path, int], filename: str) -> list[Finding]:
    """Every finding for already-loaded runbook ``data``, in source order."""
    problems = structural_problems(data)
    if isinstance(data, Mapping):
        steps = lint_steps.steps_of(data)
        for step in [*steps, *lint_steps.loop_bodies(steps)]:
            problems.extend(lint_steps.action_problems(step))
            problems.extend(lint_inputs.input_value_problems(step))
        for body in [
            steps,
            *(lint_steps.loop_steps(step) for step in [*steps, *lint_steps.loop_bodies(steps)]),
        ]:
            problems.extend(lint_steps.reachability_problems(body))  # a loop's steps: within one iteration
        problems.extend(lint_steps.reference_problems(data, steps))
        problems.extend(lint_steps.output_problems(data, steps))
        problems.extend(lint_steps.unused_parameter_problems(data))
        problems.extend(lint_document.unknown_key_problems(data))
        problems.extend(lint_document.pattern_problems(data))
        problems.extend(lint_document.parameter_value_problems(data))
        problems.extend(lint_document.role_problems(data))
        problems.extend(lint_document.sleep_problems(data, steps))
        problems.extend(lint_document.session_problems(data, steps))
    findings = [_finding(filename, line_of(dict(lines), p.path) or 1, p.code, p.message) for p in problems]
    return sorted(findings, key=_source_order)


def lint_text(content: str | bytes, filename: str = "<runbook>") -> list[Finding]:
    """Lint runbook text (YAML or JSON)."""
    try:
        source = load_source(content)
    except SourceError as exc:
        return [_finding(filename, exc.line or 1, "SSM001", str(exc))]
    repeated = [
        _finding(
            filename,
            line,
            "SSM023",
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
        return [_finding(str(path), 1, "SSM001", f"cannot read the file: {exc.strerror or exc}")]
    return lint_text(content, str(path))


__all__ = ["RULES", "SEVERITIES", "Finding", "Rule", "has_failures", "lint_data", "lint_file", "lint_text"]
