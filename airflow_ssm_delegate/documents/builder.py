"""Write a schema-0.3 runbook in Python: a small typed builder that renders YAML passing lint.

    runbook = (
        Runbook("LaunchTaggedInstance", description="Launch and tag an instance")
        .parameter("ImageId", allowed_pattern=r"^ami-[0-9a-f]{8,17}$")
        .run_instances("launch", image_id=ref("ImageId"), instance_type="t3.micro")
        .create_tags("tag", resource_ids=ref("launch.InstanceIds"), tags={"Owner": "me"}, is_end=True)
        .output("launch.InstanceIds")
    )
    runbook.to_yaml()        # raises RunbookBuildError listing lint findings, so only valid runbooks leave

The service-role parameter (``AutomationAssumeRole``) is declared for you: runbooks built here always run
as a role. Typed helpers cover the common actions; ``step()`` takes any other action as a plain mapping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

import yaml

from airflow_ssm_delegate.documents.lint import WARNING, Finding, has_failures, lint_text
from airflow_ssm_delegate.documents.model import MISSING, SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from typing_extensions import Self, Unpack

ROLE_PARAMETER = "AutomationAssumeRole"
ROLE_ARN_PATTERN = r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"


def ref(expression: str) -> str:
    """``ref("launch.InstanceIds")`` -> ``"{{ launch.InstanceIds }}"``."""
    return f"{{{{ {expression} }}}}"


class StepOptions(TypedDict, total=False):
    """The step keys every action shares (schema 0.3 names in snake_case)."""

    description: str
    on_failure: str  # Abort | Continue | step:<name>
    on_cancel: str  # Abort | step:<name>
    timeout_seconds: int
    max_attempts: int
    is_end: bool
    next_step: str
    is_critical: bool
    outputs: Sequence[Mapping[str, str]]  # [{"Name", "Selector", "Type"}]


_STEP_KEYS = {
    "description": "description",
    "timeout_seconds": "timeoutSeconds",
    "max_attempts": "maxAttempts",
    "on_failure": "onFailure",
    "on_cancel": "onCancel",
    "is_critical": "isCritical",
    "is_end": "isEnd",
    "next_step": "nextStep",
}


class RunbookBuildError(ValueError):
    """The built runbook does not pass lint; ``findings`` lists why."""

    def __init__(self, name: str, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__(f"runbook {name} does not pass lint: " + "; ".join(str(f) for f in findings))


class RunbookBuilder:
    """Accumulates parameters, steps and outputs; every method returns the builder for chaining."""

    def __init__(self, name: str, *, description: str | None = None) -> None:
        self.name = name
        self.description = description
        self._parameters: dict[str, dict[str, Any]] = {}
        self._steps: list[dict[str, Any]] = []
        self._outputs: list[str] = []
        self.parameter(
            ROLE_PARAMETER,
            description="ARN of the service role the runbook runs as.",
            allowed_pattern=ROLE_ARN_PATTERN,
        )

    def parameter(
        self,
        name: str,
        type: str = "String",
        *,
        description: str | None = None,
        default: Any = MISSING,
        allowed_values: Sequence[Any] | None = None,
        allowed_pattern: str | None = None,
        min_items: int | None = None,
        max_items: int | None = None,
        min_chars: int | None = None,
        max_chars: int | None = None,
    ) -> Self:
        """Declare (or redeclare) a parameter; ``default`` omitted means the parameter is required."""
        declaration: dict[str, Any] = {"type": type}
        optional = {
            "description": description,
            "default": None if default is MISSING else default,
            "allowedValues": list(allowed_values) if allowed_values is not None else None,
            "allowedPattern": allowed_pattern,
            "minItems": min_items,
            "maxItems": max_items,
            "minChars": min_chars,
            "maxChars": max_chars,
        }
        declaration.update({key: value for key, value in optional.items() if value is not None})
        if default is None:  # an explicit None default is kept (lint reports it if the type forbids it)
            declaration["default"] = None
        self._parameters[name] = declaration
        return self

    def step(self, name: str, action: str, inputs: Mapping[str, Any], **options: Unpack[StepOptions]) -> Self:
        """Add a step of any action (``inputs`` as the action reference names them)."""
        step: dict[str, Any] = {"name": name, "action": action}
        step.update({key: options[option] for option, key in _STEP_KEYS.items() if option in options})  # type: ignore[literal-required]
        step["inputs"] = dict(inputs)
        if "outputs" in options:
            step["outputs"] = [dict(output) for output in options["outputs"]]
        self._steps.append(step)
        return self

    def run_instances(
        self,
        name: str,
        *,
        image_id: str,
        instance_type: str | None = None,
        min_count: int = 1,
        max_count: int = 1,
        extra_inputs: Mapping[str, Any] | None = None,
        **options: Unpack[StepOptions],
    ) -> Self:
        """aws:runInstances (outputs ``InstanceIds``, ``InstanceStates``)."""
        inputs: dict[str, Any] = {"ImageId": image_id}
        if instance_type is not None:
            inputs["InstanceType"] = instance_type
        inputs.update({"MinInstanceCount": min_count, "MaxInstanceCount": max_count, **(extra_inputs or {})})
        return self.step(name, "aws:runInstances", inputs, **options)

    def create_tags(
        self,
        name: str,
        *,
        resource_ids: str | Sequence[str],
        tags: Mapping[str, str],
        resource_type: str | None = None,
        **options: Unpack[StepOptions],
    ) -> Self:
        """aws:createTags; ``tags`` as ``{key: value}`` (rendered as the action's Key/Value list)."""
        inputs: dict[str, Any] = {} if resource_type is None else {"ResourceType": resource_type}
        inputs["ResourceIds"] = resource_ids if isinstance(resource_ids, str) else list(resource_ids)
        inputs["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
        return self.step(name, "aws:createTags", inputs, **options)

    def change_instance_state(
        self,
        name: str,
        *,
        instance_ids: str | Sequence[str],
        desired_state: str,
        **options: Unpack[StepOptions],
    ) -> Self:
        """aws:changeInstanceState to ``running``, ``stopped`` or ``terminated``.

        ``instance_ids``: a list (``[ref("InstanceId")]``) or one reference to a list
        (``ref("launch.InstanceIds")``).
        """
        ids = instance_ids if isinstance(instance_ids, str) else list(instance_ids)
        inputs = {"InstanceIds": ids, "DesiredState": desired_state}
        return self.step(name, "aws:changeInstanceState", inputs, **options)

    def sleep(self, name: str, duration: str, **options: Unpack[StepOptions]) -> Self:
        """aws:sleep for an ISO-8601 ``duration`` (e.g. ``PT6H``) or a ``ref`` to a parameter."""
        return self.step(name, "aws:sleep", {"Duration": duration}, **options)

    def approve(
        self,
        name: str,
        *,
        approvers: str | Sequence[str],
        message: str | None = None,
        min_required_approvals: int = 1,
        **options: Unpack[StepOptions],
    ) -> Self:
        """aws:approve: wait until ``min_required_approvals`` of ``approvers`` approve."""
        inputs: dict[str, Any] = {
            "Approvers": approvers if isinstance(approvers, str) else list(approvers),
            "MinRequiredApprovals": min_required_approvals,
        }
        if message is not None:
            inputs["Message"] = message
        return self.step(name, "aws:approve", inputs, **options)

    def execute_aws_api(
        self,
        name: str,
        *,
        service: str,
        api: str,
        parameters: Mapping[str, Any] | None = None,
        **options: Unpack[StepOptions],
    ) -> Self:
        """aws:executeAwsApi: any API call; declare ``outputs`` (JSONPath Selectors) to use the response."""
        return self.step(
            name, "aws:executeAwsApi", {"Service": service, "Api": api, **(parameters or {})}, **options
        )

    def output(self, *references: str) -> Self:
        """Runbook outputs, as ``"step.Output"``."""
        self._outputs.extend(references)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The document as a mapping, in the conventional key order (not checked; see ``lint``)."""
        document: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
        if self.description:
            document["description"] = self.description
        document["assumeRole"] = ref(ROLE_PARAMETER)
        document["parameters"] = {name: dict(declaration) for name, declaration in self._parameters.items()}
        document["mainSteps"] = [dict(step) for step in self._steps]
        if self._outputs:
            document["outputs"] = list(self._outputs)
        return document

    def lint(self) -> list[Finding]:
        """Lint findings of the document as rendered (line numbers refer to ``to_yaml(check=False)``)."""
        return lint_text(self.to_yaml(check=False), f"<builder {self.name}>")

    def build(self) -> dict[str, Any]:
        """The document, once lint reports no error or policy finding (else ``RunbookBuildError``)."""
        findings = self.lint()
        if has_failures(findings):
            raise RunbookBuildError(self.name, [f for f in findings if f.severity != WARNING])
        return self.to_dict()

    def to_yaml(self, *, check: bool = True) -> str:
        """The document as YAML (checked by lint unless ``check=False``)."""
        document = self.build() if check else self.to_dict()
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)


#: The issue's spelling: ``Runbook(...).run_instances(...).create_tags(...)``.
Runbook = RunbookBuilder
