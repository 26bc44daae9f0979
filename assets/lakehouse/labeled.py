"""Labelled events: each day's events with the outcome known for them so far.

Outcomes arrive days or weeks after their events and are keyed like them. This table is
partitioned by the events' day, so a day of newly arrived outcomes re-materialises only the
event days it labels (the label sensor asks for exactly those partitions).
"""

import dagster as dg

from lakeloop import keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import (
    LakehouseResource,
    is_delta_table,
    read_pinned,
    read_window,
    replace_window,
    window_predicate,
)
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase

LABEL = "label"
LABEL_TIME = "label_time"


def latest_labels(labels, use_case: UseCase):
    """One outcome per event key: the latest delivered (a corrected outcome wins)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    src = use_case.labels
    order = Window.partitionBy(src.key).orderBy(F.col("ds").desc(), F.col(src.event_time).desc())
    positive = F.lit(use_case.label.positive).cast(labels.schema[use_case.label.column].dataType)
    return (labels.withColumn("_n", F.row_number().over(order)).where("_n = 1")
            .select(src.key,
                    (F.col(use_case.label.column) == positive).cast("int").alias(LABEL),
                    F.col(src.event_time).alias(LABEL_TIME)))


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    events_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.events_name}")
    labels_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.labels_name}")

    @dg.asset(
        key=keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table),
        description=f"{use_case.events_name.capitalize()} with the {use_case.labels_name} "
        "known for them so far, partitioned by the event's day.",
        deps=[events_key,
              dg.AssetDep(labels_key, partition_mapping=dg.AllPartitionMapping())],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.LAKEHOUSE, "spark", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def labeled(context: dg.AssetExecutionContext, spark: SparkResource,
                lakehouse: LakehouseResource) -> dg.MaterializeResult:
        from pyspark.sql import functions as F

        start, end = window_of(context)
        session = spark.session()
        events, events_version = read_pinned(session, lakehouse.table(events_key))
        events = events.where(window_predicate(start, end))
        read = {events_key.path[-1]: events_version}
        labels_path = lakehouse.table(labels_key)
        if is_delta_table(labels_path):
            labels, read[labels_key.path[-1]] = read_pinned(session, labels_path)
            outcome = latest_labels(labels, use_case)
            df = events.join(outcome, use_case.events.key, "left")
        else:
            df = (events.withColumn(LABEL, F.lit(None).cast("int"))
                  .withColumn(LABEL_TIME, F.lit(None).cast("timestamp")))
        path = lakehouse.table(context.asset_key)
        commit = replace_window(df, path, start, end, run_id=context.run.run_id,
                                lineage={"source_versions": read})
        stats = read_window(session, path, start, end).agg(
            F.count("*").alias("rows"), F.count(LABEL).alias("labelled"),
            F.sum(LABEL).alias("positives")).first()
        rows, labelled = int(stats["rows"]), int(stats["labelled"])
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(rows),
            "labelled": dg.MetadataValue.int(labelled),
            "label_coverage": dg.MetadataValue.float(round(labelled / rows, 4) if rows else 0.0),
            "positives": dg.MetadataValue.int(int(stats["positives"] or 0)),
            "delta_version": dg.MetadataValue.int(commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "path": dg.MetadataValue.path(str(path)),
        })

    return [labeled]
