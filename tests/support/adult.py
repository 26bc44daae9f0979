"""The UCI Adult census data (Kohavi and Becker, 1996, CC BY 4.0) as a source system would
deliver it: a daily file of census records and, days later, a file of the incomes observed
for them. Set-up fetches the data (infra/local/setup.sh); nothing here is generated but the
calendar: each record is given a day, a time and an id, in a seeded order.

From ``shift_day`` on, the records delivered over-represent graduates (a campaign reaching a
different audience): education, occupation and the income mix move, a categorical drift.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lakeloop.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / ".cache" / "datasets" / "adult"
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
           "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
           "hours_per_week", "native_country", "income"]
GRADUATES = {"Bachelors", "Masters", "Doctorate", "Prof-school"}


def records() -> pd.DataFrame:
    """All 48,842 records as published (``?`` marks a missing value), incomes unified."""
    if not (DATA / "adult.data").exists():
        raise FileNotFoundError(f"{DATA} is missing: run `make test` (its set-up fetches it)")
    parts = [pd.read_csv(DATA / "adult.data", header=None, names=COLUMNS, dtype=str,
                         skipinitialspace=True, keep_default_na=False),
             pd.read_csv(DATA / "adult.test", header=None, names=COLUMNS, dtype=str,
                         skipinitialspace=True, keep_default_na=False, skiprows=1)]
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["income"] != ""]
    frame["income"] = frame["income"].str.rstrip(".")
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class Delivery:
    start: dt.date = dt.date(2026, 9, 1)
    days: int = 30
    rows_per_day: int = 300
    shift_day: int | None = 26  # 1-based
    seed: int = 5
    # Incomes are observed 1 to 5 days after the record.
    max_delay_days: int = 5


def land(landing: Path, delivery: Delivery = Delivery(), use_case: str = "adult_income"
         ) -> dict[str, int]:
    """Write the daily files under ``landing/<use case>/{census,incomes}/``."""
    rng = np.random.default_rng(delivery.seed)
    pool = records().sample(frac=1.0, random_state=delivery.seed).reset_index(drop=True)
    graduate = pool["education"].isin(GRADUATES).to_numpy()
    census_dir = landing / use_case / "census"
    income_dir = landing / use_case / "incomes"
    census_dir.mkdir(parents=True, exist_ok=True)
    income_dir.mkdir(parents=True, exist_ok=True)
    used = np.zeros(len(pool), dtype=bool)
    incomes: dict[dt.date, list[pd.DataFrame]] = {}
    for index in range(delivery.days):
        day = delivery.start + dt.timedelta(days=index)
        shifted = delivery.shift_day is not None and index + 1 >= delivery.shift_day
        weights = np.where(used, 0.0, np.where(graduate, 4.0 if shifted else 1.0, 1.0))
        chosen = rng.choice(len(pool), size=delivery.rows_per_day, replace=False,
                            p=weights / weights.sum())
        used[chosen] = True
        day_rows = pool.iloc[np.sort(chosen)].copy()
        seconds = np.sort(rng.integers(0, 86400, size=len(day_rows)))
        stamps = [dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=int(s))
                  for s in seconds]
        day_rows.insert(0, "record_id", [f"C{day:%Y%m%d}-{i:04d}" for i in range(len(day_rows))])
        day_rows.insert(1, "person_id", "P" + day_rows["record_id"].str[1:])
        day_rows.insert(2, "record_ts", [s.strftime("%Y-%m-%dT%H:%M:%S") for s in stamps])
        census = day_rows.drop(columns=["income"])
        # Every third day arrives as a spreadsheet's "CSV UTF-8": a byte-order mark, CRLF.
        text = census.to_csv(index=False, lineterminator="\r\n" if index % 3 == 2 else "\n")
        (census_dir / f"{day.isoformat()}.csv").write_bytes(
            (b"\xef\xbb\xbf" if index % 3 == 2 else b"") + text.encode("utf-8"))
        delay = rng.integers(1, delivery.max_delay_days + 1, size=len(day_rows))
        for d in np.unique(delay):
            mask = delay == d
            seen = day + dt.timedelta(days=int(d))
            incomes.setdefault(seen, []).append(pd.DataFrame({
                "record_id": day_rows.loc[mask, "record_id"].to_numpy(),
                "observed_ts": [(s + dt.timedelta(days=int(d))).strftime("%Y-%m-%dT%H:%M:%S")
                                for s, m in zip(stamps, mask, strict=True) if m],
                "income": day_rows.loc[mask, "income"].to_numpy()}))
    written = 0
    for index in range(delivery.days):
        day = delivery.start + dt.timedelta(days=index)
        if day not in incomes:  # no incomes observed that day: no file, as real feeds do
            continue
        frame = pd.concat(incomes[day]).sort_values(["observed_ts", "record_id"])
        frame.to_csv(income_dir / f"{day.isoformat()}.csv", index=False)
        written += len(frame)
    return {"records": delivery.days * delivery.rows_per_day, "incomes": written}
