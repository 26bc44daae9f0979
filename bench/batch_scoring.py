"""Batch scoring 1M and 10M events with a champion-like model (credit risk's features, one of
them categorical), in the same run:

- ours, in-process: ``lakeloop.deployment.batch.Scorer.score`` on a pandas frame of the
  events' features (encoding the categories, predicting, the decision and the model version
  on every row);
- ours, in Spark: ``lakeloop.deployment.batch.score_spark`` (a pandas UDF over the booster)
  over the same rows read from Parquet, written out;
- the peer: bare ``Booster.inplace_predict`` on the already-encoded float32 matrix.

Target: ours at most 1.5x the peer at 10M rows; rows/s and peak memory reported.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import ROOT, Result

sys.path.insert(0, str(ROOT))

from lakehouse import Peak  # noqa: E402

from lakeloop.deployment.batch import Scorer, score_spark  # noqa: E402
from lakeloop.training.encoding import Categorical, Encoding  # noqa: E402

EXTRA: dict = {}
NUMERIC = ["income", "employment_years", "credit_history_months", "open_credit_lines",
           "delinquencies_2y", "credit_utilization", "debt_to_income", "loan_amount",
           "loan_term_months"]
ENCODING = Encoding((*NUMERIC, "channel"),
                    {"channel": Categorical("channel", ("branch", "online", "partner"))})


def events(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 2.0, rows) for name in NUMERIC})
    frame["channel"] = rng.choice(["branch", "online", "partner"], rows, p=[.3, .55, .15])
    frame["application_id"] = np.char.add("A", np.arange(rows).astype(str))
    return frame


def scorer() -> Scorer:
    import xgboost as xgb

    train = events(200_000, 1)
    x = ENCODING.encode_frame(train)
    y = (train["credit_utilization"] + np.random.default_rng(2).normal(0, 1, len(train))
         > 4).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 2,
                         "tree_method": "hist"}, xgb.DMatrix(x, label=y), 400)
    return Scorer("bench", "1", bytes(booster.save_raw(raw_format="ubj")),
                  ENCODING.to_json(), 0.3)


def run() -> list[Result]:
    from lakeloop.settings import Settings
    from lakeloop.spark import SparkResource

    model = scorer()
    booster = model.booster()
    spark = SparkResource(jars_dir=str(Settings.from_env({}).jars_dir)).session()
    schema = (", ".join(f"`{n}` double" for n in NUMERIC) + ", channel string, "
              "application_id string, model_name string, model_version string, "
              "probability double, prediction int")
    work = Path(tempfile.mkdtemp(prefix="lakeloop-batch-"))
    results = []
    try:
        for label, rows in (("1M", 1_000_000), ("10M", 10_000_000)):
            frame = events(rows, 3)
            matrix = ENCODING.encode_frame(frame)
            with Peak(tree=False) as peer_peak:
                started = time.perf_counter()
                bare = booster.inplace_predict(matrix)
                peer_s = time.perf_counter() - started
            del matrix
            with Peak(tree=False) as ours_peak:
                started = time.perf_counter()
                scored = model.score(frame, booster)
                ours_s = time.perf_counter() - started
            assert np.allclose(scored["probability"], bare, atol=1e-7), "answers differ"
            del scored
            source = work / f"events-{label}.parquet"
            frame.to_parquet(source, index=False)
            del frame
            with Peak(tree=True) as spark_peak:
                started = time.perf_counter()
                score_spark(spark.read.parquet(str(source)), model, schema).write.mode(
                    "overwrite").parquet(str(work / f"scores-{label}"))
                spark_s = time.perf_counter() - started
            EXTRA[label] = {"rows": rows, "peer_s": round(peer_s, 2),
                            "ours_in_process_s": round(ours_s, 2),
                            "ours_spark_s": round(spark_s, 2),
                            "peak_gib": {"peer": round(peer_peak.gib, 2),
                                         "ours_in_process": round(ours_peak.gib, 2),
                                         "ours_spark_tree": round(spark_peak.gib, 2)}}
            results.append(Result(
                "batch_scoring", f"score {label} events in-process, rows/s", "rows/s",
                rows / ours_s, "bare Booster.inplace_predict", rows / peer_s,
                "ours >= 1/1.5 of the peer at 10M" if label == "10M" else "",
                (ours_s <= 1.5 * peer_s) if label == "10M" else None))
            results.append(Result("batch_scoring", f"score {label} events in Spark, rows/s",
                                  "rows/s", rows / spark_s, "bare Booster.inplace_predict",
                                  rows / peer_s))
            results.append(Result("batch_scoring", f"peak memory {label} (in-process)", "GiB",
                                  ours_peak.gib, "bare inplace_predict", peer_peak.gib))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
