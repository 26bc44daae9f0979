"""How much evidence a judgement rests on, and how far its numbers can be trusted.

Gates and monitors judge rates (recall, approval rates) measured on samples. A rate measured
on 12 positives is mostly noise; these helpers say how many rows, positives and negatives a
judgement had, whether that is enough, and the confidence interval of a rate, so that every
verdict can state its evidence instead of printing ``nan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


@dataclass(frozen=True)
class Evidence:
    """The rows a rate was measured on, split by outcome."""

    rows: int
    positives: int

    @property
    def negatives(self) -> int:
        return self.rows - self.positives

    @classmethod
    def of(cls, labels: np.ndarray) -> Evidence:
        labels = np.asarray(labels)
        return cls(int(len(labels)), int(np.sum(labels == 1)))

    def shortfall(self, min_positives: int, min_negatives: int = 0) -> str | None:
        """What is missing to judge on this evidence, or None when it is enough."""
        missing = []
        if self.positives < min_positives:
            missing.append(f"{self.positives} positives (at least {min_positives} needed)")
        if self.negatives < min_negatives:
            missing.append(f"{self.negatives} negatives (at least {min_negatives} needed)")
        return " and ".join(missing) or None

    def __str__(self) -> str:
        return f"{self.rows} rows: {self.positives} positives, {self.negatives} negatives"


def wilson_interval(successes: int, trials: int, confidence: float = 0.95
                    ) -> tuple[float, float]:
    """Two-sided Wilson score interval of a binomial proportion (sound for small samples and
    for rates near 0 or 1, where the normal approximation is not)."""
    if trials <= 0:
        raise ValueError("a rate needs at least one trial")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (z / (1 + z * z / trials)) * math.sqrt(p * (1 - p) / trials
                                                   + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def upper_bound(successes: int, trials: int, alpha: float) -> float:
    """One-sided upper confidence bound (level 1 - alpha) of a proportion."""
    return wilson_interval(successes, trials, 1 - 2 * alpha)[1]


def lower_bound(successes: int, trials: int, alpha: float) -> float:
    """One-sided lower confidence bound (level 1 - alpha) of a proportion."""
    return wilson_interval(successes, trials, 1 - 2 * alpha)[0]


def mean_lower_bound(values: np.ndarray, alpha: float) -> float:
    """One-sided lower confidence bound (level 1 - alpha) of a mean (Student's t); the mean
    itself when two values cannot measure a spread."""
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean
    spread = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean - float(t.ppf(1 - alpha, len(values) - 1)) * spread


def number(value: float | None, digits: int = 3, missing: str = "not judged") -> str:
    """A figure for a person to read; never ``nan``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return f"{value:.{digits}f}"
