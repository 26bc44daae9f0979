"""The training set: labelled events joined point-in-time to their features through Feast."""

import datetime as dt
import tempfile
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from lakeloop import keys
from lakeloop.features import (
    FeastResource,
    feature_service_name,
    hand_written_objects,
    pinned_store,
    spark_guard,
    use_case_objects,
)
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import (
    LakehouseResource,
    commit_metadata,
    latest_version,
    overwrite_table,
    read_table,
)
from lakeloop.snapshots import latest_loaded_day
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase

LABEL = "label"
EVENT_TIMESTAMP = "event_timestamp"


class TrainingSetConfig(dg.Config):
    """Leave empty to read the latest data; name an earlier training-set version to rebuild
    it from exactly the table versions it recorded (Delta time travel)."""

    rebuild_version: int | None = Field(
        default=None, description="a training_set Delta version to rebuild exactly")


def mature_until(labels_as_of: str | None, use_case: UseCase) -> str | None:
    """The last event day whose outcomes are mature, given the newest day of outcomes."""
    if labels_as_of is None:
        return None
    return (dt.date.fromisoformat(labels_as_of)
            - dt.timedelta(days=use_case.label.maturity_days)).isoformat()


def entity_rows(labeled, use_case: UseCase, last_mature_day: str | None):
    """Labelled events with mature outcomes in the training window, as Feast's entity frame.

    An event younger than the use case's ``label.maturity_days`` is left out even when its
    outcome is already known: the outcomes that arrive first (repayments) would stand in for
    all of them."""
    from pyspark.sql import functions as F

    src = use_case.events
    if last_mature_day is None:
        labeled = labeled.limit(0)
    else:
        labeled = labeled.where(F.to_date(F.col(src.event_time))
                                <= F.lit(last_mature_day).cast("date"))
    rows = labeled.where(F.col(LABEL).isNotNull()).select(
        F.col(use_case.entity.join_key),
        F.col(src.event_time).alias(EVENT_TIMESTAMP),
        F.col(src.key),
        F.col(LABEL),
        *[F.col(c) for c in use_case.features.request],
        *[F.col(c) for c in use_case.protected_attributes],
        F.col("_snapshot_hash"),
    )
    newest = rows.agg(F.max(EVENT_TIMESTAMP)).first()[0]
    if newest is None:
        return rows
    since = F.lit(newest) - F.expr(f"INTERVAL {use_case.model.training_window_days} DAYS")
    return rows.where(F.col(EVENT_TIMESTAMP) >= since)


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    labeled_key = keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table)
    gold_key = keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table)
    registry_key = keys.key(use_case, keys.FEATURES, "feast_registry")
    raw_labels_key = keys.key(use_case, keys.RAW, use_case.labels_name)

    @dg.asset(
        key=keys.key(use_case, keys.TRAINING, "training_set"),
        description="Labelled events with their features as of each event's own time, "
        "versioned in Delta.\n\nPoint-in-time correct, through Feast.",
        deps=[dg.AssetDep(labeled_key, partition_mapping=dg.AllPartitionMapping()),
              dg.AssetDep(gold_key, partition_mapping=dg.AllPartitionMapping()),
              registry_key],
        **keys.common(use_case, keys.TRAINING, "feast", "spark", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def training_set(context: dg.AssetExecutionContext, config: TrainingSetConfig,
                     spark: SparkResource, feast: FeastResource,
                     lakehouse: LakehouseResource) -> dg.MaterializeResult:
        from pyspark.sql import functions as F

        session = spark.session()
        path = lakehouse.table(context.asset_key)
        if config.rebuild_version is not None:
            recorded = commit_metadata(session, path, config.rebuild_version)
            if "source_versions" not in recorded:
                raise dg.Failure(f"training_set version {config.rebuild_version} recorded no "
                                 "source versions; it cannot be rebuilt exactly")
            versions = {k: int(v) for k, v in recorded["source_versions"].items()}
            labels_as_of = recorded.get("labels_as_of")
        else:
            versions = {
                use_case.labeled_table: latest_version(session, lakehouse.table(labeled_key)),
                use_case.gold_table: latest_version(session, lakehouse.table(gold_key)),
            }
            labels_as_of = latest_loaded_day(lakehouse.path(raw_labels_key))
        labeled = read_table(session, lakehouse.table(labeled_key),
                             versions[use_case.labeled_table])
        last_mature = mature_until(labels_as_of, use_case)
        entity_df = entity_rows(labeled, use_case, last_mature)
        # Feast reads the gold table at the version recorded above, never "whatever is
        # latest by then": the lineage below is exactly what was read.
        objects = use_case_objects(use_case, lakehouse.uri(gold_key),
                                   gold_version=versions[use_case.gold_table])
        extra = hand_written_objects(Path(feast.repo_path), use_case) if feast.repo_path else []
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp, spark_guard(session):
            store = pinned_store([*objects, *extra], Path(tmp))
            service = store.get_feature_service(feature_service_name(use_case))
            df = store.get_historical_features(entity_df=entity_df, features=service)\
                .to_spark_df()
            lineage = {"source_versions": versions, "feature_service": service.name,
                       "rebuilt_from": config.rebuild_version, "labels_as_of": labels_as_of,
                       "maturity_days": use_case.label.maturity_days}
            commit = overwrite_table(df, path, run_id=context.run.run_id, lineage=lineage)
        seconds = time.perf_counter() - started
        immature = (labeled.where(F.col(LABEL).isNotNull()).where(
            F.to_date(F.col(use_case.events.event_time)) > F.lit(last_mature).cast("date"))
            .count() if last_mature else labeled.where(F.col(LABEL).isNotNull()).count())
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
            "source_versions": dg.MetadataValue.json(versions),
            "labels_as_of": dg.MetadataValue.text(labels_as_of or "no outcomes loaded"),
            "mature_until": dg.MetadataValue.text(last_mature or "none"),
            "immature_excluded": dg.MetadataValue.int(immature),
            "rebuilt_from_version": dg.MetadataValue.int(config.rebuild_version)
            if config.rebuild_version is not None else dg.MetadataValue.text("no"),
            "retrieval_s": dg.MetadataValue.float(round(seconds, 3)),
            "path": dg.MetadataValue.path(str(path)),
        })

    return [training_set]
