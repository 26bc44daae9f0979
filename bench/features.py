"""Feast, measured against raw clients in the same run.

Online: p50/p99 latency at 1, 10 and 100 entities on SQLite and Redis (a real
redis-server), through the Python SDK and over HTTP (Feast's feature server), next to a raw
client reading the same keys (sqlite3 query; redis-py pipelined HMGET).
Historical: a 1M-row entity frame against the gold table through Feast, next to a plain
Spark as-of join written by hand on the same data.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, Result

sys.path.insert(0, str(ROOT))

from lakeloop.features.store import (  # noqa: E402
    feature_service_name,
    feature_view_name,
    online_features_http,
    spark_guard,
    use_case_objects,
)
from lakeloop.resources import build_resources  # noqa: E402
from lakeloop.settings import BUILTIN_USE_CASES, Settings  # noqa: E402
from lakeloop.usecase import load_use_case  # noqa: E402
from tests.services import RedisServer, free_port  # noqa: E402

EXTRA: dict = {}
ENTITIES = 20_000
ITERATIONS = {1: 400, 10: 300, 100: 150}
HIST_ENTITY_ROWS = 1_000_000


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.array(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _time(fn, batches) -> tuple[float, float]:
    for batch in batches[:20]:
        fn(batch)  # warm
    samples = []
    for batch in batches:
        t0 = time.perf_counter()
        fn(batch)
        samples.append(time.perf_counter() - t0)
    return _percentiles(samples)


def _gold(spark, path: Path, uc, entities: int, rows_per_entity: int):
    from pyspark.sql import functions as F

    df = spark.range(entities * rows_per_entity).select(
        F.concat(F.lit("A"), (F.col("id") % entities).cast("string")).alias(uc.entity.join_key),
        (F.lit(dt.datetime(2026, 9, 1)) + F.make_dt_interval(
            F.lit(0), F.lit(0), F.lit(0), (F.col("id") * 7919 % (60 * 86400)).cast("double"))
         ).alias("event_timestamp"),
        F.lit(dt.datetime(2026, 11, 1)).alias("created_timestamp"),
        *[(F.rand(seed=i) * 100).alias(f) for i, f in enumerate(uc.entity_features)])
    df = df.withColumn("ds", F.to_date("event_timestamp"))
    df.write.format("delta").mode("overwrite").partitionBy("ds").save(str(path))


def run() -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="lakeloop-features-"))
    redis = RedisServer(work / "redis")
    results: list[Result] = []
    try:
        uc = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
        base = Settings.from_env({}).with_data_root(work / "lake")
        spark = build_resources(base)["spark"].session()
        gold = work / "gold"
        _gold(spark, gold, uc, ENTITIES, 3)
        keys = [f"A{i}" for i in range(ENTITIES)]
        rng = random.Random(0)
        service = feature_service_name(uc)
        for backend in ("sqlite", "redis"):
            settings = base.replace(online_store=backend, redis_url=redis.url,
                                           feature_server_port=free_port(),
                                           data_root=work / f"lake-{backend}")
            feast = build_resources(settings)["feast"]
            store = feast.store()
            store.apply(use_case_objects(uc, str(gold)))
            with spark_guard(spark):
                store.materialize(dt.datetime(2026, 8, 1, tzinfo=dt.UTC),
                                  dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
            fs = store.get_feature_service(service)
            server = feast.ensure_feature_server()
            import requests

            http = requests.Session()
            raw = _raw_reader(backend, feast, store, uc)
            for n, iterations in ITERATIONS.items():
                batches = [rng.sample(keys, n) for _ in range(iterations)]
                sdk = _time(lambda b, fs=fs, store=store: store.get_online_features(
                    features=fs, entity_rows=[{uc.entity.join_key: k} for k in b]).to_dict(),
                    batches)
                over_http = _time(lambda b, url=server.url, http=http: online_features_http(
                    url, service, uc.entity.join_key, b, session=http), batches)
                floor = _time(raw, batches)
                EXTRA[f"{backend}_{n}"] = {"sdk": sdk, "http": over_http, "raw": floor}
                peer = "sqlite3 query" if backend == "sqlite" else "redis-py pipelined HMGET"
                results.append(Result(
                    "feast_online", f"{backend} SDK p50, {n} entities", "ms", sdk[0],
                    peer, floor[0], target="<= 25x raw", met=sdk[0] <= 25 * floor[0]))
                if backend == "sqlite" and n == 1:
                    results.append(Result("feast_online", "sqlite SDK p99, 1 entity", "ms",
                                          sdk[1], peer, floor[1], target="< 5 ms",
                                          met=sdk[1] < 5))
                results.append(Result(
                    "feast_online", f"{backend} HTTP p50, {n} entities", "ms", over_http[0],
                    "SDK p50", sdk[0], target="HTTP adds < 1.5 ms",
                    met=over_http[0] - sdk[0] < 1.5))
            feast.stop_feature_server()
        results += _historical(spark, uc, work, base)
        return results
    finally:
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


def _raw_reader(backend, feast, store, uc):
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    def key_proto(k):
        return EntityKey(join_keys=[uc.entity.join_key], entity_values=[Value(string_val=k)])

    if backend == "sqlite":
        table = compute_table_id(store.config.project,
                                 store.get_feature_view(feature_view_name(uc)), False)
        conn = sqlite3.connect(feast.sqlite_path, check_same_thread=False)

        def read(batch):
            keys = [serialize_entity_key(key_proto(k), entity_key_serialization_version=3)
                    for k in batch]
            marks = ",".join("?" * len(keys))
            return conn.execute(
                f'SELECT entity_key, feature_name, value FROM "{table}" '  # noqa: S608
                f"WHERE entity_key IN ({marks})", keys).fetchall()
        return read

    import mmh3
    import redis as redis_py
    from feast.infra.online_stores.redis import _redis_key

    host, port = feast.redis_connection_string.split(":")
    client = redis_py.Redis(host=host, port=int(port))
    fields = [mmh3.hash_bytes(f"{feature_view_name(uc)}:{f}") for f in uc.entity_features]

    def read(batch):
        pipe = client.pipeline(transaction=False)
        for k in batch:
            pipe.hmget(_redis_key(store.config.project, key_proto(k),
                                  entity_key_serialization_version=3), fields)
        return pipe.execute()
    return read


def _historical(spark, uc, work: Path, base) -> list[Result]:
    """1M entity rows through Feast's point-in-time join, and by hand in Spark."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakeloop.features.store import pinned_store

    gold = work / "gold_hist"
    _gold(spark, gold, uc, 200_000, 5)
    entity_df = spark.range(HIST_ENTITY_ROWS).select(
        F.concat(F.lit("A"), (F.col("id") % 200_000).cast("string")).alias(uc.entity.join_key),
        (F.lit(dt.datetime(2026, 9, 15)) + F.make_dt_interval(
            F.lit(0), F.lit(0), F.lit(0), (F.col("id") * 104729 % (40 * 86400)).cast("double"))
         ).alias("event_timestamp")).cache()
    entity_df.count()
    with spark_guard(spark):
        store = pinned_store(use_case_objects(uc, str(gold)), work / "pinned")
        fs = store.get_feature_service(feature_service_name(uc))
        t0 = time.perf_counter()
        n_feast = store.get_historical_features(entity_df=entity_df, features=fs) \
            .to_spark_df().write.format("noop").mode("overwrite").save()
        feast_s = time.perf_counter() - t0
    ttl = uc.features.entity.ttl_days
    g = spark.read.format("delta").load(str(gold))
    key = uc.entity.join_key
    t0 = time.perf_counter()
    joined = (entity_df.alias("e").join(g.alias("g"), key)
              .where(F.col("g.event_timestamp") <= F.col("e.event_timestamp"))
              .where(F.col("g.event_timestamp") >= F.col("e.event_timestamp")
                     - F.expr(f"INTERVAL {ttl} DAYS")))
    order = Window.partitionBy(key, F.col("e.event_timestamp")).orderBy(
        F.col("g.event_timestamp").desc(), F.col("g.created_timestamp").desc())
    latest = joined.withColumn("_n", F.row_number().over(order)).where("_n = 1").select(
        key, F.col("e.event_timestamp"), *[F.col(f"g.{f}") for f in uc.entity_features])
    spine = entity_df.join(latest, [key, "event_timestamp"], "left")
    spine.write.format("noop").mode("overwrite").save()
    hand_s = time.perf_counter() - t0
    entity_df.unpersist()
    del n_feast
    return [Result("feast_historical", "1M entity rows, point-in-time join", "s", feast_s,
                   "Spark as-of join by hand", hand_s, target="reported")]
