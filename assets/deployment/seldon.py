"""Deployment: the champion model rendered as a SeldonDeployment and served by seldon-core."""

import time
from pathlib import Path

import dagster as dg
import yaml

from lakeloop import keys
from lakeloop.deployment import model_files, serve_version
from lakeloop.lakehouse import LakehouseResource
from lakeloop.serving import ServingResource, predict, render_seldon_deployment
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHAMPION, MlflowResource
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    champion_key = keys.key(use_case, keys.DEPLOYMENT, "champion")
    training_set_key = keys.key(use_case, keys.TRAINING, "training_set")

    @dg.asset(
        key=keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment"),
        description="The champion rendered as a SeldonDeployment and served locally by "
        "seldon-core; answers a sample request.",
        deps=[champion_key],
        **keys.common(use_case, keys.DEPLOYMENT, "seldon", "kubernetes"),
    )
    def seldon_deployment(context: dg.AssetExecutionContext, serving: ServingResource,
                          mlflow: MlflowResource, lakehouse: LakehouseResource,
                          spark: SparkResource) -> dg.MaterializeResult:
        champion = mlflow.version_by_alias(use_case.name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{use_case.name} has no champion: nothing to deploy")
        version = str(champion.version)
        mlflow.client().set_model_version_tag(use_case.name, version, "deployed_by_run",
                                              context.run.run_id)

        model_dir, config = model_files(mlflow, use_case.name, version)
        manifest = render_seldon_deployment(
            name=use_case.name.replace("_", "-"), namespace=serving.namespace,
            image=serving.image, model_name=use_case.name, model_version=version,
            model_uri=f"models:/{use_case.name}/{version}", features=config["features"],
            threshold=config["threshold"], replicas=use_case.serving.replicas)
        out_dir = lakehouse.path(context.asset_key)
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest_path = out_dir / "seldondeployment.yaml"
        manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))

        endpoint, _ = serve_version(use_case, serving, mlflow, lakehouse, version)
        sample = _sample_row(spark, lakehouse.path(training_set_key), config["features"])
        started = time.perf_counter()
        answer = predict(endpoint.url, config["features"], [sample],
                         tags={"request_key": "deployment-smoke-test"})
        latency_ms = (time.perf_counter() - started) * 1000
        probability, prediction = answer["data"]["ndarray"][0]
        context.log.info(f"{endpoint.predictions_url} answered p={probability:.4f}")
        return dg.MaterializeResult(metadata={
            "endpoint": dg.MetadataValue.url(endpoint.predictions_url),
            "model_version": dg.MetadataValue.int(int(version)),
            "model_uri": dg.MetadataValue.text(f"models:/{use_case.name}/{version}"),
            "model_dir": dg.MetadataValue.path(str(model_dir)),
            "manifest": dg.MetadataValue.path(str(manifest_path)),
            "sample_probability": dg.MetadataValue.float(round(float(probability), 6)),
            "sample_prediction": dg.MetadataValue.int(int(prediction)),
            "sample_latency_ms": dg.MetadataValue.float(round(latency_ms, 2)),
            "decision_threshold": dg.MetadataValue.float(config["threshold"]),
        })

    return [seldon_deployment]


def _sample_row(spark, training_set_path: Path, features: list[str]) -> list[float]:
    row = spark.session().read.format("delta").load(str(training_set_path)) \
        .select(*features).dropna().first()
    return [float(row[f]) for f in features]
