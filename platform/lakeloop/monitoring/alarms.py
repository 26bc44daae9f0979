"""A day's monitoring verdicts as events for people (lakeloop.governance): drift, degraded
performance (measured, or estimated before outcomes mature) and a fairness breach. None when
the day gives no alarm."""

from __future__ import annotations

from lakeloop.governance import events, notices
from lakeloop.governance.events import Event


def drift(use_case, verdict, version: str, *, report_url: str = "", run_id: str = "",
          run_url: str = "") -> Event | None:
    if not verdict.drifted:
        return None
    return notices.report(
        events.DRIFT, use_case.name, verdict.ds, verdict.explanation(),
        {"drifted_features": verdict.drifted_features,
         "required_features": verdict.required_features,
         "prediction_drifted": bool(verdict.prediction_drifted), "rows": verdict.rows,
         "alpha": verdict.alpha},
        model_version=version, report_url=report_url, run_id=run_id, run_url=run_url)


def performance(use_case, done, *, report_url: str = "", run_id: str = "",
                run_url: str = "") -> Event | None:
    """Measured on mature outcomes first; else the estimate from the scores, when the use
    case acts on estimates. The two are separate events: an estimate's alarm does not hide
    the measured one that confirms it."""
    if done.measured.degraded and done.measured.judged:
        how, summary = "measured", done.summary["measured"]
    elif use_case.monitoring.performance.estimate and done.estimated.degraded:
        how, summary = "estimated", done.summary["estimated"] + " (estimated from scores)"
    else:
        return None
    return notices.report(
        events.PERFORMANCE, use_case.name, f"{done.ds}/{how}", summary,
        {"recall_min": done.summary["recall_min"], "how": how,
         "positives": done.measured.evidence.positives},
        model_version=done.version, report_url=report_url, run_id=run_id, run_url=run_url)


def fairness(use_case, day, done, *, report_url: str = "", run_id: str = "",
             run_url: str = "") -> Event | None:
    if not done.breaches:
        return None
    policy = use_case.monitoring.fairness
    return notices.report(
        events.FAIRNESS, use_case.name, day.ds,
        f"fairness breached at level {policy.alpha:g}: " + "; ".join(done.breaches),
        {**{f"{a}_approval_ratio": round(v, 4) for a, v in done.approval_ratios.items()},
         **{f"{a}_tpr_gap": round(v, 4) for a, v in done.tpr_gaps.items()},
         "rows": len(day.answers),
         "retraining": "requested by the fairness sensor" if policy.retrain
         else "off for this use case (monitoring.fairness.retrain)"},
        model_version=day.reference.model_version, report_url=report_url, run_id=run_id,
        run_url=run_url)
