"""Table-level data-contract checks as pure functions over per-day statistics.

Each returns an Outcome with a severity: ``error`` outcomes block everything downstream,
``warn`` outcomes show in the UI and let the run go on. Messages name the column, the rule,
the number of rows and give examples.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from lakeloop.usecase import Source, SourceChecks

RECONCILIATION = "rows_reconcile"
QUARANTINE_RATE = "quarantine_rate"
FRESHNESS = "freshness"
ROW_COUNT = "row_count_anomaly"
UNIQUE_ACROSS_DAYS = "key_unique_across_days"
NULL_RATE = "null_rate"


def descriptions(source: Source) -> dict[str, str]:
    """What each check of ``source`` asks, with the contract's own numbers."""
    checks = source.checks
    limits = {n: c.max_null_rate for n, c in source.columns.items()
              if c.max_null_rate is not None}
    return {
        RECONCILIATION: "every day: rows in = rows accepted + rows quarantined",
        QUARANTINE_RATE: f"share of a day's rows quarantined (warn above "
        f"{checks.quarantine_rate_warn:.0%}, error above {checks.quarantine_rate_error:.0%})",
        FRESHNESS: f"each day's snapshot holds events from its last "
        f"{checks.freshness_hours:g} hours, all dated on its own day (UTC)",
        ROW_COUNT: f"each day's row count within {checks.row_count_min_ratio}x.."
        f"{checks.row_count_max_ratio}x of the trailing {checks.row_count_window_days}-day "
        "mean",
        UNIQUE_ACROSS_DAYS: f"each {source.key} arrives on one day only",
        NULL_RATE: "missing values per column and day within the contract's max_null_rate"
        + (f" ({', '.join(f'{c} {r:.0%}' for c, r in limits.items())})" if limits
           else " (none declared)"),
    }


@dataclass(frozen=True)
class DayCounts:
    rows_in: int
    accepted: int
    quarantined: int


@dataclass(frozen=True)
class Outcome:
    name: str
    passed: bool
    severity: str  # "warn" or "error": how a failure counts
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def reconcile(per_day: dict[str, DayCounts]) -> Outcome:
    broken = {d: c for d, c in per_day.items() if c.rows_in != c.accepted + c.quarantined}
    rows = [[d, c.rows_in, c.accepted, c.quarantined, c.rows_in - c.accepted - c.quarantined]
            for d, c in sorted(per_day.items())]
    if broken:
        text = "; ".join(f"{d}: {c.rows_in} in, {c.accepted} accepted, {c.quarantined} "
                         f"quarantined" for d, c in sorted(broken.items()))
        description = f"rows unaccounted for on {len(broken)} day(s): {text}"
    else:
        description = (f"every row accounted for on {len(per_day)} day(s): "
                       f"{sum(c.rows_in for c in per_day.values())} in = "
                       f"{sum(c.accepted for c in per_day.values())} accepted + "
                       f"{sum(c.quarantined for c in per_day.values())} quarantined")
    return Outcome(RECONCILIATION, not broken, "error", description, {
        "per_day": _table(["day", "in", "accepted", "quarantined", "unaccounted"], rows),
        "days_unreconciled": len(broken)})


def quarantine_rate(per_day: dict[str, DayCounts], reasons: list[tuple[str, int]],
                    examples: dict[str, list[str]], checks: SourceChecks) -> Outcome:
    rates = {d: (c.quarantined / c.rows_in if c.rows_in else 0.0) for d, c in per_day.items()}
    worst_day = max(rates, key=rates.__getitem__) if rates else None
    worst = rates.get(worst_day, 0.0) if worst_day else 0.0
    total_in = sum(c.rows_in for c in per_day.values())
    total_q = sum(c.quarantined for c in per_day.values())
    reason_rows = [[r, n, "; ".join(examples.get(r, [])[:2])] for r, n in reasons]
    detail = ", ".join(f"{r} ({n} rows)" for r, n in reasons[:5])
    if worst > checks.quarantine_rate_error:
        severity, passed = "error", False
        head = (f"{worst:.1%} of {worst_day}'s rows quarantined, above the error threshold "
                f"{checks.quarantine_rate_error:.1%}")
    elif worst > checks.quarantine_rate_warn:
        severity, passed = "warn", False
        head = (f"{worst:.1%} of {worst_day}'s rows quarantined, above the warning threshold "
                f"{checks.quarantine_rate_warn:.1%}")
    else:
        severity, passed = "error", True
        head = f"{total_q} of {total_in} rows quarantined (at most {worst:.2%} a day)"
    return Outcome(QUARANTINE_RATE, passed, severity,
                   head + (f": {detail}" if detail else ""), {
                       "quarantined": total_q, "rows_in": total_in,
                       "worst_day_rate": round(worst, 6),
                       "rules_broken": _table(["rule broken", "rows", "examples"], reason_rows)
                       if reason_rows else "none"})


def freshness(newest_event: dict[str, dt.datetime | None], checks: SourceChecks,
              outside: dict[str, int] | None = None) -> Outcome:
    """Each day's newest accepted event is recent, and each file's events belong to its day
    (after their offsets are normalised to UTC); a day without rows has nothing to judge (the
    row-count check speaks for it) and is listed as such."""
    limit = dt.timedelta(hours=checks.freshness_hours)
    outside = {d: n for d, n in (outside or {}).items() if n}
    stale, empty = {}, []
    for day, newest in sorted(newest_event.items()):
        if newest is None:
            empty.append(day)
            continue
        day_end = dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=1),
                                      dt.time())
        if day_end - newest.replace(tzinfo=None) > limit:
            stale[day] = newest
    problems = []
    if stale:
        problems.append(f"{len(stale)} day(s) deliver no event newer than "
                        f"{checks.freshness_hours:g}h before the day's end: "
                        + "; ".join(f"{d}: newest event {n}" for d, n in stale.items()))
    if outside:
        problems.append(f"{sum(outside.values())} event(s) dated outside their file's day "
                        "(UTC): " + "; ".join(f"{d}: {n}" for d, n in sorted(outside.items())))
    note = f" ({len(empty)} day(s) without rows: {', '.join(empty)})" if empty else ""
    return Outcome(FRESHNESS, not problems, checks.freshness_severity,
                   ("; ".join(problems) + note) if problems else
                   f"every day's snapshot holds events from its last {checks.freshness_hours:g}h"
                   " of its own day" + note,
                   {"stale_days": len(stale), "days_without_rows": len(empty),
                    "events_outside_their_day": sum(outside.values())})


def null_rate(nulls: dict[str, dict[str, int]], rows: dict[str, int],
              limits: dict[str, float], checks: SourceChecks) -> Outcome:
    """Each column with a ``max_null_rate`` stays within it on every day: ``nulls`` maps a
    day to each column's missing values among ``rows[day]`` accepted rows."""
    over, table = [], []
    for day in sorted(rows):
        for column, limit in sorted(limits.items()):
            n, total = nulls.get(day, {}).get(column, 0), rows[day]
            rate = n / total if total else 0.0
            table.append([day, column, n, total, f"{rate:.1%}", f"{limit:.1%}"])
            if rate > limit:
                over.append(f"{day}: {column} {rate:.1%} missing (at most {limit:.1%})")
    if not limits:
        return Outcome(NULL_RATE, True, checks.null_rate_severity,
                       "no column declares max_null_rate", {})
    return Outcome(NULL_RATE, not over, checks.null_rate_severity,
                   ("; ".join(over)) if over else
                   f"{len(limits)} column(s) within their missing-value rates on "
                   f"{len(rows)} day(s)",
                   {"columns_over": len(over),
                    "null_rates": _table(["day", "column", "missing", "rows", "rate", "limit"],
                                         table)})


def row_count(rows_by_day: dict[str, int], window: list[str], checks: SourceChecks) -> Outcome:
    """Each day of ``window`` against the mean of the trailing days before it."""
    history = dict(sorted(rows_by_day.items()))
    odd, judged = [], 0
    for day in window:
        d = dt.date.fromisoformat(day)
        trailing = [n for k, n in history.items()
                    if d - dt.timedelta(days=checks.row_count_window_days)
                    <= dt.date.fromisoformat(k) < d]
        if len(trailing) < 3:
            continue
        judged += 1
        expected = mean(trailing)
        ratio = history.get(day, 0) / expected if expected else 1.0
        if not checks.row_count_min_ratio <= ratio <= checks.row_count_max_ratio:
            odd.append((day, history.get(day, 0), round(expected, 1), round(ratio, 2)))
    if judged == 0:
        return Outcome(ROW_COUNT, True, checks.row_count_severity,
                       "not enough history yet (3 trailing days needed)", {"days_judged": 0})
    text = "; ".join(f"{d}: {n} rows vs {e} expected ({r}x)" for d, n, e, r in odd)
    return Outcome(ROW_COUNT, not odd, checks.row_count_severity,
                   (f"{len(odd)} day(s) outside {checks.row_count_min_ratio}x.."
                    f"{checks.row_count_max_ratio}x of the trailing "
                    f"{checks.row_count_window_days}-day mean: {text}") if odd else
                   f"{judged} day(s) within {checks.row_count_min_ratio}x.."
                   f"{checks.row_count_max_ratio}x of their trailing mean",
                   {"days_judged": judged, "days_outside": len(odd)})


def unique_across_days(key: str, duplicates: int, examples: list[str],
                       checks: SourceChecks) -> Outcome:
    return Outcome(UNIQUE_ACROSS_DAYS, duplicates == 0, checks.unique_across_days_severity,
                   (f"{key}: {duplicates} key(s) of this window also arrived on another day "
                    f"(e.g. {', '.join(examples[:3])}); readers take the latest delivery")
                   if duplicates else f"{key}: every key of this window arrived on one day only",
                   {"keys_on_several_days": duplicates})
