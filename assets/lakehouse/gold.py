"""Gold: the entity's feature table, one row per event, the offline source of the features."""

import dagster as dg

from lakeloop import keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import (
    LakehouseResource,
    read_pinned,
    replace_window,
    window_predicate,
)
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"


def _gold(silver, use_case: UseCase):
    from pyspark.sql import functions as F

    events = use_case.events
    derived = use_case.features.entity.derived
    feature_cols = []
    for name in use_case.entity_features:
        expr = F.expr(derived[name]) if name in derived else F.col(name)
        cast = "double" if name in derived else None
        feature_cols.append((expr.cast(cast) if cast else expr).alias(name))
    return silver.select(
        F.col(use_case.entity.join_key),
        F.col(events.key),
        F.col(events.event_time).alias(EVENT_TIMESTAMP),
        *feature_cols,
        F.col("_ingested_at").alias(CREATED_TIMESTAMP),
        "ds",
    )


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    silver_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.events_name}")

    @dg.asset(
        key=keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table),
        description=f"Gold {use_case.entity.name} features: one row per "
        f"{use_case.events_name} event, the offline store the feature views read.",
        deps=[silver_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.LAKEHOUSE, "spark", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def gold(context: dg.AssetExecutionContext, spark: SparkResource,
             lakehouse: LakehouseResource) -> dg.MaterializeResult:
        start, end = window_of(context)
        silver, read = read_pinned(spark.session(), lakehouse.table(silver_key))
        path = lakehouse.table(context.asset_key)
        commit = replace_window(_gold(silver.where(window_predicate(start, end)), use_case),
                                path, start, end, run_id=context.run.run_id,
                                lineage={"source_versions": {silver_key.path[-1]: read}},
                                stats_columns=[use_case.entity.join_key, EVENT_TIMESTAMP])
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(commit.rows_written),
            "delta_version": dg.MetadataValue.int(commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "path": dg.MetadataValue.path(str(path)),
        })

    return [gold]
