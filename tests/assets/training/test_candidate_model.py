"""The candidate model's lineage, both ways (Dagster -> MLflow -> Dagster), its artifacts in
non-pickle formats, hyperparameters from run config, and the Spark estimator as an engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from lakeloop import keys
from lakeloop.features.store import feature_service_name
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET
from tests.support.gpu import gpu_present

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PLOTS = {"roc", "precision_recall", "confusion_matrix", "feature_importance", "shap_summary"}


def _use_case(materialized):
    return load_use_cases(materialized.settings.use_case_dirs)[0]


def _model_materialisation(result, uc):
    key = keys.key(uc, keys.TRAINING, "candidate_model")
    return next(e.event_specific_data.materialization for e in result.all_events
                if e.event_type_value == "ASSET_MATERIALIZATION"
                and e.event_specific_data.materialization.asset_key == key)


def _artifacts(client, run_id, path=None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_training_run_records_lineage_both_ways(materialized, spark):
    uc = _use_case(materialized)
    mlflow = materialized.resources["mlflow"]
    client = mlflow.client()
    meta = _model_materialisation(materialized.result, uc).metadata
    version = str(meta["model_version"].value)
    mv = client.get_model_version(uc.name, version)
    run = client.get_run(mv.run_id)

    # Dagster -> MLflow: the asset links to the run and the registered version.
    assert mv.run_id in meta["mlflow_run"].value
    assert meta["model_version_url"].value.endswith(f"/models/{uc.name}/versions/{version}")
    # MLflow -> Dagster: the run and the version name the Dagster run that made them.
    run_id = materialized.result.run_id
    assert run.data.tags["lakeloop.dagster_run_id"] == run_id
    assert mv.tags["dagster_run_url"].endswith(f"/runs/{run_id}")
    assert run_id in mv.description

    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    for name, value in uc.model.params.items():
        assert float(params[name]) == pytest.approx(float(value)), name
    device = "cuda" if gpu_present() else "cpu"  # the use case asks for auto
    assert params["seed"] == str(uc.model.seed) and params["device"] == device
    assert params["tree_method"] == "hist" and tags["lakeloop.device"] == device
    for split in ("validation", "test"):
        for metric in ("auc", "recall", "precision", "f1"):
            assert f"{split}_{metric}" in metrics, f"{split}_{metric}"
    # measured on the windows no tree was fitted on; the training rows are never scored
    assert not {m for m in metrics if m.startswith("train_")} - {"train_seconds"}
    sources = json.loads(tags["lakeloop.source_versions"])
    assert set(sources) == {uc.gold_table, uc.labeled_table}
    assert tags["lakeloop.feature_service"] == feature_service_name(uc)
    assert re.fullmatch(r"[0-9a-f]{40}", tags["lakeloop.git_commit"])
    assert re.fullmatch(r"[0-9a-f]{64}", tags["lakeloop.snapshots_sha256"])

    artifacts = _artifacts(client, mv.run_id)
    assert {f"plots/{p}.png" for p in PLOTS} <= artifacts
    assert {"lineage.json", "training_config.json", "fairness.md", "model_card.md",
            "onnx/model.onnx", "serving/config.json"} <= artifacts
    ml = mlflow.setup()
    model_dir = Path(ml.artifacts.download_artifacts(f"models:/{uc.name}/{version}"))
    files = {p.name for p in model_dir.rglob("*") if p.is_file()}
    assert {"MLmodel", "model.ubj", "input_example.json"} <= files
    assert not [f for f in files | artifacts if f.endswith((".pkl", ".pickle", ".joblib"))]
    lineage = ml.artifacts.load_dict(f"runs:/{mv.run_id}/lineage.json")
    assert lineage["packages"]["xgboost"] == "3.2.0"
    ts_path = materialized.resources["lakehouse"].path(keys.key(uc, keys.TRAINING,
                                                                "training_set"))
    read = (spark.read.format("delta").option("versionAsOf", lineage["training_set_version"])
            .load(str(ts_path)).select("_snapshot_hash").distinct().toPandas())
    assert sorted(lineage["snapshot_sha256"]) == sorted(read["_snapshot_hash"])
    mlmodel = (model_dir / "MLmodel").read_text()
    assert "signature:" in mlmodel and "saved_input_example_info" in mlmodel
    assert "model_format: ubj" in mlmodel


def test_onnx_artifact_matches_the_native_model(materialized, spark):
    import onnxruntime as ort
    import xgboost as xgb

    uc = _use_case(materialized)
    mlflow = materialized.resources["mlflow"]
    version = str(_model_materialisation(materialized.result, uc).metadata[
        "model_version"].value)
    mv = mlflow.client().get_model_version(uc.name, version)
    local = mlflow.setup().artifacts.download_artifacts(f"runs:/{mv.run_id}/onnx/model.onnx")
    model_dir = mlflow.setup().artifacts.download_artifacts(f"runs:/{mv.run_id}/model")
    booster = xgb.Booster()
    booster.load_model(f"{model_dir}/model.ubj")
    # the model's columns: numeric features, then each categorical one-hot encoded
    x = np.random.default_rng(0).uniform(0, 50, size=(500, booster.num_features()))
    x = x.astype(np.float32)
    session = ort.InferenceSession(local, providers=["CPUExecutionProvider"])
    portable = session.run(None, {"input": x})[1][:, 1]
    assert np.max(np.abs(portable - booster.inplace_predict(x))) <= 1e-5


def test_hyperparameters_from_run_config_and_the_spark_engine(materialized):
    """What a person edits in the launchpad reaches the booster and MLflow; engine: spark
    trains the same asset with XGBoost's Spark estimator."""
    uc = _use_case(materialized)
    key = keys.key(uc, keys.TRAINING, "candidate_model")
    config = {"ops": {f"{uc.name}__training__candidate_model": {"config": {
        "engine": "spark", "max_depth": 3, "learning_rate": 0.2, "num_boost_round": 80}}}}
    result = dg.materialize(list(materialized.defs.assets), selection=[key],
                            resources=materialized.resources, instance=materialized.instance,
                            run_config={**QUIET, **config}, raise_on_error=False)
    meta = _model_materialisation(result, uc).metadata
    assert meta["engine"].value == "spark"
    mlflow = materialized.resources["mlflow"]
    mv = mlflow.client().get_model_version(uc.name, str(meta["model_version"].value))
    run = mlflow.client().get_run(mv.run_id)
    assert run.data.params["max_depth"] == "3" and run.data.params["learning_rate"] == "0.2"
    assert run.data.params["engine"] == "spark" and run.data.tags["lakeloop.engine"] == "spark"
    assert int(run.data.params["best_iteration"]) < 80
    recorded = mlflow.setup().artifacts.load_dict(f"runs:/{mv.run_id}/training_config.json")
    assert recorded["requested"]["max_depth"] == 3
    assert recorded["resolved"]["params"]["max_depth"] == 3
    checks = {e.event_specific_data.check_name: e.event_specific_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks["performance_gate"] is True  # a model as good as the default engine's
