"""The corpus of published runbooks for the conformance suite: where it is, what it holds, valid inputs.

The runbooks themselves are other people's files, so they are not in this repository: the committed
``tests/corpus/manifest.json`` names each one (repository, path, commit, licence, SHA-256) and the files
live in a corpus directory outside git, laid out as ``<root>/<entry.file>``. The root is
``$SSM_DELEGATE_CORPUS``, else ``<repo>/../shared/runbook-corpus``. Without either, the conformance tests
skip, naming both places: a skipped test is not a passed one.

Parameter values are generated from each runbook's own declarations (defaults, allowedValues, types,
allowedPattern, min/max), independently of the product's document model, so the suite checks the model
rather than agreeing with it by construction.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import regex
import yaml

CORPUS_ENV = "SSM_DELEGATE_CORPUS"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO_ROOT.parent / "shared" / "runbook-corpus"
MANIFEST = REPO_ROOT / "tests" / "corpus" / "manifest.json"

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/CorpusAutomationRole"
ROLE_REFERENCE = re.compile(r"^\{\{\s*([\w.-]+)\s*\}\}$")


@dataclass(frozen=True)
class CorpusEntry:
    """One runbook of the manifest: where it came from and what it is called."""

    repo: str
    path: str
    commit: str
    licence: str
    sha256: str
    document_name: str
    aws_document_name: str | None
    document_format: str
    actions: tuple[str, ...]
    file: str
    form: str  # "published", or "source" (the repository's build fills placeholders before AWS publishes it)

    @property
    def test_id(self) -> str:
        return self.document_name


def load_manifest(path: Path = MANIFEST) -> list[CorpusEntry]:
    """The manifest's runbooks (the parametrisation of the suite; exists with or without the files)."""
    data = json.loads(path.read_text())
    return [
        CorpusEntry(
            repo=item["repo"],
            path=item["path"],
            commit=item["commit"],
            licence=item["licence"],
            sha256=item["sha256"],
            document_name=item["document_name"],
            aws_document_name=item.get("aws_document_name"),
            document_format=item["format"],
            actions=tuple(item["actions"]),
            file=item["file"],
            form=item.get("form", "published"),
        )
        for item in data["runbooks"]
    ]


def corpus_root() -> Path | None:
    """``$SSM_DELEGATE_CORPUS`` if set (it must exist), else the shared default if it exists, else None."""
    configured = os.environ.get(CORPUS_ENV)
    if configured:
        root = Path(configured)
        if not root.is_dir():
            pytest.fail(f"{CORPUS_ENV}={configured} is not a directory: point it at the corpus root")
        return root
    return DEFAULT_ROOT if DEFAULT_ROOT.is_dir() else None


def runbook_text(entry: CorpusEntry) -> str:
    """The runbook's content, checked against the manifest's SHA-256; skips when there is no corpus."""
    root = corpus_root()
    if root is None:
        pytest.skip(
            f"no runbook corpus: set {CORPUS_ENV} to its root or place it at {DEFAULT_ROOT} "
            f"(files are listed in {MANIFEST.relative_to(REPO_ROOT)})"
        )
    path = root / entry.file
    if not path.is_file():
        pytest.fail(f"corpus at {root} lacks {entry.file} ({entry.repo} {entry.path} @ {entry.commit})")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest == entry.sha256, f"{path}: SHA-256 {digest} differs from the manifest's {entry.sha256}"
    return data.decode("utf-8")


def parse_document(text: str) -> dict[str, Any]:
    """The runbook as plain data (JSON first, as SSM reads it, then YAML)."""
    try:
        loaded = json.loads(text)
    except ValueError:
        loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict), "a runbook is a mapping"
    return loaded


def assume_role_parameter(document: dict[str, Any]) -> str | None:
    """The parameter named by ``assumeRole: '{{ Name }}'``, if any."""
    found = ROLE_REFERENCE.match(str(document.get("assumeRole") or "").strip())
    return found.group(1) if found else None


# ------------------------------------------------------------------------------- sample resources


class SampleResources:
    """Well-formed identifiers for parameters; the runtime tests override these with real resources."""

    def instance_id(self) -> str:
        return "i-0123456789abcdef0"

    def image_id(self) -> str:
        return "ami-0123456789abcdef0"

    def volume_id(self) -> str:
        return "vol-0123456789abcdef0"

    def snapshot_id(self) -> str:
        return "snap-0123456789abcdef0"

    def bucket_name(self) -> str:
        return "corpus-example-bucket"

    def topic_arn(self) -> str:
        return f"arn:aws:sns:us-east-1:{ACCOUNT}:AutomationCorpusTopic"

    def key_id(self) -> str:
        return "1234abcd-12ab-34cd-56ef-1234567890ab"

    def user_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/corpus-approver"

    def role_arn(self) -> str:
        return ROLE_ARN


# AWS-specific parameter types (Automation user guide, "Parameter data types") -> sample factory name.
AWS_TYPES = {
    "AWS::EC2::Instance::Id": "instance_id",
    "AWS::EC2::Image::Id": "image_id",
    "AWS::EC2::Volume::Id": "volume_id",
    "AWS::EC2::Snapshot::Id": "snapshot_id",
    "AWS::S3::Bucket::Name": "bucket_name",
    "AWS::IAM::Role::Arn": "role_arn",
    "AWS::SNS::Topic::Arn": "topic_arn",
    "AWS::KMS::Key::Id": "key_id",
}

# Parameter-name hints, first match wins (lower-case substrings) -> sample factory or literal.
NAME_HINTS: tuple[tuple[str, str], ...] = (
    ("roleARN".lower(), "role_arn"),
    ("rolearn", "role_arn"),
    ("assumerole", "role_arn"),
    ("approver", "user_arn"),
    ("topic", "topic_arn"),
    ("snapshotid", "snapshot_id"),
    ("volumeid", "volume_id"),
    ("imageid", "image_id"),
    ("amiid", "image_id"),
    ("instancetype", "=t3.micro"),
    ("instanceid", "instance_id"),
    ("instanceidentifier", "instance_id"),
    ("bucket", "bucket_name"),
    ("keyarn", f"=arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    ("kmskey", "key_id"),
    ("keyid", "key_id"),
    ("region", "=us-east-1"),
    ("availabilityzone", "=us-east-1a"),
    ("accountid", f"={ACCOUNT}"),
    ("account", f"={ACCOUNT}"),
    ("subnet", "=subnet-0123456789abcdef0"),
    ("securitygroup", "=sg-0123456789abcdef0"),
    ("vpc", "=vpc-0123456789abcdef0"),
    ("email", "=ops@example.com"),
    ("owner", "=ops@example.com"),
    ("arn", f"=arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"),
    ("url", "=https://example.com/template.yaml"),
    ("duration", "=PT1M"),
)
GENERIC = ("example", "example-1", "1", "a", "example_value", "Example", "10.0.0.1")


def _hinted(name: str, resources: SampleResources) -> list[str]:
    lowered = name.lower()
    for hint, target in NAME_HINTS:
        if hint in lowered:
            return [target[1:]] if target.startswith("=") else [getattr(resources, target)()]
    return []


def _matches(pattern: str | None, value: str) -> bool:
    """Whether ``value`` satisfies ``pattern`` in full (Java and ``regex`` agree on a full match)."""
    if not pattern:
        return True
    try:
        return regex.search(pattern, value, flags=regex.V1, timeout=1.0) is not None
    except (regex.error, TimeoutError):
        return False


def _sample_from_pattern(pattern: str) -> str | None:
    """One string the pattern accepts, built from its parse tree (the first branch, minimal repeats)."""
    with warnings.catch_warnings():  # sre_parse is deprecated as a module name, not as a parser
        warnings.simplefilter("ignore", DeprecationWarning)
        import sre_parse
    try:
        tree = sre_parse.parse(_sre_readable(pattern))
    except (re.error, OverflowError, RecursionError):
        return None
    try:
        text = _render(tree)
    except ValueError:
        return None
    return text if _matches(pattern, text) else None


def _sre_readable(pattern: str) -> str:
    """Java constructs ``sre_parse`` lacks, made readable for sampling only (the sample is then checked
    against the real pattern): ``\\p{L}`` as a letter, ``[\\w-.]`` with its literal ``-`` escaped."""
    pattern = regex.sub(r"\\[pP]\{\w+\}", "a", pattern)
    return regex.sub(r"(\\[wdsWDS])-(?!\])", r"\1\\-", pattern)


def _render(items: Any) -> str:
    out: list[str] = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_class_member(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, body = arg
            out.append(_render(body) * low)
        elif name == "SUBPATTERN":
            out.append(_render(arg[-1]))
        elif name == "BRANCH":
            out.append(_render(arg[1][0]))
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        elif name == "CATEGORY":
            out.append(_category(arg))
        else:
            raise ValueError(name)
    return "".join(out)


def _category(category: Any) -> str:
    name = str(category)
    if "NOT_DIGIT" in name:
        return "a"
    if "DIGIT" in name:
        return "1"
    if "NOT_SPACE" in name or "WORD" in name:
        return "a"
    if "SPACE" in name:
        return " "
    return "a"


def _class_member(items: Any) -> str:
    negated = any(str(op) == "NEGATE" for op, _ in items)
    if negated:
        for candidate in "a1-_.A":
            if not _class_allows(items, candidate):
                continue
            return candidate
        raise ValueError("negated class")
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return _category(arg)
    raise ValueError("empty class")


def _class_allows(items: Any, char: str) -> bool:
    """For a negated class: ``char`` is not among its members."""
    for op, arg in items:
        name = str(op)
        if name == "LITERAL" and chr(arg) == char:
            return False
        if name == "RANGE" and arg[0] <= ord(char) <= arg[1]:
            return False
        if name == "CATEGORY" and _category(arg) == char:
            return False
    return True


def _string_value(name: str, declaration: dict[str, Any], resources: SampleResources) -> str:
    pattern = declaration.get("allowedPattern")
    aws_type = str(declaration.get("type", ""))
    inner = aws_type[5:-1] if aws_type.startswith("List<") else aws_type
    candidates = [getattr(resources, AWS_TYPES[inner])()] if inner in AWS_TYPES else []
    candidates += _hinted(name, resources) + list(GENERIC)
    for candidate in candidates:
        if _matches(pattern, candidate):
            return candidate
    sample = _sample_from_pattern(str(pattern))
    if sample is None:
        raise AssertionError(f"cannot make a value for {name} matching allowedPattern {pattern!r}")
    return sample


def sample_value(name: str, declaration: dict[str, Any], resources: SampleResources) -> Any:
    """A value AWS would accept for a parameter, as a DAG author would pass it (native Python types)."""
    kind = str(declaration.get("type", "String"))
    allowed = declaration.get("allowedValues")
    if kind == "Boolean":
        return _as_bool(allowed[0]) if allowed else True
    if kind == "Integer":
        if allowed:
            return int(allowed[0])
        low = declaration.get("minValue")
        start = int(low) if low is not None else 1
        pattern = declaration.get("allowedPattern")
        return next((n for n in range(start, start + 10_000) if _matches(pattern, str(n))), start)
    if kind == "StringMap":
        return {"Environment": "Development"}
    if kind == "MapList":
        return [{"Key": "Environment", "Value": "Development"}]
    is_list = kind == "StringList" or kind.startswith("List<")
    if allowed:
        first = str(allowed[0])
        return [first] if is_list else first
    value = _string_value(name, declaration, resources)
    if is_list:
        return [value] * max(1, int(declaration.get("minItems", 1)))
    return value


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def valid_parameters(document: dict[str, Any], resources: SampleResources) -> dict[str, Any]:
    """Values for every required parameter (no default) but the assume-role one, which the role fills."""
    role_parameter = assume_role_parameter(document)
    values: dict[str, Any] = {}
    for name, declaration in (document.get("parameters") or {}).items():
        if name == role_parameter or "default" in (declaration or {}):
            continue
        values[name] = sample_value(name, declaration or {}, resources)
    return values


def api_form(value: Any) -> list[str]:
    """How StartAutomationExecution carries a value: a list of strings (maps as JSON text)."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, dict):
        return [json.dumps(value)]
    if isinstance(value, list):
        return [json.dumps(item) if isinstance(item, dict) else str(item) for item in value]
    return [str(value)]


def normalised(items: list[str]) -> list[Any]:
    """API values with JSON items decoded, so equal maps compare equal whatever their spacing."""
    decoded: list[Any] = []
    for item in items:
        try:
            decoded.append(json.loads(item) if item[:1] in "{[" else item)
        except ValueError:
            decoded.append(item)
    return decoded
