"""Bronze: every snapshot row as delivered (all text), with its lineage columns, in Delta."""

import datetime as dt

import dagster as dg

from lakeloop import keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import (
    LakehouseResource,
    days_predicate,
    is_delta_table,
    latest_version,
    read_table,
    replace_days,
)
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.snapshots import Snapshot, SnapshotError, current, header_of
from lakeloop.spark import SparkResource, session_conf
from lakeloop.usecase import Source, UseCase


def _bronze(spark, snapshots: list[Snapshot], source: Source):
    """Every snapshot as one DataFrame: source columns as text plus lineage columns.

    Each snapshot is read with an explicit all-text schema from its own header (no inference
    pass), so an added column simply appears; the scans are unioned by name. ``_row`` orders
    a snapshot's rows and depends only on the file (its split offset plus the position in
    the split), so a backfill and day-by-day runs write the same values. ``_source_file`` is
    the path under the use case's folder, so tables can move.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    frames = []
    for snap in snapshots:
        if snap.absent:  # no file that day, and the source says that means no rows
            header = list(source.columns)
            frames.append(spark.createDataFrame(
                [], StructType([StructField(c, StringType()) for c in header])).select(
                *[F.col(f"`{c}`") for c in header],
                F.lit(None).cast("long").alias("_row"),
                F.lit(snap.sha256).alias("_snapshot_hash"),
                F.lit("").alias("_source_file"),
                F.lit(dt.date.fromisoformat(snap.ds)).alias("ds")))
            continue
        header = header_of(snap.path, source.format)
        if source.format == "csv":
            schema = StructType([StructField(c, StringType()) for c in header])
            # multiLine: a quoted value may hold line breaks (free text, addresses).
            df = (spark.read.schema(schema).option("header", True)
                  .option("mode", "PERMISSIVE").option("encoding", "UTF-8")
                  .option("multiLine", True).csv(snap.path))
            row = (F.col("_metadata.file_block_start")
                   + F.expr("monotonically_increasing_id() & 8589934591"))
        else:
            df = spark.read.parquet(snap.path)
            row = F.col("_metadata.row_index")
        # One scan per snapshot (an explicit schema costs no job): lineage columns are
        # literals, not parsed out of every row's file path.
        relative = snap.path[snap.path.index("/raw/") + 1:] if "/raw/" in snap.path else snap.path
        frames.append(df.select(
            *[F.col(f"`{c}`").cast("string").alias(c) for c in header],
            row.cast("long").alias("_row"),
            F.lit(snap.sha256).alias("_snapshot_hash"),
            F.lit(relative).alias("_source_file"),
            F.lit(dt.date.fromisoformat(snap.ds)).alias("ds"),
        ))
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df, allowMissingColumns=True)
    return out.withColumn("_ingested_at", F.current_timestamp())


def loaded_hashes(spark, path, days: list[str]) -> dict[str, str]:
    """The snapshot hash bronze already holds for each of ``days``."""
    if not is_delta_table(path):
        return {}
    rows = (read_table(spark, path).where(days_predicate(days))
            .select("ds", "_snapshot_hash").distinct().collect())
    return {r["ds"].isoformat(): r["_snapshot_hash"] for r in rows}


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    return [_bronze_asset(use_case, name) for name in use_case.sources]


def _bronze_asset(use_case: UseCase, source_name: str) -> dg.AssetsDefinition:
    source = use_case.sources[source_name]
    raw_key = keys.key(use_case, keys.RAW, source_name)

    @dg.asset(
        key=keys.key(use_case, keys.LAKEHOUSE, f"bronze_{source_name}"),
        description=f"Bronze {source_name}: snapshot rows as delivered, as text, with lineage.",
        deps=[raw_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.LAKEHOUSE, "spark", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def bronze(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start, end = window_of(context)
        raw_dir = lakehouse.path(raw_key)
        snapshots = [current(raw_dir, ds) for ds in context.partition_keys]
        missing = [ds for ds, s in zip(context.partition_keys, snapshots, strict=True)
                   if s is None]
        if missing:
            raise SnapshotError(f"raw snapshots not loaded for {missing}: materialize "
                                f"{raw_key.to_user_string()} first")
        session = spark.session()
        path = lakehouse.table(context.asset_key)
        already = loaded_hashes(session, path, context.partition_keys)
        todo = [s for s in snapshots if already.get(s.ds) != s.sha256]
        absent = [s.ds for s in snapshots if s.absent]
        skipped = sorted(set(context.partition_keys) - {s.ds for s in todo})
        if skipped:
            context.log.info(f"already loaded (same snapshot hash), not loaded again: {skipped}")
        if not todo:
            return dg.MaterializeResult(metadata={
                "rows": dg.MetadataValue.int(0),
                "days_loaded": dg.MetadataValue.int(0),
                "days_already_loaded": dg.MetadataValue.int(len(skipped)),
                "delta_version": dg.MetadataValue.int(latest_version(session, path)),
                "path": dg.MetadataValue.path(str(path)),
            })
        # One file per task: a split never mixes snapshots, so _row only depends on its file.
        with session_conf(session, {"spark.sql.files.openCostInBytes": str(128 << 20)}):
            commit = replace_days(_bronze(session, todo, source), path,
                                  days_predicate([s.ds for s in todo]),
                                  run_id=context.run.run_id, merge_schema=True,
                                  stats_columns=[])
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(commit.rows_written),
            "days_loaded": dg.MetadataValue.int(len(todo)),
            "days_already_loaded": dg.MetadataValue.int(len(skipped)),
            "days_without_file": dg.MetadataValue.int(len(absent)),
            "delta_version": dg.MetadataValue.int(commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "snapshot_sha256": dg.MetadataValue.text(",".join(s.sha256[:16] for s in todo)),
            "path": dg.MetadataValue.path(str(path)),
        })

    return bronze
