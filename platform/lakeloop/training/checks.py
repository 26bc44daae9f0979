"""The gates that retrain or export a registered candidate: reproducibility (retrained from
its recorded data and configuration, the same bytes and predictions) and ONNX parity (the
portable export answers as the native model). Each records its verdict on the version and
marks it failed when it fails, so it can never become challenger."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from lakeloop.tracking import MlflowResource, muted_stderr
from lakeloop.training import data as training_data
from lakeloop.training.encoding import Encoding
from lakeloop.training.gates import Verdict
from lakeloop.training.registry import mark_failed, record_gate
from lakeloop.usecase import UseCase

REPRODUCIBILITY_GATE = "reproducibility_gate"
ONNX_GATE = "onnx_parity_gate"
GOLDEN_ROWS = 5000


def _record(mlflow: MlflowResource, use_case: UseCase, version: str,
            verdict: Verdict) -> Verdict:
    if not verdict.passed:
        mark_failed(mlflow, use_case.name, version, verdict.name)
    record_gate(mlflow, use_case.name, version, verdict.name, verdict.passed,
                verdict.description)
    return verdict


def reproducibility(session, mlflow: MlflowResource, use_case: UseCase, path: str,
                    version: str) -> Verdict:
    """Retrain ``version`` from its recorded training-set version and configuration."""
    from lakeloop.deployment.runtime import load_booster

    mv = mlflow.client().get_model_version(use_case.name, version)
    recorded = mlflow.setup().artifacts.load_dict(f"runs:/{mv.run_id}/training_config.json")
    data = training_data.load(session, path, int(recorded["training_set_version"]), use_case)
    resolved = training_data.resolve(use_case, recorded["requested"], len(data.split.train))
    again = training_data.fit(session, data, resolved,
                              Encoding.for_use_case(use_case, data.split.train))
    original, _ = load_booster(mlflow, use_case.name, version)
    same_bytes = again.sha256() == mv.tags["model_sha256"]
    x = again.matrix(data.split.test)
    diff = float(np.max(np.abs(again.booster.inplace_predict(x)
                               - original.inplace_predict(x)))) if len(x) else 0.0
    passed = same_bytes and diff == 0.0
    seed = recorded["requested"]["seed"]
    seed_note = ("the configuration draws a new seed every run (seed: null)" if seed is None
                 else f"seed {seed}")
    outcome = ("byte-identical model, identical predictions" if passed else
               f"model bytes {'equal' if same_bytes else 'differ'}, predictions differ by up "
               f"to {diff:.3g}")
    return _record(mlflow, use_case, version, Verdict(
        REPRODUCIBILITY_GATE, passed,
        f"v{version} retrained from training set v{data.version} with {seed_note}: {outcome}",
        {"model_version": int(version), "identical_bytes": same_bytes,
         "max_prediction_diff": diff, "test_rows": len(x),
         "retrained_sha256": again.sha256()}))


def onnx_parity(session, mlflow: MlflowResource, use_case: UseCase, path: str,
                version: str) -> Verdict:
    """Export ``version`` to ONNX, compare on a golden set of the test window, and log the
    export as the portable artifact when it agrees."""
    from lakeloop.deployment.runtime import load_booster
    from lakeloop.training.onnx_export import parity

    booster, config = load_booster(mlflow, use_case.name, version)
    mv = mlflow.client().get_model_version(use_case.name, version)
    data = training_data.load(session, path, int(mv.tags["training_set_version"]), use_case)
    golden = config["encoding"].encode_frame(data.split.test.head(GOLDEN_ROWS))
    limit = use_case.gates.onnx_max_abs_diff
    try:
        result = parity(booster, golden)
    except Exception as exc:  # a converter failure is a failed gate, not a crash
        return _record(mlflow, use_case, version, Verdict(
            ONNX_GATE, False,
            f"v{version}: the ONNX export failed: {type(exc).__name__}: {exc}"))
    passed = result.max_abs_diff <= limit
    if passed:
        mlflow.setup()
        with tempfile.TemporaryDirectory() as tmp, muted_stderr():
            onnx_path = Path(tmp) / "model.onnx"
            onnx_path.write_bytes(result.onnx_bytes)
            mlflow.client().log_artifact(mv.run_id, str(onnx_path), "onnx")
            # and beside the booster in the registered model, where serving.runtime: onnx
            # (locally, or the storage initializer of a pod) finds it
            source = mv.source or ""
            if source.startswith("models:/"):
                mlflow.client().log_model_artifact(source.removeprefix("models:/"),
                                                   str(onnx_path))
        mlflow.client().set_model_version_tag(use_case.name, version, "onnx_max_abs_diff",
                                              f"{result.max_abs_diff:.3g}")
    return _record(mlflow, use_case, version, Verdict(
        ONNX_GATE, passed,
        f"v{version}: ONNX Runtime vs native XGBoost on {result.rows} golden rows: max "
        f"|difference| {result.max_abs_diff:.3g} (at most {limit:g})",
        {"model_version": int(version), "max_abs_diff": result.max_abs_diff,
         "golden_rows": result.rows, "onnx_bytes": len(result.onnx_bytes)}))
