"""Fairness breaches at any volume: false alarms and detection of the production trigger.

For 50, 500, 5,000 and 50,000 answers per group a day (two groups, seeded), in the same run:
- false-alarm rate over 2,000 days whose groups sit exactly at the tolerance (approval-rate
  ratio 0.8; TPR gap 0.1), ours (lakeloop.monitoring.fairness, alpha 0.01) beside the
  point-estimate rule a fairlearn MetricFrame monitor applies (ratio of the day's rates below
  0.8, gap above 0.1), each judging the same days;
- detection rate of a clear breach (ratio 0.6; TPR gap 0.25) by both;
- the time to judge one day, ours beside fairlearn's MetricFrame disaggregation alone
  (the same rates per group, without the test).

Targets: false alarms at most alpha (0.01, plus 3 SE of the 2,000 draws) at every volume;
a clear breach found on at least 95% of days at 500 answers a group and above.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from common import ROOT, Result

sys.path.insert(0, str(ROOT))

from lakeloop.monitoring.fairness import gap_breach, ratio_breach  # noqa: E402
from lakeloop.training.fairness import GroupFairness, fairness  # noqa: E402

EXTRA: dict = {}
VOLUMES = (50, 500, 5_000, 50_000)
DAYS = 2000
ALPHA, RATIO_MIN, GAP_MAX = 0.01, 0.8, 0.1
LIMIT = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / DAYS)


def _groups(rng, n: int, rates: tuple[float, float], kind: str) -> GroupFairness:
    drawn = [rng.binomial(n, p) / n for p in rates]
    frame = pd.DataFrame({
        "rows": n, "positives": n,
        "approval_rate": drawn if kind == "rate" else 0.5,
        "tpr": drawn if kind == "tpr" else 0.5,
        "rate_judged": True, "tpr_judged": kind == "tpr"}, index=["a", "b"])
    return GroupFairness("group", frame, None, None, 1, 1)


def _rates(seed: int, n: int, rates: tuple[float, float], kind: str) -> tuple[float, float]:
    """Share of days flagged: (ours, the point-estimate rule)."""
    rng = np.random.default_rng(seed)
    ours = point = 0
    for _ in range(DAYS):
        day = _groups(rng, n, rates, kind)
        a, b = day.groups[["approval_rate", "tpr"][kind == "tpr"]]
        if kind == "rate":
            ours += ratio_breach(day, RATIO_MIN, ALPHA) is not None
            point += min(a, b) / max(a, b) < RATIO_MIN if max(a, b) else 0
        else:
            ours += gap_breach(day, GAP_MAX, ALPHA) is not None
            point += abs(a - b) > GAP_MAX
    return ours / DAYS, point / DAYS


def calibration() -> list[Result]:
    results = []
    cases = {"rate": ((0.7, 0.7 * RATIO_MIN), (0.7, 0.42)),
             "tpr": ((0.8, 0.8 - GAP_MAX), (0.85, 0.6))}
    for n in VOLUMES:
        for kind, (at_tolerance, breach) in cases.items():
            what = "approval-rate ratio" if kind == "rate" else "TPR gap"
            ours_fa, point_fa = _rates(n, n, at_tolerance, kind)
            ours_hit, point_hit = _rates(n + 1, n, breach, kind)
            EXTRA[f"{kind}_{n}"] = {"ours_false_alarms": ours_fa, "point_false_alarms": point_fa,
                                    "ours_detection": ours_hit, "point_detection": point_hit}
            results.append(Result("fairness_calibration", f"{what} false alarms, {n}/group", "",
                                  ours_fa, "point-estimate rule", point_fa,
                                  f"<= {LIMIT:.3f}", ours_fa <= LIMIT))
            results.append(Result("fairness_calibration", f"{what} clear breach found, "
                                  f"{n}/group", "", ours_hit, "point-estimate rule", point_hit,
                                  ">= 0.95 from 500/group", ours_hit >= 0.95 or n < 500))
    return results


def judging_cost() -> list[Result]:
    """One day of 200,000 answers over four groups: ours (the rates per group, then the
    test on top) beside fairlearn's MetricFrame disaggregating the same rates alone."""
    from fairlearn.metrics import MetricFrame, count

    rng = np.random.default_rng(0)
    n = 200_000
    frame = pd.DataFrame({"g": rng.choice(["a", "b", "c", "d"], n)})
    p, y = rng.random(n), rng.integers(0, 2, n)
    started = time.perf_counter()
    [report] = fairness(frame, p, y, 0.5, ["g"], min_group_rows=100, min_group_positives=50)
    disaggregate_s = time.perf_counter() - started
    started = time.perf_counter()
    ratio_breach(report, RATIO_MIN, ALPHA), gap_breach(report, GAP_MAX, ALPHA)
    test_s = time.perf_counter() - started
    flagged = (p >= 0.5).astype(int)
    started = time.perf_counter()
    theirs = MetricFrame(metrics={"rows": count,
                                  "positives": lambda t, _: int(np.sum(t == 1)),
                                  "approval_rate": lambda _, f: float(1 - np.mean(f)),
                                  "tpr": lambda t, f: float(np.mean(f[t == 1]))},
                         y_true=y, y_pred=flagged, sensitive_features=frame["g"]).by_group
    fairlearn_s = time.perf_counter() - started
    # the peer counts only if it answered the same question
    assert np.allclose(theirs[["approval_rate", "tpr"]].to_numpy(float),
                       report.groups[["approval_rate", "tpr"]].to_numpy(float), atol=1e-12)
    EXTRA["judge_200k"] = {"ours_rates_s": round(disaggregate_s, 4),
                           "test_s": round(test_s, 4), "fairlearn_s": round(fairlearn_s, 4)}
    return [Result("fairness_calibration", "judge a day of 200k answers, 4 groups", "s",
                   disaggregate_s + test_s, "fairlearn MetricFrame alone", fairlearn_s)]


def run() -> list[Result]:
    return [*calibration(), *judging_cost()]


if __name__ == "__main__":
    for result in run():
        print(result)
    print(EXTRA)
