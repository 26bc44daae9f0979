"""Deploying registered model versions as inference graphs, locally.

A predictor is the graph the SeldonDeployment describes: the feature transformer (applicant
id + request fields -> complete feature row, from Feast's online store) then the model.
Each runs as a seldon-core microservice on 127.0.0.1; the local executor in front routes
requests between predictors (champion only, canary, A/B) and mirrors them to a shadow.

Ports, from the use case's ``serving.port`` P: the executor (the public endpoint) on P; the
champion's model on P+10 and transformer on P+12; the challenger's on P+20 and P+22 (each
microservice also holds the next port for its metrics).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.deployment.manifests import (
    MODEL_CLASS,
    MODEL_CLASSES,
    TRANSFORMER_CLASS,
    ManifestPredictor,
    render_seldon_deployment,
    request_schema,
)
from lakeloop.deployment.serving import Endpoint, ServingError, ServingResource
from lakeloop.features.online import serving_spec
from lakeloop.features.store import FeastResource, feature_service_name
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.tracking import CHALLENGER, CHAMPION, MlflowResource
from lakeloop.training.encoding import ENCODING_TAG, Encoding
from lakeloop.usecase import UseCase

OFFSETS = {CHAMPION: 10, CHALLENGER: 20}
# The transformer mostly waits on its lookup: threads, not processes, keep it busy.
TRANSFORMER_THREADS = 4


@dataclass(frozen=True)
class Runtime:
    """What deploying a use case needs, in one place."""

    use_case: UseCase
    serving: ServingResource
    mlflow: MlflowResource
    lakehouse: LakehouseResource
    feast: FeastResource


@dataclass(frozen=True)
class Predictor:
    role: str
    model_version: str
    model: Endpoint
    transformer: Endpoint
    config: dict

    @property
    def graph(self) -> list[str]:
        return [f"{self.transformer.url}/transform-input", f"{self.model.url}/predict"]

    def route(self, traffic: int) -> dict:
        return {"name": self.role, "traffic": traffic, "model_version": self.model_version,
                "graph": self.graph}


@dataclass(frozen=True)
class ClusterPredictor:
    """A predictor of a SeldonDeployment on the cluster: its own Service runs the whole graph
    (Seldon's executor in the pod), so the graph is one predictions URL."""

    role: str
    model_version: str
    url: str

    @property
    def graph(self) -> list[str]:
        return [f"{self.url}/api/v1.0/predictions"]


def apply_on_cluster(rt: Runtime, rollout: str, champion: str, challenger: str | None = None,
                     challenger_traffic: int = 0) -> dict:
    """Render, apply server-side and wait until the operator reports it Available."""
    manifest = render(rt, rollout, champion, challenger, challenger_traffic)
    rt.serving.apply(manifest)
    rt.serving.wait_available(manifest)
    return manifest


def cluster_predictors(rt: Runtime, manifest: dict, champion: str,
                       challenger: str) -> tuple[ClusterPredictor, ClusterPredictor]:
    return (ClusterPredictor(CHAMPION, champion, rt.serving.predictor_url(manifest, CHAMPION)),
            ClusterPredictor(CHALLENGER, challenger,
                             rt.serving.predictor_url(manifest, CHALLENGER)))


def endpoint_name(use_case: UseCase) -> str:
    return use_case.name


def component_name(use_case: UseCase, role: str, component: str) -> str:
    return f"{use_case.name}-{role}-{component}"


def model_files(mlflow: MlflowResource, name: str, version: str) -> tuple[Path, dict]:
    """The local model directory of a registered version and its serving config."""
    ml = mlflow.setup()
    model_dir = Path(ml.artifacts.download_artifacts(f"models:/{name}/{version}"))
    tags = mlflow.client().get_model_version(name, version).tags
    features = json.loads(tags["features"])
    config = {"features": features, "threshold": float(tags["threshold"]),
              "feature_service": tags.get("feature_service", ""),
              # How the features become the model's columns (categories one-hot); versions
              # registered before categorical features take every feature as a number.
              "encoding": Encoding.from_json(tags.get(ENCODING_TAG), features)}
    return model_dir, config


ONNX_FILE = "model.onnx"  # beside model.ubj once the parity gate passed


def onnx_export(use_case: UseCase, version: str, model_dir: Path) -> Path:
    """The ONNX export of a version, which only a passed parity gate puts there."""
    path = model_dir / ONNX_FILE
    if not path.is_file():
        raise ServingError(
            f"{use_case.name} v{version} has no ONNX export, and serving.runtime is onnx: "
            "only a version whose onnx_parity_gate passed has one (run the candidate_model "
            "asset's checks for it, or set serving.runtime: xgboost)")
    return path


def model_params(use_case: UseCase, version: str, model_dir: Path) -> tuple[str, dict]:
    """The model component's class for the use case's runtime, and its parameters."""
    runtime = use_case.serving.runtime
    onnx = ({"onnx_path": str(onnx_export(use_case, version, model_dir))}
            if runtime == "onnx" else {})
    return MODEL_CLASSES[runtime], {"model_path": str(model_dir / "model.ubj"), **onnx}


def reason_codes_json(use_case: UseCase) -> str:
    """The use case's reason texts, as the model component takes them."""
    return json.dumps({f: t.model_dump() for f, t in use_case.reason_codes.items()})


def start_predictor(rt: Runtime, version: str, role: str) -> Predictor:
    """The model and transformer microservices of ``version`` in ``role`` (restarted), whole
    or not at all: when one cannot start, the other is stopped again, so a failed start
    never leaves half a predictor answering (or holding its ports) beside the champion.
    The two start side by side (the transformer once Feast's feature server, its lookup
    where it does not read the store itself, answers), each a new interpreter."""
    from concurrent.futures import ThreadPoolExecutor

    use_case = rt.use_case
    model_dir, config = model_files(rt.mlflow, use_case.name, version)
    port = use_case.serving.port + OFFSETS[role]
    log_dir = str(rt.lakehouse.path(keys.key(use_case, keys.MONITORING, "requests")))
    model_name = component_name(use_case, role, "model")
    transformer_name = component_name(use_case, role, "transformer")
    component, files = model_params(use_case, version, model_dir)
    common = {"features": json.dumps(config["features"]), "model_name": use_case.name,
              "model_version": version, "log_dir": log_dir}

    def model() -> Endpoint:
        return rt.serving.start(model_name, component, {
            **files, **common, "encoding": config["encoding"].to_json(),
            "threshold": config["threshold"], "reason_codes": reason_codes_json(use_case),
        }, port)

    # (versions registered before the tag existed were trained on the use case's service)
    service = config["feature_service"] or feature_service_name(use_case)

    def transformer() -> Endpoint:
        server = rt.feast.ensure_feature_server()
        online = serving_spec(rt.feast, service)  # SQLite: read in the transformer itself
        return rt.serving.start(transformer_name, TRANSFORMER_CLASS, {
            **common, "feature_server_url": server.url, "feature_service": service,
            "online_store": json.dumps(online) if online else "",
            "entity_key": use_case.entity.join_key,
            "request_features": json.dumps(list(use_case.features.request)),
            "schema": json.dumps(request_schema(use_case)),
        }, port + 2, threads=TRANSFORMER_THREADS)

    with ThreadPoolExecutor(2, thread_name_prefix=f"start-{role}") as pool:
        started = {model_name: pool.submit(model), transformer_name: pool.submit(transformer)}
        try:
            failed: list[BaseException] = [
                e for e in (f.exception() for f in started.values()) if e is not None]
        except BaseException as exc:  # interrupted while waiting: the starts still finish
            failed = [exc]
    if failed:
        for name in started:
            rt.serving.stop(name)  # the one that did start (stopping one that did not: no-op)
        raise failed[0]
    return Predictor(role, version, started[model_name].result(),
                     started[transformer_name].result(), config)


def running_predictor(rt: Runtime, role: str) -> Predictor | None:
    """The predictor already serving ``role``, if both its components answer."""
    model = rt.serving.endpoint(component_name(rt.use_case, role, "model"))
    transformer = rt.serving.endpoint(component_name(rt.use_case, role, "transformer"))
    if model is None or transformer is None or model.model_version != \
            transformer.model_version:
        return None
    # one started before its class was recorded ran the only runtime there was
    if (model.component or MODEL_CLASS) != MODEL_CLASSES[rt.use_case.serving.runtime]:
        return None  # the use case changed its runtime: restart in the new one
    _, config = model_files(rt.mlflow, rt.use_case.name, model.model_version)
    return Predictor(role, model.model_version, model, transformer, config)


def predictor_for(rt: Runtime, version: str, role: str) -> Predictor:
    running = running_predictor(rt, role)
    if running is not None and running.model_version == str(version):
        return running
    return start_predictor(rt, str(version), role)


def route(rt: Runtime, predictors: list[tuple[Predictor, int]],
          shadow: Predictor | None = None) -> Endpoint:
    """(Re)start the executor with these predictors and traffic weights (percent)."""
    config = {"name": rt.use_case.name, "model_name": rt.use_case.name,
              "predictors": [p.route(traffic) for p, traffic in predictors],
              "shadow": shadow.route(0) if shadow else None}
    return rt.serving.start_executor(endpoint_name(rt.use_case), config,
                                     rt.use_case.serving.port)


def serve_champion(rt: Runtime, version: str) -> tuple[Endpoint, Predictor]:
    """Only ``version``, as champion, on the public endpoint; a challenger is stopped."""
    predictor = predictor_for(rt, version, CHAMPION)
    endpoint = route(rt, [(predictor, 100)])
    for component in ("model", "transformer"):
        rt.serving.stop(component_name(rt.use_case, CHALLENGER, component))
    return endpoint, predictor


def ensure_champion(rt: Runtime) -> tuple[Endpoint, Predictor]:
    """The public endpoint serving the registry's champion, started if it is down, serves
    another version or still routes a rollout; Feast's feature server, which it reads,
    started if it is down (a crashed process is restarted, nothing else is touched)."""
    champion = rt.mlflow.version_by_alias(rt.use_case.name, CHAMPION)
    if champion is None:
        raise dg.Failure(f"{rt.use_case.name} has no champion model yet: materialize "
                         f"{rt.use_case.name}/deployment/seldon_deployment first")
    rt.feast.ensure_feature_server()
    version = str(champion.version)
    running = rt.serving.endpoint(endpoint_name(rt.use_case))
    predictor = running_predictor(rt, CHAMPION)
    only_champion = {"predictors": {CHAMPION: [version, 100]}, "shadow": None}
    if running is not None and predictor is not None and predictor.model_version == version \
            and running.rollout == only_champion:
        return running, predictor
    return serve_champion(rt, version)


def render(rt: Runtime, rollout: str, champion: str, challenger: str | None = None,
           challenger_traffic: int = 0) -> dict:
    """The SeldonDeployment for the champion alone or a rollout, from registered versions."""
    def predictor(version: str, role: str, traffic: int, shadow: bool = False):
        model_dir, config = model_files(rt.mlflow, rt.use_case.name, version)
        runtime = rt.use_case.serving.runtime
        if runtime == "onnx":
            onnx_export(rt.use_case, version, model_dir)  # the pod would find none
        return ManifestPredictor(role, version, config["features"], config["threshold"],
                                 config["feature_service"], traffic, shadow,
                                 config["encoding"].to_json(),
                                 reason_codes_json(rt.use_case), runtime,
                                 version_image(rt, version))

    if rollout == "champion" or challenger is None:
        predictors = [predictor(champion, CHAMPION, 100)]
    elif rollout == "shadow":
        predictors = [predictor(champion, CHAMPION, 100),
                      predictor(challenger, CHALLENGER, 0, shadow=True)]
    else:
        split = 50 if rollout == "ab" else challenger_traffic
        predictors = [predictor(champion, CHAMPION, 100 - split),
                      predictor(challenger, CHALLENGER, split)]
    return render_seldon_deployment(
        name=rt.use_case.name.replace("_", "-"), namespace=rt.serving.namespace,
        image=rt.serving.image, model_name=rt.use_case.name,
        entity_key=rt.use_case.entity.join_key,
        request_features=list(rt.use_case.features.request),
        feature_server_url=rt.serving.cluster_feature_server_url, predictors=predictors,
        rollout=rollout, replicas=rt.use_case.serving.replicas,
        data_claim=rt.serving.cluster_data_claim, data_mount=rt.serving.cluster_data_mount,
        schema=request_schema(rt.use_case))


def version_image(rt: Runtime, version: str) -> str:
    """The image a version's pods run: its own (serving.image: per_version, built by the
    serving_image asset and recorded on the version), or "" for the shared serving image."""
    if rt.use_case.serving.image != "per_version":
        return ""
    from lakeloop.deployment.images import IMAGE_TAG

    tags = rt.mlflow.client().get_model_version(rt.use_case.name, version).tags
    if not tags.get(IMAGE_TAG):
        asset = keys.key(rt.use_case, keys.DEPLOYMENT, "serving_image").to_user_string()
        raise ServingError(
            f"{rt.use_case.name} v{version} has no image of its own, and serving.image is "
            f"per_version: materialize {asset}, which builds the challenger's image and the "
            "champion's when it has none (or set serving.image: shared)")
    return json.loads(tags[IMAGE_TAG])["ref"]


def load_booster(mlflow: MlflowResource, name: str, version: str):
    """The registered model as an in-process XGBoost booster, and its serving config
    (``config["encoding"]`` turns a frame of features into the booster's input)."""
    import xgboost as xgb

    model_dir, config = model_files(mlflow, name, version)
    booster = xgb.Booster()
    booster.load_model(str(model_dir / "model.ubj"))
    return booster, config


def deployment_url(rt: Runtime) -> tuple[str, str]:
    """Where clients reach the champion, and its version: the cluster's deployment through
    its ingress route, or the local endpoint (started if it is not running)."""
    if rt.serving.kubernetes:
        champion = rt.mlflow.version_by_alias(rt.use_case.name, CHAMPION)
        if champion is None:
            raise ServingError(f"{rt.use_case.name} has no champion to send traffic to")
        return (rt.serving.deployment_url(render(rt, "champion", str(champion.version))),
                str(champion.version))
    endpoint, _ = ensure_champion(rt)
    return endpoint.predictions_url, endpoint.model_version


SMOKE_KEY = "smoke-test"


def sample_instance(session, lakehouse, use_case: UseCase) -> dict:
    """A request as a client sends it, for a real entity of the latest events (smoke tests).
    Its event key is not a real event's, so it never joins an outcome; without an event
    time it is logged at the moment it is sent."""
    from pyspark.sql import functions as F

    from lakeloop.deployment.serving import request_value

    events = lakehouse.table(keys.key(use_case, keys.LAKEHOUSE,
                                     f"silver_{use_case.events_name}"))
    join_key = use_case.entity.join_key
    row = (session.read.format("delta").load(str(events))
           .select(join_key, *use_case.features.request)
           .orderBy(F.col(use_case.events.event_time).desc()).first())
    return {use_case.events.key: SMOKE_KEY, join_key: str(row[join_key]),
            **{f: request_value(use_case, f, row[f]) for f in use_case.features.request}}


@dataclass(frozen=True)
class Deployed:
    """The champion's SeldonDeployment: applied on the cluster, or served here and smoke
    tested with a real request."""

    version: str
    manifest: dict
    manifest_path: Path
    applied: dict | None = None
    predictor: Predictor | None = None
    endpoint: Endpoint | None = None
    sample: dict | None = None
    answer: tuple[float, int] | None = None
    latency_ms: float = 0.0


def deploy_champion(rt: Runtime, session, out_dir: Path) -> Deployed:
    """Render the champion's SeldonDeployment (kept beside the asset) and apply it to the
    cluster, or serve it locally and answer a real request through it."""
    import time

    import yaml

    from lakeloop.deployment.serving import score

    champion = rt.mlflow.version_by_alias(rt.use_case.name, CHAMPION)
    if champion is None:
        raise ServingError(f"{rt.use_case.name} has no champion: nothing to deploy")
    version = str(champion.version)
    manifest = render(rt, "champion", version)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "seldondeployment.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    if rt.serving.kubernetes:  # a cluster is configured: apply there, serve nothing here
        return Deployed(version, manifest, path, applied=rt.serving.apply(manifest))
    endpoint, predictor = serve_champion(rt, version)
    instance = sample_instance(session, rt.lakehouse, rt.use_case)
    started = time.perf_counter()
    answer = score(endpoint.url, [instance])
    latency_ms = (time.perf_counter() - started) * 1000
    probability, prediction = answer["data"]["ndarray"][0]
    return Deployed(version, manifest, path, None, predictor, endpoint, instance,
                    (float(probability), int(prediction)), latency_ms)
