"""The model server's component class, in-process (seldon-core only turns its answers and
RequestErrors into HTTP): every answer's record is in the request log when predict returns,
and a missing number is logged as null."""

import json

import numpy as np
import pytest
import xgboost as xgb

from lakeloop.deployment.seldon.errors import RequestError
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


def test_reasons_add_up_to_the_margin_and_name_the_features_that_raised_it(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((400, 3))
    y = (x[:, 0] + 0.2 * x[:, 1] > 0.7).astype(int)  # a matters most, b a little, c not
    # named, as training names the columns
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(x, label=y, feature_names=["a", "b", "c"]),
                        num_boost_round=20)
    booster.save_model(tmp_path / "model.ubj")
    texts = {"a": {"up": "A too high", "down": "A low enough"}}
    model = XGBoostModel(str(tmp_path / "model.ubj"), json.dumps(["a", "b", "c"]), 0.5, "m",
                         "1", log_dir=str(tmp_path / "log"), reason_codes=json.dumps(texts))
    model.load()
    rows = [[0.95, 0.9, 0.5], [0.05, 0.1, 0.5]]
    answer = model.predict_raw({"data": {"names": ["a", "b", "c"], "ndarray": rows},
                                "meta": {"puid": "r", "tags": {"explain": 2}}})
    explained = answer["meta"]["tags"]["reasons"]
    margins = booster.inplace_predict(np.array(rows), predict_type="margin")
    for reason, margin in zip(explained, margins, strict=True):
        total = reason["base_value"] + sum(reason["contributions"].values())
        assert abs(total - margin) < 1e-5
        assert len(reason["top"]) == 2
    high, low = explained
    assert high["top"][0] == {"feature": "a", "contribution": high["contributions"]["a"],
                              "direction": "up", "text": "A too high"}
    assert low["contributions"]["a"] < 0
    records = [json.loads(line) for path in (tmp_path / "log").glob("ds=*/*.jsonl")
               for line in complete_lines(path)]
    assert [json.loads(r["reasons"]) for r in records] == [r["top"] for r in explained]


def test_reasons_are_only_computed_when_asked_and_a_bad_ask_is_refused(tmp_path):
    model = _model(tmp_path)
    plain = model.predict_raw({"data": {"names": FEATURES, "ndarray": [[0.7, 0.1]]}})
    assert "reasons" not in plain["meta"]["tags"]
    for bad in (0, 3, "yes", 1.5):
        try:
            model.predict_raw({"data": {"names": FEATURES, "ndarray": [[0.7, 0.1]]},
                               "meta": {"tags": {"explain": bad}}})
        except RequestError as exc:
            assert exc.reason == "BAD_EXPLAIN" and "meta.tags.explain" in exc.message
        else:
            raise AssertionError(f"explain={bad!r} was accepted")
    [default] = model.predict_raw({"data": {"names": FEATURES, "ndarray": [[0.7, 0.1]]},
                                   "meta": {"tags": {"explain": True}}})["meta"]["tags"][
        "reasons"]
    assert len(default["top"]) == 2  # three by default, at most the features there are


def test_native_calls_answer_exactly_what_xgboosts_wrapper_answers():
    """The serving path calls XGBoost's C functions itself (the Python wrapper cost more
    than the trees for one row): its probabilities must be inplace_predict's and its
    contributions Booster.predict(pred_contribs=True)'s, bit for bit, for one row, many
    rows, missing values and a model with named columns."""
    from lakeloop.deployment.seldon.native import NativeBooster

    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 3]) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "nthread": 1},
                        xgb.DMatrix(x, label=y, feature_names=list("abcdef")),
                        num_boost_round=40)
    native = NativeBooster(booster)
    for rows in (x[:1], x[:7], x):
        expected = booster.predict(xgb.DMatrix(rows, missing=np.nan,
                                               feature_names=list("abcdef")),
                                   pred_contribs=True)
        got = native.contributions(rows)
        assert got.shape == expected.shape == (len(rows), 7)
        assert np.array_equal(got, expected)
        p = native.predict(rows)
        assert p.shape == (len(rows),)
        assert np.array_equal(p, booster.inplace_predict(rows))
    # a column-major matrix is read by its values, not its memory order
    assert np.array_equal(native.contributions(np.asfortranarray(x[:3])),
                          native.contributions(x[:3]))
    assert np.array_equal(native.predict(np.asfortranarray(x[:3])), native.predict(x[:3]))


def test_the_onnx_runtime_answers_what_the_booster_answers_and_checks_requests_alike(tmp_path):
    """OnnxModel scores the version's ONNX export with ONNX Runtime; missing values, the
    request checks and the log behave as XGBoostModel's, and the probabilities agree within
    the parity gate's default tolerance."""
    from lakeloop.deployment.seldon.model import OnnxModel
    from lakeloop.training.onnx_export import to_onnx

    rng = np.random.default_rng(5)
    x = rng.normal(size=(2_000, 3))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take each tree's default branch
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4},
                        xgb.DMatrix(x, label=(np.nan_to_num(x[:, 0]) + x[:, 1] > 0)),
                        num_boost_round=30)
    booster.save_model(tmp_path / "model.ubj")
    (tmp_path / "model.onnx").write_bytes(to_onnx(booster, 3))
    names = ["a", "b", "c"]
    args = (json.dumps(names), 0.5, "m", "4")
    native = XGBoostModel(str(tmp_path / "model.ubj"), *args, log_dir=str(tmp_path / "x"))
    onnx = OnnxModel(str(tmp_path / "model.ubj"), str(tmp_path / "model.onnx"), *args,
                     log_dir=str(tmp_path / "o"))
    with pytest.raises(RequestError) as unloaded:  # not ready before its session exists
        onnx.health_status()
    assert unloaded.value.status_code == 503
    native.load()
    onnx.load()
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in x[:500]]
    body = {"data": {"names": names, "ndarray": rows}}
    want = np.array(native.predict_raw(body)["data"]["ndarray"])
    got = np.array(onnx.predict_raw(body)["data"]["ndarray"])
    assert np.max(np.abs(got[:, 0] - want[:, 0])) <= 1e-5
    assert np.mean(got[:, 1] == want[:, 1]) >= 0.998  # a decision flips only at the threshold
    assert onnx.init_metadata()["platform"] == "onnx"
    with pytest.raises(RequestError) as refused:
        onnx.predict_raw({"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}})
    assert refused.value.status_code == 400 and "missing feature(s): c" in refused.value.message
    records = [json.loads(line) for path in (tmp_path / "o").glob("ds=*/*.jsonl")
               for line in complete_lines(path)]
    assert [r["status"] for r in records] == [200] * 500 + [400]
    explained = onnx.predict_raw({**body, "meta": {"tags": {"explain": 1}}})
    assert len(explained["meta"]["tags"]["reasons"]) == 500  # reasons from the booster


def test_an_onnx_export_of_another_shape_is_refused_at_load(tmp_path):
    from lakeloop.deployment.seldon.model import OnnxModel
    from lakeloop.training.onnx_export import to_onnx

    x = np.random.default_rng(0).random((200, 3))
    three = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=x[:, 0] > 0.5),
                      num_boost_round=3)
    three.save_model(tmp_path / "model.ubj")
    two = xgb.train({"objective": "binary:logistic"},
                    xgb.DMatrix(x[:, :2], label=x[:, 0] > 0.5), num_boost_round=3)
    (tmp_path / "model.onnx").write_bytes(to_onnx(two, 2))
    model = OnnxModel(str(tmp_path / "model.ubj"), str(tmp_path / "model.onnx"),
                      json.dumps(["a", "b", "c"]), 0.5, "m", "1")
    with pytest.raises(ValueError, match="takes 2 columns, the encoding makes 3"):
        model.load()
