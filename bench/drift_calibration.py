"""Drift decisions at any volume: false alarms, detection delay and the cost of judging.

For 50, 500, 5,000 and 50,000 rows a day (tests.support.drift_data: ten features of mixed
kinds and a model score), in the same run:
- false-alarm rate over 40 stable days, ours (lakeloop.monitoring.drift, small days pooled
  with the days before them) beside Evidently's default DataDriftPreset (its own method per
  column and size, dataset drift when half the columns drift), each judging the same days;
- detection delay of a 0.5 SD mean shift in two features, ours and Evidently's.
Then the time to judge one day of 1M rows x 30 features against a 1M-row reference: ours
(the verdict alone, and with Evidently's HTML report as the asset writes it) beside a plain
scipy pass over the same columns (KS and Wasserstein per column) and Evidently's preset.

Targets: false alarms at most 5% at every volume; detection within 2 days at 500 rows a day
and above; judging 1M rows in at most 2x the scipy pass.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import ROOT, Result

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "true")

from lakeloop.monitoring import drift  # noqa: E402
from lakeloop.usecase import DriftMonitoring  # noqa: E402
from tests.support import drift_data  # noqa: E402

EXTRA: dict = {}
VOLUMES = (50, 500, 5_000, 50_000)
STABLE_DAYS, SHIFT_DAY, SHIFTED_DAYS = 40, 10, 5
RULE = DriftMonitoring(alpha=0.01, feature_share=0.2)
BIG_ROWS, BIG_FEATURES = 1_000_000, 30


def ours(reference, plan, days: dict[str, pd.DataFrame]) -> list[bool]:
    rows = {d: len(f) for d, f in days.items()}
    out = []
    for day in days:
        window, n = drift.window_for(day, rows, RULE.min_rows, RULE.max_window_days)
        if n < RULE.min_rows:
            out.append(False)  # not enough data: reported, never drifted
            continue
        out.append(drift.judge(reference, pd.concat([days[d] for d in window]), plan, RULE,
                               ds=day, days=window).drifted)
    return out


def evidently(reference, days: dict[str, pd.DataFrame]) -> list[bool]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*drift_data.FEATURES, "probability"]
    numerical = [c for c in columns if c not in drift_data.CATEGORICAL]
    definition = DataDefinition(numerical_columns=numerical,
                                categorical_columns=sorted(drift_data.CATEGORICAL))
    ref = Dataset.from_pandas(reference[columns], data_definition=definition)
    out = []
    for frame in days.values():
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(frame[columns], data_definition=definition), ref)
        share = next(m["value"]["share"] for m in snapshot.dict()["metrics"]
                     if m["config"]["type"].endswith("DriftedColumnsCount"))
        out.append(share >= 0.5)  # the preset's default drift_share
    return out


def delay(flags: list[bool]) -> int | None:
    found = [i - SHIFT_DAY for i, f in enumerate(flags) if f and i >= SHIFT_DAY]
    return found[0] if found else None


def calibration() -> list[Result]:
    reference = drift_data.sample(np.random.default_rng(2026), 20_000)
    plan = drift.plan_columns(reference, drift_data.FEATURES, drift_data.CATEGORICAL)
    results = []
    for rows in VOLUMES:
        stable = drift_data.days(seed=rows, n_days=STABLE_DAYS, rows_per_day=rows)
        shifted = drift_data.days(seed=rows + 1, n_days=SHIFT_DAY + SHIFTED_DAYS,
                                  rows_per_day=rows, shift_from=SHIFT_DAY)
        started = time.perf_counter()
        ours_alarms = sum(ours(reference, plan, stable)) / STABLE_DAYS
        ours_delay = delay(ours(reference, plan, shifted))
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        peer_alarms = sum(evidently(reference, stable)) / STABLE_DAYS
        peer_delay = delay(evidently(reference, shifted))
        peer_s = time.perf_counter() - started
        EXTRA[f"rows_{rows}"] = {"ours_false_alarm_rate": ours_alarms,
                                 "evidently_false_alarm_rate": peer_alarms,
                                 "ours_detection_delay_days": ours_delay,
                                 "evidently_detection_delay_days": peer_delay,
                                 "ours_s": round(ours_s, 2), "evidently_s": round(peer_s, 2)}
        results.append(Result("drift_calibration", f"false-alarm rate, {rows} rows/day", "",
                              ours_alarms, "Evidently DataDriftPreset", peer_alarms, "<= 0.05",
                              ours_alarms <= 0.05))
        if rows >= 500:  # None: never detected in the shifted days (shown as "—")
            results.append(Result(
                "drift_calibration", f"days to detect 0.5 SD shift, {rows} rows/day", "days",
                ours_delay, "Evidently DataDriftPreset", peer_delay, "<= 1 (within 2 days)",
                ours_delay is not None and ours_delay <= 1))
    return results


def _wide(rng, rows: int, shift_sd: float = 0.0) -> pd.DataFrame:
    parts = [drift_data.sample(rng, rows, shift_sd).drop(columns="probability")
             .add_suffix(f"_{i}") for i in range(BIG_FEATURES // len(drift_data.FEATURES))]
    frame = pd.concat(parts, axis=1)
    frame["probability"] = rng.random(rows)
    return frame


def judging_cost() -> list[Result]:
    from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

    rng = np.random.default_rng(7)
    reference, current = _wide(rng, BIG_ROWS), _wide(rng, BIG_ROWS, shift_sd=0.05)
    features = [c for c in reference.columns if c != "probability"]
    categorical = {c for c in features if c.startswith("region_")}
    plan = drift.plan_columns(reference, features, categorical)

    started = time.perf_counter()
    verdict = drift.judge(reference, current, plan, RULE, ds="big")
    ours_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        drift.report(reference, current, plan, RULE, ds="big", out_dir=Path(tmp))
        report_s = time.perf_counter() - started

    numeric = [c.name for c in plan if c.kind == "continuous"]
    started = time.perf_counter()
    for column in plan:  # the same test and effect per column, straight from scipy/pandas
        ref, cur = reference[column.name], current[column.name]
        if column.kind == "continuous":
            ks_2samp(ref, cur)
            wasserstein_distance(ref, cur)
        else:
            table = pd.concat([ref.value_counts(), cur.value_counts()], axis=1).fillna(0)
            chi2_contingency(table.to_numpy().T)
            shares = table / table.sum()
            float(0.5 * (shares.iloc[:, 0] - shares.iloc[:, 1]).abs().sum())
    scipy_all_s = time.perf_counter() - started

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[*numeric],
                                categorical_columns=sorted(categorical | {
                                    c.name for c in plan if c.kind != "continuous"}))
    started = time.perf_counter()
    Report([DataDriftPreset()]).run(Dataset.from_pandas(current, data_definition=definition),
                                    Dataset.from_pandas(reference, data_definition=definition))
    evidently_s = time.perf_counter() - started
    EXTRA["one_day_1M_x_30"] = {"ours_verdict_s": round(ours_s, 2),
                                "ours_with_report_s": round(report_s, 2),
                                "scipy_s": round(scipy_all_s, 2),
                                "evidently_preset_s": round(evidently_s, 2),
                                "drifted_columns": verdict.drifted_features}
    return [
        Result("drift_calibration", "judge 1M x 30 (verdict)", "s", ours_s,
               "scipy KS + Wasserstein", scipy_all_s, "<= 2x", ours_s <= 2 * scipy_all_s),
        Result("drift_calibration", "judge 1M x 30 (verdict + Evidently HTML)", "s", report_s,
               "Evidently DataDriftPreset", evidently_s),
    ]


def run() -> list[Result]:
    return [*calibration(), *judging_cost()]


if __name__ == "__main__":
    for result in run():
        print(result)
    print(EXTRA)
