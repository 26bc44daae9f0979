"""Model-building functions on small frames: time splits, thresholds, metrics, fairness."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from lakeloop.evidence import Evidence
from lakeloop.training import fit as training
from lakeloop.training import gates
from lakeloop.training.encoding import Encoding
from lakeloop.training.fairness import fairness, rates_by_group
from lakeloop.usecase import Gates
from tests.support.gpu import gpu_present


def _frame(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.5 * x[:, 0] - 1.5)))).astype(int)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": y,
                         "t": pd.date_range("2026-01-01", periods=n, freq="h"),
                         "group": rng.choice(["x", "y"], size=n)})


def test_time_split_never_mixes_time():
    df = _frame().sample(frac=1, random_state=3)
    split = training.time_split(df, "t", 0.2, 0.2)
    assert split.train["t"].max() < split.validation["t"].min()
    assert split.validation["t"].max() < split.test["t"].min()
    assert len(split.train) + len(split.validation) + len(split.test) == len(df)


@pytest.mark.parametrize("shape", ["in order", "shuffled", "in order, other index",
                                   "equal times"])
def test_time_split_is_the_stable_sort_however_the_rows_come(shape):
    """Rows already in time order are split where they are (no copy); any other frame is
    sorted first. Either way the windows are those of a stable sort on the time."""
    df = _frame(300)
    if shape == "shuffled":
        df = df.sample(frac=1, random_state=4)
    elif shape == "in order, other index":
        df.index = df.index + 1000
    elif shape == "equal times":
        df["t"] = df["t"].dt.floor("D")  # 24 rows a day: ties kept in the rows' order
    split = training.time_split(df, "t", 0.2, 0.2)
    expected = df.sort_values("t", kind="stable").reset_index(drop=True)
    got = pd.concat([split.train, split.validation, split.test])
    pd.testing.assert_frame_equal(got, expected)
    assert [len(split.train), len(split.validation), len(split.test)] == [180, 60, 60]


def test_time_split_refuses_too_little_data():
    with pytest.raises(training.TrainingDataError, match="empty"):
        training.time_split(_frame(2), "t", 0.2, 0.2)


def test_choose_threshold_reaches_the_recall_target():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    threshold = training.choose_threshold(y, p, 0.9)
    assert training.classification_metrics(y, p, threshold)["recall"] >= 0.9
    assert training.classification_metrics(y, p, threshold + 1e-3)["recall"] < 0.9 + 0.01


def test_training_is_reproducible_byte_for_byte():
    split = training.time_split(_frame(), "t", 0.2, 0.2)
    params = training.booster_params({"max_depth": 3}, seed=7, device="cpu")
    first = training.train(split, Encoding(("a", "b")), "label", params, 50, 10)
    second = training.train(split, Encoding(("a", "b")), "label", params, 50, 10)
    assert first.sha256() == second.sha256()
    assert np.array_equal(first.predict(split.test), second.predict(split.test))


def test_early_stopping_evaluates_only_the_metric_it_watches():
    """Each round scores the validation window on logloss alone (an AUC there sorts every
    score each round), and the model is the one an AUC-and-logloss run kept: early stopping
    watched logloss, the last metric, in both."""
    split = training.time_split(_frame(4000, seed=1), "t", 0.2, 0.2)
    params = training.booster_params({"max_depth": 3, "subsample": 0.8}, seed=7,
                                     device="cpu")
    model = training.train(split, Encoding(("a", "b")), "label", params, 300, 10)
    before = training.train(split, Encoding(("a", "b")), "label",
                            {**params, "eval_metric": ["auc", "logloss"]}, 300, 10)
    assert list(model.evals["validation"]) == ["logloss"]
    assert model.best_iteration == before.best_iteration < 299  # it did stop early
    assert model.sha256() == before.sha256()


@pytest.mark.parametrize("early_stopping_rounds", [10, 0])
def test_training_scores_the_validation_window_once(early_stopping_rounds, monkeypatch):
    """Without early stopping (the last round is the best), the kept trees' probabilities
    on the validation window are read from XGBoost's prediction cache before xgb.train
    drops it (it returns ``booster.reset()``; a prediction after that scores the window
    with every tree again); with early stopping (which stops here), the window is predicted
    once with the kept trees. Either way they are exactly what predicting the window after
    training gives, and the trees are what xgb.train with its own early stopping grows."""
    import xgboost as xgb

    split = training.time_split(_frame(4000, seed=1), "t", 0.2, 0.2)
    params = training.booster_params({"max_depth": 3, "subsample": 0.8}, seed=7,
                                     device="cpu")
    encoding = Encoding(("a", "b"))
    calls: list[str] = []
    reset, predict = xgb.Booster.reset, xgb.Booster.predict

    def recorded(name, method):
        def call(self, *args, **kwargs):
            calls.append(name)
            return method(self, *args, **kwargs)
        return call

    with monkeypatch.context() as patch:
        patch.setattr(xgb.Booster, "reset", recorded("reset", reset))
        patch.setattr(xgb.Booster, "predict", recorded("predict", predict))
        model = training.train(split, encoding, "label", params, 300, early_stopping_rounds)
    # read from training's cache only when the last round is the one kept, and only while
    # the cache is there
    assert (model.validation is not None) == (early_stopping_rounds == 0)
    assert calls == (["predict", "reset"] if early_stopping_rounds == 0 else ["reset"])
    kept = (0, model.best_iteration + 1)
    assert np.array_equal(model.predict_validation(split.validation), model.booster.inplace_predict(
        model.matrix(split.validation), iteration_range=kept))
    plain = xgb.train(params, xgb.DMatrix(encoding.encode_frame(split.train),
                                          label=split.train["label"],
                                          feature_names=encoding.columns),
                      300, evals=[(xgb.DMatrix(encoding.encode_frame(split.validation),
                                               label=split.validation["label"],
                                               feature_names=encoding.columns),
                                   "validation")],
                      early_stopping_rounds=early_stopping_rounds or None, verbose_eval=False)
    expected = 299 if early_stopping_rounds == 0 else plain.best_iteration
    assert model.best_iteration == expected and (expected < 299) == bool(early_stopping_rounds)
    assert bytes(plain[: expected + 1].save_raw(raw_format="ubj")) == model.model_bytes()


def test_resolve_device_follows_the_machine():
    if gpu_present():
        assert training.resolve_device("auto") == "cuda"
        assert training.resolve_device("cuda") == "cuda"
    else:
        assert training.resolve_device("auto") == "cpu"
        with pytest.raises(ValueError, match="no usable GPU"):
            training.resolve_device("cuda")
    assert training.resolve_device("cpu") == "cpu"


def test_a_silent_cpu_fallback_is_not_a_gpu(monkeypatch):
    """XGBoost asked for cuda without a usable device trains on the CPU and says nothing:
    the probe reads back the device used. (A CUDA build is faked: none is installed here.)"""
    import xgboost as xgb

    real_train = xgb.train

    def cpu_anyway(params, dtrain, num_boost_round):
        return real_train({**params, "device": "cpu"}, dtrain, num_boost_round)

    monkeypatch.setattr(xgb, "build_info", lambda: {"USE_CUDA": True})
    monkeypatch.setattr(xgb, "train", cpu_anyway)
    assert training.cuda_available.__wrapped__() is False


def test_fairness_ratio_and_tpr_gap():
    frame = pd.DataFrame({"g": ["a"] * 200 + ["b"] * 200})
    y = np.array([1, 0] * 200)
    # group a: everyone flagged (approval 0); group b: half flagged
    p = np.concatenate([np.ones(200), np.tile([1.0, 0.0], 100)])
    [report] = fairness(frame, p, y, 0.5, ["g"], min_group_rows=10,
                                 min_group_positives=10)
    assert report.approval_ratio == pytest.approx(0.0)
    assert report.groups.loc["b", "approval_rate"] == pytest.approx(0.5)
    verdict = gates.fairness([report], Gates())
    assert not verdict.passed and "approval-rate ratio" in verdict.description


def test_small_groups_are_reported_but_not_judged():
    """One group large enough and one tiny one: nothing to compare, so no ratio (None, not a
    ratio of 1.0 that reads as perfectly fair), and the gate says so instead of passing."""
    frame = pd.DataFrame({"g": ["a"] * 300 + ["tiny"] * 5})
    y = np.zeros(305, dtype=int)
    p = np.concatenate([np.zeros(300), np.ones(5)])
    [report] = fairness(frame, p, y, 0.5, ["g"], min_group_rows=100)
    assert report.rate_groups == ["a"]
    assert report.approval_ratio is None and report.tpr_gap is None
    assert report.unjudged() == ["a (0 positives: TPR not judged)", "tiny (5 rows)"]
    verdict = gates.fairness([report], Gates())
    assert not verdict.passed
    assert "not enough evidence: 1 of 2 groups" in verdict.description
    assert "nan" not in verdict.description


def test_tpr_gap_with_too_few_positives_is_listed_as_not_judged():
    frame = pd.DataFrame({"g": ["a"] * 400 + ["b"] * 400})
    y = np.array(([1] * 60 + [0] * 340) + ([1] * 12 + [0] * 388))
    p = np.where(y == 1, 0.9, 0.1)
    [report] = fairness(frame, p, y, 0.5, ["g"], min_group_rows=100,
                                 min_group_positives=50)
    assert report.approval_ratio is not None and report.tpr_gap is None
    verdict = gates.fairness([report], Gates())
    assert verdict.passed
    assert "TPR gap not judged (1 of 2 groups have 50 positives)" in verdict.description
    assert "b (12 positives: TPR not judged)" in verdict.description
    assert "0.000" not in verdict.description


def test_performance_gate_explains_its_numbers():
    metrics = {"recall": 0.85, "auc": 0.95, "f1": 0.5, "rows": 400}
    evidence = Evidence(rows=400, positives=100)
    verdict = gates.performance(metrics, 0.1, Gates(recall_min=0.9), evidence=evidence)
    assert not verdict.passed
    assert "recall 0.850 < 0.9" in verdict.description
    assert "400 rows: 100 positives, 300 negatives" in verdict.description
    assert gates.performance({**metrics, "recall": 0.93}, 0.1, Gates(),
                             evidence=evidence).passed


def test_performance_gate_refuses_to_judge_on_too_few_positives():
    """2 positives in 2,019 rows: no recall, no AUC, no nan; the reason and what to do."""
    metrics = {"recall": 0.5, "auc": float("nan"), "f1": 0.0, "rows": 2019}
    verdict = gates.performance(metrics, 0.2, Gates(), evidence=Evidence(2019, 2),
                                validation=Evidence(900, 40))
    assert not verdict.passed
    assert verdict.description.startswith("failed: not enough evidence to judge: the test "
                                          "window holds 2 positives (at least 30 needed)")
    assert "wait for more outcomes to mature" in verdict.description
    assert "nan" not in verdict.description.lower()
    assert verdict.metadata["test_positives"] == 2


def test_no_regression_gate_allows_the_tolerance_and_no_more():
    g = Gates(regression_tolerance=0.02)
    assert gates.no_regression(0.80, None, None, g).passed  # first model: nothing to compare
    assert gates.no_regression(0.785, 0.80, "3", g).passed
    verdict = gates.no_regression(0.77, 0.80, "3", g)
    assert not verdict.passed
    assert "champion v3 0.8000" in verdict.description and "0.7700" in verdict.description


def test_fairness_of_no_rows_judges_nothing():
    [report] = fairness(pd.DataFrame({"g": []}), np.array([]), np.array([]), 0.5,
                                 ["g"])
    assert report.approval_ratio is None and report.tpr_gap is None and report.unjudged() == []


@pytest.mark.parametrize("rows", [40, 5_000, 400_000])
def test_rates_by_group_equal_fairlearns_metric_frame(rows):
    """The vectorised disaggregation answers what fairlearn's MetricFrame answers, group by
    group, with a group holding no positive (TPR undefined), missing group values and a
    group of one row."""
    from fairlearn.metrics import MetricFrame, count

    rng = np.random.default_rng(rows)
    groups = pd.Series(rng.choice(["a", "b", "c", None], size=rows, p=[0.5, 0.3, 0.15, 0.05]),
                       name="g")
    groups.iloc[0] = "lonely"
    y = (rng.random(rows) < 0.2).astype(int)
    y[(groups == "c").to_numpy()] = 0
    flagged = (rng.random(rows) < 0.3).astype(int)

    def positives(y_true, _):
        return int(np.sum(y_true == 1))

    def approval_rate(_, y_pred):
        return float(1 - np.mean(y_pred))

    def tpr(y_true, y_pred):
        caught = y_true == 1
        return float(np.mean(y_pred[caught])) if caught.any() else float("nan")

    expected = MetricFrame(
        metrics={"rows": count, "positives": positives, "approval_rate": approval_rate,
                 "tpr": tpr},
        y_true=y, y_pred=flagged,
        sensitive_features=pd.Series(groups.astype(str).to_numpy(), name="g")).by_group
    ours = rates_by_group(groups, y, flagged)
    assert list(ours.index) == list(expected.index) and ours.index.name == "g"
    assert list(ours["rows"]) == list(expected["rows"].astype(int))
    assert list(ours["positives"]) == list(expected["positives"].astype(int))
    np.testing.assert_allclose(ours["approval_rate"], expected["approval_rate"].astype(float),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["tpr"], expected["tpr"].astype(float), rtol=0,
                               atol=1e-12)  # NaN where a group has no positive, in both
    assert np.isnan(ours.loc["c", "tpr"])


def test_the_model_is_serialised_once_for_its_hash(monkeypatch):
    """The run, the version and the asset's metadata all record the hash: one serialisation."""
    split = training.time_split(_frame(2000, seed=3), "t", 0.2, 0.2)
    params = training.booster_params({"max_depth": 3}, seed=7, device="cpu")
    model = training.train(split, Encoding(("a", "b")), "label", params, 20, 0)
    expected = hashlib.sha256(model.model_bytes()).hexdigest()
    calls = []
    real = type(model.booster).save_raw
    monkeypatch.setattr(type(model.booster), "save_raw",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    assert [model.sha256() for _ in range(3)] == [expected] * 3
    assert len(calls) == 1
