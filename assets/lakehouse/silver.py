"""Silver: typed rows that keep their contract; every other row quarantined with its reasons."""

import dagster as dg

from lakeloop import keys
from lakeloop.contracts import ROW, VIOLATIONS, apply_contract
from lakeloop.lakehouse import LakehouseResource, read_window, replace_window
from lakeloop.partitions import daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import Source, UseCase

RECONCILIATION_CHECK = "rows_reconcile"
LINEAGE = ["_snapshot_hash", "_source_file", "_row", "_ingested_at"]


def _split(bronze, source: Source):
    """(silver, quarantine) DataFrames from a bronze window."""
    from pyspark.sql import functions as F

    extra = [c for c in bronze.columns
             if c not in source.columns and c not in LINEAGE and c != "ds"]
    checked = apply_contract(bronze, source)
    valid = checked.where(F.size(VIOLATIONS) == 0)
    silver = valid.select(*[F.col(f"`{c}`") for c in source.columns],
                          *[F.col(f"`{c}`") for c in extra],
                          "_snapshot_hash", "_ingested_at", "ds")
    raw_record = F.to_json(F.struct(*[F.col(f"`{c}`").cast("string") for c in source.columns]))
    quarantine = (
        checked.where(F.size(VIOLATIONS) > 0)
        .join(bronze.select(ROW, "_snapshot_hash", raw_record.alias("record")),
              on=[ROW, "_snapshot_hash"], how="inner")
        .select(
            F.col(VIOLATIONS).alias("reasons"),
            "record",
            "_snapshot_hash",
            "_source_file",
            F.col(ROW).alias("row_in_snapshot"),
            F.current_timestamp().alias("quarantined_at"),
            "ds",
        )
    )
    return silver, quarantine


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    return [_silver_asset(use_case, name) for name in use_case.sources]


def _silver_asset(use_case: UseCase, source_name: str) -> dg.AssetsDefinition:
    source = use_case.sources[source_name]
    bronze_key = keys.key(use_case, keys.LAKEHOUSE, f"bronze_{source_name}")
    silver_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{source_name}")
    quarantine_key = keys.key(use_case, keys.LAKEHOUSE, f"quarantine_{source_name}")
    common = keys.common(use_case, keys.LAKEHOUSE, "spark", "delta")

    @dg.multi_asset(
        name=f"{use_case.name}__silver_{source_name}",
        specs=[
            dg.AssetSpec(silver_key, deps=[bronze_key],
                         description=f"Silver {source_name}: typed, validated against the "
                         "use case's contract, one row per key.",
                         **common),
            dg.AssetSpec(quarantine_key, deps=[bronze_key],
                         description=f"Rows of {source_name} that broke a contract rule, with "
                         "every reason and the snapshot they came from.",
                         **common),
        ],
        check_specs=[
            dg.AssetCheckSpec(RECONCILIATION_CHECK, asset=silver_key, blocking=True,
                              description="rows in = rows accepted + rows quarantined"),
        ],
        partitions_def=daily_partitions(use_case),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def silver(context: dg.AssetExecutionContext, spark: SparkResource,
               lakehouse: LakehouseResource):
        from pyspark.sql import functions as F

        start, end = window_of(context)
        session = spark.session()
        bronze = read_window(session, lakehouse.path(bronze_key), start, end)
        rows_in = bronze.count()
        silver_df, quarantine_df = _split(bronze, source)
        quarantine_df = quarantine_df.cache()
        silver_commit = replace_window(silver_df, lakehouse.path(silver_key), start, end,
                                       run_id=context.run.run_id, merge_schema=True)
        quarantine_commit = replace_window(quarantine_df, lakehouse.path(quarantine_key),
                                           start, end, run_id=context.run.run_id)
        accepted, quarantined = silver_commit.rows_written, quarantine_commit.rows_written
        reasons = (quarantine_df.select(F.explode("reasons").alias("reason"))
                   .groupBy("reason").count().orderBy(F.desc("count")).limit(20).collect()
                   if quarantined else [])
        examples = (quarantine_df.select("reasons", "record").limit(5).collect()
                    if quarantined else [])
        quarantine_df.unpersist()
        reason_table = "\n".join(
            ["| rule broken | rows |", "|---|---:|"]
            + [f"| {r['reason']} | {r['count']} |" for r in reasons]
        ) if reasons else "no rows quarantined"
        rate = quarantined / rows_in if rows_in else 0.0
        yield dg.MaterializeResult(asset_key=silver_key, metadata={
            "rows_in": dg.MetadataValue.int(rows_in),
            "rows_accepted": dg.MetadataValue.int(accepted),
            "rows_quarantined": dg.MetadataValue.int(quarantined),
            "quarantine_rate": dg.MetadataValue.float(round(rate, 6)),
            "delta_version": dg.MetadataValue.int(silver_commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "path": dg.MetadataValue.path(str(lakehouse.path(silver_key))),
        })
        yield dg.MaterializeResult(asset_key=quarantine_key, metadata={
            "rows": dg.MetadataValue.int(quarantined),
            "reasons": dg.MetadataValue.md(reason_table),
            "examples": dg.MetadataValue.json(
                [{"reasons": list(e["reasons"]), "record": e["record"]} for e in examples]),
            "delta_version": dg.MetadataValue.int(quarantine_commit.version),
            "path": dg.MetadataValue.path(str(lakehouse.path(quarantine_key))),
        })
        yield dg.AssetCheckResult(
            asset_key=silver_key,
            check_name=RECONCILIATION_CHECK,
            passed=rows_in == accepted + quarantined,
            metadata={"rows_in": rows_in, "rows_accepted": accepted,
                      "rows_quarantined": quarantined,
                      "unaccounted": rows_in - accepted - quarantined},
        )

    return silver
