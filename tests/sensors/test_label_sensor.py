"""The label sensor: new outcomes re-run the event days they label, and the reports of the
event days they make mature (judged for the first time)."""

import dagster as dg

from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case
from sensors.labels import evaluate

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")  # outcomes mature in 10 days


class Record:
    def __init__(self, storage_id, day, event_days):
        self.storage_id = storage_id
        self.asset_materialization = dg.AssetMaterialization(
            asset_key="x", partition=day, metadata={"event_days": event_days})


def test_outcomes_rerun_their_event_days_and_mature_the_day_ten_days_back():
    requests, cursor = evaluate([Record(7, "2026-10-20", ["2026-10-12", "2026-10-13"]),
                                 Record(8, "2026-10-21", [])], {}, UC)
    assert cursor["storage_id"] == 8
    labelled, matured = requests
    assert labelled.tags["dagster/asset_partition_range_start"] == "2026-10-12"
    assert labelled.tags["dagster/asset_partition_range_end"] == "2026-10-13"
    assert {k.path[-1] for k in labelled.asset_selection} == {
        UC.labeled_table, "performance_report", "fairness_report"}
    # a day without outcomes (2026-10-21, no file) still makes 2026-10-11 mature
    assert matured.tags["dagster/asset_partition_range_start"] == "2026-10-10"
    assert matured.tags["dagster/asset_partition_range_end"] == "2026-10-11"
    assert {k.path[-1] for k in matured.asset_selection} == {"performance_report",
                                                             "fairness_report"}
