"""Model building as pure functions: time splits, XGBoost, thresholds, metrics, fairness.

Everything here takes and returns plain pandas/numpy objects so it is testable on tiny
frames and identical whether called from an asset, a benchmark or a notebook.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lakeloop.training.encoding import Encoding


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def bounds(self, time_col: str) -> dict[str, str]:
        out = {}
        for name in ("train", "validation", "test"):
            part = getattr(self, name)
            if len(part):
                out[name] = f"{part[time_col].min()} .. {part[time_col].max()}"
        return out


class TrainingDataError(ValueError):
    """The training set cannot train a model; the message says why and what to do."""


def time_split(df: pd.DataFrame, time_col: str, validation_fraction: float,
               test_fraction: float) -> Split:
    """Oldest rows train, the next validate (early stopping, threshold), the newest test.

    Never random across time: the gates judge the model on a window it has never seen and
    that comes after everything it learnt from.
    """
    times = df[time_col]
    if times.is_monotonic_increasing and df.index.equals(pd.RangeIndex(len(df))):
        ordered = df  # already in time order (as training sets are written): no copy
    else:
        ordered = df.sort_values(time_col, kind="stable").reset_index(drop=True)
    n = len(ordered)
    test_start = int(round(n * (1 - test_fraction)))
    val_start = int(round(n * (1 - test_fraction - validation_fraction)))
    split = Split(ordered.iloc[:val_start], ordered.iloc[val_start:test_start],
                  ordered.iloc[test_start:])
    for name in ("train", "validation", "test"):
        if len(getattr(split, name)) == 0:
            raise TrainingDataError(f"the {name} split is empty ({n} labelled rows in all): "
                                    "land more days of data or widen the training window")
    return split


@functools.cache
def cuda_available() -> bool:
    """True when this XGBoost build finds a usable CUDA device here.

    XGBoost silently falls back to the CPU when asked for ``cuda`` without a GPU, so the
    probe reads back the device the learner actually used.
    """
    import json
    import warnings

    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA"):
        return False
    x = np.random.default_rng(0).random((16, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            booster = xgb.train({"device": "cuda", "tree_method": "hist"},
                                xgb.DMatrix(x, label=(x[:, 0] > 0.5)), num_boost_round=1)
        except xgb.core.XGBoostError:
            return False
    used = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    return used.startswith("cuda")


def resolve_device(preference: str) -> str:
    """``auto`` picks ``cuda`` when a GPU is usable, else ``cpu``; explicit values win."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {preference!r}")
    if preference == "auto":
        return "cuda" if cuda_available() else "cpu"
    if preference == "cuda" and not cuda_available():
        raise ValueError("device=cuda was asked for, but XGBoost finds no usable GPU here; "
                         "use device=auto or cpu")
    return preference


def booster_params(params: dict[str, Any], seed: int, device: str) -> dict[str, Any]:
    return {
        "objective": "binary:logistic",
        # Early stopping watches the last metric, and it always was logloss: the AUC that
        # was evaluated before it on every round was never read, and took a fifth of the
        # training time at 1M rows (sorting the validation scores 400 times). The test
        # window's AUC is computed once, on the model kept.
        "eval_metric": "logloss",
        "tree_method": "hist",
        **params,
        "device": device,
        "seed": seed,
        # One thread count for every run: the same data and seed give the same trees.
        "nthread": params.get("nthread", 2),
    }


@dataclass
class TrainedModel:
    booster: Any
    encoding: Encoding
    best_iteration: int
    params: dict[str, Any]
    evals: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # The validation window's probabilities from the kept trees, when training already
    # computed them (see ``train``); None: predict them.
    validation: np.ndarray | None = None

    @property
    def features(self) -> list[str]:
        """The use case's features, in order (before encoding)."""
        return list(self.encoding.features)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return self.encoding.encode_frame(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.inplace_predict(self.matrix(frame),
                                            iteration_range=(0, self.best_iteration + 1))

    def predict_validation(self, frame: pd.DataFrame) -> np.ndarray:
        """``predict`` on the validation window it was trained with."""
        return self.validation if self.validation is not None else self.predict(frame)

    # The kept model's hash, serialised once: the MLflow run, the model version and the
    # asset's metadata each record it (the booster is never changed after training).
    _sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    def model_bytes(self) -> bytes:
        return bytes(self.booster.save_raw(raw_format="ubj"))

    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.model_bytes()).hexdigest()
        return self._sha256


def _kept_round_scores(dval):
    """A training callback that keeps the validation window's probabilities when training
    ends, if the last round is the one kept.

    The last round's evaluation has just scored the window with every tree, and XGBoost
    keeps those scores in its prediction cache until ``xgb.train`` returns: it hands back
    ``booster.reset()``, which drops the cache, so that the first prediction after training
    is a pass over every tree again (0.16 s for 150k rows and 150 trees). Read here, they
    are a copy (1 ms), the same float32 values."""
    import xgboost as xgb

    class KeptRoundScores(xgb.callback.TrainingCallback):
        probabilities: np.ndarray | None = None

        def after_training(self, model):
            last = model.num_boosted_rounds() - 1
            best = model.attr("best_iteration")  # set by early stopping; None without it
            if best is None or int(best) == last:
                self.probabilities = model.predict(dval, iteration_range=(0, last + 1))
            return model

    return KeptRoundScores()


def train(split: Split, encoding: Encoding, label: str, params: dict[str, Any],
          num_boost_round: int, early_stopping_rounds: int) -> TrainedModel:
    import xgboost as xgb

    def matrix(part: pd.DataFrame):
        return xgb.DMatrix(encoding.encode_frame(part, order="F"),
                           label=part[label].to_numpy(), feature_names=encoding.columns)

    dtrain, dval = matrix(split.train), matrix(split.validation)
    evals: dict[str, dict[str, list[float]]] = {}
    kept_scores = _kept_round_scores(dval)
    # Early stopping watches the validation window only: evaluating AUC on the training
    # rows every round would double the cost of training for a curve nobody reads.
    booster = xgb.train(params, dtrain, num_boost_round=num_boost_round,
                        evals=[(dval, "validation")], evals_result=evals, verbose_eval=False,
                        early_stopping_rounds=early_stopping_rounds or None,
                        callbacks=[kept_scores])
    best = int(getattr(booster, "best_iteration", num_boost_round - 1))
    # When early stopping kept an earlier round, the window is predicted once with the kept
    # trees, when it is needed (``predict_validation``): copying the cache after every
    # improving round instead cost 0.37 s over 400 rounds at 1M rows, more than that one
    # prediction (0.2 s).
    # Keep exactly the trees that early stopping chose: the saved model is the served model.
    return TrainedModel(booster[: best + 1], encoding, best, params, evals,
                        kept_scores.probabilities)


def choose_threshold(y: np.ndarray, p: np.ndarray, recall_target: float) -> float:
    """The highest decision threshold whose recall on (y, p) is at least ``recall_target``.

    A row is flagged (predicted positive) when p >= threshold.
    """
    positives = np.sort(p[y == 1])
    if len(positives) == 0:
        raise TrainingDataError("the validation window holds no positive labels")
    k = int(np.floor(len(positives) * (1 - recall_target)))
    return float(positives[min(max(k, 0), len(positives) - 1)])


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    flagged = p >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    recall = tp / (tp + fn) if tp + fn else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "auc": auc,
        "approval_rate": float(np.mean(~flagged)),
        "positive_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }


def spark_encoded(df, encoding: Encoding):
    """The encoded input columns of a Spark frame (the same columns ``encode_frame`` makes):
    numbers as doubles, each category a 0/1 column."""
    from pyspark.sql import functions as F

    columns = []
    for name in encoding.features:
        cat = encoding.categorical.get(name)
        if cat is None:
            columns.append(F.col(f"`{name}`").cast("double").alias(name))
            continue
        value = F.col(f"`{name}`").cast("string")
        if cat.other is not None:
            known = [F.lit(level) for level in cat.levels]
            value = F.when(value.isNull() | value.isin(*known), value).otherwise(
                F.lit(cat.other))
        columns += [F.when(value == F.lit(level), 1.0).otherwise(0.0).alias(column)
                    for level, column in zip(cat.levels, encoding.columns_of(name),
                                             strict=True)]
    return df.select(*columns, *[c for c in df.columns if c not in encoding.features])


def train_spark(train_df, validation_df, encoding: Encoding, label: str,
                params: dict[str, Any], num_boost_round: int, early_stopping_rounds: int,
                num_workers: int = 2) -> TrainedModel:
    """The same model with XGBoost's Spark estimator, for data that outgrows one machine:
    training runs on the Spark cluster, the result is the same kind of Booster."""
    from pyspark.sql import functions as F
    from xgboost.spark import SparkXGBClassifier

    features = encoding.columns
    data = spark_encoded(train_df.withColumn("_validation", F.lit(False))
                         .unionByName(validation_df.withColumn("_validation", F.lit(True))),
                         encoding)
    kwargs = {k: v for k, v in params.items()
              if k not in ("objective", "eval_metric", "nthread", "seed", "device")}
    estimator = SparkXGBClassifier(
        features_col=list(features), label_col=label, validation_indicator_col="_validation",
        num_workers=num_workers, n_estimators=num_boost_round, random_state=params["seed"],
        # A barrier stage cannot sit on the union's mixed partitioning: shuffle first.
        force_repartition=True,
        early_stopping_rounds=early_stopping_rounds, device=params.get("device", "cpu"),
        eval_metric=params.get("eval_metric", "logloss"), **kwargs)
    booster = estimator.fit(data).get_booster()
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    booster = booster[: best + 1]
    booster.feature_names = list(features)
    return TrainedModel(booster, encoding, best, params, {})
