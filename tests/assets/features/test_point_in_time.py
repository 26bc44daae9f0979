"""Point-in-time correctness: Feast's training rows against a brute-force oracle, on data with
several updates per entity per day, rows at the exact TTL edge, just past it, at the entity's
own timestamp, and dated in the future."""

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakeloop.features.store import (
    feature_service_name,
    pinned_store,
    spark_guard,
    use_case_objects,
)
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case

pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 9, 1)


def _data(uc, rng):
    ttl = dt.timedelta(days=uc.features.entity.ttl_days)
    features = list(uc.entity_features)
    gold, entities = [], []
    for e in range(150):
        key = f"E{e:03d}"
        base = T0 + dt.timedelta(days=int(rng.integers(0, 5)), hours=int(rng.integers(0, 23)))
        # several updates per day, one pair with the same event time (created time decides)
        times = sorted(base + dt.timedelta(hours=int(h)) for h in rng.integers(0, 60, 6))
        times.append(times[2])
        for i, t in enumerate(times):
            gold.append((key, t, T0 + dt.timedelta(days=10, seconds=i), *rng.random(len(features))))
        probe, last = times[3], max(times)
        entities += [
            (key, probe),                                   # exactly at a row's time
            (key, probe - dt.timedelta(seconds=1)),         # one second before it
            (key, times[2]),                                # the tie, resolved by created time
            (key, last + ttl),                              # newest row exactly at the TTL edge
            (key, last + ttl + dt.timedelta(seconds=1)),    # one second past the TTL
            (key, times[0] - dt.timedelta(hours=1)),        # before any row
        ]
        # a row dated in the future of every entity timestamp above except the last
        gold.append((key, T0 + dt.timedelta(days=400), T0 + dt.timedelta(days=10, seconds=99),
                     *rng.random(len(features))))
        entities.append((key, T0 + dt.timedelta(days=401)))
    columns = [uc.entity.join_key, "event_timestamp", "created_timestamp", *features]
    gold_df = pd.DataFrame(gold, columns=columns)
    entity_df = pd.DataFrame(entities, columns=[uc.entity.join_key, "event_timestamp"])
    return gold_df, entity_df.drop_duplicates().reset_index(drop=True), ttl


def _oracle(gold: pd.DataFrame, entities: pd.DataFrame, key: str, features, ttl) -> pd.DataFrame:
    rows = []
    for entity, ts in entities.itertuples(index=False):
        mine = gold[(gold[key] == entity) & (gold["event_timestamp"] <= ts)
                    & (gold["event_timestamp"] >= ts - ttl)]
        if mine.empty:
            rows.append({key: entity, "event_timestamp": ts, **{f: np.nan for f in features}})
            continue
        best = mine.sort_values(["event_timestamp", "created_timestamp"]).iloc[-1]
        rows.append({key: entity, "event_timestamp": ts, **{f: best[f] for f in features}})
    return pd.DataFrame(rows)


def test_historical_features_match_a_brute_force_oracle(spark, tmp_path):
    from pyspark.sql import functions as F

    uc = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
    gold, entities, ttl = _data(uc, np.random.default_rng(1))
    path = tmp_path / "gold"
    (spark.createDataFrame(gold).withColumn("ds", F.to_date("event_timestamp"))
     .write.format("delta").partitionBy("ds").save(str(path)))
    key, features = uc.entity.join_key, list(uc.entity_features)
    with tempfile.TemporaryDirectory() as tmp, spark_guard(spark):
        store = pinned_store(use_case_objects(uc, str(path)), Path(tmp))
        got = store.get_historical_features(
            entity_df=spark.createDataFrame(entities),
            features=store.get_feature_service(feature_service_name(uc))).to_df()
    expected = _oracle(gold, entities, key, features, ttl)
    got = got.sort_values([key, "event_timestamp"]).reset_index(drop=True)
    expected = expected.sort_values([key, "event_timestamp"]).reset_index(drop=True)
    assert len(got) == len(expected) == len(entities)
    assert (got[key] == expected[key]).all()
    assert (pd.to_datetime(got["event_timestamp"]) == expected["event_timestamp"]).all()
    for feature in features:
        np.testing.assert_allclose(got[feature].astype(float), expected[feature].astype(float),
                                   rtol=0, atol=1e-12, err_msg=feature)
    # the oracle's cases really occur in the data
    assert expected[features[0]].isna().sum() >= 2 * 150
    assert expected[features[0]].notna().sum() >= 4 * 150
