"""What training reads and how it fits: a training-set version as a time split, the exact
configuration of a run (seed, device, engine), and the fit itself on either engine."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from lakeloop.training import fit as training
from lakeloop.training.encoding import Encoding
from lakeloop.usecase import UseCase

LABEL = "label"
EVENT_TIMESTAMP = "event_timestamp"
HYPERPARAMETERS = {"max_depth": int, "learning_rate": float, "subsample": float,
                   "colsample_bytree": float, "min_child_weight": float}


@dataclass(frozen=True)
class TrainingData:
    """A training-set version, split in time, with what it was built from."""

    path: str
    version: int
    split: training.Split
    lineage: dict[str, Any] = field(default_factory=dict)
    snapshots: list[str] = field(default_factory=list)
    load_seconds: float = 0.0


def load(session, path: str, version: int, use_case: UseCase, *, lineage: dict | None = None,
         snapshots: bool = False) -> TrainingData:
    """The training set at ``version`` as a time split, with only the columns training and
    the gates use (identifiers and hashes stay in Spark)."""
    from lakeloop.lakehouse.tables import read_columns

    started = time.perf_counter()
    columns = [*use_case.feature_names, LABEL, EVENT_TIMESTAMP, *use_case.protected_attributes]
    # The raw snapshots the rows came from, from the same read (one pass over the files).
    frame, distinct = read_columns(session, path, version, columns,
                                   ("_snapshot_hash",) if snapshots else ())
    split = training.time_split(frame, EVENT_TIMESTAMP, use_case.model.validation_fraction,
                                use_case.model.test_fraction)
    seconds = time.perf_counter() - started
    hashes = [h for h in distinct.get("_snapshot_hash", []) if h]
    return TrainingData(str(path), int(version), split, lineage or {}, hashes, seconds)


def resolve(use_case: UseCase, requested: dict[str, Any], rows: int) -> dict[str, Any]:
    """The exact training configuration: seed, device and engine decided, params merged."""
    seed = requested["seed"] if requested["seed"] is not None else random.randrange(2**31)
    device = training.resolve_device(requested["device"])
    engine = requested["engine"]
    if engine == "auto":
        engine = "spark" if rows >= use_case.model.spark_min_rows else "xgboost"
    params = {**use_case.model.params,
              **{k: requested[k] for k in HYPERPARAMETERS if k in requested}}
    return {"params": training.booster_params(params, seed, device), "seed": seed,
            "device": device, "engine": engine,
            "num_boost_round": requested["num_boost_round"],
            "early_stopping_rounds": requested["early_stopping_rounds"]}


def fit(session, data: TrainingData, resolved: dict[str, Any],
        encoding: Encoding) -> training.TrainedModel:
    """XGBoost on the training window, early stopping on the validation window: on the
    driver, or with XGBoost's Spark estimator on the cluster (``resolved["engine"]``)."""
    split = data.split
    if resolved["engine"] == "spark":
        from pyspark.sql import functions as F

        from lakeloop.lakehouse.tables import read_table

        table = read_table(session, data.path, data.version)
        train_end = split.validation[EVENT_TIMESTAMP].min()
        test_start = split.test[EVENT_TIMESTAMP].min()
        train_df = table.where(F.col(EVENT_TIMESTAMP) < F.lit(train_end))
        val_df = table.where((F.col(EVENT_TIMESTAMP) >= F.lit(train_end))
                             & (F.col(EVENT_TIMESTAMP) < F.lit(test_start)))
        return training.train_spark(train_df, val_df, encoding, LABEL, resolved["params"],
                                    resolved["num_boost_round"],
                                    resolved["early_stopping_rounds"])
    return training.train(split, encoding, LABEL, resolved["params"],
                          resolved["num_boost_round"], resolved["early_stopping_rounds"])
