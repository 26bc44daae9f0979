"""Model gates as pure functions: each returns a verdict with the numbers that explain it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakeloop.training import GroupFairness
from lakeloop.usecase import Gates

PERFORMANCE_GATE = "performance_gate"
FAIRNESS_GATE = "fairness_gate"
REGRESSION_GATE = "no_regression_gate"


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def performance(test_metrics: dict[str, float], threshold: float, gates: Gates) -> Verdict:
    recall, auc, f1 = test_metrics["recall"], test_metrics["auc"], test_metrics.get("f1", 0.0)
    problems = []
    if not recall >= gates.recall_min:
        problems.append(f"recall {recall:.3f} < {gates.recall_min}")
    if not auc >= gates.auc_min:
        problems.append(f"AUC {auc:.3f} < {gates.auc_min}")
    if not f1 >= gates.f1_min:
        problems.append(f"F1 {f1:.3f} < {gates.f1_min}")
    summary = (f"held-out recall {recall:.3f} (target {gates.recall_min}), AUC {auc:.3f} "
               f"(floor {gates.auc_min}) at threshold {threshold:.4f}")
    return Verdict(
        PERFORMANCE_GATE, not problems,
        ("failed: " + "; ".join(problems) + f". {summary}") if problems else summary,
        {"recall": float(recall), "recall_min": gates.recall_min, "auc": float(auc),
         "auc_min": gates.auc_min, "threshold": float(threshold),
         "test_rows": int(test_metrics["rows"])},
    )


def fairness(reports: list[GroupFairness], gates: Gates) -> Verdict:
    problems = []
    for rep in reports:
        if rep.approval_ratio < gates.fairness_ratio_min:
            problems.append(f"{rep.attribute}: approval-rate ratio {rep.approval_ratio:.3f} < "
                            f"{gates.fairness_ratio_min}")
        if rep.tpr_gap > gates.tpr_gap_max:
            problems.append(f"{rep.attribute}: TPR gap {rep.tpr_gap:.3f} > {gates.tpr_gap_max}")
    if not reports:
        summary = "no protected attributes declared"
    else:
        worst = min(reports, key=lambda r: r.approval_ratio)
        summary = (f"lowest approval-rate ratio {worst.approval_ratio:.3f} ({worst.attribute}; "
                   f"minimum {gates.fairness_ratio_min}), largest TPR gap "
                   f"{max(r.tpr_gap for r in reports):.3f} (maximum {gates.tpr_gap_max})")
    metadata: dict[str, Any] = {}
    for rep in reports:
        metadata[f"{rep.attribute}_approval_ratio"] = round(float(rep.approval_ratio), 4)
        metadata[f"{rep.attribute}_tpr_gap"] = round(float(rep.tpr_gap), 4)
    return Verdict(FAIRNESS_GATE, not problems,
                   ("failed: " + "; ".join(problems)) if problems else summary, metadata)


def no_regression(candidate_auc: float, champion_auc: float | None, champion: str | None,
                  gates: Gates) -> Verdict:
    """The candidate may trail the champion, on the same held-out window, by at most the
    tolerance (in AUC); with no champion yet there is nothing to regress from."""
    if champion_auc is None:
        return Verdict(REGRESSION_GATE, True, "no champion yet: nothing to compare with",
                       {"candidate_auc": float(candidate_auc)})
    floor = champion_auc - gates.regression_tolerance
    passed = candidate_auc >= floor
    text = (f"candidate AUC {candidate_auc:.4f} vs champion v{champion} {champion_auc:.4f} on "
            f"the same window (tolerance {gates.regression_tolerance})")
    return Verdict(REGRESSION_GATE, passed, text if passed else f"failed: {text}",
                   {"candidate_auc": float(candidate_auc), "champion_auc": float(champion_auc),
                    "champion_version": int(champion), "tolerance": gates.regression_tolerance})
