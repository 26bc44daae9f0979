"""The performance sensor: a day whose live recall is below the floor (on enough labelled
answers) requests one retraining run, with the reason; nothing when nothing crossed."""

import dagster as dg

from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case
from sensors.performance import evaluate

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")


class Record:
    def __init__(self, storage_id, day, recall, rows, degraded):
        self.storage_id = storage_id
        self.asset_materialization = dg.AssetMaterialization(
            asset_key="x", partition=day,
            metadata={"recall": recall, "labeled_rows": rows, "degraded": degraded})


def test_nothing_is_requested_when_nothing_crossed():
    records = [Record(1, "2026-10-01", 0.93, 300, False), Record(2, "2026-10-02", 0.91, 40,
                                                                  False)]
    requests, cursor = evaluate(records, {}, UC)
    assert requests == [] and cursor["storage_id"] == 2


def test_one_run_per_triggering_report_with_its_reason_and_a_cooldown():
    records = [Record(1, "2026-10-01", 0.93, 300, False),
               Record(2, "2026-10-03", 0.71, 250, True),
               Record(3, "2026-10-04", 0.69, 260, True)]
    requests, cursor = evaluate(records, {}, UC)
    assert len(requests) == 1
    assert requests[0].run_key == "credit_risk-performance-2026-10-03"
    assert "0.710" in requests[0].tags["lakeloop/reason"]
    assert requests[0].tags["lakeloop/trigger"] == "performance"
    # the same report again (more outcomes arrived) and a day inside the cooldown: nothing
    again, cursor = evaluate([Record(4, "2026-10-03", 0.70, 300, True),
                              Record(5, "2026-10-06", 0.6, 300, True)], cursor, UC)
    assert again == []
    later, _ = evaluate([Record(6, "2026-10-12", 0.6, 300, True)], cursor, UC)
    assert [r.run_key for r in later] == ["credit_risk-performance-2026-10-12"]
