"""A candidate into a real MLflow registry (SQLite): its version is created with every tag a
reader needs, the gate verdicts among them, in one write."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from lakeloop.deployment.approvals import TRAINED_BY
from lakeloop.tracking import MlflowResource
from lakeloop.training import fit as training
from lakeloop.training.candidate import train_candidate
from lakeloop.training.data import EVENT_TIMESTAMP, TrainingData
from lakeloop.training.encoding import ENCODING_TAG
from lakeloop.training.gates import FAIRNESS_GATE, PERFORMANCE_GATE, REGRESSION_GATE
from lakeloop.training.registry import gates_of, register
from tests.platform.training.conftest import UC

pytestmark = pytest.mark.integration


def test_a_version_is_created_with_its_tags_and_gate_verdicts_in_one_write(
        frame, tmp_path, monkeypatch):
    split = training.time_split(frame, EVENT_TIMESTAMP, UC.model.validation_fraction,
                                UC.model.test_fraction)
    data = TrainingData("memory", 3, split, lineage={"feature_service": "credit_risk_v1"})
    candidate = train_candidate(None, data, UC, {
        "seed": 7, "device": "cpu", "engine": "xgboost", "num_boost_round": 40,
        "early_stopping_rounds": 10}, champion=None)
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                            artifact_root=str(tmp_path / "artifacts"))

    # The fault: a tag written once the version exists. A reader between the two writes
    # (the promotion, the model card) would see a version with no gates.
    def written_late(self, name, version, key, value):
        raise AssertionError(f"tag {key!r} written after version {version} was created")

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", written_late)
    registered = register(mlflow, UC, candidate, data, "0123456789abcdef", trained_by="ana")

    version = mlflow.client().get_model_version(UC.name, registered.version)
    verdicts = gates_of(version.tags)
    assert set(verdicts) == {PERFORMANCE_GATE, FAIRNESS_GATE, REGRESSION_GATE}
    for verdict in candidate.verdicts:
        assert verdicts[verdict.name] == {"passed": verdict.passed,
                                          "description": verdict.description}
    assert version.tags["gates"] == (
        "failed:" + ",".join(candidate.failed) if candidate.failed else "pending")
    assert float(version.tags["threshold"]) == pytest.approx(candidate.threshold, abs=1e-8)
    assert json.loads(version.tags[ENCODING_TAG]) == candidate.encoding.to_dict()
    assert version.tags["training_set_version"] == "3"
    assert version.tags["dagster_run_id"] == "0123456789abcdef"
    assert version.tags["model_sha256"] == candidate.model.sha256()
    assert version.description.startswith("Trained by Dagster run ")
    assert version.tags[TRAINED_BY] == "ana"
    # linked to its run, where the reproducibility gate and `lakeloop trace` read it
    assert version.run_id == registered.run_id
