"""The day's quality reports: performance (measured with Evidently's classification preset once
outcomes mature, estimated from calibrated scores before) and fairness by protected group
(rates as fairlearn's MetricFrame disaggregates them), each written as HTML and JSON, each
verdict stating its evidence."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lakeloop.monitoring import performance as perf
from lakeloop.monitoring.fairness import gap_breach, ratio_breach
from lakeloop.monitoring.reference import Reference
from lakeloop.training.fairness import fairness
from lakeloop.usecase import UseCase


@dataclass(frozen=True)
class Day:
    """One day's answers, those whose outcome is known, and who answered."""

    ds: str
    answers: pd.DataFrame
    known: pd.DataFrame
    mature: bool
    reference: Reference


def days(frame: pd.DataFrame, partition_keys: list[str], use_case: UseCase,
         labels_as_of: str | None, reference_of) -> Iterator[Day | str]:
    """Each day of the window with answers (a Day), or the day itself when it has none."""
    for ds in partition_keys:
        day = frame[frame["ds"] == ds]
        if day.empty:
            yield ds
            continue
        version = str(day["model_version"].mode().iloc[0])
        yield Day(ds, day, day[day["label"].notna()],
                  perf.is_mature(ds, use_case.label.maturity_days, labels_as_of),
                  reference_of(version))


def _page(title: str, sections: dict[str, str]) -> str:
    body = "".join(f"<h2>{name}</h2>{html}" for name, html in sections.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head>"
            f"<body><h1>{title}</h1>{body}</body></html>")


def _summary(out_dir: Path, summary: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True,
                                                     default=str))


@dataclass
class PerformanceDay:
    ds: str
    version: str
    measured: perf.Measured
    estimated: perf.Estimated
    summary: dict[str, Any]
    html: str


def evidently_metrics(known: pd.DataFrame, threshold: float, out_dir: Path) -> dict:
    """Recall, precision and ROC AUC of the day's labelled answers at the model's threshold,
    computed by Evidently's classification preset, whose HTML is the day's report."""
    os.environ.setdefault("DO_NOT_TRACK", "true")
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    frame = pd.DataFrame({"label": known["label"].astype(int),
                          "probability": known["probability"].astype(float)})
    frame["prediction"] = (frame["probability"] >= threshold).astype(int)
    definition = DataDefinition(classification=[BinaryClassification(
        target="label", prediction_labels="prediction", prediction_probas="probability",
        pos_label=1)])
    snapshot = Report([ClassificationPreset(probas_threshold=threshold)]).run(
        Dataset.from_pandas(frame, data_definition=definition), None)
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out_dir / "report.html"))
    snapshot.save_json(str(out_dir / "report.json"))
    values = {m["config"]["type"].rsplit(":", 1)[-1]: m["value"]
              for m in snapshot.dict()["metrics"]}
    return {"recall": values.get("Recall"), "precision": values.get("Precision"),
            "auc": values.get("RocAuc")}


def performance_day(day: Day, use_case: UseCase, calibration: perf.Calibration,
                    out_dir: Path) -> PerformanceDay:
    """Measure (on mature outcomes) and estimate (from the scores) the day's recall."""
    rule, threshold = use_case.monitoring.performance, day.reference.threshold
    known = day.known
    computed = None
    if day.mature and len(known) and known["label"].nunique() == 2:
        computed = evidently_metrics(known, threshold, out_dir)
    measured = perf.measured(known["label"].to_numpy(), known["probability"].to_numpy(),
                             threshold, rows=len(day.answers), mature=day.mature,
                             maturity_on=perf.matures_on(day.ds, use_case.label.maturity_days),
                             rule=rule, computed=computed)
    estimated = perf.estimated(day.answers["probability"].to_numpy(), threshold, calibration,
                               rule)
    summary = {"ds": day.ds, "model_version": day.reference.model_version,
               **perf.summary(measured, estimated, rule.recall_min)}
    html = out_dir / "report.html"
    if computed is None:  # no outcomes to classify yet: the verdict and the estimate alone
        out_dir.mkdir(parents=True, exist_ok=True)
        table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary.items())
        html.write_text(_page(f"{use_case.title}: performance on {day.ds}",
                              {"Verdict": f"<table>{table}</table>"}))
    _summary(out_dir, summary)
    return PerformanceDay(day.ds, day.reference.model_version, measured, estimated, summary,
                          str(html))


@dataclass(frozen=True)
class PerformanceJob:
    """The arguments of ``performance_day``, for a report rendered in another process."""

    day: Day
    use_case: UseCase
    calibration: perf.Calibration
    out_dir: Path


def performance_job(job: PerformanceJob) -> PerformanceDay:
    return performance_day(job.day, job.use_case, job.calibration, job.out_dir)


@dataclass
class FairnessDay:
    ds: str
    approval_ratios: dict[str, float] = field(default_factory=dict)
    tpr_gaps: dict[str, float] = field(default_factory=dict)
    groups_judged: dict[str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)  # point estimates past a tolerance
    breaches: list[str] = field(default_factory=list)  # shown at level alpha: these act
    not_judged: list[str] = field(default_factory=list)
    html: str = ""


def fairness_day(day: Day, use_case: UseCase, out_dir: Path) -> FairnessDay:
    """Approval-rate ratio on every answer; TPR gap on mature outcomes only; groups too
    small to judge listed as such."""
    gates, threshold = use_case.gates, day.reference.threshold
    answers = day.answers
    rates = fairness(answers, answers["probability"].to_numpy(),
                     answers["label"].fillna(0).astype(int).to_numpy(), threshold,
                     use_case.protected_attributes,
                     min_group_rows=gates.fairness_min_group_rows, min_group_positives=10**9)
    outcomes = day.known if day.mature else day.known.iloc[0:0]
    tprs = fairness(outcomes, outcomes["probability"].to_numpy(),
                    outcomes["label"].astype(int).to_numpy(), threshold,
                    use_case.protected_attributes,
                    min_group_rows=gates.fairness_min_group_rows,
                    min_group_positives=gates.fairness_min_group_positives)
    out = FairnessDay(day.ds)
    sections = {}
    for rate, tpr in zip(rates, tprs, strict=True):
        a = rate.attribute
        if rate.approval_ratio is not None:
            out.approval_ratios[a] = rate.approval_ratio
            if rate.approval_ratio < gates.fairness_ratio_min:
                out.findings.append(f"{a}: approval-rate ratio {rate.approval_ratio:.3f}")
        else:
            out.not_judged.append(f"{a}: approval rates not judged ({len(rate.rate_groups)} "
                                  f"of {len(rate.groups)} groups have "
                                  f"{gates.fairness_min_group_rows} answers)")
        if tpr.tpr_gap is not None:
            out.tpr_gaps[a] = tpr.tpr_gap
            if tpr.tpr_gap > gates.tpr_gap_max:
                out.findings.append(f"{a}: TPR gap {tpr.tpr_gap:.3f}")
        else:
            why = (f"{len(tpr.tpr_groups)} of {len(tpr.groups)} groups have "
                   f"{gates.fairness_min_group_positives} positives" if day.mature else
                   f"outcomes mature on {perf.matures_on(day.ds, use_case.label.maturity_days)}")
            out.not_judged.append(f"{a}: TPR gap not judged ({why})")
        alpha = use_case.monitoring.fairness.alpha
        for breach in (ratio_breach(rate, gates.fairness_ratio_min, alpha),
                       gap_breach(tpr, gates.tpr_gap_max, alpha)):
            if breach is not None:
                out.breaches.append(breach.describe())
        out.groups_judged[a] = len(rate.rate_groups)
        sections[a] = rate.groups.to_html(float_format="{:.3f}".format, na_rep="not judged")
    _summary(out_dir, {"ds": day.ds, "rows": len(answers), "labeled_rows": len(day.known),
                       "mature": day.mature, "findings": out.findings,
                       "breaches": out.breaches, "alpha": use_case.monitoring.fairness.alpha,
                       "not_judged": out.not_judged, "approval_ratios": out.approval_ratios,
                       "tpr_gaps": out.tpr_gaps})
    html = out_dir / "report.html"
    html.write_text(_page(f"{use_case.title}: fairness on {day.ds}", sections))
    out.html = str(html)
    return out
