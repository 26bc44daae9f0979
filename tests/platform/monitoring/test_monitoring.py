"""The per-column drift tests: each equals its textbook definition, and the report Evidently
renders carries exactly the verdict the sensors read."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from lakeloop.monitoring import drift, workers
from lakeloop.monitoring.stattests import chi2_homogeneity, measure, total_variation
from lakeloop.usecase import DriftMonitoring
from tests.support import drift_data

RULE = DriftMonitoring(alpha=0.01, feature_share=0.2)


def test_continuous_columns_use_ks_and_the_normed_wasserstein_distance():
    rng = np.random.default_rng(1)
    ref, cur = pd.Series(rng.normal(size=4000)), pd.Series(rng.normal(0.3, size=700))
    m = measure(ref, cur, "continuous")
    assert m.p_value == pytest.approx(ks_2samp(ref, cur).pvalue, rel=1e-12)
    assert m.effect == pytest.approx(wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)
    assert m.effect > 0.2 and m.p_value < 1e-6


def test_a_column_is_compared_by_its_distinct_values_on_every_row():
    """A numeric column with at most MAX_DISCRETE_VALUES values is compared as categories;
    the count covers every row, not only the first ones the planner looks at first."""
    rng = np.random.default_rng(3)
    probe = drift.DISCRETE_PROBE_ROWS
    late = pd.Series(np.concatenate([np.zeros(probe), rng.normal(size=5 * probe)]))
    few = pd.Series(rng.choice([1.0, 2.0, 3.0, np.nan], size=5 * probe))
    assert drift.column_kind(late) == "continuous"  # one value in its first rows only
    assert drift.column_kind(pd.Series(rng.normal(size=5 * probe))) == "continuous"
    assert drift.column_kind(few) == "categorical"  # missing values are not a value
    assert drift.column_kind(few.where(few != 3.0)) == "binary"
    assert drift.column_kind(pd.Series(rng.normal(size=50)), categorical=True) == "categorical"


def test_categorical_columns_are_a_two_sample_test_not_a_fit_to_the_reference():
    """With a small reference and a large day, treating the reference's shares as exact
    (a goodness-of-fit test) fires on the reference's own noise; the test of homogeneity
    accounts for both samples."""
    rng = np.random.default_rng(2)
    levels, p = ["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1]
    ref = pd.Series(rng.choice(levels, 300, p=p))
    cur = pd.Series(rng.choice(levels, 50_000, p=p))
    table = pd.DataFrame({"r": ref.value_counts(), "c": cur.value_counts()}).fillna(0)
    expected = chi2_contingency(table.to_numpy().T, correction=False)[1]
    assert chi2_homogeneity(ref, cur) == pytest.approx(expected, rel=1e-12)
    from scipy.stats import chisquare

    fit = chisquare(table["c"], table["r"] / table["r"].sum() * table["c"].sum()).pvalue
    assert chi2_homogeneity(ref, cur) > fit  # the fit test is far more alarmed by noise
    moved = pd.Series(rng.choice(levels, 2000, p=[0.2, 0.3, 0.2, 0.3]))
    assert total_variation(ref, moved) == pytest.approx(0.2, abs=0.05)
    assert measure(ref, moved, "categorical").p_value < 1e-6


def test_rare_categories_are_pooled_and_binary_columns_compare_shares():
    ref = pd.Series(["x"] * 500 + ["y"] * 495 + ["rare"] * 2)
    cur = pd.Series(["x"] * 100 + ["y"] * 99 + ["new"] * 1)
    assert 0.0 < chi2_homogeneity(ref, cur) <= 1.0
    b = measure(pd.Series([0.0] * 700 + [1.0] * 300), pd.Series([0.0] * 500 + [1.0] * 500),
                "binary")
    assert b.effect == pytest.approx(0.2) and b.p_value < 1e-6


def test_a_day_is_judged_once_for_all_columns_at_the_chosen_false_alarm_rate():
    rng = np.random.default_rng(3)
    ref = drift_data.sample(rng, 5000)
    plan = drift.plan_columns(ref, drift_data.FEATURES, drift_data.CATEGORICAL)
    assert {c.name: c.kind for c in plan}["region"] == "categorical"
    assert {c.name: c.kind for c in plan}["has_mortgage"] == "binary"
    assert plan[-1].is_prediction
    verdict = drift.judge(ref, drift_data.sample(rng, 800, shift_sd=0.5), plan, RULE, ds="d")
    assert verdict.column_alpha == pytest.approx(0.01 / 11)
    assert verdict.required_features == 2  # 20% of 10 features
    assert verdict.drifted and verdict.columns["amount"].drifted
    assert verdict.columns["utilisation"].drifted and not verdict.columns["region"].drifted


def test_significant_but_negligible_changes_do_not_count():
    """At 200,000 rows a 0.03 SD shift is significant, but below the floor of 0.1 SD."""
    rng = np.random.default_rng(4)
    ref = drift_data.sample(rng, 200_000)
    plan = drift.plan_columns(ref, drift_data.FEATURES, drift_data.CATEGORICAL)
    verdict = drift.judge(ref, drift_data.sample(rng, 200_000, shift_sd=0.03), plan, RULE,
                          ds="d")
    amount = verdict.columns["amount"]
    assert amount.significant and amount.effect < RULE.min_shift_sd and not amount.drifted
    assert not verdict.drifted


def test_small_days_are_judged_with_the_days_before_them():
    rows = {"2026-01-01": 90, "2026-01-02": 60, "2026-01-03": 70, "2026-01-04": 500}
    assert drift.window_for("2026-01-04", rows, 200, 7) == (("2026-01-04",), 500)
    assert drift.window_for("2026-01-03", rows, 200, 7) == (
        ("2026-01-01", "2026-01-02", "2026-01-03"), 220)
    assert drift.window_for("2026-01-02", rows, 200, 7)[1] == 150  # not enough, ever
    verdict = drift.not_judged("2026-01-02", ("2026-01-01", "2026-01-02"), 150, 5000,
                               "not enough data", RULE, 10)
    assert not verdict.drifted and not verdict.judged
    assert "not judged (not enough data)" in verdict.explanation()


def test_the_report_shows_the_numbers_the_sensor_reads(tmp_path):
    """Evidently's report is computed by the same registered tests on the same rows: its
    per-column scores and drift flags equal the verdict's."""
    rng = np.random.default_rng(5)
    ref = drift_data.sample(rng, 3000)
    cur = drift_data.sample(rng, 600, shift_sd=0.5)
    plan = drift.plan_columns(ref, drift_data.FEATURES, drift_data.CATEGORICAL)
    verdict = drift.report(ref, cur, plan, RULE, ds="2026-01-05", out_dir=tmp_path)
    direct = drift.judge(ref, cur, plan, RULE, ds="2026-01-05")
    assert verdict == dataclasses.replace(direct, html=verdict.html, json=verdict.json)
    snapshot = json.loads((tmp_path / "report.json").read_text())
    scores = {m["config"]["column"]: m["value"] for m in snapshot["metrics"]}
    tests = {t["metric_config"]["params"]["column"]: t["status"] for t in snapshot["tests"]}
    for name, column in verdict.columns.items():
        assert scores[name] == pytest.approx(column.p_value, rel=1e-12, abs=1e-300)
        assert (tests[name] == "FAIL") == column.drifted, name
    assert "<html" in (tmp_path / "report.html").read_text()[:3000].lower()
    assert json.loads((tmp_path / "summary.json").read_text())["drifted"] is True


def test_a_category_typed_differently_by_two_sources_is_one_category(tmp_path):
    """The training set keeps loan terms as ints, the inference log as doubles: 36 and 36.0
    are one level, in the verdict and in the report."""
    rng = np.random.default_rng(6)
    terms = [12, 24, 36, 48, 60]
    ref = pd.DataFrame({"term": rng.choice(terms, 3000), "x": rng.normal(size=3000)})
    cur = pd.DataFrame({"term": rng.choice(terms, 500).astype(float),
                        "x": rng.normal(size=500)})
    plan = drift.plan_columns(ref, ["term", "x"], {"term"}, prediction=None)
    verdict = drift.report(ref, cur, plan, RULE, ds="d", out_dir=tmp_path)
    assert verdict.columns["term"].p_value > 0.001 and not verdict.drifted
    assert drift.category_text(36.0) == drift.category_text(36) == "36"
    assert drift.category_text(0.5) == "0.5" and drift.category_text(np.nan) is None


def test_reports_rendered_in_worker_processes_equal_this_processes_in_order(tmp_path):
    """A backfill's reports render in processes of their own: each day's verdict and files
    are what the same report in this process gives, and they come back in the days' order
    (more days than processes, so the bounded queue refills)."""
    rng = np.random.default_rng(8)
    ref = drift_data.sample(rng, 2000)
    plan = drift.plan_columns(ref, drift_data.FEATURES, drift_data.CATEGORICAL)
    days = [f"2026-01-{d:02d}" for d in range(1, 6)]
    currents = [drift_data.sample(rng, 300, shift_sd=0.6 if d % 2 else 0.0)
                for d in range(len(days))]
    jobs = [drift.ReportJob(ref, cur, plan, RULE, ds=ds, out_dir=tmp_path / "pool" / ds)
            for ds, cur in zip(days, currents, strict=True)]
    pooled = list(drift.reports(jobs, workers=2))
    assert [v.ds for v in pooled] == days
    assert [v.drifted for v in pooled] == [False, True, False, True, False]
    for ds, cur, verdict in zip(days, currents, pooled, strict=True):
        here = drift.report(ref, cur, plan, RULE, ds=ds, out_dir=tmp_path / "here" / ds)
        assert verdict == dataclasses.replace(here, html=verdict.html, json=verdict.json)
        assert verdict.html == str(tmp_path / "pool" / ds / "report.html")
        assert json.loads((tmp_path / "pool" / ds / "summary.json").read_text()) == \
            json.loads(verdict.to_json())
    assert workers.workers_for(1) == 1 and workers.workers_for(100) <= workers.MAX_WORKERS
