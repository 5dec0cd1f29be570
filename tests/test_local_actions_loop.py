"""aws:loop (for each and do while), aws:updateVariable and top-level variables on the local runtime."""

from __future__ import annotations

from typing import Any

import boto3

from tests.local_engine_support import Harness, runbook, step, steps_by_name

AMI = "ami-12c6146b"  # in moto's default image list
COUNTER = "def next_count(events, context):\n    return {'Next': events['Count'] + 1}\n"


def ec2_client(moto_url: str) -> Any:
    return boto3.client("ec2", endpoint_url=moto_url, region_name="us-east-1")


def records(execution: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in execution["StepExecutions"] if s["StepName"] == name]


def test_for_each_runs_the_nested_steps_once_per_item(h: Harness, moto_url: str) -> None:
    ec2 = ec2_client(moto_url)
    instance_ids = [
        i["InstanceId"] for i in ec2.run_instances(ImageId=AMI, MinCount=2, MaxCount=2)["Instances"]
    ]
    stop = step(
        "stopOne",
        "aws:changeInstanceState",
        inputs={"InstanceIds": ["{{ stopAll.CurrentIteratorValue }}"], "DesiredState": "stopped"},
    )
    tag = step(
        "tagOne",
        "aws:createTags",
        inputs={
            "ResourceIds": ["{{ stopAll.CurrentIteratorValue }}"],
            "Tags": [{"Key": "Iteration", "Value": "{{ stopAll.CurrentIteration }}"}],
        },
    )
    loop = step("stopAll", "aws:loop", inputs={"Iterators": "{{ Ids }}", "Steps": [stop, tag]})
    document = runbook(
        loop,
        step("after", "aws:sleep", inputs={"Duration": "PT1S"}),
        parameters={"Ids": {"type": "StringList"}},
        outputs=["stopAll.CurrentIteration", "stopAll.CurrentIteratorValue"],
    )
    execution = h.finish(h.run(document, {"Ids": instance_ids}))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"] == {
        "stopAll.CurrentIteration": ["2"],
        "stopAll.CurrentIteratorValue": [instance_ids[1]],
    }
    assert [s["StepStatus"] for s in records(execution, "stopOne")] == ["Success", "Success"]
    assert steps_by_name(execution)["stopAll"]["StepStatus"] == "Success"
    for number, instance_id in enumerate(instance_ids, start=1):
        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        assert instance["State"]["Name"] == "stopped"
        assert {t["Key"]: t["Value"] for t in instance["Tags"]} == {"Iteration": str(number)}
    assert steps_by_name(execution)["after"]["StepStatus"] == "Success"


def test_do_while_with_a_variable_updated_each_iteration(h: Harness) -> None:
    count = step(
        "count",
        "aws:executeScript",
        inputs={
            "Runtime": "python3.11",
            "Handler": "next_count",
            "Script": COUNTER,
            "InputPayload": {"Count": "{{ variable:Count }}"},
        },
        outputs=[{"Name": "Next", "Selector": "$.Payload.Next", "Type": "Integer"}],
    )
    remember = step(
        "remember", "aws:updateVariable", inputs={"Name": "variable:Count", "Value": "{{ count.Next }}"}
    )
    loop = step(
        "repeat",
        "aws:loop",
        inputs={
            "Steps": [count, remember],
            "LoopCondition": {"Variable": "{{ variable:Count }}", "NumericLesser": 3},
            "MaxIterations": 10,
        },
    )
    document = runbook(
        loop,
        variables={"Count": {"type": "Integer", "default": 0}},
        outputs=["count.Next", "repeat.CurrentIteration"],
    )
    execution = h.finish(h.run(document), timeout=60)
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert execution["Outputs"] == {"count.Next": ["3"], "repeat.CurrentIteration": ["3"]}
    assert len(records(execution, "remember")) == 3


def test_max_iterations_stops_a_loop_whose_condition_stays_true(h: Harness) -> None:
    nap = step("nap", "aws:sleep", inputs={"Duration": "PT1S"})
    loop = step(
        "forever",
        "aws:loop",
        inputs={
            "Steps": [nap],
            "LoopCondition": {"Variable": "yes", "StringEquals": "yes"},
            "MaxIterations": 4,
        },
    )
    execution = h.finish(h.run(runbook(loop)))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert len(records(execution, "nap")) == 4


def test_a_nested_step_that_fails_with_abort_fails_the_loop_and_the_execution(h: Harness) -> None:
    bad = step("bad", "aws:changeInstanceState", inputs={"InstanceIds": ["i-x"], "DesiredState": "asleep"})
    loop = step("each", "aws:loop", inputs={"Iterators": ["a", "b"], "Steps": [bad]})
    execution = h.finish(h.run(runbook(loop, step("never", "aws:sleep", inputs={"Duration": "PT1S"}))))
    assert execution["AutomationExecutionStatus"] == "Failed"
    assert steps_by_name(execution)["each"]["StepStatus"] == "Failed"
    assert len(records(execution, "bad")) == 1
    assert "never" not in steps_by_name(execution)


def test_on_failure_to_a_step_outside_the_loop_leaves_it(h: Harness) -> None:
    bad = step(
        "bad",
        "aws:changeInstanceState",
        inputs={"InstanceIds": ["i-x"], "DesiredState": "asleep"},
        onFailure="step:cleanup",
        isCritical=False,
    )
    loop = step("each", "aws:loop", inputs={"Iterators": ["a", "b"], "Steps": [bad]})
    skipped = step("skipped", "aws:sleep", inputs={"Duration": "PT1S"}, isEnd=True)
    cleanup = step("cleanup", "aws:sleep", inputs={"Duration": "PT1S"})
    execution = h.finish(h.run(runbook(loop, skipped, cleanup)))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert steps_by_name(execution)["each"]["StepStatus"] == "Failed"
    assert steps_by_name(execution)["cleanup"]["StepStatus"] == "Success"
    assert "skipped" not in steps_by_name(execution)


def test_iterators_are_typed_by_iterator_data_type(h: Harness) -> None:
    echo = step(
        "echo",
        "aws:executeScript",
        inputs={
            "Runtime": "python3.11",
            "Handler": "h",
            "Script": "def h(events, context):\n    return {'Type': type(events['Value']).__name__}\n",
            "InputPayload": {"Value": "{{ typed.CurrentIteratorValue }}"},
        },
        outputs=[{"Name": "Type", "Selector": "$.Payload.Type", "Type": "String"}],
    )
    loop = step(
        "typed", "aws:loop", inputs={"Iterators": ["1", "2"], "IteratorDataType": "Integer", "Steps": [echo]}
    )
    execution = h.finish(h.run(runbook(loop, outputs=["echo.Type"])), timeout=60)
    assert execution["Outputs"] == {"echo.Type": ["int"]}
    wrong = step(
        "typed", "aws:loop", inputs={"Iterators": ["x"], "IteratorDataType": "Integer", "Steps": [echo]}
    )
    failed = steps_by_name(h.finish(h.run(runbook(wrong))))["typed"]
    assert "not a Integer" in failed["FailureMessage"]


def test_update_variable_converts_no_types_and_names_undeclared_variables(h: Harness) -> None:
    variables = {"Count": {"type": "Integer", "default": 0}}
    wrong_type = step("set", "aws:updateVariable", inputs={"Name": "variable:Count", "Value": "three"})
    failed = steps_by_name(h.finish(h.run(runbook(wrong_type, variables=variables))))["set"]
    assert "is a Integer" in failed["FailureMessage"]
    undeclared = step("set", "aws:updateVariable", inputs={"Name": "variable:Other", "Value": 1})
    failed = steps_by_name(h.finish(h.run(runbook(undeclared, variables=variables))))["set"]
    assert "declares no variable 'Other'" in failed["FailureMessage"]
    unprefixed = step("set", "aws:updateVariable", inputs={"Name": "Count", "Value": 1})
    failed = steps_by_name(h.finish(h.run(runbook(unprefixed, variables=variables))))["set"]
    assert "variable:NAME" in failed["FailureMessage"]


def test_loop_needs_exactly_one_of_iterators_or_loop_condition(h: Harness) -> None:
    nap = step("nap", "aws:sleep", inputs={"Duration": "PT1S"})
    neither = step("l", "aws:loop", inputs={"Steps": [nap]})
    failed = steps_by_name(h.finish(h.run(runbook(neither))))["l"]
    assert "exactly one of Iterators or LoopCondition" in failed["FailureMessage"]


def test_branches_inside_a_loop_and_a_loop_inside_a_loop(h: Harness) -> None:
    choose = step(
        "choose",
        "aws:branch",
        inputs={
            "Choices": [
                {"NextStep": "even", "Variable": "{{ outer.CurrentIteratorValue }}", "StringEquals": "b"}
            ],
            "Default": "odd",
        },
    )
    odd = step("odd", "aws:sleep", inputs={"Duration": "PT1S"}, isEnd=True)
    nap = step("nap", "aws:sleep", inputs={"Duration": "PT1S"})
    even = step("even", "aws:loop", inputs={"Iterators": ["x", "y", "z"], "Steps": [nap]})
    outer = step("outer", "aws:loop", inputs={"Iterators": ["a", "b", "c"], "Steps": [choose, odd, even]})
    execution = h.finish(h.run(runbook(outer)))
    assert execution["AutomationExecutionStatus"] == "Success", execution
    assert len(records(execution, "odd")) == 2
    assert len(records(execution, "even")) == 1
    assert len(records(execution, "nap")) == 3
    assert all(s["StepStatus"] == "Success" for s in execution["StepExecutions"])
