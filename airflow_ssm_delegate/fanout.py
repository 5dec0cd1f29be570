"""Delegation policy rules for fan-out: where a runbook may reach, how fast, and under which alarm.

A runbook approved for one account can be aimed by ``TargetLocations`` at any account, region and execution
role that IAM allows, and by ``Targets``/``MaxConcurrency`` at a whole fleet at once. The administrator bounds
that per runbook (``fan_out`` and ``required_alarm`` in the policy file); these checks need no AWS call, so
they run before anything is read or started, and at parse time on the operator's literal values.

Imports nothing from ``policy`` at module level (``policy`` imports this module).
Field meanings and defaults: botocore's SSM model (TargetLocation, AlarmConfiguration,
StartAutomationExecution), as documented in the StartAutomationExecution API reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

RULE_ACCOUNTS = "target-accounts"
RULE_REGIONS = "target-regions"
RULE_EXECUTION_ROLE = "execution-role-name"
RULE_MAX_CONCURRENCY = "max-concurrency"
RULE_MAX_ERRORS = "max-errors"
RULE_LOCATION_MAX_CONCURRENCY = "target-location-max-concurrency"
RULE_LOCATION_MAX_ERRORS = "target-location-max-errors"
RULE_ALARM = "alarm-required"

# Documented defaults (StartAutomationExecution / TargetLocation in the API reference).
DEFAULT_MAX_CONCURRENCY = "10"
DEFAULT_LOCATION_MAX_CONCURRENCY = "1"
DEFAULT_LOCATION_MAX_ERRORS = "0"
DEFAULT_EXECUTION_ROLE_NAME = "AWS-SystemsManager-AutomationExecutionRole"
_LOCATION_DEFAULTS = {
    "TargetLocationMaxConcurrency": DEFAULT_LOCATION_MAX_CONCURRENCY,
    "TargetLocationMaxErrors": DEFAULT_LOCATION_MAX_ERRORS,
}

ACCOUNT_OR_OU = re.compile(r"^(\d{12}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_RATE = re.compile(r"^(\d+)(%?)$")

Refuse = Callable[[str, str], NoReturn]
"""(rule, detail) -> raises the policy's PolicyViolation."""
IsUnresolved = Callable[[Any], bool]


@dataclass(frozen=True)
class Cap:
    """An upper bound on a rate value; a number bounds numbers, a percentage bounds percentages."""

    number: int | None = None
    percent: int | None = None

    def __str__(self) -> str:
        parts = [str(self.number)] if self.number is not None else []
        if self.percent is not None:
            parts.append(f"{self.percent}%")
        return " or ".join(parts)

    @classmethod
    def parse(cls, value: Any) -> Cap:
        """``10``, ``"10"``, ``"10%"`` or a list of one number and one percentage; ValueError otherwise."""
        items = value if isinstance(value, list) else [value]
        number = percent = None
        for item in items:
            amount, is_percent = parse_rate(item)
            if is_percent:
                if percent is not None or amount > 100:
                    raise ValueError(f"{item!r}: one percentage, at most 100%")
                percent = amount
            else:
                if number is not None:
                    raise ValueError(f"{item!r}: one number only")
                number = amount
        if not items:
            raise ValueError("empty list")
        return cls(number=number, percent=percent)


def parse_rate(value: Any) -> tuple[int, bool]:
    """(amount, is_percentage) of a rate value such as ``10`` or ``"10%"``; ValueError when it is neither."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number or percentage")
    match = _RATE.match(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a number or percentage")
    return int(match.group(1)), bool(match.group(2))


@dataclass(frozen=True)
class FanOutRule:
    """A runbook's fan-out bounds; an empty tuple or None means that aspect is not restricted."""

    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    execution_role_names: tuple[str, ...] = ()
    max_concurrency: Cap | None = None
    max_errors: Cap | None = None
    target_location_max_concurrency: Cap | None = None
    target_location_max_errors: Cap | None = None


@dataclass(frozen=True)
class FanOutRequest:
    """The start's fan-out arguments, as the hook passes them to StartAutomationExecution."""

    targets: Sequence[Mapping[str, Any]] | None = None
    target_maps: Sequence[Mapping[str, Any]] | None = None
    max_concurrency: Any = None
    max_errors: Any = None
    target_locations: Any = None
    alarm_configuration: Any = None


def literal_unknown(value: Any) -> bool:
    """At parse time: a Jinja template, XComArg or mapped value (known only at run time), not a literal."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return not isinstance(value, (Mapping, list, tuple, int, float, type(None)))


def check_fan_out(
    rule: FanOutRule | None,
    required_alarm: str | None,
    request: FanOutRequest,
    refuse: Refuse,
    is_unresolved: IsUnresolved = lambda value: False,
) -> None:
    """Refuse (through ``refuse``) a start that reaches or runs beyond what the policy allows.

    Values ``is_unresolved`` reports (templates at parse time) are skipped; they are checked at run time.
    """
    checks = _Checks(refuse, is_unresolved)
    if required_alarm is not None:
        checks.alarm(required_alarm, request.alarm_configuration)
    if rule is not None:
        checks.fan_out(rule, request)


@dataclass(frozen=True)
class _Checks:
    refuse: Refuse
    is_unresolved: IsUnresolved

    def fan_out(self, rule: FanOutRule, request: FanOutRequest) -> None:
        locations = request.target_locations
        located_targets = False
        if locations is not None and not self.is_unresolved(locations):
            if not isinstance(locations, Sequence) or isinstance(locations, (str, bytes)):
                self.refuse(RULE_ACCOUNTS, f"TargetLocations must be a list, got {locations!r:.80}.")
            for index, location in enumerate(locations):
                located_targets |= self.location(rule, f"TargetLocations[{index}]", location)
        rate_controlled = bool(request.targets or request.target_maps) or located_targets
        concurrency = request.max_concurrency
        if concurrency is None and rate_controlled:
            concurrency = DEFAULT_MAX_CONCURRENCY
        self.cap(RULE_MAX_CONCURRENCY, "MaxConcurrency", rule.max_concurrency, concurrency)
        if rule.max_errors is not None and request.max_errors is None and rate_controlled:
            self.refuse(
                RULE_MAX_ERRORS,
                f"the policy caps MaxErrors at {rule.max_errors} but the start gives none (AWS documents no "
                "default). Set max_errors explicitly.",
            )
        self.cap(RULE_MAX_ERRORS, "MaxErrors", rule.max_errors, request.max_errors)

    def location(self, rule: FanOutRule, where: str, location: Any) -> bool:
        """One TargetLocation; returns whether it carries its own Targets (rate control inside it)."""
        if self.is_unresolved(location):
            return False
        if not isinstance(location, Mapping):
            self.refuse(
                RULE_ACCOUNTS, f"{where} must be a mapping (Accounts, Regions, ...), got {location!r:.80}."
            )
        self.listed(RULE_ACCOUNTS, f"{where}.Accounts", rule.accounts, location.get("Accounts"))
        self.listed(RULE_REGIONS, f"{where}.Regions", rule.regions, location.get("Regions"))
        self.role_name(rule, where, location.get("ExecutionRoleName"))
        caps = (
            (
                RULE_LOCATION_MAX_CONCURRENCY,
                "TargetLocationMaxConcurrency",
                rule.target_location_max_concurrency,
            ),
            (RULE_LOCATION_MAX_ERRORS, "TargetLocationMaxErrors", rule.target_location_max_errors),
            (RULE_MAX_CONCURRENCY, "TargetsMaxConcurrency", rule.max_concurrency),
            (RULE_MAX_ERRORS, "TargetsMaxErrors", rule.max_errors),
        )
        for rule_name, key, cap in caps:
            self.cap(rule_name, f"{where}.{key}", cap, location.get(key, _LOCATION_DEFAULTS.get(key)))
        return bool(location.get("Targets"))

    def role_name(self, rule: FanOutRule, where: str, given: Any) -> None:
        role_name = given or DEFAULT_EXECUTION_ROLE_NAME
        if not rule.execution_role_names or self.is_unresolved(role_name):
            return
        from airflow_ssm_delegate.policy import iam_pattern

        if not any(iam_pattern(allowed).fullmatch(str(role_name)) for allowed in rule.execution_role_names):
            default = "" if given else " (AWS's default: ExecutionRoleName unset)"
            self.refuse(
                RULE_EXECUTION_ROLE,
                f"{where}.ExecutionRoleName {role_name}{default} is not one the policy allows (allowed: "
                f"{', '.join(rule.execution_role_names)}). Set ExecutionRoleName to an allowed role name.",
            )

    def listed(self, rule_name: str, key: str, allowed: tuple[str, ...], given: Any) -> None:
        if not allowed or self.is_unresolved(given):
            return
        listing = ", ".join(allowed)
        if not given:
            self.refuse(rule_name, f"{key} is not set, but the policy allows only {listing}. Name them.")
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            self.refuse(rule_name, f"{key} must be a list, got {given!r:.80}.")
        outside = [str(item) for item in given if not self.is_unresolved(item) and str(item) not in allowed]
        if outside:
            self.refuse(
                rule_name,
                f"{key} names {', '.join(outside)}, which the policy does not allow for this runbook "
                f"(allowed: {listing}). Remove them or ask the administrator to allow them.",
            )

    def cap(self, rule_name: str, key: str, cap: Cap | None, value: Any) -> None:
        if cap is None or value is None or self.is_unresolved(value):
            return
        try:
            amount, is_percent = parse_rate(value)
        except ValueError:
            self.refuse(rule_name, f"{key} {value!r} is not a number such as 10 or a percentage such as 10%.")
        bound = cap.percent if is_percent else cap.number
        shown = f"{amount}{'%' if is_percent else ''}"
        if bound is None:
            other = "a percentage" if cap.percent is not None else "a number"
            self.refuse(
                rule_name,
                f"{key} {shown} cannot be compared with the policy's cap of {cap}. Give {other} within it.",
            )
        if amount > bound:
            self.refuse(rule_name, f"{key} {shown} exceeds the policy's cap of {cap}. Lower it to the cap.")

    def alarm(self, required: str, configuration: Any) -> None:
        """The administrator's alarm must guard every execution, and a failed alarm poll must stop it."""
        if self.is_unresolved(configuration):
            return
        fix = f"Pass alarm_configuration={{'Alarms': [{{'Name': '{required}'}}]}}."
        if not isinstance(configuration, Mapping):
            self.refuse(
                RULE_ALARM, f"the policy requires CloudWatch alarm {required} on every execution. {fix}"
            )
        alarms = configuration.get("Alarms")
        if self.is_unresolved(alarms):
            return
        names = [alarm.get("Name") for alarm in alarms or () if isinstance(alarm, Mapping)]
        if required not in names:
            self.refuse(
                RULE_ALARM,
                f"AlarmConfiguration names {', '.join(map(str, names)) or 'no alarm'}, but the policy "
                f"requires CloudWatch alarm {required}. {fix}",
            )
        if configuration.get("IgnorePollAlarmFailure") is True:
            self.refuse(
                RULE_ALARM,
                f"IgnorePollAlarmFailure is true, so the execution would keep running when alarm {required} "
                "cannot be read. Remove IgnorePollAlarmFailure or set it to false.",
            )
