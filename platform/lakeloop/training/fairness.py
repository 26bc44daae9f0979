"""Fairness of a model's decisions across protected groups, disaggregated as fairlearn's
MetricFrame does (checked equal to it in the tests).

The favourable decision is approval (a score below the threshold). Per protected attribute:
the ratio of the lowest to the highest approval rate (the four-fifths rule) and the largest
gap in true-positive rate (defaults caught) between groups, each over the groups with
enough evidence only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class GroupFairness:
    """Approval rates and true-positive rates of one protected attribute's groups.

    A rate is judged only for groups with enough evidence (rows for approval rates,
    positives for TPR); a ratio or a gap needs at least two judged groups and is None
    otherwise, never a number that reads as "perfectly fair"."""

    attribute: str
    groups: pd.DataFrame  # index: group; rows, positives, approval_rate, tpr, judged flags
    approval_ratio: float | None
    tpr_gap: float | None
    min_group_rows: int
    min_group_positives: int

    @property
    def rate_groups(self) -> list[str]:
        return [str(g) for g in self.groups.index[self.groups["rate_judged"]]]

    @property
    def tpr_groups(self) -> list[str]:
        return [str(g) for g in self.groups.index[self.groups["tpr_judged"]]]

    def unjudged(self) -> list[str]:
        """Groups left out of a comparison, with their evidence."""
        out = []
        for group, row in self.groups.iterrows():
            if not row["rate_judged"]:
                out.append(f"{group} ({int(row['rows'])} rows)")
            elif not row["tpr_judged"]:
                out.append(f"{group} ({int(row['positives'])} positives: TPR not judged)")
        return out


def rates_by_group(groups: pd.Series, y: np.ndarray, flagged: np.ndarray) -> pd.DataFrame:
    """Rows, positives, approval rate and true-positive rate per group (groups compared as
    text, sorted), as fairlearn's ``MetricFrame(...).by_group`` disaggregates them, in one
    vectorised group-by: MetricFrame calls a Python function per group and metric, which
    took longer than the model's training on a million-row evaluation window. A test holds
    the two equal."""
    table = pd.DataFrame({"group": groups.astype(str).to_numpy(), "y": y, "flagged": flagged,
                          "caught": flagged * (y == 1)})
    sums = table.groupby("group", sort=True).agg(rows=("y", "size"), positives=("y", "sum"),
                                                 flagged=("flagged", "sum"),
                                                 caught=("caught", "sum"))
    out = pd.DataFrame({
        "rows": sums["rows"].astype(int),
        "positives": sums["positives"].astype(int),
        "approval_rate": 1.0 - sums["flagged"] / sums["rows"],
        "tpr": (sums["caught"] / sums["positives"].where(sums["positives"] > 0)).astype(float),
    })
    out.index.name = groups.name
    return out


def fairness(frame: pd.DataFrame, p: np.ndarray, y: np.ndarray, threshold: float,
             attributes: tuple[str, ...] | list[str], min_group_rows: int = 100,
             min_group_positives: int = 50) -> list[GroupFairness]:
    """Approval-rate ratio (four-fifths rule) and true-positive-rate gap per attribute, with
    the rates per group (``rates_by_group``).

    The favourable decision is approval (p < threshold). Groups with fewer than
    ``min_group_rows`` rows (or, for the TPR gap, ``min_group_positives`` positives) are
    reported but not judged: their rates are mostly sampling noise.
    """
    flagged = (np.asarray(p) >= threshold).astype(int)
    y = np.asarray(y).astype(int)
    out = []
    for attr in attributes:
        if len(y) == 0:  # nothing to disaggregate: no group, nothing judged
            empty = pd.DataFrame({"rows": [], "positives": [], "approval_rate": [],
                                  "tpr": [], "rate_judged": [], "tpr_judged": []})
            out.append(GroupFairness(attr, empty.astype({"rate_judged": bool,
                                                         "tpr_judged": bool}),
                                     None, None, min_group_rows, min_group_positives))
            continue
        groups = rates_by_group(frame[attr], y, flagged)
        groups["rate_judged"] = groups["rows"] >= min_group_rows
        groups["tpr_judged"] = groups["rate_judged"] & (groups["positives"]
                                                        >= min_group_positives)
        rates = groups.loc[groups["rate_judged"], "approval_rate"]
        ratio = (float(rates.min() / rates.max()) if len(rates) >= 2 and rates.max() > 0
                 else (1.0 if len(rates) >= 2 else None))
        tprs = groups.loc[groups["tpr_judged"], "tpr"]
        gap = float(tprs.max() - tprs.min()) if len(tprs) >= 2 else None
        out.append(GroupFairness(attr, groups, ratio, gap, min_group_rows,
                                 min_group_positives))
    return out
