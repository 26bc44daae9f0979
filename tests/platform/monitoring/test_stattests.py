"""The per-column drift tests computed without Evidently answer what Evidently's own ``ks``,
``wasserstein`` and ``z`` answer, at every volume, and a verdict never imports Evidently."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from lakeloop.monitoring import stattests
from lakeloop.settings import PROJECT_ROOT


def _evidently(name: str, reference: pd.Series, current: pd.Series) -> float:
    from evidently.legacy.calculations.stattests import (
        ks_stat_test,
        wasserstein_stat_test,
        z_stat_test,
    )
    from evidently.legacy.core import ColumnType

    test, kind = {"ks": (ks_stat_test, ColumnType.Numerical),
                  "wasserstein": (wasserstein_stat_test, ColumnType.Numerical),
                  "z": (z_stat_test, ColumnType.Categorical)}[name]
    return float(test(reference, current, kind, 0.05).drift_score)


def test_one_sort_matches_scipy_when_a_sample_holds_one_value():
    """A column stuck at one value on the current day (a feed that froze): one tie group
    spans the whole sample, and the figures are still scipy's, bit for bit."""
    rng = np.random.default_rng(7)
    reference = pd.Series(rng.normal(size=20_000).round(1))
    for current in (pd.Series(np.full(15_000, 0.3)), pd.Series(np.full(15_000, 9.0))):
        assert stattests.ks_continuous(reference, current) == (
            stattests.ks_p_value(reference, current),
            stattests.wasserstein_in_sds(reference, current))


@pytest.mark.parametrize("rows", [50, 5_000, 500_000])
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_continuous_columns_measure_as_evidentlys_ks_and_wasserstein(rows, shift):
    rng = np.random.default_rng(rows + int(shift * 100))
    reference = pd.Series(rng.lognormal(3, 1, size=rows))
    current = pd.Series(rng.lognormal(3 + shift, 1, size=rows // 2 + 7))
    measured = stattests.measure(reference, current, "continuous")
    assert measured.p_value == pytest.approx(_evidently("ks", reference, current),
                                             rel=1e-12, abs=1e-300)
    assert measured.effect == pytest.approx(_evidently("wasserstein", reference, current),
                                            rel=1e-12)


@pytest.mark.parametrize(("rows", "other", "ties"), [
    (stattests.KS_EXACT_MAX_ROWS + 1, 20_000, False), (60_000, 30_000, True),
    (200_000, 12_000, True), (150_000, 150_000, False), (20_000, 1, False)])
def test_one_sort_gives_scipys_ks_and_wasserstein_bit_for_bit(rows, other, ties):
    """ks_continuous reads both figures off one sort of each sample: the same floats as
    scipy's two calls, ties (values repeated across and within samples) included."""
    rng = np.random.default_rng(rows + other)
    reference, current = rng.normal(size=rows), rng.normal(0.02, 1.1, size=other)
    if ties:
        reference, current = reference.round(1), current.round(1)
    reference, current = pd.Series(reference), pd.Series(current)
    assert stattests.ks_continuous(reference, current) == (
        stattests.ks_p_value(reference, current),
        stattests.wasserstein_in_sds(reference, current))


@pytest.mark.parametrize("rows", [2_000, 40_000])
@pytest.mark.parametrize("dtype", ["float64", "Float64", "Int64", "object"])
def test_a_continuous_column_is_measured_on_its_finite_values(rows, dtype):
    """Missing values (NaN, None, pd.NA) and infinities are left out of a continuous
    column's test and its row counts, whatever the column's dtype: the figures are scipy's
    on the finite values alone."""
    rng = np.random.default_rng(rows)
    reference = rng.normal(size=rows).round(2) * 100
    current = rng.normal(0.1, 1, size=rows // 2).round(2) * 100
    gaps = {"float64": (np.nan, np.inf), "Float64": (pd.NA, np.inf), "Int64": (pd.NA, pd.NA),
            "object": (None, -np.inf)}[dtype]

    def holed(values):
        column = pd.Series(values).astype("int64" if dtype == "Int64" else "float64")
        column = column.astype(dtype)
        column.iloc[::7], column.iloc[3::11] = gaps
        return column

    ref, cur = holed(reference), holed(current)
    finite = [np.array([v for v in c if v is not None and v is not pd.NA and np.isfinite(v)],
                       dtype=np.float64) for c in (ref, cur)]
    measured = stattests.measure(ref, cur, "continuous")
    assert (measured.reference_rows, measured.current_rows) == tuple(map(len, finite))
    assert len(finite[0]) < rows
    assert (measured.p_value, measured.effect) == (
        stattests.ks_p_value(*finite), stattests.wasserstein_in_sds(*finite))


@pytest.mark.parametrize("rows", [50, 5_000, 500_000])
@pytest.mark.parametrize(("values", "share"), [
    (("no", "yes"), 0.1), ((False, True), 0.3), ((0, 1), 0.5), (("no", "yes"), 0.0)])
def test_binary_columns_measure_as_evidentlys_z_test(rows, values, share):
    rng = np.random.default_rng(rows)
    reference = pd.Series(np.where(rng.random(rows) < share, values[1], values[0]))
    current = pd.Series(np.where(rng.random(rows // 3 + 5) < share + 0.02, values[1],
                                 values[0]))
    measured = stattests.measure(reference, current, "binary")
    assert measured.p_value == pytest.approx(_evidently("z", reference, current),
                                             rel=1e-9, abs=1e-12)


def _in_a_fresh_process(script: str) -> subprocess.CompletedProcess:
    """``script`` run by a Python process of its own (nothing this suite imported or set
    carries over); it must succeed."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, timeout=120,
                         env={"PYTHONPATH": f"{PROJECT_ROOT / 'platform'}:{PROJECT_ROOT}",
                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_a_verdict_never_imports_evidently():
    """The sensors' and the training set's verdicts need no report: Evidently (seconds to
    import) stays out of the process."""
    script = textwrap.dedent("""
        import sys
        import numpy as np, pandas as pd
        from lakeloop.monitoring import drift
        from lakeloop.settings import BUILTIN_USE_CASES
        from lakeloop.usecase import load_use_case

        rng = np.random.default_rng(0)
        frame = pd.DataFrame({"amount": rng.normal(size=400),
                              "member": rng.choice(["no", "yes"], size=400),
                              "channel": rng.choice(["web", "branch", "phone"], size=400)})
        plan = drift.plan_columns(frame, list(frame), {"channel"}, prediction=None)
        rule = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml").monitoring.drift
        verdict = drift.judge(frame[:200], frame[200:], plan, rule, ds="day")
        assert {c.kind for c in plan} == {"continuous", "binary", "categorical"}, plan
        print(sorted(m for m in sys.modules if m.split(".")[0] == "evidently"))
    """)
    out = _in_a_fresh_process(script)
    assert out.stdout.strip() == "[]", out.stdout


def test_measuring_keeps_blas_to_one_thread_for_the_process():
    """OpenBLAS's threads spin between the tests' dot products, a core burnt beside XGBoost
    and the other report processes: the first measurement keeps BLAS to one thread. Run in a
    process of its own, BLAS given two threads first, so neither the machine's cores nor
    an earlier test decides the answer."""
    script = textwrap.dedent("""
        import numpy as np, pandas as pd
        from threadpoolctl import threadpool_info, threadpool_limits
        from lakeloop.monitoring import stattests

        threadpool_limits(2, user_api="blas")
        def blas():
            return sorted({p["num_threads"] for p in threadpool_info()
                           if p["user_api"] == "blas"})
        before = blas()
        rng = np.random.default_rng(0)
        stattests.measure(pd.Series(rng.normal(size=20_000)),
                          pd.Series(rng.normal(size=20_000)), "continuous")
        print(before, blas())
    """)
    out = _in_a_fresh_process(script)
    assert out.stdout.strip() == "[2] [1]", out.stdout
