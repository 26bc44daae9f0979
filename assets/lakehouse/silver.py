"""Silver: typed rows that keep their contract; every other row quarantined with its reasons."""

import dagster as dg

from lakeloop import keys, quality
from lakeloop.contracts import BAD, ROW, apply_contract, reasons, repeated_keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import LakehouseResource, read_table, read_window, replace_window
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import Source, UseCase

LINEAGE = ["_snapshot_hash", "_source_file", "_row", "_ingested_at"]
EXAMPLES_PER_RULE = 3
CHECKS = (quality.RECONCILIATION, quality.QUARANTINE_RATE, quality.FRESHNESS,
          quality.ROW_COUNT, quality.UNIQUE_ACROSS_DAYS, quality.NULL_RATE)


def _split(bronze, source: Source, repeats):
    """(silver, quarantine) DataFrames from a bronze window.

    Both writes evaluate the contract: caching the verdicts between them was measured to
    cost as much as the second evaluation it saves."""
    from pyspark.sql import functions as F

    extra = [c for c in bronze.columns
             if c not in source.columns and c not in LINEAGE and c != "ds"]
    # The row as delivered, serialised only for the (few) quarantined rows.
    raw = F.struct(*[F.col(f"`{c}`") for c in source.columns])
    checked = apply_contract(bronze.withColumn("_raw", raw), source, repeats)
    silver = checked.where(~F.col(BAD)).select(
        *[F.col(f"`{c}`") for c in source.columns],
        *[F.col(f"`{c}`") for c in extra],
        "_snapshot_hash", "_ingested_at", "ds")
    quarantine = checked.where(F.col(BAD)).select(
        reasons(source).alias("reasons"),
        F.to_json("_raw").alias("record"),
        "_snapshot_hash",
        "_source_file",
        F.col(ROW).alias("row_in_snapshot"),
        F.current_timestamp().alias("quarantined_at"),
        "ds",
    )
    return silver, quarantine


def _counts(df, *aggs):
    return {r["ds"].isoformat(): r for r in df.groupBy("ds").agg(*aggs).collect()}


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    return [_silver_asset(use_case, name) for name in use_case.sources]


def _silver_asset(use_case: UseCase, source_name: str) -> dg.AssetsDefinition:
    source = use_case.sources[source_name]
    bronze_key = keys.key(use_case, keys.LAKEHOUSE, f"bronze_{source_name}")
    silver_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{source_name}")
    quarantine_key = keys.key(use_case, keys.LAKEHOUSE, f"quarantine_{source_name}")
    events_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.events_name}")
    common = keys.common(use_case, keys.LAKEHOUSE, "spark", "delta")
    null_limits = {n: c.max_null_rate for n, c in source.columns.items()
                   if c.max_null_rate is not None}
    descriptions = {
        quality.RECONCILIATION: "every day: rows in = rows accepted + rows quarantined",
        quality.QUARANTINE_RATE: f"share of a day's rows quarantined (warn above "
        f"{source.checks.quarantine_rate_warn:.0%}, error above "
        f"{source.checks.quarantine_rate_error:.0%})",
        quality.FRESHNESS: f"each day's snapshot holds events from its last "
        f"{source.checks.freshness_hours:g} hours, all dated on its own day (UTC)",
        quality.ROW_COUNT: f"each day's row count within {source.checks.row_count_min_ratio}x.."
        f"{source.checks.row_count_max_ratio}x of the trailing "
        f"{source.checks.row_count_window_days}-day mean",
        quality.UNIQUE_ACROSS_DAYS: f"each {source.key} arrives on one day only",
        quality.NULL_RATE: "missing values per column and day within the contract's "
        "max_null_rate" + (f" ({', '.join(f'{c} {r:.0%}' for c, r in null_limits.items())})"
                           if null_limits else " (none declared)"),
    }

    @dg.multi_asset(
        name=f"{use_case.name}__silver_{source_name}",
        specs=[
            dg.AssetSpec(silver_key, deps=[bronze_key],
                         description=f"Silver {source_name}: typed, validated against the "
                         "use case's contract, one row per key and snapshot.",
                         **common),
            dg.AssetSpec(quarantine_key, deps=[bronze_key],
                         description=f"Rows of {source_name} that broke a contract rule, with "
                         "every reason and the snapshot they came from.",
                         **common),
        ],
        check_specs=[dg.AssetCheckSpec(name, asset=silver_key, blocking=True,
                                       description=descriptions[name]) for name in CHECKS],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        op_tags=pod_tags(use_case, "spark"),
    )
    def silver(context: dg.AssetExecutionContext, spark: SparkResource,
               lakehouse: LakehouseResource):
        from pyspark.sql import functions as F

        start, end = window_of(context)
        days = list(context.partition_keys)
        session = spark.session()
        bronze = read_window(session, lakehouse.table(bronze_key), start, end)
        repeats = {n: repeated_keys(bronze, n) for n, c in source.columns.items() if c.unique}
        silver_df, quarantine_df = _split(bronze, source, repeats)
        run_id = context.run.run_id
        silver_commit = replace_window(silver_df, lakehouse.table(silver_key), start, end,
                                       run_id=run_id, merge_schema=True,
                                       stats_columns=[source.key, source.event_time])
        quarantine_commit = replace_window(quarantine_df, lakehouse.table(quarantine_key),
                                           start, end, run_id=run_id, stats_columns=[])

        # Counts from what was written, independently of one another. One pass over bronze
        # gives both the window's rows in and the trailing days the anomaly check compares.
        checks = source.checks
        lookback = max(checks.row_count_window_days, checks.unique_lookback_days)
        since = F.date_sub(F.lit(start).cast("date"), lookback)
        written = read_window(session, lakehouse.table(silver_key), start, end)
        quarantined = read_window(session, lakehouse.table(quarantine_key), start, end)
        until = F.lit(end).cast("date")
        bronze_days = _counts(read_table(session, lakehouse.table(bronze_key))
                              .where((F.col("ds") >= since) & (F.col("ds") <= until)),
                              F.count("*").alias("n"))
        accepted = _counts(
            written, F.count("*").alias("n"), F.max(source.event_time).alias("newest"),
            F.sum(F.when(F.to_date(source.event_time) != F.col("ds"), 1).otherwise(0))
            .alias("outside"),
            *[F.sum(F.when(F.col(f"`{c}`").isNull(), 1).otherwise(0)).alias(f"null_{i}")
              for i, c in enumerate(null_limits)])
        rejected = _counts(quarantined, F.count("*").alias("n"))
        per_day = {d: quality.DayCounts(
            rows_in=bronze_days[d]["n"] if d in bronze_days else 0,
            accepted=accepted[d]["n"] if d in accepted else 0,
            quarantined=rejected[d]["n"] if d in rejected else 0) for d in days}
        reasons = [(r["reason"], r["count"]) for r in
                   quarantined.select(F.explode("reasons").alias("reason"))
                   .groupBy("reason").count().orderBy(F.desc("count"), "reason").limit(25)
                   .collect()]
        examples: dict[str, list[str]] = {}
        if reasons:
            for row in (quarantined.select(F.explode("reasons").alias("reason"), "record")
                        .where(F.col("reason").isin([r for r, _ in reasons]))
                        .limit(EXAMPLES_PER_RULE * len(reasons) * 4).collect()):
                bucket = examples.setdefault(row["reason"], [])
                if len(bucket) < EXAMPLES_PER_RULE:
                    bucket.append(row["record"])
        # Keys of this window that also arrived on another day: inside the window they were
        # found with the duplicates above; before it, a semi-join against the lookback.
        inside = repeats.get(source.key)
        several = set(inside.keys_on_several_days) if inside else set()
        window = F.col("ds").between(F.lit(start).cast("date"), until)
        before = (read_table(session, lakehouse.table(silver_key))
                  .where((F.col("ds") >= since) & ~window).select(source.key))
        earlier = (written.select(source.key).join(before, source.key, "left_semi")
                   .distinct().limit(1000).collect())
        several.update(r[source.key] for r in earlier)
        dup_count, dup_examples = len(several), sorted(several)[:5]

        outcomes = [
            quality.reconcile(per_day),
            quality.quarantine_rate(per_day, reasons, examples, source.checks),
            quality.freshness({d: accepted[d]["newest"] if d in accepted else None
                               for d in days}, source.checks,
                              {d: int(accepted[d]["outside"] or 0) for d in accepted}),
            quality.row_count({d: r["n"] for d, r in bronze_days.items()}, days, source.checks),
            quality.unique_across_days(source.key, dup_count, dup_examples, source.checks),
            quality.null_rate(
                {d: {c: int(accepted[d][f"null_{i}"] or 0) for i, c in enumerate(null_limits)}
                 for d in accepted},
                {d: accepted[d]["n"] if d in accepted else 0 for d in days},
                null_limits, source.checks),
        ]
        total_in = sum(c.rows_in for c in per_day.values())
        total_q = sum(c.quarantined for c in per_day.values())
        silver_metadata = {
            "rows_in": dg.MetadataValue.int(total_in),
            "rows_accepted": dg.MetadataValue.int(sum(c.accepted for c in per_day.values())),
            "rows_quarantined": dg.MetadataValue.int(total_q),
            "quarantine_rate": dg.MetadataValue.float(
                round(total_q / total_in, 6) if total_in else 0.0),
            "delta_version": dg.MetadataValue.int(silver_commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "per_day": dg.MetadataValue.md(outcomes[0].metadata["per_day"]),
            "path": dg.MetadataValue.path(lakehouse.table(silver_key)),
        }
        if source.role == "labels":
            silver_metadata["event_days"] = dg.MetadataValue.json(
                _event_days(session, written, lakehouse.table(events_key),
                            use_case.events.key))
        yield dg.MaterializeResult(asset_key=silver_key, metadata=silver_metadata)
        yield dg.MaterializeResult(asset_key=quarantine_key, metadata={
            "rows": dg.MetadataValue.int(total_q),
            "rules_broken": dg.MetadataValue.md(outcomes[1].metadata["rules_broken"]),
            "examples": dg.MetadataValue.json(examples),
            "delta_version": dg.MetadataValue.int(quarantine_commit.version),
            "path": dg.MetadataValue.path(lakehouse.table(quarantine_key)),
        })
        for outcome in outcomes:
            yield dg.AssetCheckResult(
                asset_key=silver_key, check_name=outcome.name, passed=outcome.passed,
                severity=(dg.AssetCheckSeverity.ERROR if outcome.severity == "error"
                          else dg.AssetCheckSeverity.WARN),
                description=outcome.description,
                metadata={k: (dg.MetadataValue.md(v) if isinstance(v, str) and "|" in v else v)
                          for k, v in outcome.metadata.items()})

    return silver


def _event_days(session, labels, events_path, key: str) -> list[str]:
    """The event days whose rows these labels belong to (what their arrival changes)."""
    from lakeloop.lakehouse import is_delta_table

    if not is_delta_table(events_path):
        return []
    events = read_table(session, events_path).select(key, "ds").withColumnRenamed("ds", "_d")
    rows = labels.select(key).join(events, key).select("_d").distinct().collect()
    return sorted(r["_d"].isoformat() for r in rows)
