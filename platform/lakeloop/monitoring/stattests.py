"""The per-column drift tests, registered in Evidently's stattest registry.

A column drifts when two things hold: the change is *significant* (a two-sample test's
p-value below the day's per-column level, so that sampling noise alone rarely fires at any
sample size) and it is *large enough to matter* (an effect size at or above a floor, so that
at large volumes a statistically detectable but negligible change does not fire either).
Which test and which effect size depend on the column:

============  ======================================  ======================================
kind          test (p-value)                           effect size
============  ======================================  ======================================
continuous    Kolmogorov-Smirnov (Evidently ``ks``)    Wasserstein distance in reference
                                                       standard deviations (``wasserstein``)
binary        two-proportion z-test (Evidently ``z``)  change in the share of one value
categorical   chi-square test of homogeneity           total variation distance (share of
                                                       the mass that moved)
============  ======================================  ======================================

Evidently's own ``chisquare`` is a goodness-of-fit test that takes the reference's shares as
exact; with a small reference and a large day it fires on the reference's own noise, so the
categorical test here is the two-sample (contingency table) version.

Each combination is registered once as an Evidently ``StatTest`` whose p-value is the drift
score, so the HTML report Evidently renders and the verdict the sensors read come from the
same call on the same rows; ``measure`` runs the same implementation without a report, and
without importing Evidently (its ``ks``, ``wasserstein`` and ``z`` are computed here).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ks_2samp, kstwo, norm, wasserstein_distance

Kind = Literal["continuous", "binary", "categorical"]
KINDS: tuple[Kind, ...] = ("continuous", "binary", "categorical")
# Cells of the contingency table need an expected count of at least this many rows for the
# chi-square approximation to hold; rarer categories are pooled into one.
MIN_EXPECTED = 5

TESTS = {"continuous": "Kolmogorov-Smirnov", "binary": "two-proportion z-test",
         "categorical": "chi-square test of homogeneity"}
EFFECTS = {"continuous": "Wasserstein distance (reference SDs)",
           "binary": "change in share", "categorical": "total variation distance"}


@dataclass(frozen=True)
class Measurement:
    """One column's comparison: the test's p-value and the effect size."""

    kind: Kind
    p_value: float
    effect: float
    reference_rows: int
    current_rows: int

    @property
    def test(self) -> str:
        return TESTS[self.kind]

    @property
    def effect_name(self) -> str:
        return EFFECTS[self.kind]


# A continuous column's values: a pandas column, or its finite values as a float64 array.
Sample = pd.Series | np.ndarray


# Evidently's own ``ks``, ``wasserstein`` and ``z`` tests, computed here with the same
# arithmetic on the same scipy calls (a test holds the two equal at several volumes): a
# verdict without a report (the sensors, the training set's reference check) then never
# imports Evidently, which alone took 7 s of a training step.
def ks_p_value(reference: Sample, current: Sample) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (Evidently's ``ks``)."""
    return float(ks_2samp(reference, current)[1])


def wasserstein_in_sds(reference: Sample, current: Sample) -> float:
    """First Wasserstein distance in reference standard deviations, the SD floored at 0.001
    (Evidently's ``wasserstein``)."""
    scale = max(float(np.std(reference)), 0.001)
    return float(wasserstein_distance(reference, current) / scale)


# Above this many rows in either sample scipy's ks_2samp gives the asymptotic p-value (below,
# the exact one, which ks_continuous leaves to it: small samples cost nothing).
KS_EXACT_MAX_ROWS = 10_000


def ks_continuous(reference: Sample, current: Sample) -> tuple[float, float]:
    """``(ks_p_value, wasserstein_in_sds)`` from one sort of each sample. ks_2samp and
    wasserstein_distance each sort both samples, the second their union as well, and both
    read the same two empirical CDFs at every point of the union; here they are read once,
    off the merge itself (each point's count of reference values at or below it), not by a
    binary search per point. The arithmetic is scipy's, step for step, so both figures are
    bit-identical to the two calls (tested at several volumes, ties included)."""
    if max(len(reference), len(current)) <= KS_EXACT_MAX_ROWS or \
            min(len(reference), len(current)) == 0:
        return ks_p_value(reference, current), wasserstein_in_sds(reference, current)
    u = np.sort(np.asarray(reference, dtype=np.float64))
    v = np.sort(np.asarray(current, dtype=np.float64))
    union = np.concatenate([u, v])
    order = np.argsort(union, kind="stable")  # two sorted runs: a merge
    union = union[order]
    # Each point's CDFs are read after its last tie (scipy's searchsorted side="right"):
    # the counts of reference and current values up to the end of the point's tie group.
    below_u = np.cumsum(order < len(u))
    ends = np.flatnonzero(np.append(union[1:] != union[:-1], True))
    if len(ends) == len(union):  # no value repeated: each point is its own tie group
        at_u, at_v = below_u, np.arange(1, len(union) + 1) - below_u
    else:
        group = np.repeat(np.arange(len(ends)), np.diff(ends, prepend=-1))
        at_u = below_u[ends][group]
        at_v = ends[group] + 1 - at_u
    gaps = np.abs(at_u / len(u) - at_v / len(v))
    statistic = float(gaps.max())
    m, n = sorted([float(len(u)), float(len(v))], reverse=True)
    p = float(np.clip(kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))
    distance = float(np.vecdot(gaps[:-1], np.diff(union)))  # scipy's own sum (numpy 2)
    return p, distance / max(float(np.std(reference)), 0.001)


def two_proportion_p_value(reference: pd.Series, current: pd.Series, value) -> float:
    """Two-sided p-value of the pooled two-proportion z-test on the share of rows that are
    not ``value`` (Evidently's ``z``)."""
    n1, n2 = len(reference), len(current)
    p1 = float(np.sum(reference.to_numpy() != value)) / n1
    p2 = float(np.sum(current.to_numpy() != value)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def total_variation(reference: pd.Series, current: pd.Series) -> float:
    """Half the L1 distance between the two category distributions (0: same, 1: disjoint)."""
    ref = reference.value_counts(normalize=True)
    cur = current.value_counts(normalize=True)
    both = ref.index.union(cur.index)
    return float(0.5 * np.abs(ref.reindex(both, fill_value=0.0)
                              - cur.reindex(both, fill_value=0.0)).sum())


def chi2_homogeneity(reference: pd.Series, current: pd.Series) -> float:
    """p-value of the chi-square test that both samples come from one category distribution,
    with categories too rare for the approximation pooled into one cell."""
    table = pd.DataFrame({"reference": reference.value_counts(),
                          "current": current.value_counts()}).fillna(0.0)
    total = table.to_numpy().sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    rare = expected.min(axis=1) < MIN_EXPECTED
    if rare.any():
        pooled = table[rare].sum()
        table = table[~rare]
        if pooled.sum() > 0:
            table.loc["__rare__"] = pooled
    if len(table) < 2:
        return 1.0
    return float(chi2_contingency(table.to_numpy().T, correction=False)[1])


@functools.cache
def blas_on_one_thread() -> None:
    """Keep this process's BLAS (OpenBLAS, under numpy and scipy) to one thread, once.

    Its only calls here are vector dot products (the Wasserstein sum, scipy's and ours).
    OpenBLAS splits each over every core, then its threads spin, waiting for the next call,
    for as long as the calls keep coming: the same wall time and a whole core burnt, taken
    from the work beside the tests (XGBoost's threads in the training asset, the other
    report processes in monitoring). Measured on 2 cores, the training asset's reference
    check (30 columns, 150k against 200k rows): 0.93 s wall either way, 1.82 CPU-seconds
    before, 0.93 after. For the whole process on purpose: a limit set and restored around
    each call would race between threads, and nothing in these processes multiplies
    matrices large enough to gain from BLAS threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _finite(values: pd.Series) -> np.ndarray:
    """A numeric column's values as float64, without the missing and infinite ones."""
    x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return x[np.isfinite(x)]


def measure(reference: pd.Series, current: pd.Series, kind: Kind) -> Measurement:
    """Compare one column of a reference and a current sample (missing values dropped)."""
    blas_on_one_thread()
    if kind == "continuous":
        # The finite values as float64, in one pass (pandas' dropna, cast, replace and
        # dropna again made four copies of the column: 7 ms a column at 150k rows).
        finite = _finite(reference), _finite(current)
        return Measurement(kind, *ks_continuous(*finite), *map(len, finite))
    ref, cur = reference.dropna(), current.dropna()
    if kind == "binary":
        values = sorted(set(ref.unique()) | set(cur.unique()), key=str)
        if len(values) < 2:
            p, effect = 1.0, 0.0
        else:
            p = two_proportion_p_value(ref, cur, values[0])
            effect = abs(float((ref == values[0]).mean() - (cur == values[0]).mean()))
    else:
        p, effect = chi2_homogeneity(ref, cur), total_variation(ref, cur)
    return Measurement(kind, float(p), float(effect), len(ref), len(cur))


# --- Evidently registration -----------------------------------------------------------------
_RECORDER: contextvars.ContextVar[dict[str, Measurement] | None] = contextvars.ContextVar(
    "lakeloop_drift_recorder", default=None)
_REGISTERED: dict[tuple[Kind, float], str] = {}


@contextlib.contextmanager
def recording() -> Iterator[dict[str, Measurement]]:
    """Collect every measurement the registered tests make, by column name, while an
    Evidently report runs (its drift score is only the p-value; the effect comes from here)."""
    recorded: dict[str, Measurement] = {}
    token = _RECORDER.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDER.reset(token)


def stattest_name(kind: Kind, floor: float) -> str:
    """The Evidently method name of ``kind``'s test with effect floor ``floor``, registered
    on first use."""
    key = (kind, float(floor))
    if key in _REGISTERED:
        return _REGISTERED[key]
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    name = f"lakeloop_{kind}_min_effect_{floor:g}"

    def run(reference: pd.Series, current: pd.Series, _type, threshold: float):
        result = measure(reference, current, kind)
        recorded = _RECORDER.get()
        if recorded is not None and reference.name is not None:
            recorded[str(reference.name)] = result
        return result.p_value, bool(result.p_value < threshold and result.effect >= floor)

    register_stattest(StatTest(
        name=name,
        display_name=f"{TESTS[kind]} p-value; drift also needs {EFFECTS[kind]} >= {floor:g}",
        allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
        default_threshold=0.05), run)
    _REGISTERED[key] = name
    return name
