"""Daily partitions, one definition per use case (shared by assets, jobs and sensors)."""

from __future__ import annotations

import functools

import dagster as dg

from lakeloop.usecase import UseCase

# Run tags that make one run take a range of partitions (a backfill window).
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@functools.cache
def _daily(start: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")


def daily_partitions(use_case: UseCase) -> dg.DailyPartitionsDefinition:
    return _daily(use_case.start_date.isoformat())


def backfill_policy(use_case: UseCase) -> dg.BackfillPolicy:
    """One run per backfill, or runs of ``scale.backfill_days_per_run`` days: either way
    each run handles its window in one Spark job per asset (partition-exact Delta writes)."""
    days = use_case.scale.backfill_days_per_run
    return dg.BackfillPolicy.single_run() if days is None else \
        dg.BackfillPolicy.multi_run(max_partitions_per_run=days)


def window_of(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """The inclusive [first, last] day of the run's partition window."""
    keys = context.partition_key_range
    return keys.start, keys.end
