"""Model gates as pure functions: each returns a verdict with the numbers that explain it.

A gate judges only on enough evidence: a window with too few positives or negatives, or a
fairness comparison with too few judged groups, fails with what is missing and what to do,
never with a rate computed on noise (and never ``nan``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakeloop.evidence import Evidence, number, wilson_interval
from lakeloop.training.fairness import GroupFairness
from lakeloop.usecase import Gates

PERFORMANCE_GATE = "performance_gate"
FAIRNESS_GATE = "fairness_gate"
REGRESSION_GATE = "no_regression_gate"

MORE_EVIDENCE = ("land more days, widen the training window (model.training_window_days) "
                 "or wait for more outcomes to mature")


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def shortfall(window: str, evidence: Evidence, gates: Gates) -> str | None:
    """Why ``window`` cannot be judged on, or None when its evidence is enough."""
    short = evidence.shortfall(gates.min_positives, gates.min_negatives)
    return None if short is None else f"the {window} window holds {short}"


def performance(test_metrics: dict[str, float], threshold: float, gates: Gates, *,
                evidence: Evidence, validation: Evidence | None = None) -> Verdict:
    """Recall at the chosen threshold, AUC and F1 on the held-out test window, each on
    enough positives and negatives (the threshold's validation window too)."""
    metadata: dict[str, Any] = {"recall_min": gates.recall_min, "auc_min": gates.auc_min,
                                "threshold": float(threshold), "test_rows": evidence.rows,
                                "test_positives": evidence.positives,
                                "test_negatives": evidence.negatives}
    missing = [s for s in (shortfall("test", evidence, gates),
                           shortfall("validation", validation, gates) if validation else None)
               if s]
    if missing:
        return Verdict(PERFORMANCE_GATE, False,
                       f"failed: not enough evidence to judge: {'; '.join(missing)}. "
                       f"{MORE_EVIDENCE[0].upper()}{MORE_EVIDENCE[1:]}.",
                       {**metadata, "enough_evidence": False})
    recall, auc, f1 = test_metrics["recall"], test_metrics["auc"], test_metrics.get("f1", 0.0)
    problems = []
    if not recall >= gates.recall_min:
        problems.append(f"recall {number(recall)} < {gates.recall_min}")
    if not auc >= gates.auc_min:
        problems.append(f"AUC {number(auc)} < {gates.auc_min}")
    if not f1 >= gates.f1_min:
        problems.append(f"F1 {number(f1)} < {gates.f1_min}")
    caught = int(round(recall * evidence.positives))
    low, high = wilson_interval(caught, evidence.positives)
    summary = (f"held-out recall {recall:.3f} (95% interval {low:.3f}..{high:.3f}; target "
               f"{gates.recall_min}), AUC {auc:.3f} (floor {gates.auc_min}) at threshold "
               f"{threshold:.4f}, on {evidence}")
    return Verdict(
        PERFORMANCE_GATE, not problems,
        ("failed: " + "; ".join(problems) + f". {summary}") if problems else summary,
        {**metadata, "recall": float(recall), "auc": float(auc), "enough_evidence": True,
         "recall_low": round(low, 4), "recall_high": round(high, 4)},
    )


def fairness(reports: list[GroupFairness], gates: Gates) -> Verdict:
    """Four-fifths rule on approval rates and the largest TPR gap, per protected attribute,
    over the groups with enough evidence. An attribute with fewer than two groups large
    enough to compare cannot be shown fair: the gate fails and says so. A TPR gap with too
    few positives per group is listed as not judged."""
    problems, parts = [], []
    metadata: dict[str, Any] = {}
    for rep in reports:
        a = rep.attribute
        groups = len(rep.groups)
        if rep.approval_ratio is None:
            problems.append(f"{a}: not enough evidence: {len(rep.rate_groups)} of {groups} "
                            f"groups have at least {rep.min_group_rows} rows in the test "
                            f"window (two are needed to compare); {MORE_EVIDENCE}")
        elif rep.approval_ratio < gates.fairness_ratio_min:
            problems.append(f"{a}: approval-rate ratio {rep.approval_ratio:.3f} < "
                            f"{gates.fairness_ratio_min}")
        if rep.tpr_gap is not None and rep.tpr_gap > gates.tpr_gap_max:
            problems.append(f"{a}: TPR gap {rep.tpr_gap:.3f} > {gates.tpr_gap_max}")
        ratio = number(rep.approval_ratio)
        gap = (f"TPR gap {rep.tpr_gap:.3f} over {len(rep.tpr_groups)} of {groups} groups"
               if rep.tpr_gap is not None else
               f"TPR gap not judged ({len(rep.tpr_groups)} of {groups} groups have "
               f"{rep.min_group_positives} positives)")
        unjudged = rep.unjudged()
        parts.append(f"{a}: approval-rate ratio {ratio} over {len(rep.rate_groups)} of "
                     f"{groups} groups, {gap}"
                     + (f"; not judged: {', '.join(unjudged)}" if unjudged else ""))
        if rep.approval_ratio is not None:
            metadata[f"{a}_approval_ratio"] = round(float(rep.approval_ratio), 4)
        if rep.tpr_gap is not None:
            metadata[f"{a}_tpr_gap"] = round(float(rep.tpr_gap), 4)
        metadata[f"{a}_groups_judged"] = len(rep.rate_groups)
        metadata[f"{a}_tpr_groups_judged"] = len(rep.tpr_groups)
    if not reports:
        summary = "no protected attributes declared"
    else:
        summary = (f"minimum approval-rate ratio {gates.fairness_ratio_min}, maximum TPR gap "
                   f"{gates.tpr_gap_max}. " + ". ".join(parts))
    return Verdict(FAIRNESS_GATE, not problems,
                   ("failed: " + "; ".join(problems) + f". {summary}") if problems
                   else summary, metadata)


def no_regression(candidate_auc: float, champion_auc: float | None, champion: str | None,
                  gates: Gates, evidence: Evidence | None = None) -> Verdict:
    """The candidate may trail the champion, on the same held-out window, by at most the
    tolerance (in AUC); with no champion yet there is nothing to regress from."""
    if champion_auc is None:
        return Verdict(REGRESSION_GATE, True, "no champion yet: nothing to compare with",
                       {"candidate_auc": float(candidate_auc)})
    if champion is None:
        raise ValueError("a champion's AUC comes with the champion's version")
    if evidence is not None and (short := shortfall("test", evidence, gates)):
        return Verdict(REGRESSION_GATE, False,
                       f"failed: not enough evidence to compare with champion v{champion}: "
                       f"{short}; {MORE_EVIDENCE}", {"enough_evidence": False})
    if not (candidate_auc == candidate_auc and champion_auc == champion_auc):
        return Verdict(REGRESSION_GATE, False,
                       "failed: not enough evidence: the test window has a single outcome "
                       f"class, so AUC is undefined; {MORE_EVIDENCE}", {})
    floor = champion_auc - gates.regression_tolerance
    passed = candidate_auc >= floor
    text = (f"candidate AUC {candidate_auc:.4f} vs champion v{champion} {champion_auc:.4f} on "
            f"the same window (tolerance {gates.regression_tolerance})"
            + (f", {evidence}" if evidence is not None else ""))
    return Verdict(REGRESSION_GATE, passed, text if passed else f"failed: {text}",
                   {"candidate_auc": float(candidate_auc), "champion_auc": float(champion_auc),
                    "champion_version": int(champion), "tolerance": gates.regression_tolerance})
