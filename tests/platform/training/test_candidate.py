"""A candidate model from a training set, with no Dagster and no MLflow: trained, thresholded
on the validation window, measured and judged on the newest window, explained."""

from __future__ import annotations

import base64
import io
from concurrent.futures import Future

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lakeloop.monitoring import drift
from lakeloop.training import fit as training
from lakeloop.training.candidate import (
    INLINE_WIDTH,
    Champion,
    NotEnoughEvidence,
    _render,
    fairness_table,
    train_candidate,
)
from lakeloop.training.data import EVENT_TIMESTAMP, LABEL, TrainingData
from lakeloop.training.explain import figures, shap_figure
from lakeloop.training.gates import FAIRNESS_GATE, PERFORMANCE_GATE, REGRESSION_GATE
from tests.platform.training.conftest import UC

REQUESTED = {"seed": 42, "device": "cpu", "engine": "xgboost", "num_boost_round": 120,
             "early_stopping_rounds": 20}


def _data(frame: pd.DataFrame) -> TrainingData:
    split = training.time_split(frame, EVENT_TIMESTAMP, UC.model.validation_fraction,
                                UC.model.test_fraction)
    return TrainingData("memory", 0, split)


@pytest.fixture(scope="module")
def candidate(frame):
    return train_candidate(None, _data(frame), UC, REQUESTED, champion=None)


def test_the_threshold_is_chosen_on_validation_and_measured_on_the_newest_window(candidate):
    validation = candidate.metrics["validation"]
    target = min(UC.gates.recall_min + UC.model.threshold_margin, 1.0)
    assert validation["recall"] >= target  # chosen there, never on test
    # judged on the windows no tree was fitted on; the training rows are never scored
    assert set(candidate.metrics) == set(candidate.evidence) == {"validation", "test"}
    assert 0.5 < candidate.test["auc"] <= 1.0 and 0 < candidate.threshold < 1
    assert candidate.evidence["test"].positives > 0
    assert candidate.resolved["engine"] == "xgboost" and candidate.resolved["seed"] == 42


def test_every_blocking_gate_is_judged_with_its_reason(candidate):
    verdicts = {v.name: v for v in candidate.verdicts}
    assert set(verdicts) == {PERFORMANCE_GATE, FAIRNESS_GATE, REGRESSION_GATE}
    assert all(v.description for v in verdicts.values())
    assert candidate.failed == [v.name for v in candidate.verdicts if not v.passed]
    # no champion yet: nothing to regress from
    assert verdicts[REGRESSION_GATE].passed


def test_the_candidate_is_explained(candidate):
    assert {"plots/roc.png", "plots/confusion_matrix.png"} <= set(candidate.pngs)
    assert all(png.startswith(b"\x89PNG") for png in candidate.pngs.values())
    # the UI's inline images are thumbnails cut from the same renderings, never drawn twice
    for name, encoded in candidate.images.items():
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as small, \
                Image.open(io.BytesIO(candidate.pngs[name])) as full:
            assert small.width == min(INLINE_WIDTH, full.width)
            assert abs(small.height / small.width - full.height / full.width) < 0.02
    importance = candidate.shap[0] if isinstance(candidate.shap, tuple) else candidate.shap
    assert len(importance) == len(UC.feature_names)
    table = fairness_table(candidate.fairness)
    assert "| gender | female |" in table and "| age_band |" in table


def test_each_plot_is_drawn_once(frame, candidate, monkeypatch):
    from matplotlib.figure import Figure

    test = _data(frame).split.test
    figs = {**figures(candidate.model, test[LABEL].to_numpy(), candidate.model.predict(test),
                      candidate.threshold),
            **shap_figure(candidate.model, candidate.shap)}
    drawn, draw = [], Figure.draw
    monkeypatch.setattr(Figure, "draw",
                        lambda fig, renderer: (drawn.append(fig), draw(fig, renderer))[1])
    pngs, _ = _render(figs)
    assert sorted(pngs) == sorted(candidate.pngs) and len(drawn) == len(figs) == 5
    assert {id(f) for f in drawn} == {id(f) for f in figs.values()}


def test_a_champion_much_better_than_the_candidate_stops_it(frame, candidate):
    # The champion is this candidate; the challenger learns from shuffled labels and is
    # judged on the same (true) newest window.
    champion = Champion("7", candidate.model.booster, candidate.encoding, candidate.threshold)
    split = _data(frame).split
    shuffled = np.random.default_rng(0).permutation(split.train[LABEL].to_numpy())
    noise = training.Split(split.train.assign(**{LABEL: shuffled}), split.validation, split.test)
    worse = train_candidate(None, TrainingData("memory", 0, noise), UC, REQUESTED,
                            champion=champion)
    verdict = next(v for v in worse.verdicts if v.name == REGRESSION_GATE)
    assert not verdict.passed and "v7" in verdict.description


def test_the_champions_lookup_ends_before_any_metric(frame, monkeypatch):
    """The lookup runs in a thread beside the fit and imports MLflow the first time; a metric
    computed while that import is half done failed (scikit-learn saw a half-imported polars).
    The future here completes only when waited for, so no timing is involved."""

    class WhenWaitedFor(Future):
        def result(self, timeout=None):
            if not self.done():
                self.set_result(None)
            return super().result(timeout)

    champion = WhenWaitedFor()
    seen = []
    real = training.classification_metrics

    def measured(*args, **kwargs):
        seen.append(champion.done())
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "classification_metrics", measured)
    train_candidate(None, _data(frame), UC, REQUESTED, champion=champion)
    assert seen and all(seen)


def test_no_positive_in_the_validation_window_is_not_enough_evidence(frame):
    data = _data(frame)
    split = data.split
    none = training.Split(split.train, split.validation.assign(**{LABEL: 0}), split.test)
    with pytest.raises(NotEnoughEvidence, match="validation window"):
        train_candidate(None, TrainingData("memory", 0, none), UC, REQUESTED, champion=None)


def test_the_reference_windows_are_judged_against_each_other(frame, candidate):
    # The validation window as the reference, the test window as a day, feature by feature:
    # computed beside the metrics and plots, the same verdict as judging the windows with
    # the candidate's probabilities beside them (the plan reads the features alone).
    split = _data(frame).split
    check = candidate.reference_check
    assert (check.ds, check.rows, check.reference_rows) == (
        "test window", len(split.test), len(split.validation))
    assert set(check.columns) == set(UC.feature_names)
    windows = {name: getattr(split, name).assign(probability=candidate.model.predict(
        getattr(split, name))) for name in ("validation", "test")}
    plan = drift.plan_columns(split.validation, list(UC.feature_names),
                              UC.categorical_features)
    assert check == drift.judge(windows["validation"], windows["test"], plan,
                                UC.monitoring.drift, ds="test window")
