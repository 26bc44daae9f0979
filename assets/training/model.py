"""The candidate model: XGBoost trained on the training set, tracked and registered in MLflow,
judged by blocking gates: performance, fairness and no regression in the asset itself;
reproducibility and ONNX parity as separate checks that retrain and export it."""

import base64
import hashlib
import io
import json
import math
import random
import subprocess
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic

from lakeloop import gates as gate_checks
from lakeloop import keys
from lakeloop.encoding import ENCODING_TAG, Encoding
from lakeloop.evidence import Evidence, number
from lakeloop.gates import FAIRNESS_GATE, PERFORMANCE_GATE, REGRESSION_GATE
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import (
    LakehouseResource,
    commit_metadata,
    latest_version,
    read_pandas,
    read_table,
)
from lakeloop.monitoring import drift as drift_lib
from lakeloop.monitoring.reference import REFERENCE_FROM_TAG
from lakeloop.promotion import record_gate
from lakeloop.settings import PROJECT_ROOT
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHAMPION, MlflowResource, muted_stderr
from lakeloop.usecase import UseCase

REPRODUCIBILITY_GATE = "reproducibility_gate"
ONNX_GATE = "onnx_parity_gate"
LABEL = "label"
EVENT_TIMESTAMP = "event_timestamp"
PIP_REQUIREMENTS = ["xgboost==3.2.0"]
HYPERPARAMETERS = {"max_depth": int, "learning_rate": float, "subsample": float,
                   "colsample_bytree": float, "min_child_weight": float}
GOLDEN_ROWS = 5000


def training_config_class(use_case: UseCase) -> type[dg.Config]:
    """Run config for the launchpad, pre-filled with the use case's defaults."""
    model = use_case.model
    fields: dict[str, Any] = {
        "device": (str, pydantic.Field(model.device, description="auto, cpu or cuda")),
        "engine": (str, pydantic.Field(model.engine, description="auto, xgboost or spark")),
        "seed": (int | None, pydantic.Field(model.seed, description="null: a new seed")),
        "num_boost_round": (int, model.num_boost_round),
        "early_stopping_rounds": (int, model.early_stopping_rounds),
    }
    for name, kind in HYPERPARAMETERS.items():
        if name in model.params:
            fields[name] = (kind, kind(model.params[name]))
    return pydantic.create_model(f"{use_case.name.title().replace('_', '')}TrainingConfig",
                                 __base__=dg.Config, **fields)


def resolve(use_case: UseCase, requested: dict[str, Any], rows: int) -> dict[str, Any]:
    """The exact training configuration: seed, device and engine decided, params merged."""
    from lakeloop import training

    seed = requested["seed"] if requested["seed"] is not None else random.randrange(2**31)
    device = training.resolve_device(requested["device"])
    engine = requested["engine"]
    if engine == "auto":
        engine = "spark" if rows >= use_case.model.spark_min_rows else "xgboost"
    params = {**use_case.model.params,
              **{k: requested[k] for k in HYPERPARAMETERS if k in requested}}
    return {"params": training.booster_params(params, seed, device), "seed": seed,
            "device": device, "engine": engine,
            "num_boost_round": requested["num_boost_round"],
            "early_stopping_rounds": requested["early_stopping_rounds"]}


def load_split(session, path, version: int, use_case: UseCase):
    """The training set at ``version`` as a time split, with only the columns training and
    the gates use (identifiers and hashes stay in Spark)."""
    from lakeloop import training

    columns = [*use_case.feature_names, LABEL, EVENT_TIMESTAMP, *use_case.protected_attributes]
    frame = read_pandas(session, path, version, columns)
    split = training.time_split(frame, EVENT_TIMESTAMP, use_case.model.validation_fraction,
                                use_case.model.test_fraction)
    return frame, split


def snapshot_hashes(session, path, version: int) -> list[str]:
    rows = read_table(session, path, version).select("_snapshot_hash").distinct().collect()
    return sorted(r[0] for r in rows if r[0])


def fit(session, path, version: int, split, use_case: UseCase, resolved: dict[str, Any],
        encoding: Encoding):
    from lakeloop import training

    if resolved["engine"] == "spark":
        from pyspark.sql import functions as F

        table = read_table(session, path, version)
        train_end = split.validation[EVENT_TIMESTAMP].min()
        test_start = split.test[EVENT_TIMESTAMP].min()
        train_df = table.where(F.col(EVENT_TIMESTAMP) < F.lit(train_end))
        val_df = table.where((F.col(EVENT_TIMESTAMP) >= F.lit(train_end))
                             & (F.col(EVENT_TIMESTAMP) < F.lit(test_start)))
        return training.train_spark(train_df, val_df, encoding, LABEL, resolved["params"],
                                    resolved["num_boost_round"],
                                    resolved["early_stopping_rounds"])
    return training.train(split, encoding, LABEL, resolved["params"],
                          resolved["num_boost_round"], resolved["early_stopping_rounds"])


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, check=True,
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def fairness_table(reports) -> str:
    lines = ["| attribute | group | rows | positives | approval rate | TPR | judged |",
             "|---|---|---:|---:|---:|---:|---|"]
    for rep in reports:
        for group, row in rep.groups.iterrows():
            tpr = number(row["tpr"], missing="")
            judged = ("yes" if row["tpr_judged"] else
                      f"rates only ({int(row['positives'])} positives)" if row["rate_judged"]
                      else f"no ({int(row['rows'])} rows)")
            lines.append(f"| {rep.attribute} | {group} | {int(row['rows'])} | "
                         f"{int(row['positives'])} | {row['approval_rate']:.3f} | {tpr} | "
                         f"{judged} |")
    return "\n".join(lines)


def _render(figs: dict, dpi: int = 100) -> dict[str, bytes]:
    out = {}
    for name, fig in figs.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        out[name] = buffer.getvalue()
    return out


def _close(figs: dict) -> None:
    import matplotlib.pyplot as plt

    for fig in figs.values():
        plt.close(fig)


def _inline_png(fig, dpi: int = 60) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode()


def candidate_version(context, model_key: dg.AssetKey) -> str:
    event = context.instance.get_latest_materialization_event(model_key)
    if event is None or event.asset_materialization is None:
        raise dg.Failure(f"{model_key.to_user_string()} has not been materialised")
    return str(event.asset_materialization.metadata["model_version"].value)


def _mark_failed(mlflow: MlflowResource, name: str, version: str, gate: str) -> None:
    client = mlflow.client()
    current = client.get_model_version(name, version).tags.get("gates", "pending")
    failed = sorted({*current.removeprefix("failed:").split(","), gate} - {"pending", ""})
    client.set_model_version_tag(name, version, "gates", "failed:" + ",".join(failed))


def build(use_case: UseCase) -> list:
    training_set_key = keys.key(use_case, keys.TRAINING, "training_set")
    model_key = keys.key(use_case, keys.TRAINING, "candidate_model")
    gates = use_case.gates
    TrainingConfig = training_config_class(use_case)  # noqa: N806

    @dg.asset(
        key=model_key,
        description="XGBoost candidate trained on the training set, tracked and registered in "
        "MLflow.\n\nBlocking gates decide whether it may become challenger.",
        deps=[training_set_key],
        check_specs=[
            dg.AssetCheckSpec(PERFORMANCE_GATE, asset=model_key, blocking=True,
                              description=f"recall >= {gates.recall_min}, AUC >= "
                              f"{gates.auc_min} on the held-out latest time window"),
            dg.AssetCheckSpec(FAIRNESS_GATE, asset=model_key, blocking=True,
                              description=f"approval-rate ratio >= {gates.fairness_ratio_min} "
                              f"and TPR gap <= {gates.tpr_gap_max} for every protected "
                              "attribute"),
            dg.AssetCheckSpec(REGRESSION_GATE, asset=model_key, blocking=True,
                              description="AUC not below the champion's on the same window by "
                              f"more than {gates.regression_tolerance}"),
        ],
        **keys.common(use_case, keys.TRAINING, "xgboost", "mlflow"),
        op_tags=pod_tags(use_case, "train"),
    )
    def candidate_model(context: dg.AssetExecutionContext, config: TrainingConfig,
                        spark: SparkResource, lakehouse: LakehouseResource,
                        mlflow: MlflowResource):
        import pandas as pd

        from lakeloop import training
        from lakeloop.deployment import load_booster

        session = spark.session()
        ts_path = lakehouse.table(training_set_key)
        ts_version = latest_version(session, ts_path)
        lineage = commit_metadata(session, ts_path, ts_version)
        load_started = time.perf_counter()
        _, split = load_split(session, ts_path, ts_version, use_case)
        load_seconds = time.perf_counter() - load_started
        snapshots = snapshot_hashes(session, ts_path, ts_version)
        requested = config.model_dump()
        resolved = resolve(use_case, requested, len(split.train))
        encoding = Encoding.for_use_case(use_case, split.train)

        started = time.perf_counter()
        model = fit(session, ts_path, ts_version, split, use_case, resolved, encoding)
        train_seconds = time.perf_counter() - started
        preds = {name: model.predict(getattr(split, name))
                 for name in ("train", "validation", "test")}
        labels = {name: getattr(split, name)[LABEL].to_numpy()
                  for name in ("train", "validation", "test")}
        evidence = {name: Evidence.of(values) for name, values in labels.items()}
        if evidence["validation"].positives == 0:
            raise dg.Failure(
                f"not enough evidence to train: the validation window "
                f"({split.bounds(EVENT_TIMESTAMP)['validation']}) holds "
                f"{evidence['validation']}, so no decision threshold can be chosen; "
                f"{gate_checks.MORE_EVIDENCE}")
        threshold = training.choose_threshold(
            labels["validation"], preds["validation"],
            min(gates.recall_min + use_case.model.threshold_margin, 1.0))
        metrics = {name: training.classification_metrics(labels[name], preds[name], threshold)
                   for name in preds}
        fair = training.fairness(split.test, preds["test"], labels["test"], threshold,
                                 use_case.protected_attributes,
                                 min_group_rows=gates.fairness_min_group_rows,
                                 min_group_positives=gates.fairness_min_group_positives)
        test = metrics["test"]
        # The reference's own noise: its two windows judged against each other as a day
        # against the reference will be. Drift between them would make every report noisy.
        reference_check = drift_lib.judge(
            split.validation.assign(probability=preds["validation"]),
            split.test.assign(probability=preds["test"]),
            drift_lib.plan_columns(split.validation, list(use_case.feature_names),
                                   use_case.categorical_features),
            use_case.monitoring.drift, ds="test window")
        champion = mlflow.version_by_alias(use_case.name, CHAMPION)
        champion_auc = None
        if champion is not None:
            booster, cfg = load_booster(mlflow, use_case.name, str(champion.version))
            x = cfg["encoding"].encode_frame(split.test)
            champion_auc = training.classification_metrics(
                labels["test"], booster.inplace_predict(x), float(cfg["threshold"]))["auc"]
        verdicts = [gate_checks.performance(test, threshold, gates, evidence=evidence["test"],
                                            validation=evidence["validation"]),
                    gate_checks.fairness(fair, gates),
                    gate_checks.no_regression(test["auc"], champion_auc,
                                              None if champion is None else str(champion.version),
                                              gates, evidence["test"])]

        explain_started = time.perf_counter()
        shap = training.shap_importance(model, split.test)
        figs = training.figures(model, labels["test"], preds["test"], threshold, shap)
        pngs = _render(figs)  # rendering is explaining, not logging
        images = {n: _inline_png(figs[n]) for n in ("plots/roc.png",
                                                    "plots/confusion_matrix.png")}
        _close(figs)
        explain_seconds = time.perf_counter() - explain_started

        logging_started = time.perf_counter()
        ml = mlflow.setup()
        experiment_id = mlflow.experiment(use_case.name)
        model_sha = model.sha256()
        snapshot_digest = hashlib.sha256("".join(snapshots).encode()).hexdigest()
        dagster_url = f"{mlflow.dagster_ui_url}/runs/{context.run.run_id}"
        with muted_stderr(), ml.start_run(experiment_id=experiment_id,
                                          run_name=f"{use_case.name}-{context.run.run_id[:8]}"
                                          ) as run:
            ml.log_params({**{k: v for k, v in resolved["params"].items()
                              if k != "eval_metric"},
                           "num_boost_round": resolved["num_boost_round"],
                           "early_stopping_rounds": resolved["early_stopping_rounds"],
                           "engine": resolved["engine"], "best_iteration": model.best_iteration,
                           "decision_threshold": round(threshold, 6)})
            ml.log_metrics({f"{split_name}_{k}": v for split_name, m in metrics.items()
                            for k, v in m.items() if v == v})
            ml.log_metrics({f"fairness_{f.attribute}_approval_ratio": f.approval_ratio
                            for f in fair if f.approval_ratio is not None})
            ml.log_metrics({f"fairness_{f.attribute}_tpr_gap": f.tpr_gap for f in fair
                            if f.tpr_gap is not None})
            ml.log_metric("train_seconds", train_seconds)
            ml.set_tags({
                "lakeloop.use_case": use_case.name,
                "lakeloop.dagster_run_id": context.run.run_id,
                "lakeloop.dagster_run_url": dagster_url,
                "lakeloop.training_set_version": str(ts_version),
                "lakeloop.source_versions": json.dumps(lineage.get("source_versions", {})),
                "lakeloop.feature_service": lineage.get("feature_service", ""),
                "lakeloop.labels_as_of": str(lineage.get("labels_as_of")),
                "lakeloop.maturity_days": str(use_case.label.maturity_days),
                "lakeloop.snapshots": str(len(snapshots)),
                "lakeloop.snapshots_sha256": snapshot_digest,
                "lakeloop.git_commit": _git_commit(),
                "lakeloop.device": resolved["device"],
                "lakeloop.engine": resolved["engine"],
                "lakeloop.model_sha256": model_sha,
            })
            ml.log_dict({"snapshot_sha256": snapshots,
                         "source_versions": lineage.get("source_versions", {}),
                         "training_set_version": ts_version,
                         "packages": _versions("xgboost", "pyspark", "delta-spark", "feast",
                                               "mlflow", "dagster", "numpy", "pandas",
                                               "onnx", "onnxmltools", "onnxruntime")},
                        "lineage.json")
            ml.log_dict({"requested": requested, "resolved": resolved,
                         "training_set_version": ts_version}, "training_config.json")
            ml.log_dict({"features": list(use_case.feature_names), "threshold": threshold,
                         "encoding": encoding.to_dict(), "use_case": use_case.name,
                         "feature_service": lineage.get("feature_service", ""),
                         "label_positive": str(use_case.label.positive)},
                        "serving/config.json")
            ml.log_dict({"mean_abs_shap": dict(zip(shap[0]["feature"],
                                                   map(float, shap[0]["mean_abs_shap"]),
                                                   strict=True))}, "shap_importance.json")
            with tempfile.TemporaryDirectory() as tmp:
                for name, data in pngs.items():
                    (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                    (Path(tmp) / name).write_bytes(data)
                ml.log_artifacts(tmp)
            ml.log_text(fairness_table(fair), "fairness.md")
            head = split.test.head(5)
            sample = pd.DataFrame(model.matrix(head), columns=encoding.columns)
            signature = ml.models.infer_signature(sample, model.predict(head))
            info = ml.xgboost.log_model(
                model.booster, name="model", model_format="ubj", signature=signature,
                input_example=sample, registered_model_name=use_case.name,
                pip_requirements=PIP_REQUIREMENTS)
        version = str(info.registered_model_version)
        client = mlflow.client()
        client.update_model_version(
            use_case.name, version,
            description=f"Trained by Dagster run {dagster_url} (MLflow run "
            f"{run.info.run_id}); training set Delta version {ts_version}.")
        passed = all(v.passed for v in verdicts)
        failed = [v.name for v in verdicts if not v.passed]
        reference_from = str(split.validation[EVENT_TIMESTAMP].min())
        reference_rows = len(split.validation) + len(split.test)
        for tag, value in {
            "dagster_run_id": context.run.run_id,
            "dagster_run_url": dagster_url,
            "threshold": f"{threshold:.8f}",
            "features": json.dumps(list(use_case.feature_names)),
            ENCODING_TAG: encoding.to_json(),
            "feature_service": lineage.get("feature_service", ""),
            "model_sha256": model_sha,
            "training_set_version": str(ts_version),
            # The drift and performance reference: the held-out windows (validation and
            # test), rows no tree was fitted on.
            REFERENCE_FROM_TAG: reference_from,
            "gates": "pending" if passed else "failed:" + ",".join(failed),
        }.items():
            client.set_model_version_tag(use_case.name, version, tag, value)
        for verdict in verdicts:
            record_gate(mlflow, use_case.name, version, verdict.name, verdict.passed,
                        verdict.description)
        logging_seconds = time.perf_counter() - logging_started
        run_url = mlflow.run_url(experiment_id, run.info.run_id)
        context.log.info(f"model {use_case.name} v{version}: recall {number(test['recall'])}, "
                         f"AUC {number(test['auc'])} on {evidence['test']}; "
                         f"{resolved['engine']} on {resolved['device']}")
        yield dg.MaterializeResult(metadata={
            **{f"test_{name}": dg.MetadataValue.float(round(float(test[name]), 4))
               for name in ("recall", "auc", "precision", "f1", "approval_rate")
               if math.isfinite(test[name])},
            "test_positives": dg.MetadataValue.int(evidence["test"].positives),
            "test_negatives": dg.MetadataValue.int(evidence["test"].negatives),
            "validation_positives": dg.MetadataValue.int(evidence["validation"].positives),
            "reference_from": dg.MetadataValue.text(reference_from),
            "reference_check": dg.MetadataValue.text(
                "validation vs test window: " + reference_check.explanation().split(": ", 1)[1]),
            "reference_rows": dg.MetadataValue.int(reference_rows),
            "model_name": dg.MetadataValue.text(use_case.name),
            "model_version": dg.MetadataValue.int(int(version)),
            "mlflow_run": dg.MetadataValue.url(run_url),
            "model_version_url": dg.MetadataValue.url(
                mlflow.model_version_url(use_case.name, version)),
            "decision_threshold": dg.MetadataValue.float(round(threshold, 6)),
            "best_iteration": dg.MetadataValue.int(model.best_iteration),
            "training_rows": dg.MetadataValue.int(len(split.train)),
            "time_windows": dg.MetadataValue.json(split.bounds(EVENT_TIMESTAMP)),
            "training_set_version": dg.MetadataValue.int(ts_version),
            "source_versions": dg.MetadataValue.json(lineage.get("source_versions", {})),
            "feature_service": dg.MetadataValue.text(lineage.get("feature_service", "")),
            "device": dg.MetadataValue.text(resolved["device"]),
            "engine": dg.MetadataValue.text(resolved["engine"]),
            "seed": dg.MetadataValue.int(resolved["seed"]),
            "train_seconds": dg.MetadataValue.float(round(train_seconds, 3)),
            "load_seconds": dg.MetadataValue.float(round(load_seconds, 3)),
            "mlflow_logging_seconds": dg.MetadataValue.float(round(logging_seconds, 3)),
            "explain_seconds": dg.MetadataValue.float(round(explain_seconds, 3)),
            "model_sha256": dg.MetadataValue.text(model_sha),
            "fairness": dg.MetadataValue.md(fairness_table(fair)),
            "roc_curve": dg.MetadataValue.md(
                f"![ROC curve](data:image/png;base64,{images['plots/roc.png']})"),
            "confusion_matrix": dg.MetadataValue.md(
                f"![confusion](data:image/png;base64,{images['plots/confusion_matrix.png']})"),
        })
        for verdict in verdicts:
            metadata = dict(verdict.metadata)
            if verdict.name == FAIRNESS_GATE:
                metadata["groups"] = dg.MetadataValue.md(fairness_table(fair))
            yield dg.AssetCheckResult(check_name=verdict.name, passed=verdict.passed,
                                      description=verdict.description, metadata=metadata)

    @dg.asset_check(asset=model_key, name=REPRODUCIBILITY_GATE, blocking=True,
                    description="retraining on the same data versions with the same seed and "
                    "configuration gives a byte-identical model and identical predictions")
    def reproducibility_gate(context: dg.AssetCheckExecutionContext, spark: SparkResource,
                             lakehouse: LakehouseResource,
                             mlflow: MlflowResource) -> dg.AssetCheckResult:
        import numpy as np

        version = candidate_version(context, model_key)
        client = mlflow.client()
        mv = client.get_model_version(use_case.name, version)
        ml = mlflow.setup()
        recorded = ml.artifacts.load_dict(f"runs:/{mv.run_id}/training_config.json")
        session = spark.session()
        ts_path = lakehouse.table(training_set_key)
        ts_version = int(recorded["training_set_version"])
        _, split = load_split(session, ts_path, ts_version, use_case)
        resolved = resolve(use_case, recorded["requested"], len(split.train))
        again = fit(session, ts_path, ts_version, split, use_case, resolved,
                    Encoding.for_use_case(use_case, split.train))
        from lakeloop.deployment import load_booster

        original, _ = load_booster(mlflow, use_case.name, version)
        same_bytes = again.sha256() == mv.tags["model_sha256"]
        x = again.matrix(split.test)
        diff = float(np.max(np.abs(again.booster.inplace_predict(x)
                                   - original.inplace_predict(x)))) if len(x) else 0.0
        passed = same_bytes and diff == 0.0
        if not passed:
            _mark_failed(mlflow, use_case.name, version, REPRODUCIBILITY_GATE)
        seed_note = ("the configuration draws a new seed every run (seed: null)"
                     if recorded["requested"]["seed"] is None else
                     f"seed {recorded['requested']['seed']}")
        description = (f"v{version} retrained from training set v{ts_version} with "
                       f"{seed_note}: " + ("byte-identical model, identical predictions"
                                           if passed else
                                           f"model bytes {'equal' if same_bytes else 'differ'}, "
                                           f"predictions differ by up to {diff:.3g}"))
        record_gate(mlflow, use_case.name, version, REPRODUCIBILITY_GATE, passed, description)
        return dg.AssetCheckResult(
            passed=passed,
            description=description,
            metadata={"model_version": int(version), "identical_bytes": same_bytes,
                      "max_prediction_diff": diff, "test_rows": len(x),
                      "retrained_sha256": again.sha256()})

    @dg.asset_check(asset=model_key, name=ONNX_GATE, blocking=True,
                    description="ONNX export gives the native model's probabilities within "
                    f"{gates.onnx_max_abs_diff:g} on a golden set; logged as the portable "
                    "artifact")
    def onnx_parity_gate(context: dg.AssetCheckExecutionContext, spark: SparkResource,
                         lakehouse: LakehouseResource,
                         mlflow: MlflowResource) -> dg.AssetCheckResult:

        from lakeloop.onnx_export import parity

        version = candidate_version(context, model_key)
        from lakeloop.deployment import load_booster

        booster, cfg = load_booster(mlflow, use_case.name, version)
        mv = mlflow.client().get_model_version(use_case.name, version)
        _, split = load_split(spark.session(), lakehouse.table(training_set_key),
                              int(mv.tags["training_set_version"]), use_case)
        golden = cfg["encoding"].encode_frame(split.test.head(GOLDEN_ROWS))
        try:
            result = parity(booster, golden)
        except Exception as exc:  # a converter failure is a failed gate, not a crash
            description = f"v{version}: the ONNX export failed: {type(exc).__name__}: {exc}"
            _mark_failed(mlflow, use_case.name, version, ONNX_GATE)
            record_gate(mlflow, use_case.name, version, ONNX_GATE, False, description)
            return dg.AssetCheckResult(passed=False, description=description)
        passed = result.max_abs_diff <= gates.onnx_max_abs_diff
        if passed:
            ml = mlflow.setup()
            with tempfile.TemporaryDirectory() as tmp, muted_stderr():
                path = Path(tmp) / "model.onnx"
                path.write_bytes(result.onnx_bytes)
                ml.MlflowClient(mlflow.tracking_uri).log_artifact(mv.run_id, str(path), "onnx")
            mlflow.client().set_model_version_tag(use_case.name, version, "onnx_max_abs_diff",
                                                  f"{result.max_abs_diff:.3g}")
        else:
            _mark_failed(mlflow, use_case.name, version, ONNX_GATE)
        description = (f"v{version}: ONNX Runtime vs native XGBoost on {result.rows} golden "
                       f"rows: max |difference| {result.max_abs_diff:.3g} (at most "
                       f"{gates.onnx_max_abs_diff:g})")
        record_gate(mlflow, use_case.name, version, ONNX_GATE, passed, description)
        return dg.AssetCheckResult(
            passed=passed,
            description=description,
            metadata={"model_version": int(version), "max_abs_diff": result.max_abs_diff,
                      "golden_rows": result.rows, "onnx_bytes": len(result.onnx_bytes)})

    return [candidate_model, reproducibility_gate, onnx_parity_gate]

