"""Seeded tabular data for calibrating drift decisions: a reference and daily samples, stable
or with a known shift, at any volume.

Ten features of the kinds real tabular data has (normal, skewed, heavy-tailed, counts,
bounded, binary, a few levels, correlated pairs) and a model score computed from them, so
that a shift in the features moves the prediction as it would in production.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = ["amount", "income", "tenure", "utilisation", "accounts", "inquiries",
            "has_mortgage", "region", "debt_ratio", "age"]
CONTINUOUS = ["amount", "income", "tenure", "utilisation", "debt_ratio", "age"]
CATEGORICAL = {"region"}
SHIFTED = ("amount", "utilisation")  # the known shift: +0.5 standard deviations
AMOUNT_SD, UTILISATION_SD = 4000.0, 0.2


def sample(rng: np.random.Generator, rows: int, shift_sd: float = 0.0) -> pd.DataFrame:
    """``rows`` applications; ``shift_sd`` moves the mean of the SHIFTED features by that many
    of their standard deviations."""
    age = np.clip(rng.normal(42, 12, rows), 18, 90)
    income = rng.lognormal(np.log(48000) + 0.004 * (age - 42), 0.5, rows)
    amount = rng.normal(12000 + shift_sd * AMOUNT_SD, AMOUNT_SD, rows)
    utilisation = rng.normal(0.35 + shift_sd * UTILISATION_SD, UTILISATION_SD, rows)
    frame = pd.DataFrame({
        "amount": amount,
        "income": income,
        "tenure": rng.gamma(2.0, 3.0, rows),
        "utilisation": utilisation,
        "accounts": rng.poisson(4, rows).astype(float),
        "inquiries": rng.poisson(0.8, rows).astype(float),
        "has_mortgage": (rng.random(rows) < 0.35).astype(float),
        "region": rng.choice(["north", "south", "east", "west"], rows, p=[.4, .3, .2, .1]),
        "debt_ratio": np.clip(rng.beta(2, 5, rows) + 0.1 * (utilisation - 0.35), 0, 2),
        "age": age,
    })
    z = (-2.0 + 2.5 * (frame["utilisation"] - 0.35) + 0.00005 * (frame["amount"] - 12000)
         - 0.6 * np.log(frame["income"] / 48000) + 0.3 * frame["inquiries"]
         - 0.05 * frame["tenure"])
    frame["probability"] = 1.0 / (1.0 + np.exp(-z))
    return frame


def days(seed: int, n_days: int, rows_per_day: int, shift_from: int | None = None,
         shift_sd: float = 0.5) -> dict[str, pd.DataFrame]:
    """``n_days`` daily samples keyed by ISO day; from day index ``shift_from`` on, shifted."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01")
    out = {}
    for i in range(n_days):
        shifted = shift_from is not None and i >= shift_from
        out[(start + pd.Timedelta(days=i)).date().isoformat()] = sample(
            rng, rows_per_day, shift_sd if shifted else 0.0)
    return out
