"""Batch scoring: a day's events scored in bulk by the champion.

Features come from the same point-in-time path as the training set (Feast's historical
retrieval over the gold Delta table: each event sees its entity's features as of its own
time), so a batch score is what the model would have answered online at the event's time.
Small days score in-process (pandas, ``Booster.inplace_predict``); large ones in Spark, a
pandas UDF over the booster's bytes on every executor, so a day of any size fits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lakeloop.training.encoding import Encoding

EVENT_TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class Scorer:
    """What scoring needs, portable to Spark executors: the booster's bytes (UBJ), the
    encoding and the decision threshold of one registered version."""

    model_name: str
    model_version: str
    booster_bytes: bytes
    encoding_json: str
    threshold: float

    @classmethod
    def load(cls, mlflow, model_name: str, version: str) -> Scorer:
        from lakeloop.deployment.runtime import load_booster

        booster, config = load_booster(mlflow, model_name, version)
        return cls(model_name, str(version), bytes(booster.save_raw(raw_format="ubj")),
                   config["encoding"].to_json(), float(config["threshold"]))

    @property
    def encoding(self) -> Encoding:
        return Encoding.from_dict(json.loads(self.encoding_json))

    def booster(self):
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(self.booster_bytes))
        return booster

    def probabilities(self, frame: pd.DataFrame, booster=None) -> np.ndarray:
        booster = booster or self.booster()
        if len(frame) == 0:
            return np.zeros(0)
        return booster.inplace_predict(self.encoding.encode_frame(frame)).astype(np.float64)

    def score(self, frame: pd.DataFrame, booster=None) -> pd.DataFrame:
        """``frame`` with the model's answer on every row, and the version that gave it."""
        p = self.probabilities(frame, booster)
        return frame.assign(model_name=self.model_name, model_version=self.model_version,
                            probability=p, prediction=(p >= self.threshold).astype("int32"))


def score_spark(df, scorer: Scorer, output_schema: str):
    """Score a Spark frame in a pandas UDF: each executor loads the booster once per
    partition, from broadcast bytes on a classic session; a Spark Connect session has no
    broadcast, so there the scorer travels in the function's closure with each task."""
    from lakeloop.spark import is_connect

    if is_connect(df.sparkSession):
        def shipped() -> Scorer:
            return scorer
    else:
        payload = df.sparkSession.sparkContext.broadcast(scorer)

        def shipped() -> Scorer:
            return payload.value

    def score_partitions(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        local = shipped()
        booster = local.booster()
        booster.set_param({"nthread": 1})
        for batch in batches:
            yield local.score(batch, booster)

    return df.mapInPandas(score_partitions, schema=output_schema)


def output_schema(use_case) -> str:
    """The batch scores table: the event, its features as the model saw them, the answer
    and the exact model version that gave it."""
    events = use_case.events
    features = ", ".join(f"`{f}` {use_case.feature_type(f)}" for f in use_case.feature_names)
    return (f"`{events.key}` string, `{use_case.entity.join_key}` string, "
            f"event_time timestamp, ds date, {features}, model_name string, "
            "model_version string, probability double, prediction int")


@dataclass(frozen=True)
class Scored:
    rows: int
    engine: str
    gold_version: int
    commit: object
    flagged_rate: float


def score_window(session, use_case, scorer: Scorer, *, events_path: str, gold_path: str,
                 gold_uri: str, out_path: str, start: str, end: str, feature_service: str,
                 repo_path: str | None, run_id: str) -> Scored:
    """Score the window's events with features as of each event's time, write them (one
    commit, exactly the window), in Spark for large windows and in-process for small."""
    from pyspark.sql import functions as F

    from lakeloop.features.history import point_in_time
    from lakeloop.lakehouse.tables import latest_version, read_window, replace_window

    src = use_case.events
    events = read_window(session, events_path, start, end).select(
        F.col(src.key), F.col(use_case.entity.join_key),
        F.col(src.event_time).alias(EVENT_TIMESTAMP),
        *[F.col(f) for f in use_case.features.request], "ds")
    rows = events.count()
    engine = "spark" if rows >= use_case.serving.batch_spark_min_rows else "in-process"
    gold_version = latest_version(session, gold_path)
    schema = output_schema(use_case)
    with point_in_time(session, use_case, events, gold_uri=gold_uri, gold_version=gold_version,
                       feature_service=feature_service, repo_path=repo_path) as featured:
        inputs = featured.select(
            F.col(src.key), F.col(use_case.entity.join_key),
            F.col(EVENT_TIMESTAMP).alias("event_time"), "ds",
            *[F.col(f) for f in use_case.feature_names])
        scored = (score_spark(inputs, scorer, schema) if engine == "spark" else
                  session.createDataFrame(scorer.score(inputs.toPandas()), schema))
        commit = replace_window(scored, out_path, start, end, run_id=run_id,
                                lineage={"model_version": scorer.model_version,
                                         "gold_version": gold_version})
    share = read_window(session, out_path, start, end).agg(
        F.avg("prediction").alias("flagged")).first()
    assert share is not None, "a global aggregation always returns one row"
    flagged = share["flagged"]
    return Scored(rows, engine, gold_version, commit, float(flagged or 0.0))
