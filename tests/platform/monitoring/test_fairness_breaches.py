"""A fairness breach in production is a statistic: seeded days at several volumes, with
groups exactly at the tolerance (false alarms at most alpha), well inside it (none), and
clearly outside it (found once the groups are large enough to show it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakeloop.monitoring.fairness import gap_breach, ratio_breach
from lakeloop.training.fairness import GroupFairness

ALPHA = 0.01
RATIO_MIN, GAP_MAX = 0.8, 0.1
TRIALS = 2000
VOLUMES = (50, 500, 5000, 50000)  # rows (or positives) per group in a day


def _day(rng, n: int, rates: dict[str, float], kind: str) -> GroupFairness:
    """One day's groups: ``n`` rows (approvals) or positives (TPR) per group."""
    drawn = {g: rng.binomial(n, p) / n for g, p in rates.items()}
    groups = pd.DataFrame({
        "rows": n, "positives": n,
        "approval_rate": [drawn[g] if kind == "rate" else 0.5 for g in rates],
        "tpr": [drawn[g] if kind == "tpr" else 0.5 for g in rates],
        "rate_judged": True, "tpr_judged": kind == "tpr"}, index=list(rates))
    return GroupFairness("group", groups, None, None, 1, 1)


def _alarm_rate(seed: int, n: int, rates: dict[str, float], kind: str) -> float:
    rng = np.random.default_rng(seed)
    judge = ((lambda r: ratio_breach(r, RATIO_MIN, ALPHA)) if kind == "rate"
             else (lambda r: gap_breach(r, GAP_MAX, ALPHA)))
    return sum(judge(_day(rng, n, rates, kind)) is not None for _ in range(TRIALS)) / TRIALS


# A false-alarm rate is bounded by alpha plus the noise of TRIALS seeded draws (3 SE).
NOISE = 3 * np.sqrt(ALPHA * (1 - ALPHA) / TRIALS)


@pytest.mark.parametrize("n", VOLUMES)
def test_groups_exactly_at_the_tolerance_rarely_breach(n):
    at_ratio = {"a": 0.7, "b": 0.7 * RATIO_MIN, "c": 0.7}
    assert _alarm_rate(1, n, at_ratio, "rate") <= ALPHA + NOISE
    at_gap = {"a": 0.8, "b": 0.8 - GAP_MAX}
    assert _alarm_rate(2, n, at_gap, "tpr") <= ALPHA + NOISE


@pytest.mark.parametrize("n", VOLUMES)
def test_fair_groups_never_breach(n):
    assert _alarm_rate(3, n, {"a": 0.7, "b": 0.68, "c": 0.71}, "rate") == 0
    assert _alarm_rate(4, n, {"a": 0.8, "b": 0.78}, "tpr") == 0


@pytest.mark.parametrize("n", VOLUMES[1:])
def test_a_clear_breach_is_found_once_the_groups_show_it(n):
    # ratio 0.6 and a TPR gap of 0.25: clearly outside the tolerances
    assert _alarm_rate(5, n, {"a": 0.7, "b": 0.42}, "rate") >= 0.95
    assert _alarm_rate(6, n, {"a": 0.85, "b": 0.6}, "tpr") >= 0.95


def test_a_breach_names_the_groups_and_the_bound():
    rng = np.random.default_rng(7)
    breach = ratio_breach(_day(rng, 20000, {"men": 0.7, "women": 0.42}, "rate"), RATIO_MIN,
                          ALPHA)
    assert breach is not None and breach.groups == ("women", "men")
    assert breach.estimate == pytest.approx(0.6, abs=0.02) and breach.bound < RATIO_MIN
    assert "women/men" in breach.describe()


def test_groups_without_enough_evidence_are_not_compared():
    groups = pd.DataFrame({"rows": [5, 5000], "positives": [1, 900],
                           "approval_rate": [0.0, 0.9], "tpr": [0.0, 0.9],
                           "rate_judged": [False, True], "tpr_judged": [False, True]},
                          index=["tiny", "big"])
    report = GroupFairness("group", groups, None, None, 100, 50)
    assert ratio_breach(report, RATIO_MIN, ALPHA) is None
    assert gap_breach(report, GAP_MAX, ALPHA) is None
