"""Feast: the registry applied from the use case, each day materialised online, and a check
that serving reads the same values training would."""

import time
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.features import online
from lakeloop.features.online import SAMPLE
from lakeloop.features.store import (
    FeastResource,
    FeatureSetChanged,
    check_feature_version,
    feature_service_name,
    feature_view_name,
    hand_written_objects,
    use_case_objects,
)
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase

CONSISTENCY_CHECK = "online_matches_offline"


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    gold_key = keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table)
    registry_key = keys.key(use_case, keys.FEATURES, "feast_registry")
    online_key = keys.key(use_case, keys.FEATURES, "online_features")

    @dg.asset(
        key=registry_key,
        description="The use case's Feast entity, Delta source, feature view and feature "
        "services, applied to the registry.\n\nGenerated from the use-case file.",
        deps=[gold_key],
        **keys.common(use_case, keys.FEATURES, "feast"),
    )
    def feast_registry(context: dg.AssetExecutionContext, feast: FeastResource,
                       lakehouse: LakehouseResource) -> dg.MaterializeResult:
        objects = use_case_objects(use_case, lakehouse.uri(gold_key))
        extra = hand_written_objects(Path(feast.repo_path), use_case) if feast.repo_path else []
        store = feast.store()
        try:
            check_feature_version(store, use_case)
        except FeatureSetChanged as exc:
            raise dg.Failure(str(exc)) from None
        started = time.perf_counter()
        store.apply([*objects, *extra])
        seconds = time.perf_counter() - started
        names = sorted(f"{type(o).__name__}:{o.name}" for o in [*objects, *extra])
        services = sorted(s.name for s in store.list_feature_services()
                          if s.tags.get("use_case") == use_case.name)
        return dg.MaterializeResult(metadata={
            "objects": dg.MetadataValue.md("\n".join(f"- `{n}`" for n in names)),
            "feature_views": dg.MetadataValue.int(
                sum(1 for o in [*objects, *extra] if type(o).__name__ == "FeatureView")),
            "feature_service": dg.MetadataValue.text(feature_service_name(use_case)),
            "feature_services": dg.MetadataValue.text(", ".join(services)),
            "features": dg.MetadataValue.int(len(use_case.entity_features)),
            "hand_written_objects": dg.MetadataValue.int(len(extra)),
            "duration_s": dg.MetadataValue.float(round(seconds, 3)),
            "registry": dg.MetadataValue.text(feast.registry_display),
        })

    @dg.asset(
        key=online_key,
        description="Each day's latest feature values per entity, materialised to the online "
        "store that serving reads.\n\nNever rolled back by an older window.",
        deps=[gold_key, registry_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        check_specs=[dg.AssetCheckSpec(
            CONSISTENCY_CHECK, asset=online_key, blocking=True,
            description=f"online values equal the latest offline values for up to {SAMPLE} "
            "entities of the window")],
        **keys.common(use_case, keys.FEATURES, "feast", "spark"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def online_features(context: dg.AssetExecutionContext, feast: FeastResource,
                        spark: SparkResource, lakehouse: LakehouseResource):
        start, end = window_of(context)
        done = online.materialize(feast.store(), spark.session(), lakehouse.table(gold_key),
                                  use_case, start, end)
        yield dg.MaterializeResult(metadata={
            "feature_view": dg.MetadataValue.text(feature_view_name(use_case)),
            "window": dg.MetadataValue.text(f"{done.begin.isoformat()} .. "
                                            f"{done.finish.isoformat()}"),
            "rows_read": dg.MetadataValue.int(done.rows_read),
            "entities_written": dg.MetadataValue.int(done.entities),
            "gold_delta_version": dg.MetadataValue.int(done.gold_version),
            "duration_s": dg.MetadataValue.float(round(done.seconds, 3)),
            "online_store": dg.MetadataValue.text(feast.online_store),
        })
        mismatches = done.mismatches
        yield dg.AssetCheckResult(
            check_name=CONSISTENCY_CHECK, passed=not mismatches,
            description=(f"{len(mismatches)} online values differ from the offline store: "
                         + "; ".join(mismatches[:5])) if mismatches else
            f"{done.compared} entities: every online value equals the latest offline value",
            metadata={"entities_compared": done.compared, "mismatches": len(mismatches)})

    return [feast_registry, online_features]
