"""The runbook language AWS accepts, as the model reads it: loops, variables, coercions, AWS types."""

from __future__ import annotations

import pytest

from airflow_ssm_delegate.documents.lint import lint_text
from airflow_ssm_delegate.documents.model import (
    ParameterValidationError,
    RunbookError,
    parse_runbook,
    resolve_parameters,
    to_api_parameters,
)

LOOP_RUNBOOK = """\
schemaVersion: '0.3'
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole:
    type: AWS::IAM::Role::Arn
  InstanceIds:
    type: List<AWS::EC2::Instance::Id>
variables:
  Stopped:
    type: Integer
    default: 0
mainSteps:
  - name: eachInstance
    action: aws:loop
    isCritical: 'false'
    timeoutSeconds: '600'
    maxAttempts: '2'
    inputs:
      Iterators: '{{ InstanceIds }}'
      Steps:
        - name: stopOne
          action: aws:changeInstanceState
          inputs:
            InstanceIds: ['{{ eachInstance.CurrentIteratorValue }}']
            DesiredState: stopped
        - name: count
          action: aws:updateVariable
          isEnd: 'true'
          inputs:
            Name: variable:Stopped
            Value: '{{ eachInstance.CurrentIteration }}'
  - name: done
    action: aws:sleep
    isEnd: true
    inputs:
      Duration: PT1S
outputs:
"""


def test_loop_steps_are_nested_step_specs_and_leave_the_inputs() -> None:
    runbook = parse_runbook(LOOP_RUNBOOK)
    loop = runbook.steps[0]
    assert [step.name for step in loop.steps] == ["stopOne", "count"]
    assert "Steps" not in loop.inputs and loop.inputs["Iterators"] == "{{ InstanceIds }}"
    assert loop.steps[0].inputs["InstanceIds"] == ["{{ eachInstance.CurrentIteratorValue }}"]
    assert loop.steps[0].line == 21 and loop.steps[1].is_end is True
    assert [step.name for step in runbook.all_steps()] == ["eachInstance", "stopOne", "count", "done"]
    assert runbook.step("count").action == "aws:updateVariable"


def test_scalars_written_as_strings_are_coerced_as_aws_reads_them() -> None:
    loop = parse_runbook(LOOP_RUNBOOK).steps[0]
    assert (loop.is_critical, loop.timeout_seconds, loop.max_attempts) == (False, 600, 2)


def test_variables_files_and_empty_outputs_are_part_of_the_model() -> None:
    runbook = parse_runbook(LOOP_RUNBOOK)
    assert runbook.variables["Stopped"].type == "Integer"
    assert runbook.variables["Stopped"].default == 0
    assert runbook.outputs == () and runbook.files == {}


def test_nested_step_names_share_the_document_namespace() -> None:
    text = LOOP_RUNBOOK.replace("- name: done", "- name: stopOne")
    with pytest.raises(RunbookError, match="'stopOne' is used twice"):
        parse_runbook(text)


def test_loop_steps_may_jump_out_of_the_loop_but_not_into_nowhere() -> None:
    out = LOOP_RUNBOOK.replace("          isEnd: 'true'\n", "          nextStep: done\n")
    assert parse_runbook(out).step("count").next_step == "done"
    with pytest.raises(RunbookError, match="nextStep targets unknown step 'gone'"):
        parse_runbook(LOOP_RUNBOOK.replace("          isEnd: 'true'\n", "          nextStep: gone\n"))


def test_a_top_level_step_cannot_jump_into_a_loop() -> None:
    text = LOOP_RUNBOOK.replace("    isEnd: true\n", "    nextStep: count\n")
    with pytest.raises(RunbookError, match="nextStep targets unknown step 'count'"):
        parse_runbook(text)


def test_a_scalar_that_is_not_coercible_is_refused_by_name() -> None:
    with pytest.raises(RunbookError, match="isCritical must be a boolean, got str 'no'"):
        parse_runbook(LOOP_RUNBOOK.replace("isCritical: 'false'", "isCritical: 'no'"))


ROLE = "arn:aws:iam::123456789012:role/AutomationRole"


def test_aws_specific_types_convert_as_their_base_type_and_validate() -> None:
    runbook = parse_runbook(LOOP_RUNBOOK)
    assert to_api_parameters(
        runbook, {"AutomationAssumeRole": ROLE, "InstanceIds": ["i-0123456789abcdef0", "i-12345678"]}
    ) == {"AutomationAssumeRole": [ROLE], "InstanceIds": ["i-0123456789abcdef0", "i-12345678"]}
    assert resolve_parameters(runbook, {"AutomationAssumeRole": [ROLE], "InstanceIds": ["i-12345678"]}) == {
        "AutomationAssumeRole": ROLE,
        "InstanceIds": ["i-12345678"],
    }
    with pytest.raises(ParameterValidationError) as caught:
        to_api_parameters(runbook, {"AutomationAssumeRole": "AutomationRole", "InstanceIds": ["vol-1"]})
    assert caught.value.problems == [
        "AutomationAssumeRole: 'AutomationRole' is not a valid AWS::IAM::Role::Arn "
        "(pattern ^arn:(aws|aws-cn|aws-us-gov|aws-iso|aws-iso-b):iam::[0-9]{12}:role/.*$)",
        "InstanceIds: 'vol-1' is not a valid List<AWS::EC2::Instance::Id> "
        "(pattern ^m?i-([a-z0-9]{8}|[a-z0-9]{17})$)",
    ]


def test_an_empty_role_arn_is_accepted_as_aws_own_example_declares_it() -> None:
    text = LOOP_RUNBOOK.replace(
        "    type: AWS::IAM::Role::Arn\n", "    type: AWS::IAM::Role::Arn\n    default: ''\n"
    )
    runbook = parse_runbook(text)
    assert resolve_parameters(runbook, {"InstanceIds": ["i-12345678"]})["AutomationAssumeRole"] == ""


def test_json_indented_with_tabs_reads_as_aws_reads_it() -> None:
    text = (
        '{\n\t"schemaVersion": "0.3",\n\t"mainSteps": [\n\t\t{"name": "wait", "action": "aws:sleep",\n'
        '\t\t "inputs": {"Duration": "PT1S"}}\n\t]\n}\n'
    )
    runbook = parse_runbook(text)
    assert runbook.steps[0].line == 4


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"a{i}: &a{i} [" + ", ".join([f"*{'a' if i == 0 else f'a{i - 1}'}"] * 8) + "]\n"
                for i in range(8)
            ),
            "expands to more than 200000 values",
        ),
        ("mainSteps: " + "[" * 300 + "]" * 300, "nested more than 100 levels deep"),
        ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 150)), "nested more than 100 levels deep"),
        ("a: b\n\x17\n", "is not allowed"),
        ("a: 2021-13-45\n", "a value cannot be read"),
    ],
)
def test_hostile_yaml_is_refused_with_a_reason(text: str, said: str) -> None:
    with pytest.raises(RunbookError, match=said):
        parse_runbook(text)


def lint_codes(text: str) -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in lint_text(text, "t.yaml")]


def test_the_loop_runbook_lints_clean_with_references_into_and_out_of_the_loop() -> None:
    assert lint_codes(LOOP_RUNBOOK) == []
    text = LOOP_RUNBOOK.replace(
        "\noutputs:\n",
        "\noutputs:\n  - eachInstance.CurrentIteration\n  - count.Name\n  - stopOne.InstanceIds\n",
    )
    assert lint_codes(text) == [
        ("SSM022", "warning"),  # aws:updateVariable has no output Name
        ("SSM022", "warning"),  # aws:changeInstanceState has no output InstanceIds
    ]
    looped = LOOP_RUNBOOK.replace(
        "      Iterators: '{{ InstanceIds }}'\n",
        "      Iterators: '{{ InstanceIds }}'\n      LoopCondition:\n        Variable: '{{ count.Done }}'\n"
        "        BooleanEquals: true\n",
    )
    assert lint_codes(looped) == [("SSM022", "warning")]  # the reference resolves to a loop step


def test_a_string_is_end_ends_the_flow_for_reachability() -> None:
    text = LOOP_RUNBOOK.replace("    isCritical: 'false'\n", "    isCritical: 'false'\n    isEnd: 'true'\n")
    assert lint_codes(text) == [("SSM009", "warning")]


def test_allowed_values_of_an_aws_list_type_are_checked_item_by_item() -> None:
    text = LOOP_RUNBOOK.replace(
        "    type: List<AWS::EC2::Instance::Id>\n",
        "    type: List<AWS::EC2::Instance::Id>\n    allowedValues: [i-12345678, vol-12345678]\n",
    )
    assert lint_codes(text) == [("SSM012", "error")]


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ("variables: [a]\n", "variables must be a mapping"),
        ("variables:\n  X: 1\n", "variable X: declaration must be a mapping"),
        (
            "variables:\n  X:\n    type: AWS::IAM::Role::Arn\n",
            "variable X: type 'AWS::IAM::Role::Arn' is not one of",
        ),
        (
            "variables:\n  X:\n    type: String\n    allowedValues: [a]\n",
            "variable X: unknown key 'allowedValues'",
        ),
    ],
)
def test_malformed_variables_are_refused_naming_them(variables: str, said: str) -> None:
    text = LOOP_RUNBOOK.replace("variables:\n  Stopped:\n    type: Integer\n    default: 0\n", variables)
    with pytest.raises(RunbookError, match=said):
        parse_runbook(text)


def test_a_loop_of_sleeps_counts_its_iterations_toward_the_12_hour_session() -> None:
    text = """\
schemaVersion: '0.3'
mainSteps:
  - name: repeat
    action: aws:loop
    inputs:
      MaxIterations: 30
      LoopCondition: {Variable: '{{ global:REGION }}', StringEquals: never}
      Steps:
        - name: nap
          action: aws:sleep
          inputs: {Duration: PT30M}
"""
    codes = lint_codes(text)
    assert ("SSM016", "policy") in codes  # 30 x 30 minutes = 15 hours on the caller's session
    assert ("SSM016", "policy") not in lint_codes(text.replace("MaxIterations: 30", "MaxIterations: 20"))


def test_an_unreachable_step_inside_a_loop_is_reported() -> None:
    text = LOOP_RUNBOOK.replace(
        "          action: aws:changeInstanceState\n",
        "          action: aws:changeInstanceState\n          isEnd: true\n",
    )
    assert lint_codes(text) == [("SSM009", "warning")]  # stopOne ends the iteration: count never runs


DEFAULTS_RUNBOOK = """\
schemaVersion: '0.3'
assumeRole: '{{ AutomationAssumeRole }}'
parameters:
  AutomationAssumeRole:
    type: String
    default: ''
    allowedPattern: '^arn:aws:iam::\\\\d{12}:role/[\\\\w+=,.@-]+$'
  SnapshotId:
    type: String
    default: $LATEST
    allowedPattern: '^[0-9a-zA-Z.\\\\-_/:]+$'
  StatusCodes:
    type: StringList
    allowedValues: [403, 500]
    default: ['403']
mainSteps:
  - name: describe
    action: aws:executeAwsApi
    inputs:
      Service: ec2
      Api: DescribeSnapshots
      SnapshotIds: ['{{ SnapshotId }}']
      Filters: [{Name: description, Values: '{{ StatusCodes }}'}]
    outputs:
      - Name: VolumeId
        Selector: $.Snapshots[0].VolumeId
"""


def test_a_default_its_own_constraints_reject_starts_as_written_but_a_passed_value_is_checked() -> None:
    """AWS's published runbooks declare such defaults ('' for an optional role) and start without them."""
    runbook = parse_runbook(DEFAULTS_RUNBOOK)
    assert resolve_parameters(runbook, {}) == {
        "AutomationAssumeRole": "",
        "SnapshotId": "$LATEST",
        "StatusCodes": ["403"],
    }
    with pytest.raises(ParameterValidationError, match="SnapshotId: '\\$LATEST' does not match"):
        resolve_parameters(runbook, {"SnapshotId": ["$LATEST"]})
    with pytest.raises(ParameterValidationError, match="SnapshotId: '' does not match"):
        to_api_parameters(runbook, {"SnapshotId": ""})


def test_such_defaults_numbers_in_allowed_values_and_an_output_without_type_lint_without_error() -> None:
    """Type is optional and defaults to String; numbers listed for a StringList compare as text."""
    assert lint_codes(DEFAULTS_RUNBOOK) == [("SSM026", "warning"), ("SSM026", "warning")]
    assert parse_runbook(DEFAULTS_RUNBOOK).steps[0].outputs[0]["Name"] == "VolumeId"
    wrong_type = DEFAULTS_RUNBOOK.replace(
        "Selector: $.Snapshots[0].VolumeId", "Selector: $.x\n        Type: Text"
    )
    assert ("SSM001", "error") in lint_codes(wrong_type)


def test_an_empty_yaml_default_is_an_empty_value() -> None:
    text = DEFAULTS_RUNBOOK.replace("    default: ''\n", "    default:\n", 1)
    assert resolve_parameters(parse_runbook(text), {})["AutomationAssumeRole"] == ""
    assert ("SSM012", "error") not in lint_codes(text)


def test_a_change_template_is_refused_saying_how_aws_starts_it() -> None:
    """AWS publishes change templates (AWS-HelloWorldChangeTemplate) beside runbooks; not runbooks."""
    text = (
        "schemaVersion: '0.3'\ntemplateInformation: Restart the fleet\nemergencyChange: false\n"
        "executableRunBooks:\n  - name: AWS-RestartEC2Instance\n    version: '1'\n"
        "mainSteps:\n  - name: wait\n    action: aws:sleep\n    inputs:\n      Duration: PT1S\n"
    )
    with pytest.raises(RunbookError, match=r"change template .*StartChangeRequestExecution") as caught:
        parse_runbook(text)
    assert "unknown top-level key" not in str(caught.value)
