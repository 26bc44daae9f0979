"""Bronze: every snapshot row as delivered (all text), with its lineage columns, in Delta."""

import dagster as dg

from lakeloop import keys
from lakeloop.lakehouse import LakehouseResource, replace_window
from lakeloop.partitions import daily_partitions, window_of
from lakeloop.snapshots import Snapshot, SnapshotError, current, header_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import Source, UseCase

# Snapshot paths are <raw dir>/ds=<day>/<sha256>.<ext>: lineage comes from the path itself.
_PATH_RE = r"ds=(\d{4}-\d{2}-\d{2})/([0-9a-f]{64})\.\w+$"


def _bronze(spark, snapshots: list[Snapshot], source: Source):
    """Every snapshot as one DataFrame: source columns as text plus lineage columns.

    Snapshots with the same header are read in one scan with an explicit all-text schema
    (no inference pass); a header change (an added column) gets its own scan, and the scans
    are unioned by name.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    by_header: dict[tuple[str, ...], list[str]] = {}
    for snap in snapshots:
        by_header.setdefault(tuple(header_of(snap.path, source.format)), []).append(snap.path)
    frames = []
    for header, paths in by_header.items():
        if source.format == "csv":
            schema = StructType([StructField(c, StringType()) for c in header])
            df = (spark.read.schema(schema).option("header", True)
                  .option("mode", "PERMISSIVE").option("encoding", "UTF-8").csv(paths))
        else:
            df = spark.read.parquet(*paths)
        path = F.col("_metadata.file_path")
        frames.append(df.select(
            *[F.col(f"`{c}`").cast("string").alias(c) for c in header],
            F.monotonically_increasing_id().alias("_row"),
            F.regexp_extract(path, _PATH_RE, 2).alias("_snapshot_hash"),
            path.alias("_source_file"),
            F.to_date(F.regexp_extract(path, _PATH_RE, 1)).alias("ds"),
        ))
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df, allowMissingColumns=True)
    return out.withColumn("_ingested_at", F.current_timestamp())


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
        backfill_policy=dg.BackfillPolicy.single_run(),
        **keys.common(use_case, keys.LAKEHOUSE, "spark", "delta"),
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
        df = _bronze(spark.session(), snapshots, source)
        path = lakehouse.path(context.asset_key)
        commit = replace_window(df, path, start, end, run_id=context.run.run_id, merge_schema=True)
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(commit.rows_written),
            "delta_version": dg.MetadataValue.int(commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "snapshot_sha256": dg.MetadataValue.text(
                ",".join(s.sha256[:16] for s in snapshots)),
            "path": dg.MetadataValue.path(str(path)),
        })

    return bronze
