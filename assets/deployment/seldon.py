"""Deployment: the champion as a SeldonDeployment (transformer + model) and, locally, as the
same graph of seldon-core microservices behind the executor on 127.0.0.1."""

import dagster as dg

from lakeloop import keys
from lakeloop.deployment.runtime import Deployed, Runtime, deploy_champion
from lakeloop.deployment.serving import ServingError, ServingResource
from lakeloop.features.store import FeastResource
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def metadata(done: Deployed, use_case: UseCase) -> dict[str, dg.MetadataValue]:
    out = {"model_version": dg.MetadataValue.int(int(done.version)),
           "manifest": dg.MetadataValue.path(str(done.manifest_path))}
    if done.applied is not None:
        meta = done.manifest["metadata"]
        out["applied"] = dg.MetadataValue.text(
            f"{meta['namespace']}/{meta['name']} (resourceVersion "
            f"{done.applied.get('metadata', {}).get('resourceVersion')})")
        return out
    probability, prediction = done.answer
    return {**out,
            "endpoint": dg.MetadataValue.url(done.endpoint.predictions_url),
            "model_endpoint": dg.MetadataValue.url(
                f"{done.predictor.model.url}/api/v1.0/predictions"),
            "transformer_endpoint": dg.MetadataValue.url(
                f"{done.predictor.transformer.url}/transform-input"),
            "model_uri": dg.MetadataValue.text(f"models:/{use_case.name}/{done.version}"),
            "sample_request": dg.MetadataValue.json(done.sample),
            "sample_probability": dg.MetadataValue.float(round(probability, 6)),
            "sample_prediction": dg.MetadataValue.int(prediction),
            "sample_latency_ms": dg.MetadataValue.float(round(done.latency_ms, 2)),
            "decision_threshold": dg.MetadataValue.float(done.predictor.config["threshold"])}


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
        rt = Runtime(use_case, serving, mlflow, lakehouse, feast)
        try:
            done = deploy_champion(rt, spark.session(), lakehouse.path(context.asset_key))
        except ServingError as exc:
            raise dg.Failure(str(exc)) from None
        if done.endpoint is not None:
            mlflow.client().set_model_version_tag(use_case.name, done.version,
                                                  "deployed_by_run", context.run.run_id)
            context.log.info(f"{done.endpoint.predictions_url} answered p={done.answer[0]:.4f}")
        return dg.MaterializeResult(metadata=metadata(done, use_case))

    return [seldon_deployment]
