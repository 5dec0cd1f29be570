"""Rate control on the local runtime: a child execution per target, paced by MaxConcurrency, cut by MaxErrors.

What AWS documents, and this module does:
- ``Targets`` (one target: ``ParameterValues``, ``tag:KEY``, ``tag-key``, ``ResourceGroup``,
  ``AWS::EC2::Instance`` with ``*``) with ``TargetParameterName``, or ``TargetMaps`` (never both): Automation
  starts one child execution per target; parameters given at the start go to every child, the target's value
  to its parameter; the parent is complete when every child is in a final state. A wrong-case or unknown
  TargetParameterName is InvalidAutomationExecutionParametersException.
  (https://docs.aws.amazon.com/systems-manager/latest/userguide/running-automations-map-targets.html)
- ``MaxConcurrency`` (default 10) and ``MaxErrors`` as a number or a percentage of the target set; the first
  child goes alone, then the number in flight grows exponentially up to MaxConcurrency; MaxErrors 3 stops
  starting children at the fourth error, 0 at the first, 10% of 50 at the sixth; children already running
  complete. (StartAutomationExecution API reference; "Control automations at scale",
  https://docs.aws.amazon.com/systems-manager/latest/userguide/running-automations-scale-controls.html)
- The parent's shape: TargetParameterName, Targets, TargetMaps, ResolvedTargets {ParameterValues, Truncated},
  MaxConcurrency, MaxErrors, one ``aws:executeAutomation`` step per target named after its value, and
  TargetsSummary; each child has ParentAutomationExecutionId and Target. Children count against the account's
  100 running / queued-as-Pending quota; rate-control executions themselves have their own quota of 25 running
  and 1,000 queued (https://docs.aws.amazon.com/general/latest/gr/ssm.html#limits_ssm).

Chosen here where AWS documents nothing (said in the README): percentages round down, MaxConcurrency to at
least 1; an absent MaxErrors allows no error (Run Command's documented default); the parent ends ``Failed``
when any child did not succeed (Failed, TimedOut or Cancelled count as errors, as TargetsSummary counts them),
``Success`` otherwise; a child that cannot be started (its parameters, IAM, the account's queue full) is an
error of that target; tags and resource groups are resolved when the parent begins, with the parent's identity
(tag:GetResources, resource-groups:GetGroupQuery), and a match of nothing fails the parent; a resource group
whose query is not ``TAG_FILTERS_1_0`` is refused by name; ResolvedTargets lists the first 100 values.

Seam for multi-account (TargetLocations): ``RateControl.start_child`` starts one child for one target with
given parameter overrides; the parent's status derives from its children through ``child_ended``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from airflow_ssm_delegate.documents.model import (
    ParameterValidationError,
    Runbook,
    StepSpec,
    resolve_parameters,
)
from airflow_ssm_delegate.fanout import DEFAULT_MAX_CONCURRENCY, parse_rate
from airflow_ssm_delegate.local.children import CHILD_ACTION, ChildDriver, Progress
from airflow_ssm_delegate.local.errors import AutomationApiError
from airflow_ssm_delegate.local.execution import StepRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow_ssm_delegate.local.execution import Execution
    from airflow_ssm_delegate.local.identity import Credentials

#: Rate-control executions running at once and queued as Pending (Systems Manager service quotas).
DEFAULT_MAX_RATE_CONTROL_RUNNING = 25
DEFAULT_MAX_RATE_CONTROL_QUEUED = 1000
RATE_CONTROL_KEYS = ("TargetParameterName", "Targets", "TargetMaps", "MaxConcurrency", "MaxErrors")
RESOLVED_SHOWN = 100
INVALID = "InvalidAutomationExecutionParametersException"
ERROR_STATUSES = frozenset({"Failed", "TimedOut", "Cancelled"})
TARGET_KEYS = "ParameterValues, tag:<key>, tag-key, ResourceGroup or AWS::EC2::Instance"


@dataclass(frozen=True)
class Target:
    """One target: its label (the parent's step name and the child's ``Target``) and its parameter values."""

    label: str
    overrides: dict[str, list[str]]


@dataclass
class FanOut(Progress):
    """A rate-control parent: its request's rate-control members, its children's progress (under its lock)."""

    parameter_name: str | None
    targets: list[dict[str, Any]] | None
    target_maps: list[dict[str, list[str]]] | None
    max_concurrency: str
    max_errors: str | None
    type_filter: str | None = None  # the document's TargetType as "service:type" (tag and group targets)
    resolved: list[Target] | None = None
    started: int = 0
    peak_running: int = 0  # most children started and not yet ended at once (the engine's own count)

    @property
    def total(self) -> int:
        return len(self.resolved or ())

    def concurrency(self) -> int:
        amount, percent = parse_rate(self.max_concurrency)
        return max(1, self.total * amount // 100) if percent else amount

    def error_limit(self) -> int:
        if self.max_errors is None:
            return 0
        amount, percent = parse_rate(self.max_errors)
        return self.total * amount // 100 if percent else amount

    def exceeded(self) -> bool:
        return self.errors > self.error_limit()

    def all_launched(self) -> bool:
        return self.launched == self.total

    def window(self) -> int:
        """Children allowed in flight: 1, then doubling with each child that ended, up to MaxConcurrency."""
        ended = self.succeeded + self.errors
        return min(self.concurrency(), 1 << min(ended, 30))

    def metadata(self) -> dict[str, Any]:
        """The rate-control members of AutomationExecution(Metadata)."""
        shape: dict[str, Any] = {
            "TargetParameterName": self.parameter_name,
            "Targets": [dict(target) for target in self.targets] if self.targets else None,
            "TargetMaps": [dict(target_map) for target_map in self.target_maps] if self.target_maps else None,
            "MaxConcurrency": self.max_concurrency,
            "MaxErrors": self.max_errors,
        }
        if self.resolved is not None:
            values = [target.label for target in self.resolved]
            shape["ResolvedTargets"] = {
                "ParameterValues": values[:RESOLVED_SHOWN],
                "Truncated": len(values) > RESOLVED_SHOWN,
            }
        return shape

    def summary(self) -> dict[str, int]:
        """TargetsSummary (GetAutomationExecution of a rate-control execution)."""
        return {
            "TotalCount": self.total,
            "StartedCount": self.started,
            "CompletedCount": self.succeeded + self.errors,
            "SuccessfulCount": self.succeeded,
            "FailedCount": self.errors,
        }


@dataclass(frozen=True)
class Planned:
    """What StartAutomationExecution of a rate-control parent runs with: its fan-out and its own runbook
    (without the target parameters, which each child gets, and without outputs, which the children have)."""

    fan_out: FanOut
    runbook: Runbook


def plan_fan_out(request: dict[str, Any], runbook: Runbook) -> Planned | None:
    """None for a start without rate control; else its checked plan, or the API's error naming the problem."""
    if not any(request.get(key) not in (None, []) for key in RATE_CONTROL_KEYS):
        return None
    targets, maps = request.get("Targets") or None, request.get("TargetMaps") or None
    name = request.get("TargetParameterName")
    if targets is None and maps is None:
        keys = ", ".join(key for key in RATE_CONTROL_KEYS if request.get(key) not in (None, []))
        _refuse(f"{keys} apply only to a rate-control start: add Targets (or TargetMaps), or remove {keys}.")
    if targets is not None and maps is not None:
        _refuse("Both Targets and TargetMaps can't be specified together; use one of them.")
    if request.get("Mode", "Auto") != "Auto":
        _refuse(
            "Mode Interactive cannot be used with Targets or TargetMaps: each target runs as its own child "
            "execution in Auto mode. Remove Mode, or start one Interactive execution per target."
        )
    if name is not None and name not in runbook.parameters:
        _refuse(
            f"TargetParameterName {name!r} is not a parameter of the runbook (names are case sensitive; "
            f"its parameters: {', '.join(runbook.parameters) or 'none'})."
        )
    target_names = {name} if name else set()
    if targets is not None:
        if name is None:
            _refuse(
                "TargetParameterName is required with Targets: name the runbook parameter each target's "
                "value is passed to."
            )
        _check_targets(targets)
    else:
        maps = _checked_maps(maps, runbook)
        target_names |= {key for target_map in maps for key in target_map}
    given = request.get("Parameters") or {}
    overlap: list[str] = sorted(target_names & set(given)) if isinstance(given, dict) else []
    if overlap:
        _refuse(
            f"{', '.join(overlap)} take their values from the targets; do not also pass them in Parameters."
        )
    fan_out = FanOut(
        parameter_name=name,
        targets=[dict(target) for target in targets] if targets else None,
        target_maps=maps,
        max_concurrency=_rate("MaxConcurrency", request.get("MaxConcurrency"), minimum=1)
        or DEFAULT_MAX_CONCURRENCY,
        max_errors=_rate("MaxErrors", request.get("MaxErrors"), minimum=0),
    )
    known = _known_targets(fan_out)
    if known is not None:  # ParameterValues and TargetMaps: every child's parameters are known now
        _check_children(runbook, given, known)
    parent_parameters = {n: spec for n, spec in runbook.parameters.items() if n not in target_names}
    return Planned(fan_out, dataclasses.replace(runbook, parameters=parent_parameters, outputs=()))


class RateControl(ChildDriver[FanOut, Target]):
    """The engine's rate-control parents: resolving targets, starting children paced by a growing window."""

    def start_child(self, parent: Execution, target: Target) -> str:
        """Start one child execution of ``parent`` for ``target`` (its parameters over the parent's); its id.

        Call with the parent's lock held. The child is authorised and admitted like any start (the account's
        quotas included) and tells ``parent`` when it ends; AutomationApiError when it cannot start.
        """
        request = {
            "DocumentName": parent.document_name,
            "DocumentVersion": parent.document_version,
            "Parameters": {**parent.parameters, **target.overrides},
        }
        return self._engine._start(request, parent.caller, parent=parent, target=target.label)

    def begin(self, parent: Execution) -> None:
        """The parent began (on a worker): resolve its targets, then start its first children."""
        with parent.lock:
            fan_out, credentials = parent.fan_out, parent.credentials
        assert fan_out is not None and credentials is not None
        target_type = getattr(self._engine.load_document, "target_type", None)  # the runtime's loader has it
        if target_type is not None:
            fan_out.type_filter = _type_filter(target_type(parent.document_name, parent.document_version))
        problem = None
        try:
            region = self._engine.where(parent)[1]  # a TargetLocations child resolves in its Region
            resolved = _known_targets(fan_out) or self._resolve(fan_out, credentials, region)
        except AutomationApiError as error:
            problem, resolved = f"{error.code}: {error.message}", []
        except (ClientError, BotoCoreError) as error:
            problem, resolved = f"Targets could not be resolved: {error}", []
        with parent.lock:
            if parent.finished:
                return
            fan_out.resolved = resolved
            if problem or not resolved:
                target = json.dumps(fan_out.targets)
                self._engine._finish(parent, "Failed", problem or f"No resource matched Targets {target}.")
                return
            self._engine._guard(parent, lambda: self._advance(parent))

    def peak(self, execution_id: str) -> int:
        """The most children of this rate-control execution that were in flight at once."""
        execution = self._engine._execution(execution_id)
        with execution.lock:
            if execution.fan_out is None:
                raise AutomationApiError(
                    INVALID, f"Execution {execution_id} is not a rate-control execution."
                )
            return execution.fan_out.peak_running

    # ----------------------------------------------------------------------------------- internals
    def _progress(self, parent: Execution) -> FanOut | None:
        return parent.fan_out

    def _next(self, progress: FanOut) -> Target | None:
        assert progress.resolved is not None
        if progress.launched >= progress.total or len(progress.running) >= progress.window():
            return None
        progress.launched += 1
        return progress.resolved[progress.launched - 1]

    def _step(self, parent: Execution, progress: FanOut, item: Target) -> StepRecord:
        inputs = {name: items[0] if len(items) == 1 else items for name, items in item.overrides.items()}
        return StepRecord(StepSpec(name=item.label, action=CHILD_ACTION), inputs=inputs)

    def _start_child(self, parent: Execution, progress: FanOut, item: Target) -> str:
        return self.start_child(parent, item)

    def _start_failure(self, item: Target, error: AutomationApiError) -> str:
        return f"The child execution could not start ({error.code}): {error.message}"

    def _started(self, progress: FanOut, record: StepRecord, child_id: str) -> None:
        progress.started += 1
        progress.peak_running = max(progress.peak_running, len(progress.running))

    def _failure_message(self, fan_out: FanOut) -> str:
        not_started = fan_out.total - fan_out.launched
        message = (
            f"{fan_out.errors} of {fan_out.total} targets did not succeed (Failed, TimedOut or Cancelled)."
        )
        if fan_out.exceeded() and not_started:
            allowed = fan_out.max_errors or "0 (MaxErrors not given)"
            message += f" MaxErrors {allowed} was exceeded, so {not_started} targets were not started."
        return message

    def _resolve(self, fan_out: FanOut, credentials: Credentials, region: str) -> list[Target]:
        """Tag, tag-key, resource-group and all-instances targets, read with the parent's identity."""
        assert fan_out.targets is not None and fan_out.parameter_name is not None
        client: Callable[[str], Any] = functools.partial(self._engine.clients.get, credentials, region=region)
        key, values = fan_out.targets[0]["Key"], list(fan_out.targets[0].get("Values") or [])
        if key.startswith("tag:"):
            arns = _tagged(client("resourcegroupstaggingapi"), [{"Key": key[4:], "Values": values}])
        elif key == "tag-key":
            tagging = client("resourcegroupstaggingapi")
            arns = [arn for tag_key in values for arn in _tagged(tagging, [{"Key": tag_key}])]
        elif key == "ResourceGroup":
            arns = _group_members(client("resource-groups"), client("resourcegroupstaggingapi"), values[0])
        else:  # AWS::EC2::Instance, *
            arns = _all_instances(client("ec2"))
        ids = _unique(_resource_id(arn) for arn in arns if _of_type(arn, fan_out.type_filter))
        return [Target(value, {fan_out.parameter_name: [value]}) for value in ids]


def _refuse(message: str, code: str = INVALID) -> NoReturn:
    raise AutomationApiError(code, message)


def _check_targets(targets: Any) -> None:
    if not isinstance(targets, list) or len(targets) != 1:
        _refuse("Only one resource group or tag can be specified at a time: give Targets exactly one target.")
    target = targets[0]
    key, values = (target.get("Key"), target.get("Values")) if isinstance(target, dict) else (None, None)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        _refuse(f"Target {key!r} needs Values: a non-empty list of strings.")
    if not isinstance(key, str) or not (
        key in ("ParameterValues", "tag-key", "ResourceGroup") or (key.startswith("tag:") and len(key) > 4)
    ):
        if key == "AWS::EC2::Instance" and values == ["*"]:
            return
        _refuse(f"Target key {key!r} is not one Automation targets by; use {TARGET_KEYS}.", "InvalidTarget")
    if key == "ResourceGroup" and len(values) != 1:
        _refuse("Only one resource group or tag can be specified at a time: give ResourceGroup one name.")


def _checked_maps(maps: Any, runbook: Runbook) -> list[dict[str, list[str]]]:
    if not isinstance(maps, list) or not all(isinstance(m, dict) and m for m in maps):
        _refuse("TargetMaps must be a list of maps of parameter name to a list of values.")
    checked = []
    for index, target_map in enumerate(maps):
        unknown = sorted(set(target_map) - set(runbook.parameters))
        if unknown:
            _refuse(
                f"TargetMaps[{index}] names {', '.join(unknown)}, which the runbook does not declare "
                f"(its parameters: {', '.join(runbook.parameters) or 'none'})."
            )
        values = {str(k): v if isinstance(v, list) else [v] for k, v in target_map.items()}
        if not all(isinstance(item, str) for items in values.values() for item in items):
            _refuse(f"TargetMaps[{index}] must map each parameter name to a list of strings.")
        checked.append(values)
    return checked


def _rate(name: str, value: Any, minimum: int) -> str | None:
    if value is None:
        return None
    try:
        amount, percent = parse_rate(value)
    except ValueError:
        amount, percent = -1, False
    if amount < minimum or (percent and amount > 100):
        low = f"{minimum}" if minimum else "0"
        _refuse(f"{name} {value!r} must be a whole number of at least {low} or a percentage {low}%-100%.")
    return f"{amount}%" if percent else str(amount)


def _known_targets(fan_out: FanOut) -> list[Target] | None:
    """Targets known without reading AWS (ParameterValues, TargetMaps); None for tags and groups."""
    if fan_out.target_maps is not None:
        name = fan_out.parameter_name
        return [
            Target(",".join(target_map[name]) if name in target_map else json.dumps(target_map), target_map)
            for target_map in fan_out.target_maps
        ]
    assert fan_out.targets is not None and fan_out.parameter_name is not None
    target = fan_out.targets[0]
    if target["Key"] != "ParameterValues":
        return None
    return [Target(value, {fan_out.parameter_name: [value]}) for value in _unique(target["Values"])]


def _check_children(runbook: Runbook, given: Any, targets: list[Target]) -> None:
    for target in targets:
        try:
            resolve_parameters(runbook, {**(given if isinstance(given, dict) else {}), **target.overrides})
        except ParameterValidationError as error:
            _refuse(f"Target {target.label}: {error}")
        except (TypeError, ValueError, AttributeError) as error:
            _refuse(f"Target {target.label}: parameters must map each name to a list of strings: {error}")


def _type_filter(target_type: Any) -> str | None:
    """``/AWS::EC2::Instance`` -> ``ec2:instance`` (None: any type)."""
    parts = str(target_type or "").strip("/").split("::")
    return f"{parts[1].lower()}:{parts[2].lower()}" if len(parts) == 3 else None


def _of_type(arn: str, type_filter: str | None) -> bool:
    """Whether the ARN names a resource of ``service:type`` (a bucket-like ARN: of that service)."""
    if type_filter is None:
        return True
    fields = arn.split(":", 5)
    if len(fields) != 6:
        return False
    service, resource = fields[2], fields[5]
    if "/" not in resource and ":" not in resource:
        return type_filter.split(":", 1)[0] == service
    return f"{service}:{resource.replace(':', '/').split('/', 1)[0]}" == type_filter


def _resource_id(arn: str) -> str:
    resource = arn.split(":", 5)[-1]
    return resource.rsplit("/", 1)[-1]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _tagged(tagging: Any, tag_filters: list[dict[str, Any]]) -> list[str]:
    arns: list[str] = []
    token = ""
    while True:
        page = tagging.get_resources(TagFilters=tag_filters, PaginationToken=token)
        arns.extend(mapping["ResourceARN"] for mapping in page.get("ResourceTagMappingList", []))
        token = page.get("PaginationToken") or ""
        if not token:
            return arns


def _group_members(groups: Any, tagging: Any, name: str) -> list[str]:
    """A tag-query resource group's resources; any other query type is refused by name."""
    query = groups.get_group_query(Group=name)["GroupQuery"]["ResourceQuery"]
    if query.get("Type") != "TAG_FILTERS_1_0":
        _refuse(
            f"Resource group {name} has a {query.get('Type')} query, which the local runtime cannot evaluate "
            "(only TAG_FILTERS_1_0). Target its resources by tag or by ParameterValues instead."
        )
    content = json.loads(query["Query"])
    types = [t for t in content.get("ResourceTypeFilters", []) if t != "AWS::AllSupported"]
    wanted = {_type_filter(t) for t in types}
    arns = _tagged(tagging, content.get("TagFilters", []))
    return [arn for arn in arns if not wanted or any(_of_type(arn, w) for w in wanted)]


def _all_instances(ec2: Any) -> list[str]:
    """Every instance not terminated (``AWS::EC2::Instance``, ``*``), as ARN-like ``instance/ID``."""
    ids: list[str] = []
    for page in ec2.get_paginator("describe_instances").paginate():
        for reservation in page["Reservations"]:
            ids.extend(
                f"arn:aws:ec2:::instance/{i['InstanceId']}"
                for i in reservation["Instances"]
                if i["State"]["Name"] != "terminated"
            )
    return ids
