"""Fast, vectorised snapshot files for the lakehouse benchmark (credit_risk's contract),
with a sprinkle of bad rows so validation and quarantine do real work."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

BAD_ROW_SHARE = 0.001


def write_days(landing: Path, start: dt.date, days: int, rows_per_day: int, seed: int = 0
               ) -> list[tuple[str, Path]]:
    landing.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for d in range(days):
        day = start + dt.timedelta(days=d)
        n = rows_per_day
        seconds = np.sort(rng.integers(0, 86400, n))
        ts = (np.datetime64(day.isoformat()) + seconds.astype("timedelta64[s]"))
        income = np.round(rng.lognormal(np.log(52000), 0.45, n), 2)
        util = np.round(rng.beta(2.2, 3.5, n), 3)
        cols = {
            "application_id": np.char.add(f"{day:%Y%m%d}-", np.arange(n).astype(str)),
            "applicant_id": np.char.add("A", rng.integers(0, n // 3 + 1, n).astype(str)),
            "application_ts": np.datetime_as_string(ts, unit="s"),
            "income": income.astype(str),
            "employment_years": np.round(rng.gamma(2.0, 3.0, n), 1).astype(str),
            "credit_history_months": rng.integers(0, 400, n).astype(str),
            "open_credit_lines": rng.poisson(6, n).astype(str),
            "delinquencies_2y": rng.poisson(0.3, n).astype(str),
            "credit_utilization": util.astype(str),
            "existing_debt": np.round(income * rng.gamma(2.0, 0.16, n), 2).astype(str),
            "loan_amount": np.round(np.clip(rng.lognormal(np.log(12000), 0.6, n), 500, 1e5),
                                    -1).astype(str),
            "loan_term_months": rng.choice([12, 24, 36, 48, 60], n).astype(str),
            "channel": rng.choice(["branch", "online", "partner"], n),
            "gender": rng.choice(["female", "male", "nonbinary"], n, p=[0.475, 0.475, 0.05]),
            "age_band": rng.choice(["18-25", "26-35", "36-50", "51-65", "66+"], n),
        }
        bad = rng.random(n) < BAD_ROW_SHARE
        cols["income"] = np.where(bad, "n/a", cols["income"])
        path = landing / f"{day.isoformat()}.csv"
        pacsv.write_csv(pa.table(cols), path,
                        pacsv.WriteOptions(quoting_style="none"))
        out.append((day.isoformat(), path))
    return out
