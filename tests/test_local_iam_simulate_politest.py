"""Third-party evaluation cases (reaandrew/politest, MIT) through SimulateCustomPolicy over boto3.

politest runs its scenarios against AWS's own policy simulator; each case here is sent to the local
runtime the way politest sends it to AWS (see tests/corpus/iam-cases.json for provenance and the two
documented adjustments), and the decision of the first evaluation result must be the scenario's.
The cases are not in this repository (workplace rule): the test reads them from $SSM_DELEGATE_CORPUS
or <repo>/../shared/runbook-corpus/iam-cases/politest and is skipped, saying so, when they are absent.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((REPO / "tests" / "corpus" / "iam-cases.json").read_text(encoding="utf-8"))["sources"][
    "politest"
]
_STATEMENT_FIELDS = {
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
}
_TEMPLATE = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_SHORTHANDS = [re.compile(p) for p in (r"<([A-Za-z_]\w*)>", r"\$\{([A-Za-z_]\w*)\}", r"\$([A-Za-z_]\w*)")]


def corpus_dir() -> Path | None:
    candidates = [
        os.environ.get("SSM_DELEGATE_CORPUS"),
        str(REPO.parent / "shared/runbook-corpus/iam-cases/politest"),
    ]
    return next((Path(c) for c in candidates if c and (Path(c) / "test" / "scenarios").is_dir()), None)


@dataclass(frozen=True)
class Case:
    """One politest test: the SimulateCustomPolicy arguments and the decision AWS gave."""

    name: str
    request: dict[str, Any]
    expected: str  # allowed | explicitDeny | implicitDeny | MalformedPolicyDocument


def render(text: str, variables: dict[str, Any]) -> str:
    """politest's templates: ``<VAR>``, ``${VAR}`` and ``$VAR`` become ``{{.VAR}}`` (an IAM variable such as
    ``${aws:username}`` has a colon and stays), then ``{{.VAR}}`` is filled; an unknown name is an error."""
    for pattern in _SHORTHANDS:
        text = pattern.sub(r"{{.\1}}", text)
    return _TEMPLATE.sub(lambda m: str(variables[m.group(1)]), text)


def strip(document: dict[str, Any]) -> dict[str, Any]:
    """politest's default: drop fields IAM does not know (its metadata) before calling AWS."""
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    kept = [{k: v for k, v in s.items() if k in _STATEMENT_FIELDS} for s in statements]
    return {**{k: v for k, v in document.items() if k in ("Version", "Id")}, "Statement": kept}


def load_scenario(path: Path) -> dict[str, Any]:
    scenario = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if scenario.get("extends"):
        parent = load_scenario(path.parent / scenario["extends"])
        merged = {**parent, **{k: v for k, v in scenario.items() if v not in (None, "", [], {})}}
        merged["vars"] = {**(parent.get("vars") or {}), **(scenario.get("vars") or {})}
        for exclusive in (
            ("policy_json", "policy_template"),
            ("resource_policy_json", "resource_policy_template"),
        ):
            for key in exclusive:
                if scenario.get(key):
                    merged.update({other: "" for other in exclusive if other != key})
        return merged
    return scenario


def _policy(
    base: Path, spec: dict[str, Any], prefix: str, variables: dict[str, Any], raw: bool
) -> str | None:
    if spec.get(f"{prefix}_json"):
        document = json.loads((base / spec[f"{prefix}_json"]).read_text(encoding="utf-8"))
    elif spec.get(f"{prefix}_template"):
        document = json.loads(
            render((base / spec[f"{prefix}_template"]).read_text(encoding="utf-8"), variables)
        )
    else:
        return None
    return json.dumps(document if raw else strip(document))


def _boundary(base: Path, patterns: list[str], raw: bool) -> str | None:
    """politest merges SCP/RCP files into one boundary document (unique Sids, as it re-labels them)."""
    files = sorted({f for p in patterns for f in glob.glob(str(base / p))})
    if not files:
        return None
    statements = []
    for number, file in enumerate(files):
        document = json.loads(Path(file).read_text(encoding="utf-8"))
        for index, statement in enumerate(strip(document)["Statement"] if not raw else document["Statement"]):
            statements.append({**statement, "Sid": f"Scp{number}Stmt{index}"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _context(entries: list[dict[str, Any]] | None, variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        e["ContextKeyName"]: {
            "ContextKeyName": e["ContextKeyName"],
            "ContextKeyType": e.get("ContextKeyType", "string"),
            "ContextKeyValues": [render(str(v), variables) for v in e.get("ContextKeyValues", [])],
        }
        for e in entries or []
    }


def cases_of(root: Path, relative: str) -> list[Case]:
    path = root / relative
    base = path.parent
    scenario = load_scenario(path)
    variables: dict[str, Any] = {}
    if scenario.get("vars_file"):
        variables.update(yaml.safe_load((base / scenario["vars_file"]).read_text(encoding="utf-8")) or {})
    variables.update(scenario.get("vars") or {})
    strict = fnmatch.fnmatch(relative, MANIFEST["strict_scenarios"])
    identity = _policy(base, scenario, "policy", variables, raw=strict)
    boundary = _boundary(base, scenario.get("scp_paths") or [], raw=strict)
    override = MANIFEST["expected_overrides"].get(relative)
    cases = []
    for number, test in enumerate(scenario.get("tests") or [], start=1):
        actions = test.get("actions") or [test["action"]]
        resources = test.get("resources") or ([test["resource"]] if test.get("resource") else [])
        for action in actions:
            request: dict[str, Any] = {
                "PolicyInputList": [identity],
                "ActionNames": [render(action, variables)],
            }
            if resources:
                request["ResourceArns"] = [render(r, variables) for r in resources]
            context = {
                **_context(scenario.get("context"), variables),
                **_context(test.get("context"), variables),
            }
            if context:
                request["ContextEntries"] = list(context.values())
            if boundary:
                request["PermissionsBoundaryPolicyInputList"] = [boundary]
            resource_policy = _policy(base, test, "resource_policy", variables, raw=strict) or _policy(
                base, scenario, "resource_policy", variables, raw=strict
            )
            if resource_policy:
                request["ResourcePolicy"] = resource_policy
            for key, member in (("caller_arn", "CallerArn"), ("resource_owner", "ResourceOwner")):
                value = test.get(key) or scenario.get(key)
                if value:
                    request[member] = render(value, variables)
            expected = "MalformedPolicyDocument" if strict else override or test["expect"]
            cases.append(Case(f"{relative}#{number}:{action}", request, expected))
    return cases


def all_cases() -> list[Case]:
    root = corpus_dir()
    if root is None:
        return []
    scenarios = sorted(
        str(p.relative_to(root)) for pattern in MANIFEST["scenarios"] for p in root.glob(pattern)
    )
    return [case for relative in scenarios for case in cases_of(root, relative)]


CASES = all_cases()
ABSENT = (
    "politest cases absent: set SSM_DELEGATE_CORPUS to their folder (.../iam-cases/politest) or put them in "
    "<repo>/../shared/runbook-corpus/iam-cases/politest; see tests/corpus/iam-cases.json"
)


def decision_of(iam: Any, case: Case) -> str:
    try:
        return str(iam.simulate_custom_policy(**case.request)["EvaluationResults"][0]["EvalDecision"])
    except ClientError as error:
        return str(error.response["Error"]["Code"])


@pytest.mark.skipif(not CASES, reason=ABSENT)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_politest_case(boto_client: Any, case: Case) -> None:
    assert decision_of(boto_client("iam"), case) == case.expected


@pytest.mark.skipif(not CASES, reason=ABSENT)
def test_the_corpus_is_the_one_the_manifest_names() -> None:
    root = corpus_dir()
    assert root is not None
    assert "MIT License" in (root / "LICENSE").read_text(encoding="utf-8")
    assert len(CASES) >= 100, f"only {len(CASES)} cases found under {root}: is the copy complete?"
