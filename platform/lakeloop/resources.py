"""Resources per environment: the one place that decides local versus Kubernetes.

Local (the embedded default): Spark ``local[*]``, Delta on local disk, SQLite for MLflow and
Feast's online store, seldon-core microservices on 127.0.0.1.

k8s: the same definitions against production services: Delta tables on object storage
(``LAKELOOP_TABLE_ROOT=s3a://...``), Spark on the cluster (Spark Connect or a ``k8s://``
master), Feast with Redis online and a SQL registry on PostgreSQL, an MLflow tracking server
(PostgreSQL + object-storage artifacts) and SeldonDeployments applied to the cluster. Every
secret arrives as an environment variable from a Kubernetes secret, read through
``dg.EnvVar`` when the resource is used, never at import and never written to config.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from lakeloop.deployment.serving import ServingResource
from lakeloop.features.store import FeastResource
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.settings import Env, Settings
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource

# The environment variables holding secrets (Kubernetes secrets in the k8s environment).
SECRET_ENV = ("LAKELOOP_FEAST_REGISTRY", "LAKELOOP_REDIS_PASSWORD", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY")


def _spark(settings: Settings) -> SparkResource:
    return SparkResource(
        master=settings.spark_master,
        remote=settings.spark_remote or None,
        driver_memory=settings.spark_driver_memory,
        java_options=settings.spark_java_options,
        conf=settings.spark_conf_map,
        jars_dir=str(settings.jars_dir),
        warehouse_dir=(
            "" if settings.env is Env.K8S else str(settings.data_root / "spark-warehouse")),
        object_storage=settings.uses_object_storage,
        s3_endpoint=settings.s3_endpoint,
        s3_region=settings.s3_region,
        delta_log_store=settings.delta_log_store,
    )


def build_resources(settings: Settings) -> dict[str, Any]:
    root = settings.data_root
    # Only when set: otherwise the resource's own default (the in-cluster service) stands.
    feature_server: dict[str, Any] = (
        {"cluster_feature_server_url": settings.feature_server_url}
        if settings.feature_server_url else {})
    serving = ServingResource(
        python=str(settings.serving_python),
        host=settings.serving_host,
        state_dir=str(root / "serving"),
        kubernetes=settings.serving == "kubernetes",
        namespace=settings.serving_namespace,
        image=settings.serving_image,
        image_registry=settings.image_registry,
        image_builder=settings.image_builder,
        cluster_gateway_url=settings.serving_gateway_url,
        **feature_server,
    )
    if settings.env is Env.LOCAL:
        return {
            "spark": _spark(settings),
            "lakehouse": LakehouseResource(data_root=str(root), table_root=settings.table_root,
                                   reports_url=settings.reports_url,
                                   ui_url=settings.dagster_url),
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
                # beside the jars, in the project's cache (.cache/mlflow by default)
                schema_cache=str(settings.jars_dir.parent / "mlflow"),
                artifact_root=str(root / "mlflow" / "artifacts"),
            ),
            "serving": serving,
        }
    return {
        "spark": _spark(settings),
        "lakehouse": LakehouseResource(data_root=str(root), table_root=settings.table_root,
                                   reports_url=settings.reports_url,
                                   ui_url=settings.dagster_url),
        "feast": FeastResource(
            registry_path=dg.EnvVar("LAKELOOP_FEAST_REGISTRY"),
            online_store="redis",
            redis_connection_string=settings.redis_url,
            redis_password=dg.EnvVar("LAKELOOP_REDIS_PASSWORD"),
            repo_path=str(settings.feature_repo),
            server_port=settings.feature_server_port,
            state_dir=str(root / "feast" / "server"),
        ),
        "mlflow": MlflowResource(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"),
            ui_url=dg.EnvVar("MLFLOW_UI_URL"),
        ),
        "serving": serving,
    }
