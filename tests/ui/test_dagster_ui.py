"""The Dagster UI in a real browser, over the materialised demo: the lineage a person follows
from raw data to drift, a metadata plot, a failed check that explains itself, and the ticks
of the sensor that closes the loop. Each view is saved as a screenshot (the README's tour)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from lakeloop import keys
from lakeloop.lakehouse import quality

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FIRST_RENDER_MS = 60_000  # the first page loads the app and the whole code location
LIFECYCLE = ("bronze_applications", "silver_applications", "gold_applicant_features",
             "training_set", "candidate_model", "challenger", "champion", "seldon_deployment",
             "inference_log", "drift_report")
PAINTED_PIXELS = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted;
}"""


def settle(page) -> None:
    """Let the live data that colours the view arrive before a screenshot (the UI polls, so
    the network may never go fully quiet)."""
    try:
        page.wait_for_load_state("networkidle", timeout=10_000)
    except PlaywrightError:
        pass


def asset_url(ui, layer: str, noun: str, query: str = "") -> str:
    return f"{ui.url}/assets/{'/'.join(keys.key(ui.use_case, layer, noun).path)}{query}"


def shown_as(name: str, labels: list[str]) -> str | None:
    """The node label that shows ``name``: the name itself or, where the node is too narrow,
    its middle truncation (``bron…_applications``)."""
    for label in labels:
        head, ellipsis, tail = label.partition("…")
        if label == name or (ellipsis and head and tail and len(label) <= len(name)
                             and name.startswith(head) and name.endswith(tail)):
            return label
    return None


def test_asset_graph_shows_the_lifecycle_from_raw_data_to_drift(dagster_ui, page):
    uc = dagster_ui.use_case.name
    page.goto(f"{dagster_ui.url}/asset-groups")
    lakehouse_group = page.get_by_text(f"{uc}_{keys.LAKEHOUSE}", exact=True).first
    expect(lakehouse_group, "the global asset lineage shows no credit_risk groups").to_be_visible(
        timeout=FIRST_RENDER_MS)
    # The whole width for the graph: the asset-group sidebar folded away, every group opened
    # (the graph's documented shortcut, Alt+E).
    page.get_by_role("button").filter(
        has=page.get_by_role("img", name=re.compile(r"^panel_show"))).last.click()
    page.keyboard.press("Alt+KeyE")
    expect(page.locator("svg foreignObject").get_by_text("candidate_model", exact=True),
           "the groups did not open into their assets").to_be_visible(timeout=FIRST_RENDER_MS)
    labels = [text.strip() for text in page.locator("svg foreignObject").all_text_contents()]
    for name in LIFECYCLE:
        label = shown_as(name, labels)
        assert label, f"no node for {name} on the asset graph; it shows {sorted(set(labels))}"
        expect(page.locator("svg foreignObject").get_by_text(label, exact=True).first,
               f"{name} (shown as {label!r}) is not on screen").to_be_in_viewport()
    settle(page)
    dagster_ui.shot(page, "asset-graph")


def test_drift_share_is_plotted_day_by_day(dagster_ui, page):
    page.goto(asset_url(dagster_ui, keys.MONITORING, "drift_report"))
    plots = page.get_by_role("button", name="Plots")
    expect(plots, "the drift_report page has no Plots view of its metadata").to_be_visible(
        timeout=FIRST_RENDER_MS)
    plots.click()
    expect(page.get_by_role("button", name="Partitions"),
           "the plots are not offered by partition").to_be_visible()
    title = page.get_by_text("drift_share", exact=True)
    expect(title, "no plot titled drift_share").to_be_visible(timeout=FIRST_RENDER_MS)
    # The plot is the chart.js canvas in the title's own box.
    canvas = title.locator("xpath=ancestor::div[.//canvas][1]").locator("canvas").first
    expect(canvas, "the drift_share plot drew no canvas").to_be_visible()
    box = canvas.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100, f"drift_share canvas is {box}"
    assert canvas.evaluate(PAINTED_PIXELS) > 1000, "the drift_share canvas is blank"
    settle(page)
    dagster_ui.shot(page, "metadata-plot")


def test_failed_check_shows_its_status_and_the_numbers_behind_it(dagster_ui, page):
    check = dagster_ui.failed_check
    page.goto(asset_url(dagster_ui, keys.LAKEHOUSE, "silver_applications",
                        f"?view=checks&checkDetail={quality.ROW_COUNT}"))
    expect(page.get_by_text(quality.ROW_COUNT, exact=True).first,
           f"the check {quality.ROW_COUNT} is not listed").to_be_visible(timeout=FIRST_RENDER_MS)
    latest = page.get_by_text("Latest execution", exact=True).locator(
        "xpath=ancestor::div[.//*[text()='Evaluation result']][1]")
    expect(latest, "the check's latest execution is not shown").to_be_visible(
        timeout=FIRST_RENDER_MS)
    expect(latest.get_by_text("Failed", exact=True),
           "the latest execution is not marked Failed").to_be_visible()
    # The day, its rows, the rows expected and the ratio: what a person needs to judge it.
    day, rows, expected, ratio = re.search(
        r"(\d{4}-\d{2}-\d{2}): (\d+) rows vs ([\d.]+) expected \(([\d.]+)x\)",
        check.description).groups()
    expect(latest.get_by_text(f"{day}: {rows} rows vs {expected} expected ({ratio}x)"),
           f"the explanation {check.description!r} is not shown").to_be_visible()
    expect(latest.get_by_text("0.9x..1.1x").first,
           "the contract's bounds are not shown with the verdict").to_be_visible()
    outside = latest.get_by_role("row").filter(has_text="days_outside")
    expect(outside, "the days_outside metadata is not shown").to_contain_text(
        str(check.metadata["days_outside"].value))
    settle(page)
    dagster_ui.shot(page, "failed-check")


def test_sensor_ticks_are_listed_with_their_outcome(dagster_ui, page):
    page.goto(f"{dagster_ui.url}/locations/lakeloop/sensors/{dagster_ui.sensor}")
    expect(page.get_by_text(dagster_ui.sensor).first,
           f"the page of {dagster_ui.sensor} did not render").to_be_visible(
        timeout=FIRST_RENDER_MS)
    ticks = page.get_by_role("row").filter(has=page.get_by_role("button", name="View logs"))
    expect(ticks.first, "the tick history lists no tick").to_be_visible(
        timeout=FIRST_RENDER_MS)
    # The first tick over the drifted days asks for one retraining run.
    expect(ticks.filter(has_text="1 run requested").first,
           "no tick shows the retraining run it requested").to_be_visible()
    settle(page)
    dagster_ui.shot(page, "sensor-ticks")
