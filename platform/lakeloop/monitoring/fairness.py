"""Fairness breaches in production, judged as statistics, not as point estimates.

A day's approval-rate ratio of 0.78 between two groups of 40 applicants is mostly noise; the
same ratio over 40,000 is a fact. A breach is therefore declared only when the data show,
at level ``alpha``, that the tolerance is exceeded:

- approval rates: for some pair of judged groups, the upper confidence bound of the ratio
  of their approval rates (Katz's log interval, with half a count added to each cell) is
  below ``fairness_ratio_min``;
- true-positive rates (mature outcomes only): for some pair, the lower confidence bound of
  the difference of their TPRs (Agresti-Caffo's adjusted Wald interval) is above
  ``tpr_gap_max``.

Every ordered pair of groups is one one-sided test; the level is split over them
(Bonferroni), so a day with many groups does not fire more often. Under a model that is
exactly at the tolerance the day fires at most ``alpha`` of the time, at any volume; a model
well inside it practically never; a model clearly outside it fires once the groups are large
enough to show it (bench/fairness_calibration.py measures both at several volumes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations
from statistics import NormalDist

from lakeloop.training.fairness import GroupFairness


@dataclass(frozen=True)
class Breach:
    attribute: str
    kind: str  # "approval_ratio" or "tpr_gap"
    groups: tuple[str, str]  # (disadvantaged, advantaged)
    estimate: float
    bound: float  # the confidence bound that crossed the tolerance

    def describe(self) -> str:
        low, high = self.groups
        if self.kind == "approval_ratio":
            return (f"{self.attribute}: approval-rate ratio {low}/{high} {self.estimate:.3f} "
                    f"(at most {self.bound:.3f} at the confidence level)")
        return (f"{self.attribute}: TPR gap {high} - {low} {self.estimate:.3f} (at least "
                f"{self.bound:.3f} at the confidence level)")


def _ratio_upper(x1: float, n1: float, x2: float, n2: float, z: float) -> tuple[float, float]:
    """Estimate and upper bound of (x1/n1) / (x2/n2), Katz's log interval (+0.5)."""
    a1, m1, a2, m2 = x1 + 0.5, n1 + 0.5, x2 + 0.5, n2 + 0.5
    log_ratio = math.log(a1 / m1) - math.log(a2 / m2)
    se = math.sqrt(max(1 / a1 - 1 / m1 + 1 / a2 - 1 / m2, 0.0))
    return math.exp(log_ratio), math.exp(log_ratio + z * se)


def _gap_lower(x_high: float, n_high: float, x_low: float, n_low: float,
               z: float) -> tuple[float, float]:
    """Estimate and lower bound of p_high - p_low, Agresti-Caffo (one success and one
    failure added to each group)."""
    p1, p2 = (x_high + 1) / (n_high + 2), (x_low + 1) / (n_low + 2)
    se = math.sqrt(p1 * (1 - p1) / (n_high + 2) + p2 * (1 - p2) / (n_low + 2))
    return x_high / n_high - x_low / n_low, (p1 - p2) - z * se


_JUDGED_COLUMNS = ("rows", "positives", "approval_rate", "tpr")
_NORMAL = NormalDist()  # its quantile agrees with scipy's norm.ppf to 1e-15


def _clearest(report: GroupFairness, judged: str, alpha: float, judge) -> list[Breach]:
    """Every ordered pair of ``report``'s ``judged`` groups, tested by ``judge(low group,
    its row, high group, its row, z)`` at level alpha split over the pairs (a row: the
    group's columns as a plain dict; the sensors judge every day, bench/ thousands)."""
    table = report.groups
    if len(table) < 2:  # (an attribute with no groups has no columns either)
        return []
    mask = table[judged].to_numpy(dtype=bool)
    if mask.sum() < 2:
        return []
    names = [str(g) for g in table.index[mask]]
    columns = {c: table[c].to_numpy()[mask].tolist() for c in _JUDGED_COLUMNS}
    rows = [{c: values[i] for c, values in columns.items()} for i in range(len(names))]
    pairs = list(permutations(range(len(names)), 2))
    z = _NORMAL.inv_cdf(1 - alpha / len(pairs))
    found = [judge(names[low], rows[low], names[high], rows[high], z) for low, high in pairs]
    return [b for b in found if b is not None]


def ratio_breach(report: GroupFairness, ratio_min: float, alpha: float) -> Breach | None:
    """The clearest pair of ``report``'s judged groups whose approval-rate ratio is below
    ``ratio_min`` beyond sampling noise at level ``alpha``, or None."""
    def judge(low, lo, high, hi, z):
        n1, n2 = float(lo["rows"]), float(hi["rows"])
        estimate, upper = _ratio_upper(float(lo["approval_rate"]) * n1, n1,
                                       float(hi["approval_rate"]) * n2, n2, z)
        return (Breach(report.attribute, "approval_ratio", (low, high), estimate, upper)
                if upper < ratio_min else None)

    return min(_clearest(report, "rate_judged", alpha, judge), key=lambda b: b.bound,
               default=None)


def gap_breach(report: GroupFairness, gap_max: float, alpha: float) -> Breach | None:
    """The clearest pair of ``report``'s TPR-judged groups whose TPR gap exceeds ``gap_max``
    beyond sampling noise at level ``alpha``, or None."""
    def judge(low, lo, high, hi, z):
        n_low, n_high = float(lo["positives"]), float(hi["positives"])
        estimate, lower = _gap_lower(float(hi["tpr"]) * n_high, n_high,
                                     float(lo["tpr"]) * n_low, n_low, z)
        return (Breach(report.attribute, "tpr_gap", (low, high), estimate, lower)
                if lower > gap_max else None)

    return max(_clearest(report, "tpr_judged", alpha, judge), key=lambda b: b.bound,
               default=None)
