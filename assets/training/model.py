"""The candidate model: XGBoost trained on the training set, tracked and registered in MLflow,
judged by blocking gates (recall at the decision threshold, fairness across groups)."""

import hashlib
import json
import subprocess
import time
from importlib import metadata as importlib_metadata

import dagster as dg
from pydantic import Field

from lakeloop import gates as gate_checks
from lakeloop import keys
from lakeloop.gates import FAIRNESS_GATE, PERFORMANCE_GATE
from lakeloop.lakehouse import LakehouseResource, commit_metadata, latest_version, read_table
from lakeloop.settings import PROJECT_ROOT
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHALLENGER, MlflowResource, muted_stderr
from lakeloop.usecase import UseCase

LABEL = "label"
EVENT_TIMESTAMP = "event_timestamp"
PIP_REQUIREMENTS = ["xgboost==3.2.0"]


class TrainingConfig(dg.Config):
    """Run-time training options; hyperparameters left empty take the use case's defaults."""

    device: str = Field(default="auto", description="auto (CUDA when present), cpu or cuda")
    max_depth: int | None = None
    learning_rate: float | None = None
    num_boost_round: int | None = None
    seed: int | None = None


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


def _fairness_table(reports) -> str:
    lines = ["| attribute | group | rows | positives | approval rate | TPR | judged |",
             "|---|---|---:|---:|---:|---:|---|"]
    for rep in reports:
        for group, row in rep.groups.iterrows():
            tpr = "" if row["tpr"] != row["tpr"] else f"{row['tpr']:.3f}"
            judged = "no (too few rows)" if group in rep.ignored_groups else "yes"
            lines.append(f"| {rep.attribute} | {group} | {int(row['rows'])} | "
                         f"{int(row['positives'])} | {row['approval_rate']:.3f} | {tpr} | "
                         f"{judged} |")
    return "\n".join(lines)


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    training_set_key = keys.key(use_case, keys.TRAINING, "training_set")
    model_key = keys.key(use_case, keys.TRAINING, "candidate_model")
    gates = use_case.gates

    @dg.asset(
        key=model_key,
        description="XGBoost candidate trained on the training set, logged and registered in "
        "MLflow; blocking gates decide whether it may be deployed.",
        deps=[training_set_key],
        check_specs=[
            dg.AssetCheckSpec(PERFORMANCE_GATE, asset=model_key, blocking=True,
                              description=f"recall >= {gates.recall_min} and AUC >= "
                              f"{gates.auc_min} on the held-out latest time window"),
            dg.AssetCheckSpec(FAIRNESS_GATE, asset=model_key, blocking=True,
                              description=f"approval-rate ratio >= {gates.fairness_ratio_min} "
                              f"and TPR gap <= {gates.tpr_gap_max} for every protected "
                              "attribute"),
        ],
        **keys.common(use_case, keys.TRAINING, "xgboost", "mlflow"),
    )
    def candidate_model(context: dg.AssetExecutionContext, config: TrainingConfig,
                        spark: SparkResource, lakehouse: LakehouseResource,
                        mlflow: MlflowResource):
        from lakeloop import training

        session = spark.session()
        ts_path = lakehouse.path(training_set_key)
        ts_version = latest_version(session, ts_path)
        lineage = commit_metadata(session, ts_path, ts_version)
        columns = [*use_case.feature_names, LABEL, EVENT_TIMESTAMP,
                   *use_case.protected_attributes, use_case.events.key, "_snapshot_hash"]
        frame = read_table(session, ts_path, ts_version).select(*columns).toPandas()
        snapshots = sorted(frame.pop("_snapshot_hash").dropna().unique())

        model_cfg = use_case.model
        seed = config.seed if config.seed is not None else model_cfg.seed
        params = dict(model_cfg.params)
        for name in ("max_depth", "learning_rate"):
            if getattr(config, name) is not None:
                params[name] = getattr(config, name)
        rounds = config.num_boost_round or model_cfg.num_boost_round
        device = training.resolve_device(config.device)
        xgb_params = training.booster_params(params, seed, device)

        split = training.time_split(frame, EVENT_TIMESTAMP, model_cfg.validation_fraction,
                                    model_cfg.test_fraction)
        started = time.perf_counter()
        model = training.train(split, list(use_case.feature_names), LABEL, xgb_params, rounds,
                               model_cfg.early_stopping_rounds)
        train_seconds = time.perf_counter() - started
        preds = {name: model.predict(getattr(split, name))
                 for name in ("train", "validation", "test")}
        labels = {name: getattr(split, name)[LABEL].to_numpy()
                  for name in ("train", "validation", "test")}
        threshold = training.choose_threshold(
            labels["validation"], preds["validation"],
            min(gates.recall_min + model_cfg.threshold_margin, 1.0))
        metrics = {name: training.classification_metrics(labels[name], preds[name], threshold)
                   for name in preds}
        fair = training.fairness(split.test, preds["test"], labels["test"], threshold,
                                 use_case.protected_attributes,
                                 min_group_rows=gates.fairness_min_group_rows,
                                 min_group_positives=gates.fairness_min_group_positives)
        test = metrics["test"]
        verdicts = [gate_checks.performance(test, threshold, gates),
                    gate_checks.fairness(fair, gates)]

        ml = mlflow.setup()
        experiment_id = mlflow.experiment(use_case.name)
        model_sha = model.sha256()
        snapshot_digest = hashlib.sha256("".join(snapshots).encode()).hexdigest()
        with muted_stderr(), ml.start_run(experiment_id=experiment_id,
                                              run_name=f"{use_case.name}-{context.run.run_id[:8]}"
                                              ) as run:
            ml.log_params({**{k: v for k, v in xgb_params.items() if k != "eval_metric"},
                               "num_boost_round": rounds, "best_iteration": model.best_iteration,
                               "decision_threshold": round(threshold, 6)})
            ml.log_metrics({f"{split_name}_{k}": v for split_name, m in metrics.items()
                                for k, v in m.items() if v == v})
            ml.log_metrics({f"fairness_{f.attribute}_approval_ratio": f.approval_ratio
                                for f in fair})
            ml.log_metrics({f"fairness_{f.attribute}_tpr_gap": f.tpr_gap for f in fair})
            ml.log_metric("train_seconds", train_seconds)
            ml.set_tags({
                "lakeloop.use_case": use_case.name,
                "lakeloop.dagster_run_id": context.run.run_id,
                "lakeloop.training_set_version": str(ts_version),
                "lakeloop.source_versions": json.dumps(lineage.get("source_versions", {})),
                "lakeloop.feature_service": lineage.get("feature_service", ""),
                "lakeloop.snapshots": str(len(snapshots)),
                "lakeloop.snapshots_sha256": snapshot_digest,
                "lakeloop.git_commit": _git_commit(),
                "lakeloop.device": device,
                "lakeloop.model_sha256": model_sha,
            })
            ml.log_dict({"snapshot_sha256": snapshots,
                             "source_versions": lineage.get("source_versions", {}),
                             "training_set_version": ts_version,
                             "packages": _versions("xgboost", "pyspark", "delta-spark", "feast",
                                                   "mlflow", "dagster", "numpy", "pandas")},
                            "lineage.json")
            ml.log_dict({"features": list(use_case.feature_names),
                             "threshold": threshold, "use_case": use_case.name,
                             "label_positive": str(use_case.label.positive)},
                            "serving/config.json")
            sample = split.test[list(use_case.feature_names)].head(5).astype("float32")
            signature = ml.models.infer_signature(sample, model.predict(sample))
            info = ml.xgboost.log_model(
                model.booster, name="model", model_format="ubj", signature=signature,
                input_example=sample, registered_model_name=use_case.name,
                pip_requirements=PIP_REQUIREMENTS)
        version = str(info.registered_model_version)
        client = mlflow.client()
        gates_passed = all(v.passed for v in verdicts)
        for tag, value in {
            "dagster_run_id": context.run.run_id,
            "threshold": f"{threshold:.8f}",
            "features": json.dumps(list(use_case.feature_names)),
            "model_sha256": model_sha,
            "training_set_version": str(ts_version),
            "gates": "passed" if gates_passed else "failed",
        }.items():
            client.set_model_version_tag(use_case.name, version, tag, value)
        if gates_passed:
            client.set_registered_model_alias(use_case.name, CHALLENGER, version)
        run_url = mlflow.run_url(experiment_id, run.info.run_id)
        context.log.info(f"model {use_case.name} v{version}: recall {test['recall']:.3f}, "
                         f"AUC {test['auc']:.3f}, gates {'passed' if gates_passed else 'failed'}")

        yield dg.MaterializeResult(metadata={
            "model_name": dg.MetadataValue.text(use_case.name),
            "model_version": dg.MetadataValue.int(int(version)),
            "mlflow_run": dg.MetadataValue.url(run_url),
            "model_version_url": dg.MetadataValue.url(
                mlflow.model_version_url(use_case.name, version)),
            "test_recall": dg.MetadataValue.float(round(test["recall"], 4)),
            "test_auc": dg.MetadataValue.float(round(test["auc"], 4)),
            "test_precision": dg.MetadataValue.float(round(test["precision"], 4)),
            "test_approval_rate": dg.MetadataValue.float(round(test["approval_rate"], 4)),
            "decision_threshold": dg.MetadataValue.float(round(threshold, 6)),
            "best_iteration": dg.MetadataValue.int(model.best_iteration),
            "training_rows": dg.MetadataValue.int(len(split.train)),
            "time_windows": dg.MetadataValue.json(split.bounds(EVENT_TIMESTAMP)),
            "training_set_version": dg.MetadataValue.int(ts_version),
            "source_versions": dg.MetadataValue.json(lineage.get("source_versions", {})),
            "device": dg.MetadataValue.text(device),
            "train_seconds": dg.MetadataValue.float(round(train_seconds, 3)),
            "model_sha256": dg.MetadataValue.text(model_sha),
        })
        for verdict in verdicts:
            metadata = dict(verdict.metadata)
            if verdict.name == FAIRNESS_GATE:
                metadata["groups"] = dg.MetadataValue.md(_fairness_table(fair))
            yield dg.AssetCheckResult(check_name=verdict.name, passed=verdict.passed,
                                      description=verdict.description, metadata=metadata)

    return [candidate_model]
