"""Kubernetes: the step executor and the per-asset pod settings of the k8s environment.

Runs are launched by dagster-k8s's ``K8sRunLauncher`` (an instance setting: the Dagster Helm
chart's values in ``infra/helm/dagster-values.yaml``); inside
a run, ``k8s_job_executor`` starts a pod per step. What each step's pod asks for comes from
its asset's ``dagster-k8s/config`` tag, built here from the use case: Spark steps get a
driver's memory, training gets more and, when the use case wants a GPU, ``nvidia.com/gpu: 1``
with the toleration GPU nodes carry.
"""

from __future__ import annotations

from typing import Any

from lakeloop.usecase import UseCase

NAMESPACE = "lakeloop"
SERVICE_ACCOUNT = "lakeloop-run-launcher"
CONFIG_MAP = "lakeloop-config"
DATA_VOLUME = "lakeloop-data"
DATA_MOUNT = "/var/lib/lakeloop"

# (environment variable, secret, key): every credential a step needs, from Kubernetes
# secrets by reference. The value never appears in a pod spec, a tag or run config.
SECRET_ENV = (
    ("AWS_ACCESS_KEY_ID", "lakeloop-object-storage", "AWS_ACCESS_KEY_ID"),
    ("AWS_SECRET_ACCESS_KEY", "lakeloop-object-storage", "AWS_SECRET_ACCESS_KEY"),
    ("LAKELOOP_REDIS_PASSWORD", "lakeloop-redis", "password"),
    ("LAKELOOP_FEAST_REGISTRY", "lakeloop-feast", "registry-url"),
)

POD_SECURITY = {"run_as_non_root": True, "run_as_user": 1000, "fs_group": 1000,
                "seccomp_profile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allow_privilege_escalation": False, "run_as_non_root": True,
                      "capabilities": {"drop": ["ALL"]}}

# What a step's pod asks for, by the kind of work it does.
PROFILES: dict[str, dict[str, dict[str, str]]] = {
    # Spark Connect runs the work on the cluster; the step's pod is a thin client.
    "light": {"requests": {"cpu": "250m", "memory": "1Gi"},
              "limits": {"cpu": "1", "memory": "2Gi"}},
    # A Spark driver (k8s:// master) or pandas over a day's window.
    "spark": {"requests": {"cpu": "1", "memory": "4Gi"},
              "limits": {"cpu": "2", "memory": "6Gi"}},
    # XGBoost on the driver: the training window in memory, all cores.
    "train": {"requests": {"cpu": "4", "memory": "16Gi"},
              "limits": {"cpu": "8", "memory": "24Gi"}},
}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def secret_env() -> list[dict[str, Any]]:
    return [{"name": name, "value_from": {"secret_key_ref": {"name": secret, "key": key}}}
            for name, secret, key in SECRET_ENV]


def pod_tags(use_case: UseCase, profile: str) -> dict[str, Any]:
    """The op tags of one asset: its pod's resources (and GPU) under ``dagster-k8s/config``,
    and ``lakeloop/step`` for the run coordinator's concurrency limits."""
    resources = {kind: dict(values) for kind, values in PROFILES[profile].items()}
    pod_spec: dict[str, Any] = {}
    if profile == "train" and use_case.model.device == "cuda":
        resources["limits"]["nvidia.com/gpu"] = "1"
        resources["requests"]["nvidia.com/gpu"] = "1"
        pod_spec["tolerations"] = [GPU_TOLERATION]
    config: dict[str, Any] = {"container_config": {"resources": resources}}
    if pod_spec:
        config["pod_spec_config"] = pod_spec
    return {"dagster-k8s/config": config, "lakeloop/step": profile}


def executor_config(image: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """``k8s_job_executor``'s configuration: a pod per step, in the run's namespace, with the
    shared configuration map, the secrets by reference and the shared data volume."""
    return {
        "job_image": image,
        "job_namespace": namespace,
        "service_account_name": SERVICE_ACCOUNT,
        "env_config_maps": [CONFIG_MAP],
        "volumes": [{"name": "data", "persistent_volume_claim": {"claim_name": DATA_VOLUME}},
                    {"name": "tmp", "empty_dir": {}}],
        "volume_mounts": [{"name": "data", "mount_path": DATA_MOUNT},
                          {"name": "tmp", "mount_path": "/tmp"}],
        "labels": {"app.kubernetes.io/part-of": "lakeloop"},
        "max_concurrent": 8,
        "step_k8s_config": {
            "container_config": {"env": secret_env(), "security_context": CONTAINER_SECURITY},
            "pod_spec_config": {"security_context": POD_SECURITY},
        },
    }


def k8s_executor(image: str):
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(executor_config(image), name="lakeloop_k8s_executor")
