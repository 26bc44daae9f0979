"""Deploying registered model versions: files, serving config and local endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.lakehouse import LakehouseResource
from lakeloop.serving import MODEL_CLASS, ServingResource
from lakeloop.tracking import CHAMPION, MlflowResource
from lakeloop.usecase import UseCase


def endpoint_name(use_case: UseCase, role: str = CHAMPION) -> str:
    return f"{use_case.name}-{role}"


def model_files(mlflow: MlflowResource, name: str, version: str) -> tuple[Path, dict]:
    """The local model directory of a registered version and its serving config."""
    ml = mlflow.setup()
    model_dir = Path(ml.artifacts.download_artifacts(f"models:/{name}/{version}"))
    tags = mlflow.client().get_model_version(name, version).tags
    config = {"features": json.loads(tags["features"]), "threshold": float(tags["threshold"])}
    return model_dir, config


def serve_version(use_case: UseCase, serving: ServingResource, mlflow: MlflowResource,
                  lakehouse: LakehouseResource, version: str, role: str = CHAMPION):
    """Start the local microservice for ``version`` (restarting whatever served before)."""
    model_dir, config = model_files(mlflow, use_case.name, version)
    log_dir = lakehouse.path(keys.key(use_case, keys.MONITORING, "requests"))
    params = {
        "model_path": str(model_dir / "model.ubj"),
        "features": json.dumps(config["features"]),
        "threshold": config["threshold"],
        "model_name": use_case.name,
        "model_version": version,
        "log_dir": str(log_dir),
    }
    port = use_case.serving.port + (0 if role == CHAMPION else 10)
    return serving.start(endpoint_name(use_case, role), MODEL_CLASS, params, port), config


def ensure_champion(use_case: UseCase, serving: ServingResource, mlflow: MlflowResource,
                    lakehouse: LakehouseResource):
    """The running champion endpoint, started if it is down or serves an older version."""
    champion = mlflow.version_by_alias(use_case.name, CHAMPION)
    if champion is None:
        raise dg.Failure(f"{use_case.name} has no champion model yet: materialize "
                         f"{use_case.name}/deployment/seldon_deployment first")
    running = serving.endpoint(endpoint_name(use_case))
    if running is not None and running.model_version == str(champion.version):
        _, config = model_files(mlflow, use_case.name, str(champion.version))
        return running, config
    return serve_version(use_case, serving, mlflow, lakehouse, str(champion.version))


def load_booster(mlflow: MlflowResource, name: str, version: str):
    """The registered model as an in-process XGBoost booster, and its serving config."""
    import xgboost as xgb

    model_dir, config = model_files(mlflow, name, version)
    booster = xgb.Booster()
    booster.load_model(str(model_dir / "model.ubj"))
    return booster, config
