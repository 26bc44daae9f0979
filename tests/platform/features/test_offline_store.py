"""Lakeloop's Spark offline store gives Feast's own answer, row for row, on the cases where a
shorter point-in-time join could differ: event-time ties settled by created time, rows tied
on both times (Feast returns each of them), rows with no created time (Feast never matches
them), the TTL edge, a view with no TTL and none of a created time, repeated and keyless
entity rows, two views in one service, and full feature names."""

import datetime as dt
import tempfile
from pathlib import Path

import pytest

from lakeloop.features.offline_store import (
    FEAST_TEMPLATE,
    SinglePassSparkOfflineStore,
    single_pass_template,
)
from lakeloop.features.store import pinned_store, spark_guard

pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 9, 1, 12)
TTL = dt.timedelta(days=2)


def _objects(a_path: str, b_path: str) -> list:
    from feast import Entity, FeatureService, FeatureView, Field, ValueType
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
        SparkSource,
    )
    from feast.table_format import DeltaFormat
    from feast.types import Float64

    entity = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    a = FeatureView(name="a", entities=[entity], ttl=TTL, schema=[Field(name="x", dtype=Float64)],
                    source=SparkSource(name="a_src", path=a_path, table_format=DeltaFormat(),
                                       timestamp_field="event_timestamp",
                                       created_timestamp_column="created_timestamp"))
    b = FeatureView(name="b", entities=[entity], ttl=dt.timedelta(0),
                    schema=[Field(name="y", dtype=Float64)],
                    source=SparkSource(name="b_src", path=b_path, table_format=DeltaFormat(),
                                       timestamp_field="event_timestamp"))
    return [entity, a, b, FeatureService(name="both", features=[a, b])]


def _rows():
    h = dt.timedelta(hours=1)
    created = T0 + dt.timedelta(days=30)
    a = [  # customer_id, event_timestamp, created_timestamp, x
        ("c1", T0, created, 1.0),
        ("c1", T0, created + h, 2.0),           # same event time: the newer created time wins
        ("c2", T0, created, 3.0),
        ("c2", T0, created, 4.0),               # tied on both times: Feast returns both
        ("c3", T0, None, 5.0),                  # no created time: never matched
        ("c3", T0 - h, created, 6.0),
        ("c4", T0 - TTL, created, 7.0),          # exactly at the TTL edge of T0
        ("c5", T0 - TTL - dt.timedelta(seconds=1), created, 8.0),  # one second past it
        ("c6", T0 + h, created, 9.0),           # after the entity row's time
    ]
    b = [("c1", T0 - dt.timedelta(days=300), 10.0),   # no TTL: any age counts
         ("c2", T0, 11.0), ("c2", T0, 12.0),            # tied, no created time to settle it
         ("c4", T0 + h, 13.0)]
    entities = [(k, T0, "l") for k in ("c1", "c2", "c3", "c4", "c5", "c6", "c7")]
    entities += [("c1", T0, "again"), ("c3", T0, "l"), (None, T0, "no key"),
                 ("c1", T0 - dt.timedelta(days=400), "before everything")]
    return a, b, entities


def _answer(spark, store, entity_df, full_names: bool):
    with spark_guard(spark):
        job = store.get_historical_features(entity_df=entity_df,
                                            features=store.get_feature_service("both"),
                                            full_feature_names=full_names)
        return job.to_spark_df().collect()


def test_single_pass_join_gives_feasts_rows(spark, tmp_path):
    a, b, entities = _rows()
    a_path, b_path = str(tmp_path / "a"), str(tmp_path / "b")
    a_schema = ("customer_id string, event_timestamp timestamp, created_timestamp timestamp, "
                "x double")
    spark.createDataFrame(a, a_schema).write.format("delta").save(a_path)
    spark.createDataFrame(b, "customer_id string, event_timestamp timestamp, y double"
                          ).write.format("delta").save(b_path)
    entity_df = spark.createDataFrame(entities, "customer_id string, event_timestamp timestamp, "
                                      "label string")
    objects = _objects(a_path, b_path)
    with tempfile.TemporaryDirectory() as tmp, spark_guard(spark):
        ours = pinned_store(objects, Path(tmp) / "ours")
        assert isinstance(ours._get_provider().offline_store, SinglePassSparkOfflineStore)
        feasts = pinned_store(objects, Path(tmp) / "feast", offline="spark")
        for full_names in (False, True):
            mine = _answer(spark, ours, entity_df, full_names)
            theirs = _answer(spark, feasts, entity_df, full_names)
            assert sorted(map(_key, mine)) == sorted(map(_key, theirs))
    by_label = {}
    for row in mine:  # the cases occur: duplicates for the tie, None past the TTL
        by_label.setdefault((row["customer_id"], row["label"]), []).append(row)
    assert len(by_label[("c2", "l")]) == 4  # two rows tied in a, times two in b
    assert len(mine) == len(entities) + 3
    assert {r["a__x"] for r in by_label[("c1", "l")]} == {2.0}
    assert [r["a__x"] for r in by_label[("c3", "l")]] == [6.0, 6.0]  # a row sent twice
    assert {r["a__x"] for r in by_label[("c4", "l")]} == {7.0}
    assert {r["a__x"] for r in by_label[("c5", "l")]} == {None}
    assert {r["b__y"] for r in by_label[("c1", "l")]} == {10.0}


def _key(row) -> tuple:
    return tuple(sorted(((k, str(v)) for k, v in row.asDict().items()), key=lambda kv: kv[0]))


def test_a_changed_feast_template_is_refused():
    """The steps replaced are found in Feast's template, once; a template without them (a
    newer Feast) stops the import instead of rendering a query that is not Feast's."""
    assert single_pass_template(FEAST_TEMPLATE) != FEAST_TEMPLATE
    with pytest.raises(RuntimeError, match="template changed"):
        single_pass_template(FEAST_TEMPLATE.replace("2. If the `created_timestamp_column`", ""))
    with pytest.raises(RuntimeError, match="template changed"):
        single_pass_template(FEAST_TEMPLATE.replace("__base AS (", "__joined AS ("))


def test_entity_rows_whose_keys_run_together_keep_their_own_answers(spark, tmp_path):
    """Feast's row id is the keys and the time concatenated: ("A", "BC") and ("AB", "C") at one
    time are one id to it, and its final join crosses their answers (four rows, two wrong).
    Partitioned by the keys as well, each entity row keeps its own."""
    from feast import Entity, FeatureService, FeatureView, Field, ValueType
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
        SparkSource,
    )
    from feast.table_format import DeltaFormat
    from feast.types import Float64, String

    path = str(tmp_path / "m")
    spark.createDataFrame([("A", "BC", T0 - dt.timedelta(hours=1), 1.0),
                           ("AB", "C", T0 - dt.timedelta(hours=1), 2.0)],
                          "k1 string, k2 string, event_timestamp timestamp, z double"
                          ).write.format("delta").save(path)
    entities = [Entity(name=k, join_keys=[k], value_type=ValueType.STRING) for k in ("k1", "k2")]
    view = FeatureView(name="m", entities=entities, ttl=TTL, schema=[
        Field(name="k1", dtype=String), Field(name="k2", dtype=String),
        Field(name="z", dtype=Float64)],
        source=SparkSource(name="m_src", path=path, table_format=DeltaFormat(),
                           timestamp_field="event_timestamp"))
    objects = [*entities, view, FeatureService(name="pairs", features=[view])]
    entity_df = spark.createDataFrame([("A", "BC", T0), ("AB", "C", T0)],
                                      "k1 string, k2 string, event_timestamp timestamp")
    answers = {}
    with tempfile.TemporaryDirectory() as tmp, spark_guard(spark):
        for name, offline in (("ours", None), ("feast", "spark")):
            store = pinned_store(objects, Path(tmp) / name,
                                 **({"offline": offline} if offline else {}))
            job = store.get_historical_features(entity_df=entity_df,
                                                features=store.get_feature_service("pairs"))
            answers[name] = sorted((r["k1"], r["k2"], r["z"]) for r in job.to_spark_df()
                                   .collect())
    assert answers["ours"] == [("A", "BC", 1.0), ("AB", "C", 2.0)]
    assert len(answers["feast"]) == 4  # the difference this store makes on purpose
