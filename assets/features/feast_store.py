"""Feast: the registry applied from the use case, each day materialised online, and a check
that serving reads the same values training would."""

import datetime as dt
import time
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.features import (
    FeastResource,
    FeatureSetChanged,
    check_feature_version,
    feature_service_name,
    feature_view_name,
    hand_written_objects,
    spark_guard,
    use_case_objects,
)
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import LakehouseResource, latest_version, read_table
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase

CONSISTENCY_CHECK = "online_matches_offline"
SAMPLE = 200


def latest_offline(gold, use_case: UseCase, until: dt.datetime, entities: list[str]):
    """The latest gold value per entity with an event time before ``until`` (what a correct
    materialisation puts online), as {entity: {feature: value}}."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = use_case.entity.join_key
    order = Window.partitionBy(key).orderBy(F.col("event_timestamp").desc(),
                                            F.col("created_timestamp").desc())
    rows = (gold.where(F.col(key).isin(entities))
            .where(F.col("event_timestamp") < F.lit(until.replace(tzinfo=None)))
            .withColumn("_n", F.row_number().over(order)).where("_n = 1")
            .select(key, *use_case.entity_features).collect())
    return {r[key]: {f: r[f] for f in use_case.entity_features} for r in rows}


def compare(offline: dict, online: dict[str, list], key: str, features, tolerance=1e-9):
    """Mismatches between offline values and a Feast online response (column-oriented)."""
    mismatches = []
    for i, entity in enumerate(online[key]):
        expected = offline.get(entity)
        if expected is None:
            continue
        for feature in features:
            got, want = online[feature][i], expected[feature]
            if got is None or want is None:
                same = got is None and want is None
            elif isinstance(want, str) or isinstance(got, str):  # a category
                same = str(got) == str(want)
            else:
                same = abs(float(got) - float(want)) <= tolerance * max(1.0, abs(float(want)))
            if not same:
                mismatches.append(f"{entity}.{feature}: online {got!r}, offline {want!r}")
    return mismatches


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
        from pyspark.sql import functions as F

        start, end = window_of(context)
        begin = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)
        finish = dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
        session = spark.session()
        gold_path = lakehouse.table(gold_key)
        gold_version = latest_version(session, gold_path)
        gold = read_table(session, gold_path, gold_version)
        in_window = gold.where(F.col("event_timestamp") >= F.lit(begin.replace(tzinfo=None))) \
            .where(F.col("event_timestamp") < F.lit(finish.replace(tzinfo=None)))
        stats = in_window.agg(F.count("*").alias("rows"),
                              F.countDistinct(use_case.entity.join_key).alias("entities")).first()
        store = feast.store()
        started = time.perf_counter()
        with spark_guard(session):
            store.materialize(begin, finish, [feature_view_name(use_case)])
        seconds = time.perf_counter() - started
        yield dg.MaterializeResult(metadata={
            "feature_view": dg.MetadataValue.text(feature_view_name(use_case)),
            "window": dg.MetadataValue.text(f"{begin.isoformat()} .. {finish.isoformat()}"),
            "rows_read": dg.MetadataValue.int(int(stats["rows"])),
            "entities_written": dg.MetadataValue.int(int(stats["entities"])),
            "gold_delta_version": dg.MetadataValue.int(gold_version),
            "duration_s": dg.MetadataValue.float(round(seconds, 3)),
            "online_store": dg.MetadataValue.text(feast.online_store),
        })

        # Training/serving consistency: what serving reads equals the latest offline value,
        # as of the newest time ever materialised (an older window never rolls it back).
        view = store.get_feature_view(feature_view_name(use_case))
        ends = [e if e.tzinfo else e.replace(tzinfo=dt.UTC)
                for _, e in view.materialization_intervals]
        newest = max([*ends, finish])
        key = use_case.entity.join_key
        sample = [r[key] for r in in_window.select(key).distinct()
                  .orderBy(F.xxhash64(key)).limit(SAMPLE).collect()]
        offline = latest_offline(gold, use_case, newest, sample)
        online = store.get_online_features(
            features=store.get_feature_service(feature_service_name(use_case)),
            entity_rows=[{key: k} for k in sample]).to_dict()
        mismatches = compare(offline, online, key, use_case.entity_features)
        yield dg.AssetCheckResult(
            check_name=CONSISTENCY_CHECK, passed=not mismatches,
            description=(f"{len(mismatches)} online values differ from the offline store: "
                         + "; ".join(mismatches[:5])) if mismatches else
            f"{len(sample)} entities: every online value equals the latest offline value",
            metadata={"entities_compared": len(sample), "mismatches": len(mismatches)})

    return [feast_registry, online_features]
