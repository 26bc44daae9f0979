"""The candidate model: XGBoost trained on the training set, tracked and registered in MLflow,
judged by blocking gates: performance, fairness and no regression in the asset itself;
reproducibility and ONNX parity as separate checks that retrain and export it."""

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import pydantic

from lakeloop import keys
from lakeloop.deployment.approvals import trainer
from lakeloop.governance import notices, record
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import LakehouseResource, commit_metadata, latest_version
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHAMPION, MlflowResource
from lakeloop.training import checks, data
from lakeloop.training.candidate import (
    Candidate,
    Champion,
    NotEnoughEvidence,
    fairness_table,
    train_candidate,
)
from lakeloop.training.data import EVENT_TIMESTAMP, HYPERPARAMETERS
from lakeloop.training.explain import load_plotting
from lakeloop.training.gates import FAIRNESS_GATE, PERFORMANCE_GATE, REGRESSION_GATE, Verdict
from lakeloop.training.registry import Registered, register
from lakeloop.usecase import UseCase

REPRODUCIBILITY_GATE, ONNX_GATE = checks.REPRODUCIBILITY_GATE, checks.ONNX_GATE


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


def champion_of(mlflow: MlflowResource, use_case: UseCase) -> Champion | None:
    from lakeloop.deployment.runtime import load_booster

    current = mlflow.version_by_alias(use_case.name, CHAMPION)
    if current is None:
        return None
    booster, config = load_booster(mlflow, use_case.name, str(current.version))
    return Champion(str(current.version), booster, config["encoding"], config["threshold"])


def candidate_version(context, model_key: dg.AssetKey) -> str:
    event = context.instance.get_latest_materialization_event(model_key)
    if event is None or event.asset_materialization is None:
        raise dg.Failure(f"{model_key.to_user_string()} has not been materialised")
    return str(event.asset_materialization.metadata["model_version"].value)


def metadata(use_case: UseCase, candidate: Candidate, registered: Registered,
             training: data.TrainingData) -> dict[str, dg.MetadataValue]:
    """What a person asks of a candidate, as the UI shows it (numbers plot over runs)."""
    test, evidence, split = candidate.test, candidate.evidence, training.split
    lineage = training.lineage
    return {
        **{f"test_{name}": dg.MetadataValue.float(round(float(test[name]), 4))
           for name in ("recall", "auc", "precision", "f1", "approval_rate")
           if math.isfinite(test[name])},
        "test_positives": dg.MetadataValue.int(evidence["test"].positives),
        "test_negatives": dg.MetadataValue.int(evidence["test"].negatives),
        "validation_positives": dg.MetadataValue.int(evidence["validation"].positives),
        "reference_from": dg.MetadataValue.text(str(split.validation[EVENT_TIMESTAMP].min())),
        "reference_rows": dg.MetadataValue.int(len(split.validation) + len(split.test)),
        "reference_check": dg.MetadataValue.text(
            "validation vs test window: "
            + candidate.reference_check.explanation().split(": ", 1)[1]),
        "model_name": dg.MetadataValue.text(use_case.name),
        "model_version": dg.MetadataValue.int(int(registered.version)),
        "mlflow_run": dg.MetadataValue.url(registered.run_url),
        "model_version_url": dg.MetadataValue.url(registered.version_url),
        "decision_threshold": dg.MetadataValue.float(round(candidate.threshold, 6)),
        "best_iteration": dg.MetadataValue.int(candidate.model.best_iteration),
        "training_rows": dg.MetadataValue.int(len(split.train)),
        "time_windows": dg.MetadataValue.json(split.bounds(EVENT_TIMESTAMP)),
        "training_set_version": dg.MetadataValue.int(training.version),
        "source_versions": dg.MetadataValue.json(lineage.get("source_versions", {})),
        "feature_service": dg.MetadataValue.text(lineage.get("feature_service", "")),
        # The chain back to the data in one place; `lakeloop trace` resolves every link.
        "lineage": dg.MetadataValue.json({
            "training_set_version": training.version,
            "read": lineage.get("source_versions", {}),
            "raw_snapshots": len(training.snapshots),
            "trace": f"lakeloop trace --model {registered.version} {use_case.name}"}),
        "device": dg.MetadataValue.text(candidate.resolved["device"]),
        "engine": dg.MetadataValue.text(candidate.resolved["engine"]),
        "seed": dg.MetadataValue.int(candidate.resolved["seed"]),
        **{f"{step}_seconds": dg.MetadataValue.float(round(seconds, 3))
           for step, seconds in candidate.seconds.items()},
        "mlflow_logging_seconds": dg.MetadataValue.float(round(registered.seconds, 3)),
        "model_sha256": dg.MetadataValue.text(candidate.model.sha256()),
        "fairness": dg.MetadataValue.md(fairness_table(candidate.fairness)),
        "roc_curve": dg.MetadataValue.md(
            f"![ROC curve](data:image/png;base64,{candidate.images['plots/roc.png']})"),
        "confusion_matrix": dg.MetadataValue.md(
            "![confusion](data:image/png;base64,"
            f"{candidate.images['plots/confusion_matrix.png']})"),
    }


def record_gate(context, use_case: UseCase, lakehouse: LakehouseResource,
                mlflow: MlflowResource, version: str, verdict: Verdict) -> None:
    """The gate's verdict in the audit trail (and an alert when it failed, if routed)."""
    run_id = context.run.run_id
    record(lakehouse, use_case, notices.gate(
        use_case.name, version, verdict.name, verdict.passed, verdict.description,
        run_id=run_id, run_url=lakehouse.run_url(run_id),
        model_url=mlflow.model_version_url(use_case.name, version)), log=context.log)


def check_result(verdict: Verdict, **extra) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=verdict.name, passed=verdict.passed,
                               description=verdict.description,
                               metadata={**verdict.metadata, **extra})


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
        session, path = spark.session(), lakehouse.table(training_set_key)
        # The champion (MLflow's client, its model's bytes) is looked up while the training
        # set loads and the model trains: nothing needs it before the no-regression gate.
        # The plots' imports are done then too.
        with ThreadPoolExecutor(2, thread_name_prefix="ahead-of-training") as pool:
            champion = pool.submit(champion_of, mlflow, use_case)
            pool.submit(load_plotting)
            version = latest_version(session, path)
            training = data.load(session, path, version, use_case, snapshots=True,
                                 lineage=commit_metadata(session, path, version))
            try:
                candidate = train_candidate(session, training, use_case,
                                            config.model_dump(), champion)
            except NotEnoughEvidence as exc:
                raise dg.Failure(str(exc)) from None
        registered = register(mlflow, use_case, candidate, training, context.run.run_id,
                              trained_by=trainer(context.run.tags))
        context.log.info(f"model {use_case.name} v{registered.version}: {candidate.summary()}")
        yield dg.MaterializeResult(metadata=metadata(use_case, candidate, registered, training))
        for verdict in candidate.verdicts:
            extra = ({"groups": dg.MetadataValue.md(fairness_table(candidate.fairness))}
                     if verdict.name == FAIRNESS_GATE else {})
            record_gate(context, use_case, lakehouse, mlflow, str(registered.version), verdict)
            yield check_result(verdict, **extra)

    @dg.asset_check(asset=model_key, name=REPRODUCIBILITY_GATE, blocking=True,
                    description="retraining on the same data versions with the same seed and "
                    "configuration gives a byte-identical model and identical predictions")
    def reproducibility_gate(context: dg.AssetCheckExecutionContext, spark: SparkResource,
                             lakehouse: LakehouseResource,
                             mlflow: MlflowResource) -> dg.AssetCheckResult:
        version = candidate_version(context, model_key)
        verdict = checks.reproducibility(spark.session(), mlflow, use_case,
                                         lakehouse.table(training_set_key), version)
        record_gate(context, use_case, lakehouse, mlflow, version, verdict)
        return check_result(verdict)

    @dg.asset_check(asset=model_key, name=ONNX_GATE, blocking=True,
                    description="ONNX export gives the native model's probabilities within "
                    f"{gates.onnx_max_abs_diff:g} on a golden set; logged as the portable "
                    "artifact")
    def onnx_parity_gate(context: dg.AssetCheckExecutionContext, spark: SparkResource,
                         lakehouse: LakehouseResource,
                         mlflow: MlflowResource) -> dg.AssetCheckResult:
        version = candidate_version(context, model_key)
        verdict = checks.onnx_parity(spark.session(), mlflow, use_case,
                                     lakehouse.table(training_set_key), version)
        record_gate(context, use_case, lakehouse, mlflow, version, verdict)
        return check_result(verdict)

    return [candidate_model, reproducibility_gate, onnx_parity_gate]
