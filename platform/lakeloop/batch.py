"""Batch scoring: a day's events scored in bulk by the champion.

Features come from the same point-in-time path as the training set (Feast's historical
retrieval over the gold Delta table: each event sees its entity's features as of its own
time), so a batch score is what the model would have answered online at the event's time.
Small days score in-process (pandas, ``Booster.inplace_predict``); large ones in Spark, a
pandas UDF over the booster's bytes on every executor, so a day of any size fits.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lakeloop.encoding import Encoding

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
        from lakeloop.deployment import load_booster

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
    partition from the broadcast bytes."""
    payload = df.sparkSession.sparkContext.broadcast(scorer)

    def score_partitions(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        local = payload.value
        booster = local.booster()
        booster.set_param({"nthread": 1})
        for batch in batches:
            yield local.score(batch, booster)

    return df.mapInPandas(score_partitions, schema=output_schema)


@contextlib.contextmanager
def point_in_time(session, use_case, entity_df, *, gold_uri: str, gold_version: int,
                  feature_service: str, repo_path: str | None):
    """Each row of ``entity_df`` (entity key, ``event_timestamp``, ...) with the entity's
    features as of its own time, through the use case's Feast feature service; use the
    frame inside the block (Feast's store and Spark settings live as long as it)."""
    from lakeloop.features import (
        hand_written_objects,
        pinned_store,
        spark_guard,
        use_case_objects,
    )

    objects = use_case_objects(use_case, gold_uri, gold_version=gold_version)
    extra = hand_written_objects(Path(repo_path), use_case) if repo_path else []
    with tempfile.TemporaryDirectory() as tmp, spark_guard(session):
        store = pinned_store([*objects, *extra], Path(tmp))
        service = store.get_feature_service(feature_service)
        yield store.get_historical_features(entity_df=entity_df,
                                            features=service).to_spark_df()
