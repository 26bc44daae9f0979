"""The training set: labelled events joined point-in-time to their features through Feast."""

import time

import dagster as dg

from lakeloop import keys
from lakeloop.features import FeastResource, feature_service_name, spark_guard
from lakeloop.lakehouse import LakehouseResource, latest_version, overwrite_table, read_table
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase

LABEL = "label"
EVENT_TIMESTAMP = "event_timestamp"


def labelled_events(events, labels, use_case: UseCase):
    """Events with a known outcome, the latest outcome per key, in the training window."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    src = use_case.events
    latest = Window.partitionBy(src.key).orderBy(F.col(use_case.labels.event_time).desc())
    outcome = (labels.withColumn("_n", F.row_number().over(latest)).where("_n = 1")
               .select(src.key, F.col(use_case.label.column).alias("_label")))
    joined = events.join(outcome, on=src.key, how="inner")
    positive = F.lit(use_case.label.positive).cast(joined.schema["_label"].dataType)
    entity_df = joined.select(
        F.col(use_case.entity.join_key),
        F.col(src.event_time).alias(EVENT_TIMESTAMP),
        F.col(src.key),
        (F.col("_label") == positive).cast("int").alias(LABEL),
        *[F.col(c) for c in use_case.features.request],
        *[F.col(c) for c in use_case.protected_attributes],
        F.col("_snapshot_hash"),
    )
    newest = entity_df.agg(F.max(EVENT_TIMESTAMP)).first()[0]
    if newest is None:
        return entity_df
    days = use_case.model.training_window_days
    since = F.lit(newest) - F.expr(f"INTERVAL {days} DAYS")
    return entity_df.where(F.col(EVENT_TIMESTAMP) >= since)


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    events_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.events_name}")
    labels_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.labels_name}")
    gold_key = keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table)
    registry_key = keys.key(use_case, keys.FEATURES, "feast_registry")

    @dg.asset(
        key=keys.key(use_case, keys.TRAINING, "training_set"),
        description="Labelled events with their features as of each event's own time "
        "(point-in-time correct, through Feast), versioned in Delta.",
        deps=[events_key, labels_key, gold_key, registry_key],
        **keys.common(use_case, keys.TRAINING, "feast", "spark", "delta"),
    )
    def training_set(context: dg.AssetExecutionContext, spark: SparkResource,
                     feast: FeastResource, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        from pyspark.sql import functions as F

        session = spark.session()
        versions = {
            "events": latest_version(session, lakehouse.path(events_key)),
            "labels": latest_version(session, lakehouse.path(labels_key)),
            "gold": latest_version(session, lakehouse.path(gold_key)),
        }
        source_versions = {
            "silver_" + use_case.events_name: versions["events"],
            "silver_" + use_case.labels_name: versions["labels"],
            use_case.gold_table: versions["gold"],
        }
        events = read_table(session, lakehouse.path(events_key), versions["events"])
        labels = read_table(session, lakehouse.path(labels_key), versions["labels"])
        entity_df = labelled_events(events, labels, use_case)
        store = feast.store()
        service = store.get_feature_service(feature_service_name(use_case))
        started = time.perf_counter()
        with spark_guard(session):
            joined = store.get_historical_features(entity_df=entity_df, features=service)
            df = joined.to_spark_df()
            path = lakehouse.path(context.asset_key)
            lineage = {"source_versions": source_versions,
                       "feature_service": service.name}
            commit = overwrite_table(df, path, run_id=context.run.run_id, lineage=lineage)
        seconds = time.perf_counter() - started
        stats = read_table(session, path, commit.version).agg(
            F.count("*").alias("rows"), F.sum(LABEL).alias("positives"),
            F.min(EVENT_TIMESTAMP).alias("first"), F.max(EVENT_TIMESTAMP).alias("last"),
        ).first()
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(int(stats["rows"])),
            "positives": dg.MetadataValue.int(int(stats["positives"] or 0)),
            "window": dg.MetadataValue.text(f"{stats['first']} .. {stats['last']}"),
            "delta_version": dg.MetadataValue.int(commit.version),
            "feature_service": dg.MetadataValue.text(service.name),
            "source_versions": dg.MetadataValue.json(source_versions),
            "retrieval_s": dg.MetadataValue.float(round(seconds, 3)),
            "path": dg.MetadataValue.path(str(path)),
        })

    return [training_set]
