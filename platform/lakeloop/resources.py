"""Resources per environment: the one place that decides local versus Kubernetes."""

from __future__ import annotations

from typing import Any

import dagster as dg

from lakeloop.features import FeastResource
from lakeloop.lakehouse import LakehouseResource
from lakeloop.serving import ServingResource
from lakeloop.settings import Env, Settings
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource


def build_resources(settings: Settings) -> dict[str, Any]:
    root = settings.data_root
    if settings.env is Env.LOCAL:
        return {
            "spark": SparkResource(
                master="local[*]",
                jars_dir=str(settings.jars_dir),
                warehouse_dir=str(root / "spark-warehouse"),
            ),
            "lakehouse": LakehouseResource(data_root=str(root)),
            "feast": FeastResource(
                registry_path=str(root / "feast" / "registry.db"),
                online_store=settings.online_store,
                sqlite_path=str(root / "feast" / "online.db"),
                redis_connection_string=settings.redis_url,
                repo_path=str(settings.feature_repo),
                server_port=settings.feature_server_port,
                state_dir=str(root / "feast" / "server"),
            ),
            "mlflow": MlflowResource(
                tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
                artifact_root=str(root / "mlflow" / "artifacts"),
            ),
            "serving": ServingResource(
                python=str(settings.serving_python),
                host=settings.serving_host,
                state_dir=str(root / "serving"),
            ),
        }
    return {
        "spark": SparkResource(master=dg.EnvVar("SPARK_MASTER"), jars_dir=str(settings.jars_dir)),
        "lakehouse": LakehouseResource(data_root=dg.EnvVar("LAKELOOP_DATA_ROOT")),
        "feast": FeastResource(
            registry_path=dg.EnvVar("FEAST_REGISTRY_PATH"),
            online_store="redis",
            redis_connection_string=dg.EnvVar("FEAST_REDIS_CONNECTION_STRING"),
            repo_path=str(settings.feature_repo),
        ),
        "mlflow": MlflowResource(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"),
            artifact_root=dg.EnvVar("MLFLOW_ARTIFACT_ROOT"),
            ui_url=dg.EnvVar("MLFLOW_UI_URL"),
        ),
        "serving": ServingResource(
            python="/usr/bin/python3",
            host="0.0.0.0",
            state_dir="/tmp/lakeloop-serving",
        ),
    }
