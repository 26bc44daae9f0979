"""Deployment: the champion as a SeldonDeployment (transformer + model) and, locally, as the
same graph of seldon-core microservices behind the executor on 127.0.0.1."""

import time

import dagster as dg
import yaml

from lakeloop import keys
from lakeloop.deployment import Runtime, render, serve_champion
from lakeloop.features import FeastResource
from lakeloop.lakehouse import LakehouseResource
from lakeloop.serving import ServingResource, request_value, score
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHAMPION, MlflowResource
from lakeloop.usecase import UseCase

SMOKE_KEY = "smoke-test"


def sample_instance(spark: SparkResource, lakehouse: LakehouseResource, use_case: UseCase):
    """A request as a client sends it, for a real entity of the latest events (smoke tests).
    Its event key is not a real event's, so it never joins an outcome; without an event
    time it is logged at the moment it is sent."""
    from pyspark.sql import functions as F

    events = lakehouse.table(keys.key(use_case, keys.LAKEHOUSE,
                                     f"silver_{use_case.events_name}"))
    join_key = use_case.entity.join_key
    row = (spark.session().read.format("delta").load(str(events))
           .select(join_key, *use_case.features.request)
           .orderBy(F.col(use_case.events.event_time).desc()).first())
    return {use_case.events.key: SMOKE_KEY, join_key: str(row[join_key]),
            **{f: request_value(use_case, f, row[f]) for f in use_case.features.request}}


def write_manifest(lakehouse: LakehouseResource, asset_key: dg.AssetKey, name: str,
                   manifest: dict):
    out_dir = lakehouse.path(asset_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    if not use_case.serving.online:
        return []
    champion_key = keys.key(use_case, keys.DEPLOYMENT, "champion")
    online_key = keys.key(use_case, keys.FEATURES, "online_features")

    @dg.asset(
        key=keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment"),
        description="The champion as a SeldonDeployment (feature transformer, then model), and "
        "its running endpoint.\n\nLocally the same graph is served on 127.0.0.1 and answers "
        "a sample request; with a cluster configured the manifest is applied there.",
        # The transformer reads the online store: the deployment depends on it too.
        deps=[champion_key, online_key],
        **keys.common(use_case, keys.DEPLOYMENT, "seldon", "kubernetes"),
    )
    def seldon_deployment(context: dg.AssetExecutionContext, serving: ServingResource,
                          mlflow: MlflowResource, lakehouse: LakehouseResource,
                          feast: FeastResource, spark: SparkResource) -> dg.MaterializeResult:
        champion = mlflow.version_by_alias(use_case.name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{use_case.name} has no champion: nothing to deploy")
        version = str(champion.version)
        rt = Runtime(use_case, serving, mlflow, lakehouse, feast)
        manifest = render(rt, "champion", version)
        manifest_path = write_manifest(lakehouse, context.asset_key, "seldondeployment",
                                       manifest)
        if serving.kubernetes:  # a cluster is configured: apply there, serve nothing here
            applied = serving.apply(manifest)
            return dg.MaterializeResult(metadata={
                "model_version": dg.MetadataValue.int(int(version)),
                "manifest": dg.MetadataValue.path(str(manifest_path)),
                "applied": dg.MetadataValue.text(
                    f"{manifest['metadata']['namespace']}/{manifest['metadata']['name']} "
                    f"(resourceVersion {applied.get('metadata', {}).get('resourceVersion')})"),
            })
        endpoint, predictor = serve_champion(rt, version)
        mlflow.client().set_model_version_tag(use_case.name, version, "deployed_by_run",
                                              context.run.run_id)
        instance = sample_instance(spark, lakehouse, use_case)
        started = time.perf_counter()
        answer = score(endpoint.url, [instance])
        latency_ms = (time.perf_counter() - started) * 1000
        probability, prediction = answer["data"]["ndarray"][0]
        context.log.info(f"{endpoint.predictions_url} answered p={probability:.4f}")
        return dg.MaterializeResult(metadata={
            "endpoint": dg.MetadataValue.url(endpoint.predictions_url),
            "model_endpoint": dg.MetadataValue.url(f"{predictor.model.url}/api/v1.0/predictions"),
            "transformer_endpoint": dg.MetadataValue.url(
                f"{predictor.transformer.url}/transform-input"),
            "model_version": dg.MetadataValue.int(int(version)),
            "model_uri": dg.MetadataValue.text(f"models:/{use_case.name}/{version}"),
            "manifest": dg.MetadataValue.path(str(manifest_path)),
            "sample_request": dg.MetadataValue.json(instance),
            "sample_probability": dg.MetadataValue.float(round(float(probability), 6)),
            "sample_prediction": dg.MetadataValue.int(int(prediction)),
            "sample_latency_ms": dg.MetadataValue.float(round(latency_ms, 2)),
            "decision_threshold": dg.MetadataValue.float(predictor.config["threshold"]),
        })

    return [seldon_deployment]
