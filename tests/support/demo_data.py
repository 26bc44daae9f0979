"""Demo data with a story: daily loan applications and their outcomes, with drift.

A source system drops one CSV per day for applications and one for the outcomes that became
known that day (labels arrive 3 to 10 days after the application). From ``drift_day`` the
applicant population shifts (younger, lower incomes, higher credit utilisation) and the way
utilisation relates to default changes (concept drift). Seeded: the same arguments write
byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

AGE_BANDS = ["18-25", "26-35", "36-50", "51-65", "66+"]
TERMS = [12, 24, 36, 48, 60]


@dataclass(frozen=True)
class DemoSpec:
    start: dt.date = dt.date(2026, 9, 1)
    days: int = 60
    rows_per_day: int = 500
    drift_day: int | None = 45  # 1-based day on which drift starts; None for no drift
    seed: int = 7
    applicants: int = 8000

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def drift_date(self) -> dt.date | None:
        return None if self.drift_day is None else self.start + dt.timedelta(self.drift_day - 1)


def _applicant_pool(rng: np.random.Generator, n: int, drifted: bool) -> pd.DataFrame:
    age_p = [0.30, 0.32, 0.22, 0.12, 0.04] if drifted else [0.14, 0.30, 0.30, 0.18, 0.08]
    age_band = rng.choice(AGE_BANDS, size=n, p=age_p)
    age_idx = np.searchsorted(AGE_BANDS, age_band)
    gender = rng.choice(["female", "male", "nonbinary"], size=n, p=[0.475, 0.475, 0.05])
    income_scale = 0.75 if drifted else 1.0
    income = np.round(rng.lognormal(np.log(52000 * income_scale), 0.45, size=n), 2)
    history = np.clip(rng.normal(70 + 12 * age_idx, 40, size=n), 0, 600).astype(int)
    return pd.DataFrame({
        "gender": gender,
        "age_band": age_band,
        "income": income,
        "employment_years": np.round(np.clip(rng.gamma(2.0, 2.0 + age_idx, size=n), 0, 45), 1),
        "credit_history_months": history,
    })


def _applications_for_day(
    rng: np.random.Generator, day: dt.date, index: int, spec: DemoSpec,
    pools: dict[bool, pd.DataFrame],
) -> pd.DataFrame:
    drifted = spec.drift_date is not None and day >= spec.drift_date
    pool = pools[drifted]
    n = int(rng.poisson(spec.rows_per_day))
    ids = rng.integers(0, len(pool), size=n)
    people = pool.iloc[ids].reset_index(drop=True)
    applicant_id = np.char.add("A", (ids + (spec.applicants if drifted else 0)).astype(str))
    util_shift = 0.08 if drifted else 0.0
    utilization = np.round(np.clip(rng.beta(2.2, 3.5, size=n) + util_shift, 0, 1.2), 3)
    income = np.round(people["income"].to_numpy() * rng.normal(1.0, 0.03, size=n), 2)
    debt = np.round(income * np.clip(rng.gamma(2.0, 0.16, size=n), 0, 3), 2)
    loan = np.round(np.clip(rng.lognormal(np.log(12000), 0.6, size=n), 500, 100000), -1)
    seconds = np.sort(rng.integers(0, 86400, size=n))
    ts = [dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=int(s)) for s in seconds]
    frame = pd.DataFrame({
        "application_id": [f"{day:%Y%m%d}-{index:03d}-{i:05d}" for i in range(n)],
        "applicant_id": applicant_id,
        "application_ts": [t.strftime("%Y-%m-%dT%H:%M:%S") for t in ts],
        "income": income,
        "employment_years": people["employment_years"].to_numpy(),
        "credit_history_months": people["credit_history_months"].to_numpy(),
        "open_credit_lines": rng.poisson(4 + 6 * utilization),
        "delinquencies_2y": rng.poisson(0.15 + 1.4 * utilization ** 2),
        "credit_utilization": utilization,
        "existing_debt": debt,
        "loan_amount": loan,
        "loan_term_months": rng.choice(TERMS, size=n, p=[0.15, 0.25, 0.3, 0.15, 0.15]),
        "channel": rng.choice(["branch", "online", "partner"], size=n, p=[0.3, 0.55, 0.15]),
        "gender": people["gender"].to_numpy(),
        "age_band": people["age_band"].to_numpy(),
    })
    return frame


def default_probability(frame: pd.DataFrame, drifted: np.ndarray) -> np.ndarray:
    """The true risk: utilisation, delinquencies and leverage drive default."""
    util_coef = np.where(drifted, 12.0, 8.0)  # concept drift: utilisation matters twice as much
    dti = frame["existing_debt"] / np.maximum(frame["income"], 1.0)
    z = (
        -4.6
        + util_coef * (frame["credit_utilization"] - 0.38)
        + 1.6 * frame["delinquencies_2y"]
        + 3.0 * (dti - 0.32)
        + 2.5 * (frame["loan_amount"] / np.maximum(frame["income"], 1.0))
        - 1.0 * np.log(frame["income"] / 50000)
        - 0.0005 * frame["credit_history_months"]
        + 0.01 * (frame["loan_term_months"] - 36)
    )
    return 1.0 / (1.0 + np.exp(-z))


def generate(landing_root: Path, spec: DemoSpec = DemoSpec(), use_case: str = "credit_risk",
             progress=None) -> dict[str, int]:
    """Write ``spec.days`` daily CSV snapshots of applications and outcomes; return counts."""
    rng = np.random.default_rng(spec.seed)
    pools = {False: _applicant_pool(rng, spec.applicants, False),
             True: _applicant_pool(rng, spec.applicants, True)}
    app_dir = landing_root / use_case / "applications"
    out_dir = landing_root / use_case / "outcomes"
    app_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[dt.date, list[pd.DataFrame]] = {}
    total_apps = 0
    for index in range(spec.days):
        day = spec.start + dt.timedelta(days=index)
        apps = _applications_for_day(rng, day, index, spec, pools)
        drifted = np.full(len(apps), spec.drift_date is not None and day >= spec.drift_date)
        p = default_probability(apps, drifted)
        defaulted = (rng.random(len(apps)) < p).astype(int)
        delay = rng.integers(3, 11, size=len(apps))
        app_ts = pd.to_datetime(apps["application_ts"])
        for d in np.unique(delay):
            mask = delay == d
            known = day + dt.timedelta(days=int(d))
            if known > spec.end:
                continue
            outcomes.setdefault(known, []).append(pd.DataFrame({
                "application_id": apps.loc[mask, "application_id"].to_numpy(),
                "outcome_ts": (app_ts[mask] + pd.Timedelta(days=int(d)))
                .dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy(),
                "defaulted": defaulted[mask],
            }))
        apps.to_csv(app_dir / f"{day.isoformat()}.csv", index=False)
        total_apps += len(apps)
        if progress:
            progress(index + 1, spec.days)
    total_outcomes = 0
    columns = ["application_id", "outcome_ts", "defaulted"]
    for index in range(spec.days):
        day = spec.start + dt.timedelta(days=index)
        parts = outcomes.get(day, [])
        frame = (pd.concat(parts).sort_values(["outcome_ts", "application_id"])
                 if parts else pd.DataFrame(columns=columns))
        frame.to_csv(out_dir / f"{day.isoformat()}.csv", index=False)
        total_outcomes += len(frame)
    return {"applications": total_apps, "outcomes": total_outcomes, "days": spec.days}


# --- the command: python -m tests.support.demo_data -------------------------------------------
def _progress(stream: Any) -> Callable[[int, int], None] | None:
    """A per-day progress line on a terminal; nothing in a log or a pipe."""
    if not stream.isatty():
        return None

    def show(day: int, days: int) -> None:
        stream.write(f"\rdemo-data: day {day}/{days}")
        stream.flush()
        if day == days:
            stream.write("\n")

    return show


@click.command(
    "demo-data",
    epilog="\b\nexample:\n  python -m tests.support.demo_data --days 30 --rows-per-day 300 "
           "--drift-day 21")
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True,
              help="How many daily snapshots, from 2026-09-01.")
@click.option("--rows-per-day", type=click.IntRange(min=1), default=500, show_default=True,
              help="Mean applications per day.")
@click.option("--drift-day", type=click.IntRange(min=1),
              help="The day (1-based) from which the population drifts (default: 45, when "
                   "there are that many days).")
@click.option("--no-drift", is_flag=True, help="Generate no drift at all.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the counts as JSON for scripts instead of a sentence.")
def command(days: int, rows_per_day: int, drift_day: int | None, no_drift: bool, seed: int,
            as_json: bool) -> None:
    """Generate the credit-risk demo's daily snapshot files (applications, and the outcomes
    that became known each day) under <data root>/landing/credit_risk/. Seeded: the same
    options write the same files."""
    from lakeloop.cli.errors import CliError, UsageError
    from lakeloop.settings import Settings, SettingsError

    if drift_day is not None and drift_day > days:
        raise UsageError(f"--drift-day {drift_day} is after the last day ({days}); pass "
                         "--no-drift for data without drift")
    drift_day = None if no_drift else drift_day or DemoSpec.drift_day
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise CliError(f"{exc}; fix the variable and run the command again") from None
    spec = DemoSpec(days=days, rows_per_day=rows_per_day,
                    drift_day=drift_day if drift_day and drift_day <= days else None, seed=seed)
    landing = settings.data_root / "landing"
    started = time.perf_counter()
    try:
        counts = generate(landing, spec, progress=_progress(sys.stderr))
    except OSError as exc:
        raise CliError(f"cannot write under {landing} ({exc.strerror or exc}); set "
                       "LAKELOOP_DATA_ROOT to a folder you can write") from None
    if as_json:
        click.echo(json.dumps(counts))
        return
    drift = (f", drift from day {spec.drift_day} ({spec.drift_date})" if spec.drift_day
             else ", no drift")
    click.echo(f"wrote {counts['days']} days ({spec.start} to {spec.end}{drift}) to "
               f"{landing / 'credit_risk'}: {counts['applications']} applications, "
               f"{counts['outcomes']} outcomes in {time.perf_counter() - started:.1f}s")
    click.echo("next: materialize them from the Dagster UI (make dev), or run `make demo` for "
               "the whole lifecycle")


def main(argv: list[str] | None = None) -> int:
    from lakeloop.cli.commands import run_command

    return run_command(command, argv, "python -m tests.support.demo_data")


if __name__ == "__main__":
    sys.exit(main())
