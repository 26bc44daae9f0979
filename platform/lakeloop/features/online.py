"""The online store kept equal to the offline one: each window of the gold table
materialised online (never rolled back by an older window), then a sample of entities
compared, online against the latest offline values (what serving reads against what training
would)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from lakeloop.features.store import feature_service_name, feature_view_name, spark_guard
from lakeloop.lakehouse.tables import latest_version, read_table
from lakeloop.usecase import UseCase

SAMPLE = 200


@dataclass(frozen=True)
class Materialized:
    begin: dt.datetime
    finish: dt.datetime
    rows_read: int
    entities: int
    gold_version: int
    seconds: float
    compared: int
    mismatches: list[str]


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


def materialize(store, session, gold_path: str, use_case: UseCase, start: str,
                end: str) -> Materialized:
    """Materialise [start, end] of the gold table online and compare a sample of its
    entities with their latest offline values."""
    from pyspark.sql import functions as F

    begin = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)
    finish = dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    gold_version = latest_version(session, gold_path)
    gold = read_table(session, gold_path, gold_version)
    in_window = gold.where(F.col("event_timestamp") >= F.lit(begin.replace(tzinfo=None))) \
        .where(F.col("event_timestamp") < F.lit(finish.replace(tzinfo=None)))
    stats = in_window.agg(F.count("*").alias("rows"),
                          F.countDistinct(use_case.entity.join_key).alias("entities")).first()
    assert stats is not None, "a global aggregation always returns one row"
    started = time.perf_counter()
    with spark_guard(session):
        store.materialize(begin, finish, [feature_view_name(use_case)])
    seconds = time.perf_counter() - started
    # What serving reads equals the latest offline value, as of the newest time ever
    # materialised (an older window never rolls it back).
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
    return Materialized(begin, finish, int(stats["rows"]), int(stats["entities"]),
                        gold_version, seconds, len(sample),
                        compare(offline, online, key, use_case.entity_features))


# Feature types the serving image's in-process reader decodes (lakeloop.deployment.seldon.online)
IN_PROCESS_TYPES = ("Bool", "Bytes", "Float32", "Float64", "Int32", "Int64", "String",
                    "UnixTimestamp")


def serving_spec(feast, service: str) -> dict | None:
    """What the transformer reads in-process for ``service`` (its SQLite store's path, each
    view's table and features), or None where it keeps reading through the feature server:
    a Redis store, an on-demand view, an entity of several keys or of a non-string key, a
    feature of a list or map type."""
    from feast import FeatureView
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.value_type import ValueType

    if feast.online_store != "sqlite":
        return None
    store = feast.store()
    versioning = store.config.registry.enable_online_feature_view_versioning
    views, join_key = [], None
    by_name = {v.name: v for v in store.list_feature_views()}  # on-demand views are not here
    for projection in store.get_feature_service(service).feature_view_projections:
        view = by_name.get(projection.name)
        if not isinstance(view, FeatureView) or len(view.entity_columns) != 1:
            return None
        column = view.entity_columns[0]
        if column.dtype.to_value_type() != ValueType.STRING or \
                join_key not in (None, column.name):
            return None
        join_key = column.name
        if any(str(f.dtype) not in IN_PROCESS_TYPES for f in projection.features):
            return None
        views.append({"table": compute_table_id(store.config.project, view, versioning),
                      "features": [[f.name, f.name] for f in projection.features]})
    if join_key is None:
        return None
    return {"kind": "sqlite", "path": str(Path(feast.sqlite_path).resolve()),
            "join_key": join_key, "views": views}
