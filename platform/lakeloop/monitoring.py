"""Monitoring: data and prediction drift between a reference and a day of production traffic.

Evidently builds the report a person reads (HTML) and the numbers the sensors read (JSON);
the method is pinned (normed Wasserstein distance for numeric columns) so a day with 900 rows
and a day with 1,100 rows are judged by the same test.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PREDICTION = "probability"
REFERENCE_SAMPLE = 5000
CURRENT_SAMPLE = 20000


@dataclass(frozen=True)
class DriftSummary:
    ds: str
    rows: int
    reference_rows: int
    drift_share: float
    drifted_features: int
    features: int
    drifted: bool
    threshold_share: float
    prediction_drift_score: float | None
    prediction_drifted: bool | None
    per_feature: dict[str, dict] = field(default_factory=dict)
    html: str = ""
    json: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _extract(snapshot: dict) -> tuple[dict, dict[str, dict]]:
    tests = {t["metric_config"]["metric_id"]: t for t in snapshot.get("tests", [])}
    overall, columns = {}, {}
    for metric in snapshot["metrics"]:
        config, kind = metric["config"], metric["config"]["type"]
        test = tests.get(metric["id"])
        failed = str(test["status"]).endswith("FAIL") if test else None
        if kind.endswith(":DriftedColumnsCount"):
            overall = {"count": int(metric["value"]["count"]),
                       "share": float(metric["value"]["share"])}
        elif kind.endswith(":ValueDrift"):
            columns[config["column"]] = {"score": float(metric["value"]),
                                         "method": str(config.get("method")),
                                         "threshold": config.get("threshold"),
                                         "drifted": bool(failed)}
    return overall, columns


def sorted_columns(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as float64, each sorted (axis 0): a reference sorted once serves every
    day compared with it."""
    return np.sort(frame[columns].to_numpy(dtype=np.float64), axis=0)


def normed_wasserstein(reference_sorted: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Per column, the Wasserstein-1 distance between the two samples divided by the
    reference's standard deviation: the statistic Evidently calls ``wasserstein``, computed
    exactly over the whole window (no sampling), one vectorized pass per column."""
    cur = np.sort(np.asarray(current, dtype=np.float64), axis=0)
    out = np.empty(reference_sorted.shape[1])
    for j in range(reference_sorted.shape[1]):
        u, v = reference_sorted[:, j], cur[:, j]
        u, v = u[~np.isnan(u)], v[~np.isnan(v)]
        if not len(u) or not len(v):
            out[j] = np.nan
            continue
        values = np.concatenate([u, v])
        values.sort(kind="stable")
        deltas = np.diff(values)
        u_cdf = np.searchsorted(u, values[:-1], side="right") / len(u)
        v_cdf = np.searchsorted(v, values[:-1], side="right") / len(v)
        distance = float(np.dot(np.abs(u_cdf - v_cdf), deltas))
        std = float(np.std(u))
        out[j] = distance / std if std > 0 else (0.0 if distance == 0 else np.inf)
    return out


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, features: list[str], *,
                 ds: str, drift_share: float, stattest_threshold: float, out_dir: Path,
                 seed: int = 0, reference_sorted: np.ndarray | None = None) -> DriftSummary:
    """Drift of ``features`` (and the prediction) from reference to current.

    The verdict comes from the exact statistics over the whole window
    (``normed_wasserstein``); Evidently renders the report a person reads, on a sample when
    the window is large."""
    os.environ.setdefault("DO_NOT_TRACK", "true")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [*features, PREDICTION] if PREDICTION in current and PREDICTION in reference \
        else list(features)
    ref = reference[columns]
    cur = current[columns]
    if len(ref) > REFERENCE_SAMPLE:
        ref = ref.sample(REFERENCE_SAMPLE, random_state=seed)
    if len(cur) > CURRENT_SAMPLE:
        cur = cur.sample(CURRENT_SAMPLE, random_state=seed)
    definition = DataDefinition(numerical_columns=columns)
    report = Report([DataDriftPreset(columns=columns, drift_share=drift_share,
                                     num_method="wasserstein", threshold=stattest_threshold)],
                    include_tests=True)
    snapshot = report.run(Dataset.from_pandas(cur, data_definition=definition),
                          Dataset.from_pandas(ref, data_definition=definition))
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js = out_dir / "report.html", out_dir / "report.json"
    snapshot.save_html(str(html))  # Evidently ignores a pathlib.Path here
    snapshot.save_json(str(js))
    _, evidently_columns = _extract(snapshot.dict())
    if reference_sorted is None:
        reference_sorted = sorted_columns(reference, columns)
    scores = normed_wasserstein(reference_sorted, current[columns].to_numpy(np.float64))
    per_column = {c: {"score": float(score), "method": "wasserstein (normed), full window",
                      "threshold": stattest_threshold,
                      "drifted": bool(score >= stattest_threshold),
                      "evidently_sample_score": evidently_columns.get(c, {}).get("score")}
                  for c, score in zip(columns, scores, strict=True)}
    feature_cols = {c: v for c, v in per_column.items() if c in features}
    drifted = sum(1 for v in feature_cols.values() if v["drifted"])
    share = drifted / len(features) if features else 0.0
    prediction = per_column.get(PREDICTION)
    summary = DriftSummary(
        ds=ds, rows=len(current), reference_rows=len(reference), drift_share=share,
        drifted_features=drifted, features=len(features),
        drifted=share >= drift_share, threshold_share=drift_share,
        prediction_drift_score=prediction["score"] if prediction else None,
        prediction_drifted=prediction["drifted"] if prediction else None,
        per_feature=feature_cols, html=str(html), json=str(js),
    )
    (out_dir / "summary.json").write_text(summary.to_json())
    return summary


def drift_table(summary: DriftSummary) -> str:
    lines = ["| feature | score | method | drifted |", "|---|---:|---|---|"]
    for name, v in sorted(summary.per_feature.items(), key=lambda kv: -kv[1]["score"]):
        lines.append(f"| {name} | {v['score']:.4f} | {v['method']} | "
                     f"{'**yes**' if v['drifted'] else 'no'} |")
    return "\n".join(lines)
