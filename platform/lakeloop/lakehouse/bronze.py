"""Bronze: every snapshot row as delivered (all text), with its lineage columns, in Delta.
A day whose snapshot hash is already in bronze is not loaded again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lakeloop.lakehouse.tables import (
    Commit,
    days_predicate,
    is_delta_table,
    latest_version,
    read_table,
    replace_days,
)
from lakeloop.raw.snapshots import Snapshot, header_of
from lakeloop.spark import fold, session_conf
from lakeloop.usecase import Source


def frame(spark, snapshots: list[Snapshot], source: Source):
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
    out = fold(frames, lambda a, b: a.unionByName(b, allowMissingColumns=True))
    return out.withColumn("_ingested_at", F.current_timestamp())


def loaded_hashes(spark, path, days: list[str]) -> dict[str, str]:
    """The snapshot hash bronze already holds for each of ``days``."""
    if not is_delta_table(path):
        return {}
    rows = (read_table(spark, path).where(days_predicate(days))
            .select("ds", "_snapshot_hash").distinct().collect())
    return {r["ds"].isoformat(): r["_snapshot_hash"] for r in rows}


@dataclass(frozen=True)
class BronzeWindow:
    loaded: list[Snapshot]
    skipped: list[str]
    absent: list[str]
    commit: Commit | None
    version: int


def write(session, path: str, snapshots: list[Snapshot], source: Source, days: list[str], *,
          run_id: str) -> BronzeWindow:
    """Load the window's snapshots that bronze does not hold yet (by hash), replacing
    exactly their days in one commit."""
    already = loaded_hashes(session, path, days)
    todo = [s for s in snapshots if already.get(s.ds) != s.sha256]
    skipped = sorted(set(days) - {s.ds for s in todo})
    absent = [s.ds for s in snapshots if s.absent]
    if not todo:
        return BronzeWindow([], skipped, absent, None, latest_version(session, path))
    # One file per task: a split never mixes snapshots, so _row only depends on its file.
    with session_conf(session, {"spark.sql.files.openCostInBytes": str(128 << 20)}):
        commit = replace_days(frame(session, todo, source), path,
                              days_predicate([s.ds for s in todo]), run_id=run_id,
                              merge_schema=True, stats_columns=[])
    return BronzeWindow(todo, skipped, absent, commit, commit.version)
