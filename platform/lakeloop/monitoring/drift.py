"""Data and prediction drift as a calibrated decision, at any daily volume.

Every column of a day (each model feature and the model's probability) is compared with the
reference, a held-out slice of the model's own data, by the test its kind calls for (see
``stattests``). The day is judged once, for all columns together, at a false-alarm rate the
use case chooses (``alpha``): each column is tested at ``alpha / m`` for ``m`` columns
(Bonferroni), so on a day with no change the chance that *any* column fires is at most
``alpha``, whatever the number of rows or features. A column drifts when its test is
significant at that level and its effect size reaches the use case's floor; the day is drifted
when enough features drift (``feature_share``) or, if the use case says so, the prediction
drifts.

A day with fewer rows than the use case's minimum is judged together with the days before it
(up to ``max_window_days``), and says which days and rows; when even that is too little it is
reported as "not enough data" and never counted as drifted.

Evidently computes the statistics (its Kolmogorov-Smirnov, z-test and Wasserstein
implementations, and the tests registered in ``stattests``) on every row of the window, and
renders the HTML report from the same run: the numbers a person reads and the verdict the
sensor reads are one and the same.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lakeloop.evidence import number
from lakeloop.monitoring.stattests import Kind, Measurement, measure, recording, stattest_name
from lakeloop.usecase import DriftMonitoring

PREDICTION = "probability"
# A numeric column with at most this many distinct reference values is compared as
# categories (Evidently's own rule): a KS test on a handful of tied values is needlessly weak.
MAX_DISCRETE_VALUES = 5
# A column's first rows, counted before all of them: most columns are continuous and show it
# there (counting every distinct value of 150k floats took 10 ms a column).
DISCRETE_PROBE_ROWS = 1000


@dataclass(frozen=True)
class ColumnPlan:
    name: str
    kind: Kind
    is_prediction: bool = False


def column_kind(values: pd.Series, categorical: bool = False) -> Kind:
    """How a column is compared: a column the contract declares categorical (text, or a
    closed list of allowed values) or a numeric one with a handful of values is compared as
    categories (binary with two), anything else as a continuous distribution."""
    if not categorical and values.head(DISCRETE_PROBE_ROWS).nunique() > MAX_DISCRETE_VALUES:
        return "continuous"  # more distinct values in its first rows than a discrete column has
    distinct = values.nunique()  # missing values are not counted
    if categorical or distinct <= MAX_DISCRETE_VALUES:
        return "binary" if distinct <= 2 else "categorical"
    return "continuous"


def plan_columns(reference: pd.DataFrame, features: list[str],
                 categorical: frozenset[str] | set[str] = frozenset(),
                 prediction: str | None = PREDICTION) -> list[ColumnPlan]:
    """The comparison of every feature (and the prediction), decided once per reference."""
    plan = [ColumnPlan(f, column_kind(reference[f], f in categorical)) for f in features]
    if prediction is not None and prediction in reference:
        plan.append(ColumnPlan(prediction, "continuous", is_prediction=True))
    return plan


@dataclass(frozen=True)
class ColumnDrift:
    kind: Kind
    test: str
    p_value: float
    effect_name: str
    effect: float
    min_effect: float
    alpha: float
    significant: bool
    drifted: bool


@dataclass(frozen=True)
class DriftVerdict:
    """One judgement: which days and rows, each column's test and effect, and the verdict."""

    ds: str
    days: tuple[str, ...]
    rows: int
    reference_rows: int
    judged: bool
    reason: str
    alpha: float
    column_alpha: float
    features: int
    required_features: int
    drifted_features: int
    prediction_drifted: bool | None
    prediction_counts: bool
    drifted: bool
    columns: dict[str, ColumnDrift] = field(default_factory=dict)
    html: str = ""
    json: str = ""

    @property
    def drift_share(self) -> float:
        return self.drifted_features / self.features if self.features else 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    def explanation(self) -> str:
        """One sentence a person (or a sensor's reason tag) can read."""
        window = self.days[0] if len(self.days) == 1 else f"{self.days[0]}..{self.days[-1]}"
        if not self.judged:
            return f"{self.ds}: not judged ({self.reason})"
        parts = [f"{self.drifted_features} of {self.features} features drifted "
                 f"(needs {self.required_features})"]
        if self.prediction_drifted is not None:
            parts.append("prediction drifted" if self.prediction_drifted
                         else "prediction stable")
        return (f"{self.ds}: {'drifted' if self.drifted else 'stable'}: " + ", ".join(parts)
                + f" on {self.rows} rows of {window} (each column at p < "
                f"{self.column_alpha:.2g}, day-level false-alarm rate {self.alpha:g})")


def not_judged(ds: str, days: tuple[str, ...], rows: int, reference_rows: int, reason: str,
               rule: DriftMonitoring, features: int) -> DriftVerdict:
    return DriftVerdict(ds=ds, days=days, rows=rows, reference_rows=reference_rows,
                        judged=False, reason=reason, alpha=rule.alpha, column_alpha=rule.alpha,
                        features=features, required_features=required(rule, features),
                        drifted_features=0, prediction_drifted=None,
                        prediction_counts=rule.prediction, drifted=False)


def required(rule: DriftMonitoring, features: int) -> int:
    """How many features must drift for the day to count as drifted."""
    return max(1, math.ceil(rule.feature_share * features - 1e-9))


def _floor(kind: Kind, rule: DriftMonitoring) -> float:
    return rule.min_shift_sd if kind == "continuous" else rule.min_share_moved


def _verdict(ds: str, days: tuple[str, ...], plan: list[ColumnPlan],
             measured: dict[str, Measurement], rule: DriftMonitoring, rows: int,
             reference_rows: int) -> DriftVerdict:
    column_alpha = rule.alpha / len(plan)
    columns = {}
    for column in plan:
        m = measured[column.name]
        floor = _floor(column.kind, rule)
        significant = m.p_value < column_alpha
        columns[column.name] = ColumnDrift(
            kind=m.kind, test=m.test, p_value=m.p_value, effect_name=m.effect_name,
            effect=m.effect, min_effect=floor, alpha=column_alpha, significant=significant,
            drifted=significant and m.effect >= floor)
    features = [c for c in plan if not c.is_prediction]
    drifted_features = sum(columns[c.name].drifted for c in features)
    prediction = next((c for c in plan if c.is_prediction), None)
    prediction_drifted = columns[prediction.name].drifted if prediction else None
    need = required(rule, len(features))
    drifted = drifted_features >= need or bool(rule.prediction and prediction_drifted)
    return DriftVerdict(
        ds=ds, days=days, rows=rows, reference_rows=reference_rows, judged=True, reason="",
        alpha=rule.alpha, column_alpha=column_alpha, features=len(features),
        required_features=need, drifted_features=drifted_features,
        prediction_drifted=prediction_drifted, prediction_counts=rule.prediction,
        drifted=drifted, columns=columns)


def judge(reference: pd.DataFrame, current: pd.DataFrame, plan: list[ColumnPlan],
          rule: DriftMonitoring, *, ds: str, days: tuple[str, ...] | None = None
          ) -> DriftVerdict:
    """The verdict alone (no report): the same tests the report runs, on every row."""
    measured = {c.name: measure(reference[c.name], current[c.name], c.kind) for c in plan}
    return _verdict(ds, days or (ds,), plan, measured, rule, len(current), len(reference))


def report(reference: pd.DataFrame, current: pd.DataFrame, plan: list[ColumnPlan],
           rule: DriftMonitoring, *, ds: str, out_dir: Path,
           days: tuple[str, ...] | None = None) -> DriftVerdict:
    """The verdict and Evidently's report of it (HTML and JSON) from one run over every row:
    one ``ValueDrift`` per column with the column's registered test at the day's level."""
    os.environ.setdefault("DO_NOT_TRACK", "true")
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    names = [c.name for c in plan]
    column_alpha = rule.alpha / len(plan)
    categorical = [c.name for c in plan if c.kind != "continuous"]
    numerical = [c.name for c in plan if c.kind == "continuous"]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    metrics = [ValueDrift(column=c.name, method=stattest_name(c.kind, _floor(c.kind, rule)),
                          threshold=column_alpha) for c in plan]
    with recording() as measured:
        snapshot = Report(metrics, include_tests=True).run(
            Dataset.from_pandas(_for_evidently(current[names], categorical),
                                data_definition=definition),
            Dataset.from_pandas(_for_evidently(reference[names], categorical),
                                data_definition=definition))
    missing = [n for n in names if n not in measured]
    if missing:  # Evidently skipped a column (all values missing): say so, never guess
        raise ValueError(f"no drift statistics for {missing}: the columns hold no values")
    verdict = _verdict(ds, days or (ds,), plan, measured, rule, len(current), len(reference))
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js = out_dir / "report.html", out_dir / "report.json"
    snapshot.save_html(str(html))  # Evidently ignores a pathlib.Path here
    snapshot.save_json(str(js))
    verdict = DriftVerdict(**{**verdict.__dict__, "html": str(html), "json": str(js)})
    (out_dir / "summary.json").write_text(verdict.to_json())
    return verdict


@dataclass(frozen=True)
class ReportJob:
    """One day's report: the arguments of ``report``."""

    reference: pd.DataFrame
    current: pd.DataFrame
    plan: list[ColumnPlan]
    rule: DriftMonitoring
    ds: str
    out_dir: Path
    days: tuple[str, ...] | None = None


class References(dict):
    """Each model version's reference, loaded on first use, and its column plan."""

    def __init__(self, load, plan):
        super().__init__()
        self._load, self._plan = load, plan
        self.plans: dict[str, list[ColumnPlan]] = {}

    def __missing__(self, version: str):
        reference = self[version] = self._load(version)
        self.plans[version] = self._plan(reference.frame)
        return reference


def plan_days(answers: pd.DataFrame, partition_keys: list[str], rule: DriftMonitoring,
              features: int, references: References, out_root: Path, no_requests
              ) -> tuple[list[tuple[str, str, DriftVerdict | None]], list[ReportJob]]:
    """Each day's verdict, or None and a report job that gives it (in ``jobs``' order)."""
    days_judged: list[tuple[str, str, DriftVerdict | None]] = []
    jobs: list[ReportJob] = []
    served: dict[str, tuple[pd.DataFrame, dict[str, int]]] = {}  # by model version
    for ds in partition_keys:
        day = answers[answers["ds"] == ds]
        if day.empty:
            no_requests(ds)
            continue
        version = str(day["model_version"].mode().iloc[0])
        reference = references[version]
        if version not in served:
            rows_of = answers[answers["model_version"] == version]
            served[version] = (rows_of, {str(d): int(n) for d, n in
                                         rows_of.groupby("ds").size().items()})
        rows_of, by_day = served[version]
        days, rows = window_for(ds, by_day, rule.min_rows, rule.max_window_days)
        if rows < rule.min_rows:
            days_judged.append((ds, version, not_judged(
                ds, days, rows, reference.rows,
                f"not enough data: {rows} rows in {len(days)} day(s), at least "
                f"{rule.min_rows} needed", rule, features)))
        else:
            jobs.append(ReportJob(reference.frame, rows_of[rows_of["ds"].isin(days)],
                                  references.plans[version], rule, ds=ds,
                                  out_dir=out_root / f"ds={ds}", days=days))
            days_judged.append((ds, version, None))
    return days_judged, jobs


def _run(job: ReportJob) -> DriftVerdict:
    return report(job.reference, job.current, job.plan, job.rule, ds=job.ds,
                  out_dir=job.out_dir, days=job.days)


def reports(jobs: list[ReportJob], workers: int | None = None) -> Iterator[DriftVerdict]:
    """Each job's ``report``, in the jobs' order, rendered by ``workers`` processes (one
    per CPU by default; see ``workers``)."""
    from lakeloop.monitoring.workers import in_order

    return in_order(_run, jobs, workers)


def category_text(value) -> str | None:
    """One text per category, whichever way a source typed it: 36, 36.0 and "36" are one
    level (the training set keeps an int, the inference log a double)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | np.integer | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def _for_evidently(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categorical columns as text, as Evidently expects them; numbers untouched."""
    if not categorical:
        return frame
    out = frame.copy()
    for name in categorical:
        out[name] = out[name].map(category_text)
    return out


def window_for(day: str, rows_by_day: dict[str, int], min_rows: int, max_days: int
               ) -> tuple[tuple[str, ...], int]:
    """The days a judgement of ``day`` rests on: the day alone when it has ``min_rows``,
    otherwise it and the days before it until they do (at most ``max_days`` days)."""
    d = dt.date.fromisoformat(day)
    days: list[str] = []
    rows = 0
    for back in range(max_days):
        current = (d - dt.timedelta(days=back)).isoformat()
        days.insert(0, current)
        rows += rows_by_day.get(current, 0)
        if rows >= min_rows:
            break
    return tuple(days), rows


def table(verdict: DriftVerdict) -> str:
    """The per-column verdict as Markdown (the Dagster UI shows it on the materialisation)."""
    lines = ["| column | test | p-value | effect | floor | drifted |",
             "|---|---|---:|---:|---:|---|"]
    for name, c in sorted(verdict.columns.items(), key=lambda kv: kv[1].p_value):
        drifted = "**yes**" if c.drifted else "significant, small" if c.significant else "no"
        lines.append(f"| {name} | {c.test} | {c.p_value:.3g} | {number(c.effect)} "
                     f"({c.effect_name}) | {c.min_effect:g} | {drifted} |")
    return "\n".join(lines)
