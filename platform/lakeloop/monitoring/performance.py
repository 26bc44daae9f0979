"""Model performance in production: measured once outcomes mature, estimated before.

*Measured.* A day's recall is judged only when the day's outcomes are mature (``maturity_days``
after it, see ``Label``) and on at least ``min_positives`` positives; the day is degraded when
its recall is significantly below the floor (the upper end of its one-sided Wilson interval at
level ``alpha`` is below ``recall_min``), so a day of 12 defaults caught 8 times is not an
alarm while a day of 400 defaults caught 300 times is.

*Estimated.* Outcomes lag; confidence-based performance estimation (CBPE, as NannyML does it)
estimates recall from the scores alone: a calibration map fitted on the reference (held-out
rows with known outcomes) turns each score into a probability of default, and the expected
recall at the model's threshold is the expected defaults caught over the expected defaults.
It catches covariate shift (applicants moving to where the model is less sure or differently
decided); it cannot catch concept drift (the same applicant now defaulting more often),
because it trusts the calibration learnt before the change. Only measured outcomes see that.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from lakeloop.evidence import Evidence, number, upper_bound, wilson_interval
from lakeloop.usecase import PerformanceMonitoring


def matures_on(day: str, maturity_days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=maturity_days)).isoformat()


def is_mature(day: str, maturity_days: int, labels_as_of: str | None) -> bool:
    """Every outcome of ``day``'s events is known once ``labels_as_of`` (the newest day whose
    outcomes have landed) is at least ``maturity_days`` later."""
    return labels_as_of is not None and matures_on(day, maturity_days) <= labels_as_of


@dataclass(frozen=True)
class Measured:
    """A day's recall against mature outcomes, with its evidence."""

    rows: int
    labelled: int
    mature: bool
    matures_on: str
    evidence: Evidence
    judged: bool
    reason: str
    recall: float | None
    recall_interval: tuple[float, float] | None
    precision: float | None
    auc: float | None
    approval_rate: float
    degraded: bool

    def explanation(self, floor: float) -> str:
        if not self.judged:
            return f"not judged: {self.reason}"
        if self.recall is None or self.recall_interval is None:
            raise ValueError(f"a judged day has a recall and its interval ({self.evidence})")
        low, high = self.recall_interval
        return (f"recall {self.recall:.3f} (95% interval {low:.3f}..{high:.3f}) on "
                f"{self.evidence}; floor {floor}" + (" (degraded)" if self.degraded else ""))


def measured(labels: np.ndarray, scores: np.ndarray, threshold: float, *, rows: int,
             mature: bool, maturity_on: str, rule: PerformanceMonitoring,
             computed: dict | None = None) -> Measured:
    """Judge recall on the answers whose outcome is known (``labels``, ``scores``).
    ``computed``: recall, precision and AUC as Evidently's report computed them (the numbers
    the HTML shows); without it (a day with one outcome class) they are counted here."""
    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=float)
    evidence = Evidence.of(labels)
    flagged = scores >= threshold
    approval = float(np.mean(~flagged)) if len(flagged) else 0.0
    reason = ""
    if not mature:
        reason = (f"outcomes mature on {maturity_on} ({len(labels)} of {rows} answers "
                  "labelled so far)")
    elif (short := evidence.shortfall(rule.min_positives)) is not None:
        reason = f"not enough evidence: {short}"
    if computed is not None:
        recall, precision, auc = (computed.get("recall"), computed.get("precision"),
                                  computed.get("auc"))
    else:
        caught_now = int(np.sum(flagged & (labels == 1)))
        recall = caught_now / evidence.positives if evidence.positives else None
        precision = caught_now / int(flagged.sum()) if flagged.any() else None
        auc = None
    caught = round(recall * evidence.positives) if recall is not None else 0
    interval = wilson_interval(caught, evidence.positives) if evidence.positives else None
    judged = not reason
    degraded = bool(judged and upper_bound(caught, evidence.positives, rule.alpha)
                    < rule.recall_min)
    return Measured(rows=rows, labelled=len(labels), mature=mature, matures_on=maturity_on,
                    evidence=evidence, judged=judged, reason=reason, recall=recall,
                    recall_interval=interval, precision=precision, auc=auc,
                    approval_rate=approval, degraded=degraded)


class Calibration:
    """Scores to probabilities of the positive outcome, learnt on the reference (isotonic:
    monotone, no shape assumed)."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray):
        from sklearn.isotonic import IsotonicRegression

        self.evidence = Evidence.of(labels)
        self._map = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            np.asarray(scores, dtype=float), np.asarray(labels, dtype=float))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return self._map.predict(np.asarray(scores, dtype=float))


@dataclass(frozen=True)
class Estimated:
    """Recall expected from the scores alone (CBPE), with its confidence interval."""

    recall: float | None
    interval: tuple[float, float] | None
    expected_positives: float
    degraded: bool
    reason: str

    def explanation(self, floor: float) -> str:
        if self.recall is None:
            return f"no estimate: {self.reason}"
        assert self.interval is not None, "an estimated recall comes with its interval"
        low, high = self.interval
        return (f"estimated recall {self.recall:.3f} ({low:.3f}..{high:.3f}) from "
                f"{self.expected_positives:.0f} expected positives; floor {floor}"
                + (" (degraded)" if self.degraded else ""))


def estimated(scores: np.ndarray, threshold: float, calibration: Calibration | None,
              rule: PerformanceMonitoring) -> Estimated:
    """Expected recall = sum of calibrated probabilities of the flagged rows over the sum of
    all; its standard error by the ratio estimator's linearisation."""
    if calibration is None:
        return Estimated(None, None, 0.0, False, "no calibration: the reference holds too "
                         "few outcomes")
    short = calibration.evidence.shortfall(rule.min_positives)
    if short is not None:
        return Estimated(None, None, 0.0, False, f"the reference holds {short}")
    q = calibration(scores)
    flagged = np.asarray(scores, dtype=float) >= threshold
    total = float(q.sum())
    if len(q) == 0 or total <= 0:
        return Estimated(None, None, 0.0, False, "no answers with a positive expected outcome")
    recall = float((q * flagged).sum() / total)
    se = math.sqrt(float(np.sum((q * flagged - recall * q) ** 2))) / total
    z = float(norm.ppf(0.975))
    one_sided_upper = recall + float(norm.ppf(1 - rule.alpha)) * se
    degraded = bool(total >= rule.min_positives and one_sided_upper < rule.recall_min)
    return Estimated(recall, (max(0.0, recall - z * se), min(1.0, recall + z * se)), total,
                     degraded, "" if total >= rule.min_positives else
                     f"only {total:.0f} expected positives (at least {rule.min_positives})")


def summary(measured_: Measured, estimated_: Estimated, floor: float) -> dict:
    """The report's numbers for a person (no ``nan``: missing figures say why)."""
    return {
        "rows": measured_.rows, "labelled_rows": measured_.labelled,
        "positives": measured_.evidence.positives, "negatives": measured_.evidence.negatives,
        "mature": measured_.mature, "matures_on": measured_.matures_on,
        "judged": measured_.judged, "reason": measured_.reason,
        "recall": number(measured_.recall), "precision": number(measured_.precision),
        "auc": number(measured_.auc), "approval_rate": number(measured_.approval_rate),
        "degraded": measured_.degraded, "recall_min": floor,
        "measured": measured_.explanation(floor),
        "estimated_recall": number(estimated_.recall, missing="no estimate"),
        "estimated_degraded": estimated_.degraded,
        "estimated": estimated_.explanation(floor),
    }
