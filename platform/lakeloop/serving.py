"""Serving: SeldonDeployment manifests and local seldon-core microservices.

On Kubernetes a SeldonDeployment runs the components in the serving image; here the same
components run as microservices (gunicorn + seldon-core) in the serving environment, on
127.0.0.1, one process group per deployment, tracked by a state file under the data root.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import requests

from lakeloop.processes import ProcessError, Registry, Running
from lakeloop.settings import PROJECT_ROOT

MODEL_CLASS = "lakeloop.seldon.model.XGBoostModel"
SERVING_IMAGE = "ghcr.io/lakeloop/lakeloop-serving:0.1.0"


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

    @property
    def predictions_url(self) -> str:
        return f"{self.url}/api/v1.0/predictions"


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


class ServingResource(dg.ConfigurableResource):
    """Where and how inference components run: local microservices or a cluster."""

    python: str
    host: str = "127.0.0.1"
    state_dir: str
    workers: int = 1
    image: str = SERVING_IMAGE
    namespace: str = "lakeloop"
    start_timeout_s: float = 60.0

    def _registry(self) -> Registry:
        return Registry(self.state_dir)

    def endpoint(self, name: str) -> Endpoint | None:
        """The running endpoint called ``name``, or None if none answers."""
        running = self._registry().get(name, _answers)
        return _endpoint(running) if running else None

    def start(self, name: str, component: str, params: dict[str, Any], port: int) -> Endpoint:
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
            str(python), "-m", "lakeloop.seldon.serve", component,
            "--workers", str(self.workers), "--threads", "1", "--grpc-workers", "0",
            "--http-port", str(port), "--metrics-port", str(port + 1),
            "--parameters", json.dumps(seldon_parameters(params)),
        ]
        try:
            running = self._registry().start(
                name, cmd, env, self.host, [port, port + 1],
                ready=lambda url: _ready(url, instance_id), timeout=self.start_timeout_s,
                info={"model_name": str(params.get("model_name", "")),
                      "model_version": str(params.get("model_version", ""))})
        except ProcessError as exc:
            raise ServingError(str(exc)) from None
        return _endpoint(running)

    def stop(self, name: str) -> bool:
        """Stop ``name`` cleanly (SIGTERM lets workers flush their request logs)."""
        return self._registry().stop(name)

    def stop_all(self) -> list[str]:
        return self._registry().stop_all()


def _endpoint(running: Running) -> Endpoint:
    return Endpoint(name=running.name, url=running.url, pid=running.pid, port=running.port,
                    model_name=running.info.get("model_name", ""),
                    model_version=running.info.get("model_version", ""), log=running.log)


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
    body = {"data": {"names": names, "ndarray": rows}, "meta": {"tags": tags or {}}}
    http = session or requests
    response = http.post(f"{endpoint_url}/api/v1.0/predictions", json=body, timeout=timeout)
    if response.status_code != 200:
        raise ServingError(f"{response.status_code}: {response.text[:500]}")
    return response.json()


def render_seldon_deployment(*, name: str, namespace: str, image: str, model_name: str,
                             model_version: str, model_uri: str, features: list[str],
                             threshold: float, replicas: int = 1) -> dict[str, Any]:
    """A machinelearning.seldon.io/v1 SeldonDeployment serving one model version."""
    params = seldon_parameters({
        "model_path": "/mnt/models/model.ubj",
        "features": json.dumps(features),
        "threshold": float(threshold),
        "model_name": model_name,
        "model_version": str(model_version),
    })
    container = {
        "name": "model",
        "image": image,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                      "limits": {"cpu": "1", "memory": "1Gi"}},
        "env": [{"name": "SELDON_BIND_HOST", "value": "0.0.0.0"}],
    }
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "lakeloop",
                                "lakeloop/model": model_name,
                                "lakeloop/model-version": str(model_version)}},
        "spec": {
            "name": name,
            "protocol": "seldon",
            "predictors": [{
                "name": "champion",
                "replicas": replicas,
                "traffic": 100,
                "componentSpecs": [{"spec": {"containers": [container]}}],
                "graph": {
                    "name": "model",
                    "type": "MODEL",
                    "implementation": "UNKNOWN_IMPLEMENTATION",
                    "modelUri": model_uri,
                    "envSecretRefName": "lakeloop-model-storage",
                    "parameters": params,
                    "children": [],
                },
            }],
        },
    }
