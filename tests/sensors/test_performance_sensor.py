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


def test_days_a_drift_retraining_already_trained_after_request_nothing():
    """After the drift sensor's retraining (triggered on 10-15, trained on reports to
    10-30), low recall on those days is the old model's: no second retraining. A later
    degraded day, past the cooldown, still requests one."""
    coverage = {"last_trigger_day": "2026-10-15", "covered_to": "2026-10-30"}
    covered = [Record(1, "2026-10-18", 0.7, 300, True), Record(2, "2026-10-29", 0.7, 300, True)]
    requests, cursor = evaluate(covered, {}, UC, coverage)
    assert requests == []
    later, _ = evaluate([Record(3, "2026-11-02", 0.7, 300, True)], cursor, UC, coverage)
    assert [r.run_key for r in later] == ["credit_risk-performance-2026-11-02"]
    assert later[0].tags["lakeloop/covered_to"] == "2026-11-02"


def test_coverage_comes_from_the_latest_retraining_runs_of_either_trigger():
    from sensors.drift import COVERED_TAG, DAY_TAG, TRIGGER_TAG, retrain_coverage

    instance = dg.DagsterInstance.ephemeral()
    for trigger, day, covered in (("drift", "2026-10-05", "2026-10-06"),
                                  ("performance", "2026-10-15", "2026-10-30"),
                                  ("drift", "2026-11-20", "2026-11-25")):
        instance.create_run_for_job(
            job_def=dg.define_asset_job("retrain").resolve(asset_graph=dg.Definitions(
                assets=[dg.AssetSpec("a")]).resolve_asset_graph()),
            tags={TRIGGER_TAG: trigger, DAY_TAG: day, COVERED_TAG: covered,
                  "use_case": UC.name})
        if day == "2026-11-20":  # a retraining that failed covers nothing
            instance.report_run_failed(instance.get_runs(limit=1)[0])
    # the performance-triggered run is the latest that did not fail, across both triggers
    assert retrain_coverage(instance, UC) == {"last_trigger_day": "2026-10-15",
                                              "covered_to": "2026-10-30"}
