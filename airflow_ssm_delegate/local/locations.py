"""Multi-account and multi-Region Automation (``TargetLocations``) on the local runtime.

What AWS documents, and this module does ("Running automations in multiple AWS Regions and accounts",
https://docs.aws.amazon.com/systems-manager/latest/userguide/running-automations-multiple-accounts-regions.html;
the ``TargetLocation`` data type of the API reference):
- each ``TargetLocation`` names ``Accounts`` and ``Regions``; every account-Region pair is a location, and the
  runbook runs there as a child execution; at most ``TargetLocationMaxConcurrency`` locations at once (default
  1) and no more are started once more than ``TargetLocationMaxErrors`` have failed (default 0), each a number
  or a percentage of the entry's locations;
- the starting execution runs as the administration role, ``AutomationAssumeRole`` or, without one,
  ``AWS-SystemsManager-AutomationAdministrationRole`` of the starting account (the caller needs
  iam:PassRole on it, and ssm.amazonaws.com must be trusted by it); for each location that role assumes
  the execution role ``ExecutionRoleName`` (default ``AWS-SystemsManager-AutomationExecutionRole``) of
  the target account, checked as STS checks a cross-account AssumeRole (the execution role's trust policy
  must trust the administration role or its account, and the administration role must be allowed
  sts:AssumeRole on it); the child's steps run with the execution role's permissions, in the target
  account's own world (moto keeps one per account id) and Region;
- the starting execution reports ``AutomationType`` ``CrossAccount`` and its ``TargetLocations``; its steps
  are one ``aws:executeAutomation`` per location, carrying ``TargetLocation`` and, as output, the child's
  ``AutomationExecutionId``; each child has ``ParentAutomationExecutionId`` and is read in its own account
  and Region;
- ``Targets``, ``TargetsMaxConcurrency`` and ``TargetsMaxErrors`` inside a location (or the start's own
  ``Targets``/``TargetParameterName``/``MaxConcurrency``/``MaxErrors``, which the location's take precedence
  over) make each child a rate-control execution in its location (``local.ratecontrol``).

Chosen here where AWS documents nothing (said in the README): locations run in the order given
(accounts, then Regions within each account), one ``TargetLocation`` entry after the other; a step is
named ``ACCOUNT_REGION``; the starting execution ends ``Failed`` when any location did not succeed; a
location whose execution role cannot be assumed is a failed step (its error counts) with STS's
AccessDenied message; a location without ``Accounts`` or ``Regions`` is the starting account or Region;
the runbook is read from the starting account and Region (AWS requires a custom runbook to be shared with
the target accounts; sharing is not checked).
Refused by name: organizational units and roots (``ou-``/``r-``, AWS Organizations is not emulated),
``IncludeChildOrganizationUnits``, ``ExcludeAccounts``, ``TargetLocationAlarmConfiguration`` and
``TargetLocationsURL``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_ssm_delegate.documents.model import Runbook, StepSpec
from airflow_ssm_delegate.fanout import (
    DEFAULT_EXECUTION_ROLE_NAME,
    DEFAULT_LOCATION_MAX_CONCURRENCY,
    DEFAULT_LOCATION_MAX_ERRORS,
    parse_rate,
)
from airflow_ssm_delegate.local.children import CHILD_ACTION, ChildDriver, Progress
from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.execution import StepRecord
from airflow_ssm_delegate.local.identity import Caller
from airflow_ssm_delegate.local.ratecontrol import RATE_CONTROL_KEYS, plan_fan_out

if TYPE_CHECKING:
    from airflow_ssm_delegate.local.execution import Execution
    from airflow_ssm_delegate.local.identity import Credentials

ADMINISTRATION_ROLE_NAME = "AWS-SystemsManager-AutomationAdministrationRole"
INVALID = "InvalidAutomationExecutionParametersException"
_ACCOUNT = re.compile(r"^\d{12}$")
_ORGANIZATIONS = re.compile(r"^(ou-|r-)")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_PARAMETER_REFERENCE = re.compile(r"^\{\{\s*([\w.]+)\s*\}\}$")
#: Members of TargetLocation that need AWS Organizations or CloudWatch per location: refused by name.
REFUSED_MEMBERS = {
    "IncludeChildOrganizationUnits": "organizational units need AWS Organizations, which is not emulated",
    "ExcludeAccounts": "it excludes accounts from organizational units, which need AWS Organizations",
    "TargetLocationAlarmConfiguration": "a per-location alarm is not emulated (use AlarmConfiguration)",
}
#: Rate-control members of a TargetLocation and the start's own members they take precedence over.
LOCATION_RATE_MEMBERS = {
    "Targets": "Targets",
    "TargetsMaxConcurrency": "MaxConcurrency",
    "TargetsMaxErrors": "MaxErrors",
}


@dataclass(frozen=True)
class Location:
    """One account-Region pair of a TargetLocation entry."""

    account_id: str
    region: str
    role_name: str
    group: int  # index of its TargetLocation entry

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.role_name}"

    @property
    def label(self) -> str:
        return f"{self.account_id}_{self.region}"


@dataclass(frozen=True)
class Placement:
    """Where a child runs and as whom: the target account and Region, the execution role and its session."""

    account_id: str
    region: str
    role_arn: str
    credentials: Credentials


@dataclass
class LocationGroup:
    """One TargetLocation entry: its locations, its rate and error limits, its children's rate control."""

    spec: dict[str, Any]  # as reported in TargetLocations (defaults filled in)
    locations: list[Location]
    max_concurrency: str
    max_errors: str
    rate_control: dict[str, Any] = field(default_factory=dict)  # the children's own rate-control members
    errors: int = 0

    def concurrency(self) -> int:
        amount, percent = parse_rate(self.max_concurrency)
        return max(1, len(self.locations) * amount // 100) if percent else amount

    def error_limit(self) -> int:
        amount, percent = parse_rate(self.max_errors)
        return len(self.locations) * amount // 100 if percent else amount

    def exceeded(self) -> bool:
        return self.errors > self.error_limit()


@dataclass
class LocationFanOut(Progress):
    """A multi-location parent: its location groups and its children's progress (under the parent's lock);
    ``launched`` counts the locations of entry ``group`` started (or failed to start)."""

    groups: list[LocationGroup]
    assume_role_parameter: str | None  # the runbook parameter that names the role (given the execution role)
    group: int = 0  # the entry whose locations are being started

    @property
    def total(self) -> int:
        return sum(len(group.locations) for group in self.groups)

    def metadata(self) -> dict[str, Any]:
        """The multi-location members of AutomationExecution(Metadata)."""
        return {
            "AutomationType": "CrossAccount",
            "TargetLocations": [dict(group.spec) for group in self.groups],
        }

    def exceeded(self) -> bool:
        return any(group.exceeded() for group in self.groups)

    def next_location(self) -> Location | None:
        """The next location allowed to start now, or None (limit reached, errors exceeded, or none left)."""
        while self.group < len(self.groups):
            group = self.groups[self.group]
            if self.launched < len(group.locations):
                if len(self.running) >= group.concurrency():
                    return None
                self.launched += 1
                return group.locations[self.launched - 1]
            if self.running:  # the next entry starts once this one's locations have ended
                return None
            self.group, self.launched = self.group + 1, 0
        return None

    def all_launched(self) -> bool:
        return self.group >= len(self.groups)


@dataclass
class LocationStep(StepRecord):
    """The parent's step for one location: an ``aws:executeAutomation`` with its ``TargetLocation``."""

    target_location: dict[str, Any] = field(default_factory=dict)
    group: int = 0  # index of its TargetLocation entry

    def to_api(self) -> dict[str, Any]:
        return {**super().to_api(), "TargetLocation": dict(self.target_location)}


@dataclass(frozen=True)
class LocatedPlan:
    """What StartAutomationExecution of a multi-location parent runs with."""

    fan_out: LocationFanOut
    runbook: Runbook  # without the target parameters when the children are rate-controlled

    def administration_role(self, role_arn: str | None, account_id: str) -> str:
        """AutomationAssumeRole when given, else the documented default administration role."""
        return role_arn or f"arn:aws:iam::{account_id}:role/{ADMINISTRATION_ROLE_NAME}"


def _refuse(message: str, code: str = INVALID) -> NoReturn:
    raise AutomationApiError(code, message)


def plan_locations(
    request: dict[str, Any], runbook: Runbook, account_id: str, region: str, *, nested: bool = False
) -> LocatedPlan | None:
    """None for a start without TargetLocations; else its checked plan, or the API's error naming what is
    wrong (``nested``: started from an execution that itself runs in a target location)."""
    entries = request.get("TargetLocations")
    if entries in (None, []):
        return None
    if nested:
        _refuse(
            "TargetLocations of an aws:executeAutomation step that runs in a target location is not "
            "supported by the local runtime; start multi-account executions from the starting account."
        )
    if request.get("Mode", "Auto") != "Auto":
        _refuse("Mode Interactive cannot be used with TargetLocations; each location runs in Auto mode.")
    if not isinstance(entries, list):
        _refuse("TargetLocations must be a list of TargetLocation objects.")
    start_rate = {key: request[key] for key in RATE_CONTROL_KEYS if request.get(key) not in (None, [])}
    groups = [_group(index, entry, start_rate, account_id, region) for index, entry in enumerate(entries)]
    stripped = runbook
    rated = [group.rate_control for group in groups if group.rate_control]
    if rated:  # checked once, as the children will be; their target parameters are not the parent's
        planned = plan_fan_out({**request, **rated[0]}, runbook)
        if planned is not None:
            stripped = dataclasses.replace(runbook, parameters=planned.runbook.parameters)
    match = _PARAMETER_REFERENCE.match(runbook.assume_role or "")
    return LocatedPlan(LocationFanOut(groups, match.group(1) if match else None), stripped)


def _group(index: int, entry: Any, start_rate: dict[str, Any], account_id: str, region: str) -> LocationGroup:
    where = f"TargetLocations[{index}]"
    if not isinstance(entry, dict):
        _refuse(f"{where} must be a TargetLocation object.")
    for member, reason in REFUSED_MEMBERS.items():
        if entry.get(member) not in (None, [], False):
            _refuse(f"{where}.{member} is not supported by the local runtime: {reason}.")
    accounts = _strings(where, "Accounts", entry.get("Accounts") or [account_id])
    regions = _strings(where, "Regions", entry.get("Regions") or [region])
    organizations = [account for account in accounts if _ORGANIZATIONS.match(account)]
    if organizations:
        _refuse(
            f"{where}.Accounts names {', '.join(organizations)}: organizational units and roots need AWS "
            "Organizations, which the local runtime does not emulate. List the account ids instead."
        )
    bad = [account for account in accounts if not _ACCOUNT.match(account)]
    if bad:
        _refuse(f"{where}.Accounts: {', '.join(bad)} is not a 12-digit account id.", "ValidationException")
    bad = [name for name in regions if not _REGION.match(name)]
    if bad:
        _refuse(
            f"{where}.Regions: {', '.join(bad)} is not a Region name like us-east-1.", "ValidationException"
        )
    role_name = str(entry.get("ExecutionRoleName") or DEFAULT_EXECUTION_ROLE_NAME)
    concurrency = _rate(where, "TargetLocationMaxConcurrency", entry, DEFAULT_LOCATION_MAX_CONCURRENCY, 1)
    errors = _rate(where, "TargetLocationMaxErrors", entry, DEFAULT_LOCATION_MAX_ERRORS, 0)
    rate_control = dict(start_rate)
    for member, start_member in LOCATION_RATE_MEMBERS.items():  # the location's take precedence
        if entry.get(member) not in (None, []):
            rate_control[start_member] = entry[member]
    spec = {
        **{k: v for k, v in entry.items() if v is not None},
        "Accounts": accounts,
        "Regions": regions,
        "ExecutionRoleName": role_name,
        "TargetLocationMaxConcurrency": concurrency,
        "TargetLocationMaxErrors": errors,
    }
    unique = list(dict.fromkeys((a, r) for a in accounts for r in regions))
    locations = [Location(a, r, role_name, index) for a, r in unique]
    return LocationGroup(spec, locations, concurrency, errors, rate_control)


def _strings(where: str, member: str, values: Any) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(value, str) and value for value in values):
        _refuse(f"{where}.{member} must be a list of strings.", "ValidationException")
    return list(values)


def _rate(where: str, member: str, entry: dict[str, Any], default: str, minimum: int) -> str:
    value = entry.get(member, default)
    try:
        amount, percent = parse_rate(value)
    except ValueError:
        amount, percent = -1, False
    if amount < minimum or (percent and amount > 100):
        _refuse(f"{where}.{member} {value!r} must be a whole number of at least {minimum} or a percentage.")
    return f"{amount}%" if percent else str(amount)


class Locations(ChildDriver[LocationFanOut, Location]):
    """The engine's TargetLocations parents: assuming each execution role, starting children, ending them."""

    START_API = "sts:AssumeRole"

    def begin(self, parent: Execution) -> None:
        """The parent began as the administration role (on a worker): start its first locations."""
        with parent.lock:
            if not parent.finished:
                self._engine._guard(parent, lambda: self._advance(parent))

    # ----------------------------------------------------------------------------------- internals
    def _progress(self, parent: Execution) -> LocationFanOut | None:
        return parent.locations

    def _next(self, progress: LocationFanOut) -> Location | None:
        return progress.next_location()

    def _step(self, parent: Execution, progress: LocationFanOut, item: Location) -> StepRecord:
        group = progress.groups[item.group]
        spec = {**group.spec, "Accounts": [item.account_id], "Regions": [item.region]}
        record = LocationStep(
            StepSpec(name=item.label, action=CHILD_ACTION), target_location=spec, group=item.group
        )
        parent.current = record
        return record

    def _start_child(self, parent: Execution, progress: LocationFanOut, item: Location) -> str:
        """The administration role assumes the location's execution role, which starts the child there."""
        assert parent.credentials is not None
        credentials = self._engine.authorizer.assume_role_as(
            parent.credentials, item.role_arn, parent.id[:64], item.region
        )
        placement = Placement(item.account_id, item.region, item.role_arn, credentials)
        parameters = dict(parent.parameters)
        if progress.assume_role_parameter:
            parameters[progress.assume_role_parameter] = [item.role_arn]
        request = {
            "DocumentName": parent.document_name,
            "DocumentVersion": parent.document_version,
            "Parameters": parameters,
            **progress.groups[item.group].rate_control,
        }
        arn = f"arn:aws:sts::{item.account_id}:assumed-role/{item.role_name}/{parent.id[:64]}"
        return self._engine._start(request, Caller(arn, credentials), parent=parent, placement=placement)

    def _start_failure(self, item: Location, error: AutomationApiError) -> str:
        return (
            f"The execution in account {item.account_id}, Region {item.region} could not start "
            f"({error.code}): {error.message}"
        )

    def _started(self, progress: LocationFanOut, record: StepRecord, child_id: str) -> None:
        record.values = {"AutomationExecutionId": child_id}

    def _error(self, progress: LocationFanOut, record: StepRecord) -> None:
        super()._error(progress, record)
        assert isinstance(record, LocationStep)
        progress.groups[record.group].errors += 1

    def _failure_message(self, fan_out: LocationFanOut) -> str:
        started = fan_out.succeeded + fan_out.errors + len(fan_out.running)
        message = (
            f"{fan_out.errors} of {fan_out.total} locations did not succeed (Failed, TimedOut, Cancelled)."
        )
        if fan_out.exceeded() and started < fan_out.total:
            left = fan_out.total - started
            message += f" TargetLocationMaxErrors was exceeded, so {left} locations were not started."
        return message
