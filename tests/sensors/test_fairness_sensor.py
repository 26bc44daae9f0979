"""Fairness in production as a trigger: a day's report (computed here from seeded answers by
the report's own code) that shows a breach requests one retraining run with the breach as its
reason, when the use case says so; a fair day, a repeated tick and a use case that does not
retrain on fairness request nothing."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from lakeloop.monitoring.quality import Day, fairness_day
from lakeloop.monitoring.reference import Reference
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import FairnessMonitoring, load_use_case
from sensors import fairness

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
RETRAINS = UC.model_copy(update={"monitoring": UC.monitoring.model_copy(
    update={"fairness": FairnessMonitoring(retrain=True)})})
THRESHOLD = 0.5


def _day(ds: str, declined: dict[str, float], rows: int = 2000, seed: int = 0) -> Day:
    """A day of answers: per gender, ``rows`` applicants, a ``declined`` share of them
    scored above the threshold."""
    rng = np.random.default_rng(seed)
    frames = []
    for gender, share in declined.items():
        flagged = rng.random(rows) < share
        frames.append(pd.DataFrame({
            "probability": np.where(flagged, 0.8, 0.2), "label": np.nan, "gender": gender,
            "age_band": rng.choice(["18-30", "31-50", "51+"], rows)}))
    answers = pd.concat(frames, ignore_index=True)
    reference = Reference("1", 0, ds, THRESHOLD, answers.iloc[0:0])
    return Day(ds, answers, answers.iloc[0:0], False, reference)


class Record:
    """A fairness report's materialisation, with the metadata the asset writes."""

    def __init__(self, storage_id: int, day: Day, out_dir):
        done = fairness_day(day, UC, out_dir)
        self.done = done
        self.storage_id = storage_id
        self.asset_materialization = dg.AssetMaterialization(
            asset_key="x", partition=day.ds,
            metadata={"breached": bool(done.breaches),
                      "breaches": "; ".join(done.breaches) or "none"})


def test_a_breached_day_requests_one_retraining_with_the_breach_as_reason(tmp_path):
    fair = Record(1, _day("2026-10-01", {"female": 0.30, "male": 0.31}), tmp_path / "1")
    unfair = Record(2, _day("2026-10-02", {"female": 0.58, "male": 0.30}), tmp_path / "2")
    assert fair.done.breaches == []
    assert unfair.done.breaches and "gender" in unfair.done.breaches[0]
    requests, cursor = fairness.evaluate([fair, unfair], {}, RETRAINS)
    [request] = requests
    assert request.run_key == "credit_risk-fairness-2026-10-02"
    assert request.tags["lakeloop/trigger"] == "fairness"
    assert "approval-rate ratio female/male" in request.tags["lakeloop/reason"]
    # the same report again (a repeated tick, a re-materialised day): nothing new
    again, _ = fairness.evaluate([unfair], cursor, RETRAINS)
    assert again == []


def test_a_use_case_that_does_not_retrain_on_fairness_only_reports_it(tmp_path):
    assert not UC.monitoring.fairness.retrain
    job = dg.define_asset_job("retrain", selection="credit_risk/training/candidate_model")
    sensor = fairness.build(UC, job)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason) and "monitoring.fairness.retrain" in \
        result.skip_message


def test_the_report_records_the_breach_in_its_summary(tmp_path):
    import json

    record = Record(1, _day("2026-10-02", {"female": 0.58, "male": 0.30}), tmp_path)
    summary = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert summary["breaches"] == record.done.breaches and summary["alpha"] == 0.01
