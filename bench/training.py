"""Training: the candidate-model asset against bare `xgboost.train` on the same matrix.

1M rows x 30 features, generated with a known signal and written as the training-set Delta
table of a 30-feature copy of the credit-risk use case. Ours: materialising the asset
(read the Delta version, time split, train with early stopping, threshold, metrics per
split, fairness, SHAP, plots, MLflow run and registry). Peer: `xgboost.train` with the same
parameters, rounds and early stopping on the same train/validation arrays, already in
memory. Targets: at most 1.2x, and MLflow logging under 5% of training time.

This host's speed wanders by 10% from one minute to the next (the same fit took 13.1 s and
14.9 s within the hour), more than the target's margin. So the benchmark runs ROUNDS rounds,
each in a fresh process: the peer, ours, ours again, the peer again. Judged: the median of
ours the first time in a process (what a Dagster run pays: MLflow's and matplotlib's imports,
the experiment's first run) against the median of every peer fit. Also reported: ours the
second time in a process (imports done, as the peer's are).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from common import PYTHON, ROOT, Result

sys.path.insert(0, str(ROOT))

from lakeloop.settings import BUILTIN_USE_CASES, Settings  # noqa: E402

EXTRA: dict = {}
ROWS = 1_000_000
EXTRA_FEATURES = 21  # + the use case's 7 entity and 2 numeric request features = 30
NAME = "bench_training"
ROUNDS = 3


def _use_case_file(directory: Path, port: int) -> Path:
    spec = yaml.safe_load((BUILTIN_USE_CASES / "credit_risk.yaml").read_text())
    spec["name"], spec["title"], spec["sensitive"] = NAME, "Training benchmark", False
    spec["serving"]["port"] = port
    columns = spec["sources"]["applications"]["columns"]
    # The matrix is numeric, the same floats for us and the peer: the request's categories
    # (channel; the closed list of loan terms) are left out of this copy or taken as numbers.
    spec["features"]["request"] = [f for f in spec["features"]["request"]
                                   if columns[f]["type"] != "string"]
    for name in spec["features"]["request"]:
        columns[name].pop("allowed", None)
    # reason codes only for the features this copy keeps
    kept = {*spec["features"]["request"], *spec["features"]["entity"]["columns"]}
    spec["reason_codes"] = {k: v for k, v in spec.get("reason_codes", {}).items() if k in kept}
    extra = [f"bureau_{i:02d}" for i in range(EXTRA_FEATURES)]
    for name in extra:
        columns[name] = {"type": "double"}
    spec["features"]["entity"]["columns"] += extra
    path = directory / f"{NAME}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _frame(use_case, rows: int, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = list(use_case.feature_names)
    x = rng.normal(size=(rows, len(names))).astype(np.float64)
    weights = rng.normal(scale=0.6, size=len(names))
    logits = x @ weights + 0.5 * np.sin(3 * x[:, 0]) * x[:, 1] - 1.6
    label = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.int32)
    start = dt.datetime(2026, 1, 1)
    seconds = np.sort(rng.integers(0, 90 * 86400, size=rows))
    frame = pd.DataFrame(x, columns=names)
    frame["label"] = label
    frame["event_timestamp"] = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")
    frame["gender"] = rng.choice(["female", "male"], size=rows)
    frame["age_band"] = rng.choice(["26-35", "36-50", "51-65"], size=rows)
    frame[use_case.events.key] = [f"a{i}" for i in range(rows)]
    frame[use_case.entity.join_key] = [f"p{i % 200_000}" for i in range(rows)]
    frame["_snapshot_hash"] = "0" * 64
    return frame


def _peer(frame, use_case, params: dict, rounds: int, early: int) -> tuple[float, object]:
    """Bare xgboost.train on the same split, the arrays already in memory."""
    import xgboost as xgb

    from lakeloop.training.fit import time_split

    split = time_split(frame, "event_timestamp", use_case.model.validation_fraction,
                       use_case.model.test_fraction)
    names = list(use_case.feature_names)
    xt, yt = split.train[names].to_numpy(np.float32), split.train["label"].to_numpy()
    xv, yv = split.validation[names].to_numpy(np.float32), split.validation["label"].to_numpy()
    started = time.perf_counter()
    train = xgb.DMatrix(xt, label=yt, feature_names=names)
    valid = xgb.DMatrix(xv, label=yv, feature_names=names)
    booster = xgb.train(params, train, rounds, evals=[(valid, "validation")],
                        early_stopping_rounds=early, verbose_eval=False)
    return time.perf_counter() - started, booster


def _round() -> dict:
    """One round, in this (fresh) process: the peer, ours twice, the peer again."""
    import dagster as dg

    from lakeloop import keys
    from lakeloop.definitions import build_definitions
    from lakeloop.lakehouse.tables import overwrite_table
    from lakeloop.training.fit import booster_params
    from lakeloop.usecase import load_use_cases

    root = Path(tempfile.mkdtemp(prefix="lakeloop-bench-training-"))
    _use_case_file(root, 9911)
    settings = Settings.from_env({}).replace(data_root=root,
                                   use_case_dirs=(root,))
    use_case = load_use_cases(settings.use_case_dirs)[0]
    assert len(use_case.feature_names) == 30 and not use_case.categorical_features
    defs = build_definitions(settings)
    spark = defs.resources["spark"].session()
    frame = _frame(use_case, ROWS)
    path = defs.resources["lakehouse"].path(keys.key(use_case, keys.TRAINING, "training_set"))
    overwrite_table(spark.createDataFrame(frame), path, lineage={
        "source_versions": {use_case.gold_table: 0, use_case.labeled_table: 0},
        "feature_service": f"{NAME}_v1"})

    model = use_case.model
    params = booster_params(model.params, model.seed, "cpu")

    def peer() -> tuple[float, int]:
        seconds, booster = _peer(frame, use_case, params, model.num_boost_round,
                                 model.early_stopping_rounds)
        return seconds, booster.best_iteration

    key = keys.key(use_case, keys.TRAINING, "candidate_model")
    config = {"ops": {f"{NAME}__training__candidate_model": {"config": {
        "engine": "xgboost", "device": "cpu"}}},
        "loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    # Dagster's instance belongs to the process, as the Spark session does: made before the
    # clock starts (the first in-memory one builds its SQLite schema, about 0.8 s).
    instance = dg.DagsterInstance.ephemeral()

    def ours() -> dict:
        started = time.perf_counter()
        result = dg.materialize(list(defs.assets), selection=[key], resources=defs.resources,
                                instance=instance, run_config=config, raise_on_error=False)
        seconds = time.perf_counter() - started
        if not result.success:
            raise RuntimeError(f"the training asset failed in run {result.run_id}")
        meta = next(e.event_specific_data.materialization.metadata for e in result.all_events
                    if e.event_type_value == "ASSET_MATERIALIZATION")
        return {"seconds": seconds, **{k: meta[k].value for k in (
            "train_seconds", "mlflow_logging_seconds", "load_seconds", "explain_seconds",
            "best_iteration", "test_auc")}}

    first_peer = peer()
    first, again = ours(), ours()
    second_peer = peer()
    return {"peer": [first_peer[0], second_peer[0]],
            "peer_best_iteration": [first_peer[1], second_peer[1]],
            "first": first, "again": again}


def run() -> list[Result]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "platform"), str(ROOT), str(ROOT / "bench")])}
    rounds = []
    for _ in range(ROUNDS):
        done = subprocess.run([PYTHON, __file__, "--round"], env=env, cwd=ROOT,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"a training round failed:\n{done.stdout[-3000:]}"
                               f"{done.stderr[-3000:]}")
        rounds.append(json.loads(done.stdout.strip().splitlines()[-1]))
    peer = statistics.median(s for r in rounds for s in r["peer"])
    first = statistics.median(r["first"]["seconds"] for r in rounds)
    again = statistics.median(r["again"]["seconds"] for r in rounds)
    train = statistics.median(r["first"]["train_seconds"] for r in rounds)
    logging = statistics.median(r["first"]["mlflow_logging_seconds"] for r in rounds)
    best = {r[w]["best_iteration"] for r in rounds for w in ("first", "again")}
    peer_best = {b for r in rounds for b in r["peer_best_iteration"]}
    same_rounds = len(best) == 1 and best == peer_best
    EXTRA.update({"rows": ROWS, "features": 30, "rounds": rounds,
                  "best_iteration": sorted(best), "peer_best_iteration": sorted(peer_best),
                  "same_best_iteration": same_rounds, "asset_train_seconds": train,
                  "asset_logging_seconds": logging,
                  **{f"asset_{step}_seconds": statistics.median(
                      r["first"][f"{step}_seconds"] for r in rounds)
                     for step in ("load", "explain")},
                  "test_auc": rounds[0]["first"]["test_auc"]})
    return [
        Result("training", "asset wall time, 1M x 30 (median of the first run in "
               f"{ROUNDS} fresh processes)", "s", first,
               f"bare xgboost.train (median of {2 * ROUNDS})", peer, "<= 1.2x",
               first / peer <= 1.2),
        Result("training", "asset wall time again in the same process (imports done)", "s",
               again, f"bare xgboost.train (median of {2 * ROUNDS})", peer),
        Result("training", "of which XGBoost training", "s", train,
               f"bare xgboost.train (median of {2 * ROUNDS})", peer, "same model",
               same_rounds),
        Result("training", "MLflow logging / training time", "%", 100 * logging / train,
               target="< 5%", met=logging / train < 0.05),
    ]


if __name__ == "__main__" and sys.argv[1:] == ["--round"]:
    print(json.dumps(_round()))
