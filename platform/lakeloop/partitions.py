"""Daily partitions, one definition per use case (shared by assets, jobs and sensors)."""

from __future__ import annotations

import functools

import dagster as dg

from lakeloop.usecase import UseCase


@functools.cache
def _daily(start: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")


def daily_partitions(use_case: UseCase) -> dg.DailyPartitionsDefinition:
    return _daily(use_case.start_date.isoformat())


def window_of(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """The inclusive [first, last] day of the run's partition window."""
    keys = context.partition_key_range
    return keys.start, keys.end
