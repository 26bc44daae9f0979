"""Fairness in production as a trigger: a day's report (computed here from seeded answers by
the report's own code) that shows a breach requests one retraining run with the breach as its
reason, when the use case says so; a fair day, a repeated tick and a use case that does not
retrain on fairness request nothing."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from lakeloop import governance, keys
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.monitoring import alarms
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
        result = sensor(dg.build_sensor_context(
            instance=instance,
            resources={"lakehouse": LakehouseResource(data_root=str(tmp_path))}))
    assert isinstance(result, dg.SkipReason) and "monitoring.fairness.retrain" in \
        result.skip_message


def test_the_report_records_the_breach_in_its_summary(tmp_path):
    import json

    record = Record(1, _day("2026-10-02", {"female": 0.58, "male": 0.30}), tmp_path)
    summary = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert summary["breaches"] == record.done.breaches and summary["alpha"] == 0.01


def test_a_breach_injected_into_production_answers_alerts_and_requests_retraining(
        alerting, monkeypatch, tmp_path):
    """The report's alarm and the sensor's request, each once, to a real SMTP server and a
    webhook; the fairness report's materialisation is the one the asset writes, injected
    into a real Dagster instance."""
    use_case = RETRAINS.model_copy(update={"alerts": alerting.use_case.alerts})
    for name, url in alerting.environ.items():
        monkeypatch.setenv(name, url)
    day = _day("2026-10-02", {"female": 0.58, "male": 0.30})  # a biased model's answers
    done = fairness_day(day, use_case, tmp_path / "report")
    report_url = f"http://127.0.0.1:8765/credit_risk/monitoring/fairness_report/{day.ds}"
    # what the fairness_report asset records for the day
    governance.record(alerting.lakehouse, use_case, alarms.fairness(
        use_case, day, done, report_url=report_url, run_id="r-1",
        run_url="http://127.0.0.1:3000/runs/r-1"))
    assert alarms.fairness(use_case, _day("2026-10-01", {"female": 0.3, "male": 0.31}),
                           fairness_day(_day("2026-10-01", {"female": 0.3, "male": 0.31}),
                                        use_case, tmp_path / "fair")) is None

    job = dg.define_asset_job("retrain", selection="credit_risk/training/candidate_model")
    sensor = fairness.build(use_case, job)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=keys.key(use_case, keys.MONITORING, "fairness_report"),
            partition=day.ds, metadata={"breached": True,
                                        "breaches": "; ".join(done.breaches)}))
        resources = {"lakehouse": alerting.lakehouse}
        tick = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        [request] = tick.run_requests
        # a tick that repeats (its cursor lost) requests the same run, recorded once
        again = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.run_key for r in again.run_requests] == [request.run_key]
    assert request.tags["lakeloop/trigger"] == "fairness"

    kinds = sorted(e.kind for e in governance.trail(alerting.lakehouse, use_case).read())
    assert kinds == ["fairness_breach", "retraining_requested"]
    mails, hooks = alerting.smtp.texts(), alerting.webhook.bodies
    assert len(mails) == len(hooks) == 2
    breach = next(m for m in mails if "fairness breach" in m)
    assert "approval-rate ratio female/male" in breach and report_url in breach
    assert "http://127.0.0.1:3000/runs/r-1" in breach
    assert "requested by the fairness sensor" in breach
    asked = next(h for h in hooks if "retraining requested" in h["title"])
    assert request.run_key in asked["message"]
