"""The runbook model: parsing, structural refusals and the parameter conversion every component shares."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_ssm_delegate.documents.model import (
    MISSING,
    ParameterValidationError,
    Runbook,
    RunbookError,
    parse_runbook,
    resolve_parameters,
    to_api_parameters,
)
from airflow_ssm_delegate.documents.parameters import matches_pattern

if TYPE_CHECKING:
    from collections.abc import Callable

RUNBOOK = """\
schemaVersion: '0.3'
description: test
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole:
    type: String
    allowedPattern: '^arn:aws:iam::\\d{12}:role/[\\w+=,.@-]+$'
  InstanceType:
    type: String
    default: t3.micro
    allowedValues: [t3.micro, t3.small]
  Count:
    type: Integer
    default: 1
    allowedValues: [1, 2]
  DryRun:
    type: Boolean
    default: false
  Names:
    type: StringList
    default: []
    maxItems: 2
    maxChars: 5
  Tags:
    type: MapList
    default: []
  Extra:
    type: StringMap
    default: {}
mainSteps:
  - name: launch
    action: aws:runInstances
    inputs:
      ImageId: ami-12345678
  - name: tag
    action: aws:createTags
    onFailure: step:launch
    isEnd: true
    inputs:
      ResourceIds: '{{ launch.InstanceIds }}'
outputs: [launch.InstanceIds]
"""
ROLE = "arn:aws:iam::123456789012:role/Automation"


@pytest.fixture
def runbook() -> Runbook:
    return parse_runbook(RUNBOOK, source="test.yaml")


def test_parse_builds_the_model_with_source_lines(runbook: Runbook) -> None:
    assert runbook.assume_role_parameter == "AutomationAssumeRole"
    assert [step.name for step in runbook.steps] == ["launch", "tag"]
    tag = runbook.step("tag")
    assert (tag.action, tag.on_failure, tag.is_end) == ("aws:createTags", "step:launch", True)
    assert tag.line == RUNBOOK.splitlines().index("  - name: tag") + 1
    assert runbook.parameters["AutomationAssumeRole"].required
    assert runbook.parameters["InstanceType"].allowed_values == ("t3.micro", "t3.small")
    assert runbook.parameters["Count"].default == 1
    assert runbook.outputs == ("launch.InstanceIds",)
    with pytest.raises(KeyError, match="no step 'nope'"):
        runbook.step("nope")


def test_json_text_parses_like_yaml(runbook: Runbook) -> None:
    as_json = parse_runbook(json.dumps(runbook.raw, indent=1))
    assert [replace(step, line=None) for step in as_json.steps] == [
        replace(step, line=None) for step in runbook.steps
    ]
    assert as_json.parameters == runbook.parameters


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(schemaVersion="0.2"), "schemaVersion must be '0.3'"),
        (lambda d: d.update(mainSteps=[]), "mainSteps is required"),
        (lambda d: d["mainSteps"][0].update(name="bad-name"), "step name 'bad-name' is invalid"),
        (lambda d: d["mainSteps"][1].update(name="launch"), "'launch' is used twice"),
        (lambda d: d["mainSteps"][1].update(onFailure="step:gone"), "onFailure targets unknown step 'gone'"),
        (lambda d: d["mainSteps"][1].update(nextStep="gone"), "nextStep targets unknown step 'gone'"),
        (lambda d: d["mainSteps"][1].update(onCancel="Continue"), "onCancel 'Continue' must be Abort"),
        (lambda d: d["mainSteps"][0].update(maxAttempts=True), "maxAttempts must be an integer"),
        (lambda d: d["mainSteps"][0].update(onfailure="Abort"), "unknown step key 'onfailure'"),
        (lambda d: d["parameters"]["Count"].update(type="Number"), "type 'Number' is not one of"),
        (lambda d: d["parameters"]["Count"].update(allowedPattern=5), "allowedPattern must be a string"),
        (lambda d: d.update(extra=1), "unknown top-level key 'extra'"),
    ],
)
def test_structural_problems_are_refused_naming_the_key(
    runbook: Runbook, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = json.loads(json.dumps(runbook.raw))
    mutate(data)
    with pytest.raises(RunbookError, match=expected):
        parse_runbook(data)


def test_syntax_error_is_a_runbook_error() -> None:
    with pytest.raises(RunbookError, match=r"x\.yaml: not valid YAML/JSON"):
        parse_runbook("mainSteps: [unclosed", source="x.yaml")


def test_to_api_parameters_converts_by_declared_type(runbook: Runbook) -> None:
    api = to_api_parameters(
        runbook,
        {
            "AutomationAssumeRole": ROLE,
            "Count": 2,
            "DryRun": True,
            "Names": ["a", "b"],
            "Tags": [{"Key": "k", "Value": "v"}],
            "Extra": {"a": 1},
        },
    )
    assert api == {
        "AutomationAssumeRole": [ROLE],
        "Count": ["2"],
        "DryRun": ["true"],
        "Names": ["a", "b"],
        "Tags": ['{"Key":"k","Value":"v"}'],
        "Extra": ['{"a":1}'],
    }


def test_to_api_parameters_lists_every_problem(runbook: Runbook) -> None:
    with pytest.raises(ParameterValidationError) as caught:
        to_api_parameters(
            runbook,
            {"InstanceType": "t3.huge", "Count": True, "DryRun": "yes", "Names": "a", "Bogus": 1},
        )
    problems = caught.value.problems
    assert "InstanceType: 't3.huge' is not one of the allowedValues ['t3.micro', 't3.small']" in problems
    assert any(p.startswith("Count: expected an integer, got boolean") for p in problems)
    assert any(p.startswith("DryRun: expected a boolean") for p in problems)
    names = next(p for p in problems if p.startswith("Names: expected a list of strings"))
    assert names.endswith("unless the DAG sets render_template_as_native_obj=True")
    assert any(p.startswith("Bogus: not a parameter of this runbook") for p in problems)
    assert any(p.startswith("AutomationAssumeRole: required") for p in problems)
    assert len(problems) == 6


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"Count": 1.5}, "Count: expected an integer"),
        ({"Count": 3}, "Count: '3' is not one of the allowedValues ['1', '2']"),
        ({"AutomationAssumeRole": "arn:aws:iam::1:user/x"}, "does not match the allowedPattern"),
        ({"Names": ["a", "b", "c"]}, "Names: 3 items, more than maxItems 2"),
        ({"Names": ["toolong"]}, "Names: 'toolong' is longer than maxChars 5"),
        ({"Tags": ["not json"]}, "Tags: expected a JSON object"),
        ({"Extra": [1, 2]}, "Extra: expected one value, got a list of 2"),
        ({"InstanceType": "x" * 513}, "exceeds the API limit of 512"),
    ],
)
def test_to_api_parameters_rejects(runbook: Runbook, values: dict[str, Any], expected: str) -> None:
    with pytest.raises(ParameterValidationError, match=re.escape(expected)):
        to_api_parameters(runbook, {"AutomationAssumeRole": ROLE, **values})


def test_api_form_is_accepted_by_to_api_parameters(runbook: Runbook) -> None:
    api = to_api_parameters(runbook, {"AutomationAssumeRole": [ROLE], "Count": ["2"], "DryRun": ["False"]})
    assert api == {"AutomationAssumeRole": [ROLE], "Count": ["2"], "DryRun": ["false"]}


def test_resolve_parameters_fills_defaults_and_types(runbook: Runbook) -> None:
    values = resolve_parameters(
        runbook, {"AutomationAssumeRole": [ROLE], "Count": ["2"], "Tags": ['{"Key":"k"}']}
    )
    assert values == {
        "AutomationAssumeRole": ROLE,
        "InstanceType": "t3.micro",
        "Count": 2,
        "DryRun": False,
        "Names": [],
        "Tags": [{"Key": "k"}],
        "Extra": {},
    }


def test_resolve_parameters_rejects_api_form_problems(runbook: Runbook) -> None:
    with pytest.raises(ParameterValidationError) as caught:
        resolve_parameters(runbook, {"InstanceType": ["t3.micro", "t3.small"], "Unknown": ["x"]})
    assert len(caught.value.problems) == 3
    assert "InstanceType: a String parameter takes exactly one value, got 2" in caught.value.problems


def test_missing_sentinel_marks_required(runbook: Runbook) -> None:
    assert runbook.parameters["AutomationAssumeRole"].default is MISSING
    assert not runbook.parameters["InstanceType"].required


def test_pattern_uses_search_semantics_so_anchors_matter() -> None:
    assert matches_pattern("ami-", "xx-ami-1")
    assert not matches_pattern("^ami-", "xx-ami-1")


def test_error_messages_quote_long_values_bounded(runbook: Runbook) -> None:
    with pytest.raises(ParameterValidationError) as caught:
        to_api_parameters(runbook, {"AutomationAssumeRole": "x" * 5000, "Count": ["9" * 5000, "1"]})
    assert all(len(problem) < 300 for problem in caught.value.problems), caught.value.problems
    assert any("'xxxxxxxx" in problem and "...'" in problem for problem in caught.value.problems)
