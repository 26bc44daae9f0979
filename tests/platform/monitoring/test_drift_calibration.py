"""The drift decision holds at any volume: on stable data at most 5% of days are judged
drifted at 50, 500, 5,000 and 50,000 rows a day, and a 0.5 SD shift in two features is
found within two days from 500 rows a day.

Seeded data (tests.support.drift_data), so each run sees the same days; the bounds are the
issue's, not tuned to these seeds: the decision's own false-alarm rate is 1% a day."""

import numpy as np
import pandas as pd
import pytest

from lakeloop.monitoring import drift
from lakeloop.usecase import DriftMonitoring
from tests.support import drift_data

RULE = DriftMonitoring(alpha=0.01, feature_share=0.2, min_rows=200, max_window_days=7)
STABLE_DAYS, SHIFT_DAY = 40, 10


@pytest.fixture(scope="module")
def reference():
    ref = drift_data.sample(np.random.default_rng(2026), 20_000)
    return ref, drift.plan_columns(ref, drift_data.FEATURES, drift_data.CATEGORICAL)


def verdicts(reference, days: dict[str, pd.DataFrame]) -> list[drift.DriftVerdict]:
    ref, plan = reference
    rows = {d: len(f) for d, f in days.items()}
    out = []
    for day in days:
        window, n = drift.window_for(day, rows, RULE.min_rows, RULE.max_window_days)
        if n < RULE.min_rows:
            out.append(drift.not_judged(day, window, n, len(ref), "not enough data", RULE,
                                        len(drift_data.FEATURES)))
            continue
        current = pd.concat([days[d] for d in window])
        out.append(drift.judge(ref, current, plan, RULE, ds=day, days=window))
    return out


@pytest.mark.parametrize("rows_per_day", [50, 500, 5_000, 50_000])
def test_stable_days_are_rarely_judged_drifted(reference, rows_per_day):
    days = drift_data.days(seed=rows_per_day, n_days=STABLE_DAYS, rows_per_day=rows_per_day)
    judged = verdicts(reference, days)
    drifted = [v.ds for v in judged if v.drifted]
    assert len(drifted) <= 0.05 * STABLE_DAYS, drifted
    if rows_per_day >= RULE.min_rows:
        assert all(v.judged for v in judged)
    else:  # small days are judged on trailing windows, once there are enough rows
        assert sum(v.judged for v in judged) >= STABLE_DAYS - RULE.max_window_days


@pytest.mark.parametrize("rows_per_day", [500, 5_000, 50_000])
def test_a_half_sd_shift_in_two_features_is_found_within_two_days(reference, rows_per_day):
    days = drift_data.days(seed=rows_per_day + 1, n_days=SHIFT_DAY + 5,
                           rows_per_day=rows_per_day, shift_from=SHIFT_DAY)
    judged = verdicts(reference, days)
    before = [v.ds for v in judged[:SHIFT_DAY] if v.drifted]
    assert before == []
    first = next(i for i, v in enumerate(judged) if v.drifted)
    assert first - SHIFT_DAY <= 1, f"found on day {first - SHIFT_DAY} after the shift"
    assert set(drift_data.SHIFTED) <= {n for n, c in judged[first].columns.items()
                                       if c.drifted}
