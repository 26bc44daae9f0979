"""Feast: the registry applied from the use case, and each day materialised online."""

import datetime as dt
import time
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.features import (
    FeastResource,
    feature_service_name,
    feature_view_name,
    hand_written_objects,
    spark_guard,
    use_case_objects,
)
from lakeloop.lakehouse import LakehouseResource, latest_version
from lakeloop.partitions import daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    gold_key = keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table)
    registry_key = keys.key(use_case, keys.FEATURES, "feast_registry")

    @dg.asset(
        key=registry_key,
        description="Feast entity, Delta source, feature view and feature services of the "
        "use case, applied to the registry.",
        deps=[gold_key],
        **keys.common(use_case, keys.FEATURES, "feast"),
    )
    def feast_registry(context: dg.AssetExecutionContext, feast: FeastResource,
                       lakehouse: LakehouseResource) -> dg.MaterializeResult:
        objects = use_case_objects(use_case, lakehouse.uri(gold_key))
        extra = hand_written_objects(Path(feast.repo_path), use_case) if feast.repo_path else []
        store = feast.store()
        store.apply([*objects, *extra])
        names = sorted(f"{type(o).__name__}:{o.name}" for o in [*objects, *extra])
        return dg.MaterializeResult(metadata={
            "objects": dg.MetadataValue.md("\n".join(f"- `{n}`" for n in names)),
            "feature_views": dg.MetadataValue.int(
                sum(1 for o in [*objects, *extra] if type(o).__name__ == "FeatureView")),
            "feature_service": dg.MetadataValue.text(feature_service_name(use_case)),
            "hand_written_objects": dg.MetadataValue.int(len(extra)),
            "registry": dg.MetadataValue.path(feast.registry_path),
        })

    @dg.asset(
        key=keys.key(use_case, keys.FEATURES, "online_features"),
        description="Each day's latest feature values per entity, materialised to the online "
        "store that serving reads.",
        deps=[gold_key, registry_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=dg.BackfillPolicy.single_run(),
        **keys.common(use_case, keys.FEATURES, "feast", "spark"),
    )
    def online_features(context: dg.AssetExecutionContext, feast: FeastResource,
                        spark: SparkResource, lakehouse: LakehouseResource
                        ) -> dg.MaterializeResult:
        start, end = window_of(context)
        begin = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)
        finish = dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
        session = spark.session()
        gold_version = latest_version(session, lakehouse.path(gold_key))
        started = time.perf_counter()
        with spark_guard(session):
            feast.store().materialize(begin, finish, [feature_view_name(use_case)])
        seconds = time.perf_counter() - started
        return dg.MaterializeResult(metadata={
            "feature_view": dg.MetadataValue.text(feature_view_name(use_case)),
            "window": dg.MetadataValue.text(f"{begin.isoformat()} .. {finish.isoformat()}"),
            "gold_delta_version": dg.MetadataValue.int(gold_version),
            "duration_s": dg.MetadataValue.float(round(seconds, 3)),
            "online_store": dg.MetadataValue.text(feast.online_store),
        })

    return [feast_registry, online_features]
