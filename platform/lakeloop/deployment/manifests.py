"""SeldonDeployment manifests: what a deployment of one or more model versions looks like on
Kubernetes (the components, their parameters, the traffic split, shadows), rendered as data.

The same component classes and parameters run locally as seldon-core microservices
(lakeloop.deployment.serving).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MODEL_CLASS = "lakeloop.deployment.seldon.model.XGBoostModel"
# The model component of each serving runtime (the use case's serving.runtime).
MODEL_CLASSES = {"xgboost": MODEL_CLASS, "onnx": "lakeloop.deployment.seldon.model.OnnxModel"}
TRANSFORMER_CLASS = "lakeloop.deployment.seldon.transformer.FeatureTransformer"
SERVING_IMAGE = "lakeloop/serving:0.1.0"


def seldon_parameters(params: dict[str, Any]) -> list[dict[str, str]]:
    def kind(value: Any) -> str:
        if isinstance(value, bool):
            return "BOOL"
        if isinstance(value, int):
            return "INT"
        if isinstance(value, float):
            return "DOUBLE"
        return "STRING"

    return [{"name": k, "value": str(v).lower() if isinstance(v, bool) else str(v),
             "type": kind(v)} for k, v in params.items()]


CONTAINER_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                      "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}}
RESOURCES = {
    "transformer": {"requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"cpu": "500m", "memory": "512Mi"}},
    "model": {"requests": {"cpu": "250m", "memory": "512Mi"},
              "limits": {"cpu": "1", "memory": "1Gi"}},
}
ROLLOUTS = ("champion", "canary", "shadow", "ab")


@dataclass(frozen=True)
class ManifestPredictor:
    """One predictor of a SeldonDeployment: a model version and the traffic it gets."""

    role: str
    model_version: str
    features: list[str]
    threshold: float
    feature_service: str
    traffic: int = 100
    shadow: bool = False
    encoding: str = ""  # the model's encoding (JSON); empty: every feature is a number
    reason_codes: str = ""  # the use case's reason texts (JSON); empty: feature names
    runtime: str = "xgboost"  # what scores: a key of MODEL_CLASSES
    image: str = ""  # the version's own image, its model baked in; empty: the shared one


COMPONENTS = {"transformer": (TRANSFORMER_CLASS, "TRANSFORMER"), "model": (MODEL_CLASS, "MODEL")}


def _container(name: str, image: str, component: str | None = None) -> dict[str, Any]:
    """A container of the serving image running one component (infra/serving/Dockerfile);
    the operator passes the graph node's parameters in PREDICTIVE_UNIT_PARAMETERS."""
    default, service_type = COMPONENTS[name]
    component = component or default
    return {"name": name, "image": image, "securityContext": CONTAINER_SECURITY,
            "resources": RESOURCES[name],
            "env": [{"name": "MODEL_NAME", "value": component},
                    {"name": "SERVICE_TYPE", "value": service_type},
                    {"name": "SELDON_BIND_HOST", "value": "0.0.0.0"},
                    {"name": "OMP_NUM_THREADS", "value": "1"}]}


def request_schema(use_case) -> dict[str, Any]:
    """What a prediction request holds, for the transformer: the event's key and time, the
    entity's key, the request features, the entity features a request may carry, and the
    contract of each (the lakehouse's rules, as lakeloop.lakehouse.rules applies them)."""
    events = use_case.events
    fields = [events.key, events.event_time, use_case.entity.join_key,
              *use_case.feature_names]
    contract = {name: events.columns[name].model_dump(
        include={"type", "nullable", "min", "max", "allowed", "other"})
        for name in fields if name in events.columns}
    for name in use_case.features.entity.derived:  # computed in gold: a number, or missing
        contract[name] = {"type": "double", "nullable": True}
    return {"event_key": events.key, "event_time": events.event_time,
            "entity_key": use_case.entity.join_key,
            "request_features": list(use_case.features.request),
            "entity_features": list(use_case.entity_features), "contract": contract}


def _predictor(p: ManifestPredictor, *, image: str, model_name: str, entity_key: str,
               request_features: list[str], feature_server_url: str,
               replicas: int, data_claim: str, data_mount: str,
               schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if p.runtime not in MODEL_CLASSES:
        raise ValueError(f"runtime must be one of {', '.join(MODEL_CLASSES)}, not "
                         f"{p.runtime!r}")
    # The storage initializer puts the registered model's directory at /mnt/models: the
    # booster, and the ONNX export the parity gate added beside it. A per-version image
    # carries both at /models instead, and no storage is read.
    files = "/models" if p.image else "/mnt/models"
    onnx = {"onnx_path": f"{files}/model.onnx"} if p.runtime == "onnx" else {}
    image = p.image or image
    model_params = seldon_parameters({
        "model_path": f"{files}/model.ubj",
        **onnx,
        "features": json.dumps(p.features),
        "encoding": p.encoding,
        "threshold": float(p.threshold),
        "model_name": model_name,
        "model_version": str(p.model_version),
        "predictor": p.role,
        "reason_codes": p.reason_codes,
        # The request log, on the shared data volume where inference_log reads it.
        "log_dir": f"{data_mount.rstrip('/')}/{model_name}/monitoring/requests",
    })
    model = _container("model", image, MODEL_CLASSES[p.runtime])
    model["volumeMounts"] = [{"name": "lakeloop-data", "mountPath": data_mount}]
    transformer_params = seldon_parameters({
        "feature_server_url": feature_server_url,
        "feature_service": p.feature_service,
        "entity_key": entity_key,
        "request_features": json.dumps(request_features),
        "features": json.dumps(p.features),
        "schema": json.dumps(schema) if schema else "",
    })
    out: dict[str, Any] = {
        "name": p.role,
        "replicas": replicas,
        "labels": {"lakeloop/model-version": str(p.model_version)},
        "componentSpecs": [{"spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [_container("transformer", image), model],
            "volumes": [{"name": "lakeloop-data",
                         "persistentVolumeClaim": {"claimName": data_claim}}],
        }}],
        "graph": {
            "name": "transformer",
            "type": "TRANSFORMER",
            "endpoint": {"type": "REST"},
            "parameters": transformer_params,
            "children": [{
                "name": "model",
                "type": "MODEL",
                "endpoint": {"type": "REST"},
                **({} if p.image else {
                    "modelUri": f"models:/{model_name}/{p.model_version}",
                    "envSecretRefName": "lakeloop-model-storage"}),
                "parameters": model_params,
                "children": [],
            }],
        },
    }
    if p.shadow:
        out["shadow"] = True
    else:
        out["traffic"] = int(p.traffic)
    return out


def render_seldon_deployment(*, name: str, namespace: str, image: str, model_name: str,
                             entity_key: str, request_features: list[str],
                             feature_server_url: str, predictors: list[ManifestPredictor],
                             rollout: str = "champion", replicas: int = 1,
                             data_claim: str = "lakeloop-data",
                             data_mount: str = "/var/lib/lakeloop",
                             schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A machinelearning.seldon.io/v1 SeldonDeployment: the champion alone, or a rollout
    (canary: a traffic split; shadow: the challenger mirrored; ab: an even split)."""
    if rollout not in ROLLOUTS:
        raise ValueError(f"rollout must be one of {', '.join(ROLLOUTS)}, not {rollout!r}")
    live = [p for p in predictors if not p.shadow]
    if sum(p.traffic for p in live) != 100:
        raise ValueError("the traffic of the live predictors must add up to 100")
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "lakeloop",
                                "app.kubernetes.io/name": name,
                                "lakeloop/model": model_name,
                                "lakeloop/rollout": rollout},
                     "annotations": {"seldon.io/rest-timeout": "5000"}},
        "spec": {
            "name": name,
            "protocol": "seldon",
            "predictors": [_predictor(p, image=image, model_name=model_name,
                                      entity_key=entity_key,
                                      request_features=request_features,
                                      feature_server_url=feature_server_url,
                                      replicas=replicas, data_claim=data_claim,
                                      data_mount=data_mount, schema=schema)
                           for p in predictors],
        },
    }
