"""The Airflow UI in headless Chromium: trigger ``launch_tagged_instance`` from its form.

Airflow 3.3.2's trigger form renders the DAG's Params (sections as accordions, enums as a select, pattern
fields as text inputs) and validates them on submit: the api-server answers 400 naming the param, and the
dialog shows it. Screenshots of both forms go to tests/artifacts/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import LocalRuntime, install_fast_polling, instance_tags, local_runtime, story_env

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import Locator, Page

    from tests.fixtures.airflow_stack import AirflowStack, StackFactory

pytestmark = pytest.mark.slow

DAG_ID = "launch_tagged_instance"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
FORM_VALUES = {
    "image_id": "ami-0abcdef1234567890",
    "instance_type": "t3.medium",
    "cost_center": "CC-3003",
    "owner": "ui-tester@example.com",
}


@pytest.fixture(scope="module")
def ui_world(
    airflow_stacks: StackFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LocalRuntime]]:
    workdir = tmp_path_factory.mktemp("ui")
    with local_runtime(workdir / "runtime", time_scale=60) as runtime:
        story = runtime.provision_story(workdir / "story")
        with airflow_stacks.stack(extra_env=story_env(story)) as stack:
            install_fast_polling(stack.home)
            stack.start_all()
            stack.wait_for_dag(DAG_ID)
            stack.unpause(DAG_ID)
            yield stack, runtime


@pytest.fixture
def page(ui_world: tuple[AirflowStack, LocalRuntime]) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def open_trigger_form(page: Page, stack: AirflowStack) -> Locator:
    page.goto(f"{stack.api_url}/dags/{DAG_ID}", wait_until="networkidle")
    page.get_by_role("button", name="Trigger Dag").click()
    return page.get_by_role("dialog")


def open_section(dialog: Locator, section: str) -> None:
    """Sections are accordion items; opening one closes the others."""
    dialog.locator(f"[id$=':trigger:{section}']").click()


def choose(dialog: Locator, page: Page, field_label: str, option_prefix: str) -> None:
    """Pick an enum value in the form's select (a combobox next to the field's label)."""
    field = dialog.locator("[data-scope='field']").filter(has_text=field_label)
    field.get_by_role("combobox").click()
    page.get_by_role("option").filter(has_text=option_prefix).click()


def dag_runs(stack: AirflowStack) -> list[str]:
    return [str(run_id) for (run_id,) in stack.sql("SELECT run_id FROM dag_run WHERE dag_id = %s", (DAG_ID,))]


def test_form_refuses_an_invalid_ami_id(
    ui_world: tuple[AirflowStack, LocalRuntime], page: Page, artifacts_dir: Path
) -> None:
    stack, _ = ui_world
    runs_before = dag_runs(stack)
    dialog = open_trigger_form(page, stack)
    open_section(dialog, "Instance")
    page.locator("#element_image_id").fill("ami-NOT-AN-AMI")
    page.get_by_test_id("trigger-dag-submit").click()

    error = dialog.get_by_text("Invalid input for param image_id")
    error.wait_for()
    page.screenshot(path=artifacts_dir / "launch_tagged_instance_form_refused.png", full_page=True)
    assert "does not match" in dialog.inner_text()
    assert dag_runs(stack) == runs_before


def test_form_triggers_a_launch_with_non_default_values(
    ui_world: tuple[AirflowStack, LocalRuntime], page: Page, artifacts_dir: Path
) -> None:
    stack, runtime = ui_world
    runs_before = set(dag_runs(stack))
    dialog = open_trigger_form(page, stack)
    open_section(dialog, "Instance")
    page.locator("#element_image_id").fill(FORM_VALUES["image_id"])
    choose(dialog, page, "Instance type", FORM_VALUES["instance_type"])
    open_section(dialog, "Tags")
    choose(dialog, page, "Cost center", FORM_VALUES["cost_center"])
    page.locator("#element_owner").fill(FORM_VALUES["owner"])
    page.screenshot(path=artifacts_dir / "launch_tagged_instance_form.png", full_page=True)
    page.get_by_test_id("trigger-dag-submit").click()
    dialog.wait_for(state="hidden")

    new_runs = set(dag_runs(stack)) - runs_before
    assert len(new_runs) == 1, new_runs
    run_id = new_runs.pop()
    assert stack.wait_for_run(DAG_ID, run_id, timeout=240) == "success"
    conf = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["conf"]
    assert {key: conf[key] for key in FORM_VALUES} == FORM_VALUES

    # The task shows the execution's console link (what the UI's extra-link button opens).
    execution_id = stack.xcom(DAG_ID, run_id, "launch")["execution_id"]
    links = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/launch/links")
    assert links["extra_links"]["SSM Automation Execution"] == (
        f"https://us-east-1.console.aws.amazon.com/systems-manager/automation/execution/{execution_id}"
        "?region=us-east-1"
    )

    [instance_id] = stack.xcom(DAG_ID, run_id, "instance_ids")
    instance = runtime.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0][
        "Instances"
    ][0]
    assert instance["ImageId"] == FORM_VALUES["image_id"]
    assert instance["InstanceType"] == FORM_VALUES["instance_type"]
    tags = instance_tags(runtime, instance_id)
    assert (tags["CostCenter"], tags["Owner"]) == (FORM_VALUES["cost_center"], FORM_VALUES["owner"])
