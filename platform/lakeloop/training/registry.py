"""A candidate into MLflow: its run (parameters, metrics, lineage, plots, the model as
XGBoost UBJ and never a pickle), its registered version, and every gate's verdict on that
version, where the model card, the promotion and a reviewer read them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from lakeloop.deployment.approvals import TRAINED_BY
from lakeloop.monitoring.reference import REFERENCE_FROM_TAG
from lakeloop.settings import PROJECT_ROOT
from lakeloop.tracking import MlflowResource, muted_stderr
from lakeloop.training.candidate import Candidate, fairness_table
from lakeloop.training.data import EVENT_TIMESTAMP, TrainingData
from lakeloop.training.encoding import ENCODING_TAG
from lakeloop.usecase import UseCase

GATE_PREFIX = "gate."
PIP_REQUIREMENTS = ["xgboost==3.2.0"]
PACKAGES = ("xgboost", "pyspark", "delta-spark", "feast", "mlflow", "dagster", "numpy",
            "pandas", "onnx", "onnxmltools", "onnxruntime")


@dataclass(frozen=True)
class Registered:
    version: str
    run_id: str
    run_url: str
    version_url: str
    seconds: float


def gate_tag(gate: str, passed: bool, description: str) -> tuple[str, str]:
    """A gate's verdict as a model version's tag (key, value)."""
    return (f"{GATE_PREFIX}{gate}",
            json.dumps({"passed": bool(passed), "description": description})[:4900])


def record_gate(mlflow: MlflowResource, name: str, version: str, gate: str, passed: bool,
                description: str) -> None:
    mlflow.client().set_model_version_tag(name, version, *gate_tag(gate, passed, description))


def gates_of(tags: dict[str, str]) -> dict[str, dict]:
    return {k.removeprefix(GATE_PREFIX): json.loads(v) for k, v in tags.items()
            if k.startswith(GATE_PREFIX)}


def mark_failed(mlflow: MlflowResource, name: str, version: str, gate: str) -> None:
    """Add ``gate`` to the version's failed gates (it can then never become challenger)."""
    client = mlflow.client()
    current = client.get_model_version(name, version).tags.get("gates", "pending")
    failed = sorted({*current.removeprefix("failed:").split(","), gate} - {"pending", ""})
    client.set_model_version_tag(name, version, "gates", "failed:" + ",".join(failed))


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, check=True,
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def register(mlflow: MlflowResource, use_case: UseCase, candidate: Candidate,
             data: TrainingData, dagster_run_id: str, trained_by: str = "") -> Registered:
    """Log the candidate's run, register its model and record its gate verdicts."""
    import pandas as pd

    started = time.perf_counter()
    ml = mlflow.setup()
    experiment_id = mlflow.experiment(use_case.name)
    model, lineage = candidate.model, data.lineage
    split = data.split
    dagster_url = f"{mlflow.dagster_ui_url}/runs/{dagster_run_id}"
    with muted_stderr(), ml.start_run(experiment_id=experiment_id,
                                      run_name=f"{use_case.name}-{dagster_run_id[:8]}") as run:
        ml.log_params({**{k: v for k, v in candidate.resolved["params"].items()
                          if k != "eval_metric"},
                       "num_boost_round": candidate.resolved["num_boost_round"],
                       "early_stopping_rounds": candidate.resolved["early_stopping_rounds"],
                       "engine": candidate.resolved["engine"],
                       "best_iteration": model.best_iteration,
                       "decision_threshold": round(candidate.threshold, 6)})
        ml.log_metrics({f"{name}_{k}": v for name, m in candidate.metrics.items()
                        for k, v in m.items() if v == v})
        ml.log_metrics({f"fairness_{f.attribute}_approval_ratio": f.approval_ratio
                        for f in candidate.fairness if f.approval_ratio is not None})
        ml.log_metrics({f"fairness_{f.attribute}_tpr_gap": f.tpr_gap
                        for f in candidate.fairness if f.tpr_gap is not None})
        ml.log_metric("train_seconds", candidate.seconds["train"])
        ml.set_tags({
            "lakeloop.use_case": use_case.name,
            "lakeloop.dagster_run_id": dagster_run_id,
            "lakeloop.dagster_run_url": dagster_url,
            "lakeloop.training_set_version": str(data.version),
            "lakeloop.source_versions": json.dumps(lineage.get("source_versions", {})),
            "lakeloop.feature_service": lineage.get("feature_service", ""),
            "lakeloop.labels_as_of": str(lineage.get("labels_as_of")),
            "lakeloop.maturity_days": str(use_case.label.maturity_days),
            "lakeloop.snapshots": str(len(data.snapshots)),
            "lakeloop.snapshots_sha256": hashlib.sha256(
                "".join(data.snapshots).encode()).hexdigest(),
            "lakeloop.git_commit": git_commit(),
            "lakeloop.device": candidate.resolved["device"],
            "lakeloop.engine": candidate.resolved["engine"],
            "lakeloop.model_sha256": model.sha256(),
        })
        ml.log_dict({"snapshot_sha256": data.snapshots,
                     "source_versions": lineage.get("source_versions", {}),
                     "training_set_version": data.version,
                     "packages": package_versions(*PACKAGES)}, "lineage.json")
        ml.log_dict({"requested": candidate.requested, "resolved": candidate.resolved,
                     "training_set_version": data.version}, "training_config.json")
        ml.log_dict({"features": list(use_case.feature_names),
                     "threshold": candidate.threshold,
                     "encoding": candidate.encoding.to_dict(), "use_case": use_case.name,
                     "feature_service": lineage.get("feature_service", ""),
                     "label_positive": str(use_case.label.positive)}, "serving/config.json")
        importance = candidate.shap[0]
        ml.log_dict({"mean_abs_shap": dict(zip(importance["feature"],
                                               map(float, importance["mean_abs_shap"]),
                                               strict=True))}, "shap_importance.json")
        with tempfile.TemporaryDirectory() as tmp:
            for name, png in candidate.pngs.items():
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(png)
            ml.log_artifacts(tmp)
        ml.log_text(fairness_table(candidate.fairness), "fairness.md")
        head = split.test.head(5)
        sample = pd.DataFrame(model.matrix(head), columns=candidate.encoding.columns)
        info = ml.xgboost.log_model(
            model.booster, name="model", model_format="ubj",
            signature=ml.models.infer_signature(sample, model.predict(head)),
            input_example=sample, pip_requirements=PIP_REQUIREMENTS)
        # The version is created with every tag it is read by (its lineage, encoding,
        # threshold and gate verdicts) in one registry write: no reader ever sees it without
        # its gates, and one write replaced one per tag (14 of them, about 0.1 s on SQLite).
        failed = candidate.failed
        tags = {
            "dagster_run_id": dagster_run_id,
            "dagster_run_url": dagster_url,
            # Who launched the training (four eyes: never this version's only approver).
            TRAINED_BY: trained_by,
            "threshold": f"{candidate.threshold:.8f}",
            "features": json.dumps(list(use_case.feature_names)),
            ENCODING_TAG: candidate.encoding.to_json(),
            "feature_service": lineage.get("feature_service", ""),
            "model_sha256": model.sha256(),
            "training_set_version": str(data.version),
            # The drift and performance reference: where the held-out windows (validation
            # and test, rows no tree was fitted on) start.
            REFERENCE_FROM_TAG: str(split.validation[EVENT_TIMESTAMP].min()),
            "gates": "failed:" + ",".join(failed) if failed else "pending",
            **dict(gate_tag(v.name, v.passed, v.description) for v in candidate.verdicts),
        }
        version = str(ml.register_model(info.model_uri, use_case.name, tags=tags).version)
    mlflow.client().update_model_version(
        use_case.name, version,
        description=f"Trained by Dagster run {dagster_url} (MLflow run {run.info.run_id}); "
        f"training set Delta version {data.version}.")
    return Registered(version, run.info.run_id, mlflow.run_url(experiment_id, run.info.run_id),
                      mlflow.model_version_url(use_case.name, version),
                      time.perf_counter() - started)
