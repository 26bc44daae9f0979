"""Live performance: judged only on mature outcomes and enough positives, degraded only when
significantly below the floor, and estimated from calibrated scores (CBPE) before outcomes
arrive."""

import numpy as np
import pytest

from lakeloop.monitoring import performance as perf
from lakeloop.usecase import PerformanceMonitoring

RULE = PerformanceMonitoring(recall_min=0.80, alpha=0.05, min_positives=30)


def _day(rng, rows, recall, positive_rate=0.15):
    y = (rng.random(rows) < positive_rate).astype(int)
    caught = rng.random(rows) < recall
    scores = np.where(y == 1, np.where(caught, 0.8, 0.2), rng.uniform(0, 0.45, rows))
    return y, scores


def test_immature_days_and_thin_evidence_are_not_judged():
    rng = np.random.default_rng(0)
    y, s = _day(rng, 2000, recall=0.5)
    immature = perf.measured(y, s, 0.5, rows=2500, mature=False, maturity_on="2026-10-30",
                             rule=RULE)
    assert not immature.judged and not immature.degraded
    assert "outcomes mature on 2026-10-30 (2000 of 2500 answers labelled so far)" \
        in immature.explanation(RULE.recall_min)
    y, s = _day(rng, 100, recall=0.5)
    thin = perf.measured(y, s, 0.5, rows=100, mature=True, maturity_on="x", rule=RULE)
    assert not thin.judged and "not enough evidence" in thin.reason
    assert "nan" not in str(perf.summary(thin, perf.estimated(s, 0.5, None, RULE), 0.8))


def _exact(positives, caught, negatives):
    y = np.array([1] * positives + [0] * negatives)
    scores = np.array([0.9] * caught + [0.1] * (positives - caught) + [0.2] * negatives)
    return y, scores


def test_degraded_means_significantly_below_the_floor_at_any_volume():
    """40 positives caught 30 times (0.75) is within noise of 0.80; 4,000 caught 3,000 times
    is not. A recall above the floor is never degraded, however many rows."""
    for positives, caught, expected in [(40, 30, False), (4000, 3000, True),
                                        (4000, 3440, False), (40, 16, True)]:
        y, s = _exact(positives, caught, 6 * positives)
        day = perf.measured(y, s, 0.5, rows=len(y), mature=True, maturity_on="x", rule=RULE)
        assert day.judged
        assert day.degraded is expected, (positives, caught, day.explanation(0.8))


def test_healthy_days_are_rarely_degraded():
    rng = np.random.default_rng(2)
    flagged = 0
    for _ in range(200):
        y, s = _day(rng, 400, recall=0.85)
        flagged += perf.measured(y, s, 0.5, rows=400, mature=True, maturity_on="x",
                                 rule=RULE).degraded
    assert flagged <= 0.05 * 200


def test_cbpe_estimates_recall_from_calibrated_scores():
    """Scores whose calibration is learnt on a reference: the estimate tracks the recall the
    outcomes later show, and a population moving to where the model is unsure lowers it."""
    rng = np.random.default_rng(3)

    def population(n, shift):
        x = rng.normal(shift, 1.0, n)
        p_true = 1 / (1 + np.exp(-(2.0 * x - 2.5)))
        score = 1 / (1 + np.exp(-(1.5 * x - 2.0)))  # monotone, but not calibrated
        return score, (rng.random(n) < p_true).astype(int)

    ref_scores, ref_y = population(20_000, 0.0)
    calibration = perf.Calibration(ref_scores, ref_y)
    threshold = float(np.quantile(ref_scores[ref_y == 1], 0.15))  # ~85% recall
    stable_scores, stable_y = population(5_000, 0.0)
    stable = perf.estimated(stable_scores, threshold, calibration, RULE)
    truth = float(np.mean(stable_scores[stable_y == 1] >= threshold))
    assert stable.recall == pytest.approx(truth, abs=0.03)
    assert stable.interval[0] <= truth + 0.03 and not stable.degraded
    shifted_scores, shifted_y = population(5_000, -1.0)  # applicants the model is unsure of
    shifted = perf.estimated(shifted_scores, threshold, calibration, RULE)
    truth = float(np.mean(shifted_scores[shifted_y == 1] >= threshold))
    assert shifted.recall == pytest.approx(truth, abs=0.05)
    assert shifted.degraded and truth < RULE.recall_min


def test_no_estimate_without_enough_reference_outcomes():
    calibration = perf.Calibration(np.array([0.1, 0.9, 0.2]), np.array([0, 1, 0]))
    estimate = perf.estimated(np.array([0.3, 0.6]), 0.5, calibration, RULE)
    assert estimate.recall is None and not estimate.degraded
    assert "1 positives (at least 30 needed)" in estimate.reason


def test_maturity():
    assert perf.matures_on("2026-10-01", 10) == "2026-10-11"
    assert perf.is_mature("2026-10-01", 10, "2026-10-11")
    assert not perf.is_mature("2026-10-01", 10, "2026-10-10")
    assert not perf.is_mature("2026-10-01", 0, None)
