"""Delegation policy: which runbooks may start, under which service roles, with which pins and tags.

The administrator writes the policy file; the deployment points Airflow at it with
``[ssm_delegate] policy_file`` (``AIRFLOW__SSM_DELEGATE__POLICY_FILE``). No operator argument passes or
loosens a policy: :meth:`DelegationPolicy.from_config` is the only way the hook and the cluster policy get
one. These checks guard against mistakes, not against DAG authors (their code runs in the same process and can
change its configuration); the boundary is the IAM policy ``iam_compile`` derives from the same file.
Without a file the built-in rule holds: any runbook, but never without a service role.

This module is imported by the cluster policy at DAG parse time, so it keeps its imports light (YAML and
the runbook model are imported when they are needed).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_ssm_delegate.compat import AirflowFailException, conf
from airflow_ssm_delegate.fanout import FanOutRequest, FanOutRule, check_fan_out, literal_unknown

if TYPE_CHECKING:
    import os

    from airflow_ssm_delegate.documents.model import Runbook

CONFIG_SECTION = "ssm_delegate"
CONFIG_OPTION = "policy_file"
MAX_START_TAGS = 5  # StartAutomationExecution accepts at most 5 tags
AUDIT_TAG_KEYS = ("airflow:dag_id", "airflow:run_id", "airflow:task_id")
VERSION_ALIASES = ("$DEFAULT", "$LATEST")

# Rule names, as they appear in PolicyViolation messages (and in the README).
RULE_DOCUMENT = "document-listed"
RULE_SERVICE_ROLE = "service-role-required"
RULE_ROLE = "role-allowed"
RULE_ASSUME_ROLE = "assume-role"
RULE_VERSION = "version-pin"
RULE_SHA256 = "sha256-pin"
RULE_DOCUMENT_TYPE = "automation-document"
RULE_PARAMETERS = "parameters"
RULE_TAGS = "tags"

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


class PolicyError(AirflowFailException):
    """A start refused by delegation policy or a broken policy file: retrying cannot help, so it fails now."""


class PolicyViolation(PolicyError):
    """A start the delegation policy refuses; the message names the rule, the runbook and the role."""

    def __init__(self, rule: str, document: str, role: str | None, detail: str, source: str) -> None:
        self.rule = rule
        self.document = document
        self.role = role
        self.detail = detail
        super().__init__(
            f"Delegation policy ({source}) refused runbook {document!r} under role {role or '(none)'} "
            f"[rule {rule}]: {detail}"
        )


class PolicyFileError(PolicyError):
    """The policy file cannot be used; the message names the file, the key, what is wrong and what to do."""

    def __init__(self, path: str | os.PathLike[str], key: str, problem: str, fix: str) -> None:
        self.path = str(path)
        self.key = key
        super().__init__(f"Delegation policy file {self.path}, key {key!r}: {problem}. {fix}")


@dataclass(frozen=True)
class StartRequest:
    """What a task asks to start, before the policy has looked at it."""

    document_name: str
    document_version: str | None = None
    service_role_arn: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    audit_tags: Mapping[str, str] = field(default_factory=dict)
    # Rate control fills parameters per target: they must never carry the role.
    target_parameter_name: str | None = None
    target_maps: Sequence[Mapping[str, Any]] = ()
    # Where and how fast the start fans out, and its alarm: bounded by the runbook's fan-out rules.
    fan_out: FanOutRequest = field(default_factory=FanOutRequest)


@dataclass(frozen=True)
class StartPlan:
    """An authorised start: everything StartAutomationExecution needs, already checked."""

    document_name: str
    document_version: str  # concrete number, never an alias, so the start is pinned
    role_arn: str | None
    assume_role_parameter: str | None
    parameters: dict[str, list[str]]  # the API's list-of-strings form
    tags: dict[str, str]
    secret_parameters: frozenset[str]

    @property
    def api_tags(self) -> list[dict[str, str]]:
        return [{"Key": key, "Value": value} for key, value in self.tags.items()]


@dataclass(frozen=True)
class DocumentRule:
    """The policy entry of one runbook (by name or ARN, exactly as StartAutomationExecution gets it)."""

    document: str
    roles: tuple[str, ...] = ()
    default_role: str | None = None
    version: str | None = None
    sha256: str | None = None
    required_tags: Mapping[str, str] = field(default_factory=dict)
    secret_parameters: frozenset[str] = frozenset()
    fan_out: FanOutRule | None = None
    required_alarm: str | None = None

    def allows_role(self, role_arn: str) -> bool:
        return any(iam_pattern(pattern).fullmatch(role_arn) for pattern in self.roles)


RunbookFetcher = Callable[[str, str | None], "tuple[Runbook, Mapping[str, Any]]"]
"""(name, version or None) -> (parsed runbook, DescribeDocument's Document: concrete version, Hash)."""


@dataclass(frozen=True)
class DelegationPolicy:
    """The administrator's rules; ``documents`` is None for the built-in rule (no policy file)."""

    source: str = "built-in rule"
    require_service_role: bool = True
    documents: Mapping[str, DocumentRule] | None = None

    # ----------------------------------------------------------------------------------------- loading

    @classmethod
    def from_config(cls) -> DelegationPolicy:
        """The deployment's policy: the file named by ``[ssm_delegate] policy_file``, or the built-in rule."""
        path = (conf.get(CONFIG_SECTION, CONFIG_OPTION, fallback="") or "").strip()
        return cls.from_file(path) if path else cls()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DelegationPolicy:
        """Load and validate a policy file; cached until the file changes (path, mtime, size)."""
        path = Path(path).expanduser()
        try:
            stat = path.stat()
        except OSError as error:
            raise PolicyFileError(
                path,
                CONFIG_OPTION,
                f"cannot read the file ({error.strerror})",
                f"Create it or point [{CONFIG_SECTION}] {CONFIG_OPTION} at an existing policy file.",
            ) from None
        from airflow_ssm_delegate.policy_file import load_policy_file

        return load_policy_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)

    @classmethod
    def from_mapping(cls, data: Any, source: str) -> DelegationPolicy:
        """Validate parsed policy content (YAML or JSON mapping); errors name ``source`` and the key."""
        from airflow_ssm_delegate.policy_file import parse_policy

        return parse_policy(data, source)

    # ------------------------------------------------------------------------------------ parse time

    def check_task_definition(
        self,
        document_name: Any,
        service_role_arn: Any,
        document_version: Any = None,
        fan_out: FanOutRequest | None = None,
    ) -> None:
        """Cheap check for the cluster policy (no AWS calls): could this task ever be allowed to start?

        Templated or mapped values count as present; they are checked again at run time.
        """
        known_role = None if _is_unresolved(service_role_arn) else service_role_arn or None
        rule = None if _is_unresolved(document_name) else self.rule_for(str(document_name), known_role)
        if rule is not None and not _is_unresolved(document_version):
            self._check_requested_version(rule, known_role, document_version)
        if rule is not None and fan_out is not None:
            self._check_fan_out(rule, known_role, fan_out, literal_unknown)
        role = service_role_arn or (rule.default_role if rule else None)
        if role is None:
            if self.require_service_role:
                self._refuse(
                    RULE_SERVICE_ROLE,
                    str(document_name),
                    None,
                    "no service_role_arn and no default_role for this runbook in the policy; without a "
                    "service role a runbook runs on the caller's session, which expires 12 hours after the "
                    "start. Set service_role_arn on the task or ask the administrator for a default_role.",
                )
            return
        if not _is_unresolved(role):
            self._check_role(rule, str(document_name), str(role))

    # ------------------------------------------------------------------------------------- run time

    def rule_for(self, document_name: str, role: str | None = None) -> DocumentRule | None:
        """The runbook's rule; None under the built-in rule. Refuses a runbook a policy file does not list."""
        if self.documents is None:
            return None
        rule = self.documents.get(document_name)
        if rule is None:
            listed = ", ".join(sorted(self.documents)) or "none"
            self._refuse(
                RULE_DOCUMENT,
                document_name,
                role,
                f"the runbook is not listed in the policy (listed: {listed}). Use a listed runbook, by the "
                "exact name or ARN the policy lists, or ask the administrator to add it.",
            )
        return rule

    def secret_parameters_for(self, document_name: str) -> frozenset[str]:
        """Parameter names the policy marks secret for this runbook (none when it is not listed)."""
        rule = self.documents.get(document_name) if self.documents else None
        return rule.secret_parameters if rule else frozenset()

    def authorize_start(self, request: StartRequest, fetch_runbook: RunbookFetcher) -> StartPlan:
        """Check a start against the policy and the runbook's content; return the plan or raise.

        ``fetch_runbook`` only reads (GetDocument/DescribeDocument); nothing that starts anything happens
        before every check has passed.
        """
        name = request.document_name
        rule = self.rule_for(name, request.service_role_arn)
        pinned = rule.version if rule else None
        wanted = request.document_version
        if rule is not None:
            self._check_requested_version(rule, request.service_role_arn, wanted)
        if request.service_role_arn:  # refuse a wrong role before reading anything
            self._check_role(rule, name, request.service_role_arn)
        if rule is not None:  # fan-out bounds need no AWS call either
            self._check_fan_out(rule, request.service_role_arn, request.fan_out)
        runbook, description = fetch_runbook(name, str(wanted) if wanted else pinned)
        version = str(description.get("DocumentVersion", ""))
        self._check_content(rule, name, request.service_role_arn, description, version)
        role = self._resolve_role(rule, name, request, runbook)
        self._check_targets(name, role, request, runbook.assume_role_parameter)
        values = dict(request.parameters)
        if runbook.assume_role_parameter and role is not None:
            values[runbook.assume_role_parameter] = role
        return StartPlan(
            document_name=name,
            document_version=version,
            role_arn=role,
            assume_role_parameter=runbook.assume_role_parameter,
            parameters=self._api_parameters(name, role, runbook, values, request),
            tags=self._merge_tags(rule, name, role, request),
            secret_parameters=rule.secret_parameters if rule else frozenset(),
        )

    # ------------------------------------------------------------------------------------- checks

    def _check_requested_version(self, rule: DocumentRule, role: str | None, wanted: Any) -> None:
        """A number other than the pin is refused before anything is read; aliases are resolved later."""
        if rule.version and wanted and wanted not in VERSION_ALIASES and str(wanted) != rule.version:
            self._refuse(
                RULE_VERSION,
                rule.document,
                role,
                f"version {wanted} was requested but the policy pins version {rule.version}. Drop "
                "document_version or set it to the pinned version.",
            )

    def _check_fan_out(
        self,
        rule: DocumentRule,
        role: str | None,
        request: FanOutRequest,
        is_unresolved: Callable[[Any], bool] = lambda value: False,
    ) -> None:
        def refuse(rule_name: str, detail: str) -> NoReturn:
            self._refuse(rule_name, rule.document, role, detail)

        check_fan_out(rule.fan_out, rule.required_alarm, request, refuse, is_unresolved)

    def _check_content(
        self,
        rule: DocumentRule | None,
        name: str,
        role: str | None,
        description: Mapping[str, Any],
        version: str,
    ) -> None:
        document_type = description.get("DocumentType", "Automation")
        if document_type != "Automation":
            self._refuse(
                RULE_DOCUMENT_TYPE,
                name,
                role,
                f"the document is of type {document_type}, not Automation. Start an Automation runbook.",
            )
        if rule is None:
            return
        if rule.version and version != rule.version:
            self._refuse(
                RULE_VERSION,
                name,
                role,
                f"the requested version resolves to {version} but the policy pins version {rule.version}. "
                "Drop document_version or set it to the pinned version.",
            )
        content_hash = str(description.get("Hash", "")).lower()
        if rule.sha256 and content_hash != rule.sha256:
            self._refuse(
                RULE_SHA256,
                name,
                role,
                f"version {version} has content hash {content_hash or '(none)'} but the policy pins "
                f"{rule.sha256}. The runbook changed since it was approved: ask the administrator to review "
                "it and update the sha256 pin.",
            )

    def _resolve_role(
        self, rule: DocumentRule | None, name: str, request: StartRequest, runbook: Runbook
    ) -> str | None:
        """The role the execution will run as, from the task, the parameters, the policy or the runbook."""
        explicit = request.service_role_arn or None
        parameter = runbook.assume_role_parameter
        literal = runbook.assume_role
        if parameter is not None:
            if parameter not in runbook.parameters:
                self._refuse(
                    RULE_ASSUME_ROLE,
                    name,
                    explicit,
                    f"assumeRole refers to {{{{ {parameter} }}}} but the runbook declares no parameter "
                    f"{parameter!r}. Fix the runbook.",
                )
            given = request.parameters.get(parameter)
            if isinstance(given, (list, tuple)) and len(given) == 1:  # already in the API's list form
                given = given[0]
            if given is not None and explicit is not None and given != explicit:
                self._refuse(
                    RULE_ASSUME_ROLE,
                    name,
                    explicit,
                    f"parameter {parameter} ({given!r}) differs from service_role_arn; give the role once, "
                    "as service_role_arn.",
                )
            role = explicit or given or (rule.default_role if rule else None)
        elif literal:
            if "{{" in literal:
                self._refuse(
                    RULE_ASSUME_ROLE,
                    name,
                    explicit,
                    f"assumeRole {literal!r} is neither a parameter reference such as "
                    "'{{ AutomationAssumeRole }}' nor a plain role ARN. Fix the runbook.",
                )
            if explicit is not None and explicit != literal:
                self._refuse(
                    RULE_ASSUME_ROLE,
                    name,
                    explicit,
                    f"the runbook always runs as its literal assumeRole {literal}, not as the task's role. "
                    "Remove service_role_arn or use a runbook that takes the role as a parameter.",
                )
            role = literal
        else:
            if explicit is not None or self.require_service_role:
                self._refuse(
                    RULE_ASSUME_ROLE,
                    name,
                    explicit,
                    "the runbook declares no assumeRole, so it would run on the caller's session (which "
                    "expires 12 hours after the start) and ignore any role. Add "
                    "assumeRole: '{{ AutomationAssumeRole }}' with an AutomationAssumeRole parameter.",
                )
            return None
        if role is None:
            if self.require_service_role:
                self._refuse(
                    RULE_SERVICE_ROLE,
                    name,
                    None,
                    "no service role: set service_role_arn on the task or ask the administrator for a "
                    "default_role for this runbook.",
                )
            return None
        role = str(role)
        self._check_role(rule, name, role)
        return role

    def _check_targets(
        self, name: str, role: str | None, request: StartRequest, assume_role_parameter: str | None
    ) -> None:
        """Targets and target maps set parameters per child execution; the role must not be one of them."""
        if assume_role_parameter is None:
            return
        from_targets = request.target_parameter_name == assume_role_parameter
        from_maps = any(assume_role_parameter in target_map for target_map in request.target_maps)
        if from_targets or from_maps:
            source = "target_parameter_name" if from_targets else "target_maps"
            self._refuse(
                RULE_ASSUME_ROLE,
                name,
                role,
                f"{source} would set {assume_role_parameter}, the runbook's assume-role parameter, per "
                "target, so roles would bypass the policy. Give the role once, as service_role_arn.",
            )

    def _check_role(self, rule: DocumentRule | None, name: str, role: str) -> None:
        """A listed runbook's role must match its patterns; under the built-in rule it must be a role ARN."""
        if rule is None:
            if not ROLE_ARN.match(role):
                self._refuse(
                    RULE_SERVICE_ROLE,
                    name,
                    role,
                    "this is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME). Give the role's full ARN.",
                )
        elif not rule.allows_role(role):
            allowed = ", ".join(rule.roles) or "none"
            self._refuse(
                RULE_ROLE,
                name,
                role,
                f"the role is not one the policy allows for this runbook (allowed: {allowed}). Use an "
                "allowed role or ask the administrator to allow this one.",
            )

    def _api_parameters(
        self, name: str, role: str | None, runbook: Runbook, values: Mapping[str, Any], request: StartRequest
    ) -> dict[str, list[str]]:
        from airflow_ssm_delegate.documents.model import ParameterValidationError, to_api_parameters

        try:
            return to_api_parameters(_filled_per_target(runbook, request), values)
        except ParameterValidationError as error:
            problems = "; ".join(error.problems) or str(error)
            self._refuse(
                RULE_PARAMETERS, name, role, f"{len(error.problems)} parameter problem(s): {problems}"
            )

    def _merge_tags(
        self, rule: DocumentRule | None, name: str, role: str | None, request: StartRequest
    ) -> dict[str, str]:
        """Audit tags + the task's tags + the policy's required tags; conflicts and overflow are refused."""
        required = dict(rule.required_tags) if rule else {}
        tags = dict(request.audit_tags)
        for key, raw_value in request.tags.items():
            value = str(raw_value)
            if key.lower().startswith("aws:"):
                self._refuse(
                    RULE_TAGS, name, role, f"tag key {key!r}: keys starting with 'aws:' are reserved."
                )
            fixed = tags.get(key, required.get(key))
            if fixed is not None and fixed != value:
                owner = "Airflow's audit tag" if key in tags else "the policy's required tag"
                self._refuse(
                    RULE_TAGS,
                    name,
                    role,
                    f"tag {key}={value!r} conflicts with {owner} {key}={fixed!r}. "
                    "Drop it from the task's tags.",
                )
            tags[key] = value
        tags.update(required)
        if len(tags) > MAX_START_TAGS:
            self._refuse(
                RULE_TAGS,
                name,
                role,
                f"{len(tags)} tags ({', '.join(tags)}) but AWS accepts at most {MAX_START_TAGS} at start: "
                f"{len(request.audit_tags)} audit, {len(required)} required by the policy, the rest from the "
                "task. Remove task tags until the total is 5 or fewer.",
            )
        return tags

    def _refuse(self, rule: str, document: str, role: str | None, detail: str) -> NoReturn:
        raise PolicyViolation(rule, document, role, detail, self.source)


# ------------------------------------------------------------------------------------------ helpers


def _filled_per_target(runbook: Runbook, request: StartRequest) -> Runbook:
    """The runbook with the parameters that targets or target maps fill made optional for the start."""
    names = {
        request.target_parameter_name,
        *(key for target_map in request.target_maps for key in target_map),
    }
    relaxed = {
        key: dataclasses.replace(spec, default="")
        for key, spec in runbook.parameters.items()
        if key in names and spec.required
    }
    if not relaxed:
        return runbook
    return dataclasses.replace(runbook, parameters={**runbook.parameters, **relaxed})


@functools.lru_cache(maxsize=256)
def iam_pattern(pattern: str) -> re.Pattern[str]:
    """IAM ARN matching: ``*`` any run of characters, ``?`` one character, everything else literal."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL
    )


def _is_unresolved(value: Any) -> bool:
    """A Jinja template, XComArg or mapped value: present at parse time, known only at run time."""
    if value is None:
        return False
    return not isinstance(value, str) or "{{" in value or "{%" in value
