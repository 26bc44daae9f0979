"""The model server's component class, in-process (seldon-core only turns its answers and
RequestErrors into HTTP): every answer's record is in the request log when predict returns,
and a missing number is logged as null."""

import json

import numpy as np
import xgboost as xgb

from lakeloop.deployment.seldon.model import XGBoostModel
from lakeloop.deployment.seldon.request_log import complete_lines

FEATURES = ["a", "b"]


def _model(tmp_path) -> XGBoostModel:
    rng = np.random.default_rng(0)
    x = rng.random((200, 2))
    booster = xgb.train({"objective": "binary:logistic"},
                        xgb.DMatrix(x, label=(x[:, 0] > 0.5)), num_boost_round=3)
    booster.save_model(tmp_path / "model.ubj")
    model = XGBoostModel(str(tmp_path / "model.ubj"), json.dumps(FEATURES), 0.5, "m", "1",
                         log_dir=str(tmp_path / "log"))
    model.load()
    return model


def test_an_answer_is_logged_before_it_is_returned_with_its_missing_values(tmp_path):
    model = _model(tmp_path)
    msg = {"data": {"names": FEATURES, "ndarray": [[0.7, None], [0.2, 0.4]]},
           "meta": {"puid": "req-1", "tags": {"request_keys": ["k1", "k2"],
                                              "event_times": ["2026-09-03T10:00:00",
                                                              "2026-09-03T11:00:00"]}}}
    answer = model.predict_raw(msg)
    assert len(answer["data"]["ndarray"]) == 2
    records = [json.loads(line) for path in (tmp_path / "log").glob("ds=*/*.jsonl")
               for line in complete_lines(path)]
    assert [(r["request_id"], r["row"], r["request_key"]) for r in records] == [
        ("req-1", 0, "k1"), ("req-1", 1, "k2")]
    assert records[0]["features"] == {"a": 0.7, "b": None}
    assert records[1]["features"] == {"a": 0.2, "b": 0.4}
    assert all(r["ds"] == "2026-09-03" and r["status"] == 200 for r in records)
