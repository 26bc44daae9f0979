"""The drift statistics: exact normed Wasserstein distances over the whole window, equal to
scipy's definition, column by column."""

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from lakeloop.monitoring import normed_wasserstein, sorted_columns


def test_normed_wasserstein_matches_scipy_on_every_column():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(size=5000), "b": rng.exponential(2, size=5000),
                        "c": rng.integers(0, 5, size=5000).astype(float)})
    cur = pd.DataFrame({"a": rng.normal(0.3, size=3000), "b": rng.exponential(2, size=3000),
                        "c": rng.integers(1, 6, size=3000).astype(float)})
    ours = normed_wasserstein(sorted_columns(ref, list(ref)), cur.to_numpy())
    expected = [wasserstein_distance(ref[c], cur[c]) / np.std(ref[c]) for c in ref]
    np.testing.assert_allclose(ours, expected, rtol=1e-9)
    assert ours[0] > 0.2 and ours[1] < 0.1  # a shifted column drifts, a stable one does not


def test_nan_is_ignored_and_a_constant_reference_is_handled():
    ref = pd.DataFrame({"a": [1.0, 1.0, 1.0, np.nan], "b": [0.0, 1.0, 2.0, 3.0]})
    cur = np.array([[1.0, 0.0], [1.0, np.nan], [1.0, 3.0]])
    scores = normed_wasserstein(sorted_columns(ref, ["a", "b"]), cur)
    assert scores[0] == 0.0 and np.isfinite(scores[1])
