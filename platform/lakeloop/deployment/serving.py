"""Serving: local seldon-core microservices and the cluster's SeldonDeployments.

On Kubernetes a SeldonDeployment runs the components in the serving image; here the same
components run as microservices (gunicorn + seldon-core) in the serving environment, on
127.0.0.1, one process group per deployment, tracked by a state file under the data root.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import requests
import tenacity

from lakeloop.deployment.manifests import SERVING_IMAGE, seldon_parameters
from lakeloop.processes import ProcessError, Registry, Running
from lakeloop.settings import PROJECT_ROOT


class ServingError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    pid: int
    port: int
    model_name: str
    model_version: str
    log: str
    rollout: dict = field(default_factory=dict)
    component: str = ""  # the seldon-core class it runs (a model's runtime)

    @property
    def predictions_url(self) -> str:
        return f"{self.url}/api/v1.0/predictions"


class ServingResource(dg.ConfigurableResource):
    """Where and how inference components run: local microservices or a cluster."""

    python: str
    host: str = "127.0.0.1"
    state_dir: str
    workers: int = 1
    image: str = SERVING_IMAGE
    # Images per model version (serving.image: per_version): pushed here when set, built
    # by this tool (empty: the first of buildah, podman, docker on PATH).
    image_registry: str = ""
    image_builder: str = ""
    namespace: str = "lakeloop"
    # Where serving pods mount the shared data volume (the request log goes there, where
    # the inference_log asset reads it): the same path as the run pods' data root.
    cluster_data_claim: str = "lakeloop-data"
    cluster_data_mount: str = "/var/lib/lakeloop"
    cluster_feature_server_url: str = "http://lakeloop-feature-server.lakeloop.svc:6566"
    # With a cluster configured, deployments are applied there (server-side apply) instead
    # of started as local microservices.
    kubernetes: bool = False
    kube_context: str | None = None
    start_timeout_s: float = 60.0
    # On the cluster, Seldon's operator gives every predictor a Service of its own
    # (<deployment>-<predictor>, port 8000): rollout checks call each predictor there, and
    # the traffic split through the ingress (``cluster_gateway_url``, Seldon's
    # /seldon/<namespace>/<deployment> route). ``cluster_predictor_urls`` overrides the
    # address per predictor (for example port-forwards from outside the cluster).
    cluster_predictor_url: str = "http://{deployment}-{predictor}.{namespace}.svc.cluster.local:8000"
    cluster_predictor_urls: dict[str, str] = {}
    cluster_gateway_url: str = ""
    cluster_ready_timeout_s: float = 600.0
    cluster_poll_s: float = 2.0

    def _registry(self) -> Registry:
        return Registry(self.state_dir)

    def endpoint(self, name: str) -> Endpoint | None:
        """The running endpoint called ``name``, or None if none answers."""
        running = self._registry().get(name, _answers)
        return _endpoint(running) if running else None

    def start(self, name: str, component: str, params: dict[str, Any], port: int,
              threads: int = 1) -> Endpoint:
        """Start (or restart) the microservice ``name`` and wait until it is ready."""
        python = Path(self.python)
        if not python.exists():
            raise ServingError(f"the serving environment is missing ({python}); run "
                               "`make setup` to build it")
        instance_id = uuid.uuid4().hex
        params = {**params, "instance_id": instance_id}
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")},
            "PYTHONPATH": str(PROJECT_ROOT / "platform"),
            "SELDON_BIND_HOST": self.host,
            "SELDON_LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "1",
        }
        cmd = [
            str(python), "-m", "lakeloop.deployment.seldon.serve", component,
            "--workers", str(self.workers), "--threads", str(threads), "--grpc-workers", "0",
            "--http-port", str(port), "--metrics-port", str(port + 1),
            "--parameters", json.dumps(seldon_parameters(params)),
        ]
        try:
            running = self._registry().start(
                name, cmd, env, self.host, [port, port + 1],
                ready=lambda url: _ready(url, instance_id), timeout=self.start_timeout_s,
                info={"model_name": str(params.get("model_name", "")),
                      "model_version": str(params.get("model_version", "")),
                      "component": component})
        except ProcessError as exc:
            raise ServingError(str(exc)) from None
        return _endpoint(running)

    def start_executor(self, name: str, config: dict[str, Any], port: int) -> Endpoint:
        """Start (or restart) the local executor that routes a deployment's predictors."""
        instance_id = uuid.uuid4().hex
        configs = Path(self.state_dir) / "executors"  # not *.json beside the process states
        configs.mkdir(parents=True, exist_ok=True)
        path = configs / f"{name}.json"
        path.write_text(json.dumps({**config, "port": port, "instance_id": instance_id},
                                   indent=2))
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")},
            "PYTHONPATH": str(PROJECT_ROOT / "platform"),
            "SELDON_BIND_HOST": self.host,
        }
        cmd = [self.python, "-m", "lakeloop.deployment.seldon.executor", str(path)]
        versions = {p["name"]: p.get("model_version", "") for p in config["predictors"]}
        try:
            running = self._registry().start(
                name, cmd, env, self.host, [port],
                ready=lambda url: _ready(url, instance_id), timeout=self.start_timeout_s,
                info={"model_name": config.get("model_name", ""),
                      "model_version": versions.get("champion", ""),
                      "rollout": json.dumps({
                          "predictors": {p["name"]: [p.get("model_version", ""),
                                                     int(p["traffic"])]
                                         for p in config["predictors"]},
                          "shadow": (config.get("shadow") or {}).get("model_version")})})
        except ProcessError as exc:
            raise ServingError(str(exc)) from None
        return _endpoint(running)

    def custom_objects(self):
        """The cluster's CustomObjectsApi (in-cluster credentials, else the kubeconfig)."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(context=self.kube_context)
        return client.CustomObjectsApi()

    def apply(self, manifest: dict[str, Any], api=None) -> dict[str, Any]:
        """Server-side apply of a SeldonDeployment (field manager ``lakeloop``)."""
        api = api or self.custom_objects()
        group, version = manifest["apiVersion"].split("/")
        return api.patch_namespaced_custom_object(
            group=group, version=version, namespace=manifest["metadata"]["namespace"],
            plural="seldondeployments", name=manifest["metadata"]["name"], body=manifest,
            field_manager="lakeloop", force=True,
            _content_type="application/apply-patch+yaml")

    def wait_available(self, manifest: dict[str, Any], api=None) -> dict[str, Any]:
        """Poll the SeldonDeployment until the operator reports it Available (every
        predictor's pods ready); a Failed state or the timeout raises with the operator's
        own description."""
        api = api or self.custom_objects()
        group, version = manifest["apiVersion"].split("/")
        meta = manifest["metadata"]

        def state() -> dict[str, Any]:
            obj = api.get_namespaced_custom_object(
                group=group, version=version, namespace=meta["namespace"],
                plural="seldondeployments", name=meta["name"])
            return {"obj": obj, **(obj.get("status") or {})}

        settled = tenacity.retry_if_result(lambda s: s.get("state") not in ("Available",
                                                                             "Failed"))
        try:
            seen = tenacity.Retrying(
                retry=settled, wait=tenacity.wait_fixed(self.cluster_poll_s),
                stop=tenacity.stop_after_delay(self.cluster_ready_timeout_s))(state)
        except tenacity.RetryError as exc:
            seen = exc.last_attempt.result()
        if seen.get("state") == "Available":
            return seen["obj"]
        state_name, description = seen.get("state", "unknown"), seen.get("description", "")
        raise ServingError(f"SeldonDeployment {meta['namespace']}/{meta['name']} is {state_name}"
                           + (f": {description}" if description else "")
                           + f" (waited up to {self.cluster_ready_timeout_s:.0f}s)")

    def predictor_url(self, manifest: dict[str, Any], predictor: str) -> str:
        if predictor in self.cluster_predictor_urls:
            return self.cluster_predictor_urls[predictor]
        meta = manifest["metadata"]
        return self.cluster_predictor_url.format(deployment=meta["name"], predictor=predictor,
                                                 namespace=meta["namespace"])

    def deployment_url(self, manifest: dict[str, Any]) -> str:
        """The deployment's predictions URL through the ingress, traffic split included.
        Without LAKELOOP_SERVING_GATEWAY_URL a deployment with one live predictor is reached
        through that predictor's Service; a split cannot be (it lives in the ingress)."""
        meta = manifest["metadata"]
        if self.cluster_gateway_url:
            return (f"{self.cluster_gateway_url.rstrip('/')}/seldon/{meta['namespace']}/"
                    f"{meta['name']}/api/v1.0/predictions")
        live = [p["name"] for p in manifest["spec"]["predictors"] if not p.get("shadow")]
        if len(live) > 1:
            raise ServingError(
                f"{meta['name']} splits traffic between {', '.join(live)}, which only the "
                "ingress does: set LAKELOOP_SERVING_GATEWAY_URL (e.g. the Istio ingress "
                "gateway's in-cluster URL) so the canary can be judged")
        return f"{self.predictor_url(manifest, live[0])}/api/v1.0/predictions"

    def stop(self, name: str) -> bool:
        """Stop ``name`` cleanly (SIGTERM lets workers flush their request logs)."""
        return self._registry().stop(name)

    def stop_all(self) -> list[str]:
        return self._registry().stop_all()


def _endpoint(running: Running) -> Endpoint:
    return Endpoint(name=running.name, url=running.url, pid=running.pid, port=running.port,
                    model_name=running.info.get("model_name", ""),
                    model_version=running.info.get("model_version", ""), log=running.log,
                    rollout=json.loads(running.info.get("rollout", "{}")),
                    component=running.info.get("component", ""))


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health/ping", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _ready(url: str, instance_id: str) -> bool:
    """True once *our* process answers (not another one that holds the port)."""
    try:
        response = requests.get(f"{url}/health/status", timeout=2)
    except requests.RequestException:
        return False
    if response.status_code != 200:
        return False
    body = response.json()
    return (body.get("jsonData") or body).get("instance_id") == instance_id


def predict(endpoint_url: str, names: list[str], rows: list[list[float]],
            tags: dict[str, str] | None = None, session: requests.Session | None = None,
            timeout: float = 10.0) -> dict:
    """A feature-row request, straight to a model microservice."""
    body = {"data": {"names": names, "ndarray": rows}, "meta": {"tags": tags or {}}}
    http = session or requests
    response = http.post(f"{endpoint_url}/api/v1.0/predictions", json=body, timeout=timeout)
    if response.status_code != 200:
        raise ServingError(f"{response.status_code}: {response.text[:500]}")
    return response.json()


def graph_request(instances: list[dict[str, Any]], tags: dict[str, str] | None = None,
                  puid: str | None = None) -> dict:
    """The body a client sends to a deployment: entity ids and request-time fields."""
    body: dict[str, Any] = {"jsonData": instances[0] if len(instances) == 1
                            else {"instances": instances}, "meta": {"tags": tags or {}}}
    if puid:
        body["meta"]["puid"] = puid
    return body


def request_value(use_case, feature: str, value: Any) -> Any:
    """A feature's value as a request carries it in JSON: text for a categorical text
    feature, a number otherwise, null for a missing value."""
    if value is None or value != value:
        return None
    return str(value) if use_case.feature_type(feature) == "string" else float(value)


def score(endpoint_url: str, instances: list[dict[str, Any]],
          tags: dict[str, str] | None = None, session: requests.Session | None = None,
          timeout: float = 10.0) -> dict:
    """Score instances through a deployment's graph (transformer, then model)."""
    http = session or requests
    response = http.post(f"{endpoint_url}/api/v1.0/predictions",
                         json=graph_request(instances, tags), timeout=timeout)
    if response.status_code != 200:
        raise ServingError(f"{response.status_code}: {response.text[:500]}")
    return response.json()
