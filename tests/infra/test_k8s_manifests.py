"""The Kubernetes side of Lakeloop, proven without a cluster.

Every YAML document under infra/k8s/ and every Kubernetes object embedded in the Dagster
chart's values (infra/helm/dagster-values.yaml) is loaded into the Kubernetes Python client's
models strictly: a field the model does not carry back out (a misspelling the client would
drop silently) fails with its path. The Job that dagster-k8s itself builds for a run from these
values is checked like the manifests. On top of that: non-root containers with requests and
limits, Services on the contract's ports only, secrets only through secretKeyRef or envFrom,
least-privilege RBAC, a Helm configuration Dagster accepts, and Dockerfiles that end as a
non-root user.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "infra" / "k8s"
VALUES_FILE = ROOT / "infra" / "helm" / "dagster-values.yaml"
USER_CODE_DOCKERFILE = ROOT / "infra" / "user-code" / "Dockerfile"
SERVING_DOCKERFILE = ROOT / "infra" / "serving" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# --- the environment contract (the Python code reads exactly these names) ------------------
NAMESPACE = "lakeloop"
SERVING_NAMESPACE = "lakeloop"  # serving shares the data volume (request logs)
USER_CODE_IMAGE = "lakeloop/user-code:0.1.0"
UID = 1000
DATA_ROOT = "/var/lib/lakeloop"
RUN_SERVICE_ACCOUNT = "lakeloop-run-launcher"
CONFIG = {
    "LAKELOOP_ENV": "k8s",
    "LAKELOOP_DATA_ROOT": DATA_ROOT,
    "LAKELOOP_TABLE_ROOT": "s3a://lakeloop/tables",
    "LAKELOOP_S3_ENDPOINT": "http://object-store.lakeloop.svc:8333",
    "MLFLOW_S3_ENDPOINT_URL": "http://object-store.lakeloop.svc:8333",
    "AWS_REGION": "us-east-1",
    "LAKELOOP_SPARK_REMOTE": "sc://spark-connect.lakeloop.svc:15002",
    "MLFLOW_TRACKING_URI": "http://mlflow.lakeloop.svc:5000",
    "MLFLOW_UI_URL": "http://127.0.0.1:5000",  # the port-forward a person opens
    "LAKELOOP_REDIS_URL": "redis.lakeloop.svc:6379",
    "LAKELOOP_FEATURE_SERVER_URL": "http://lakeloop-feature-server.lakeloop.svc:6566",
    "LAKELOOP_SERVING_NAMESPACE": SERVING_NAMESPACE,
    "LAKELOOP_SERVING_IMAGE": "lakeloop/serving:0.1.0",
    "LAKELOOP_SERVING_GATEWAY_URL": "http://istio-ingressgateway.istio-system.svc",
    "LAKELOOP_IMAGE": USER_CODE_IMAGE,
}
SECRETS = {
    "lakeloop-object-storage": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "lakeloop-redis": {"password"},
    "lakeloop-feast": {"registry-url"},
    "lakeloop-mlflow": {"backend-store-uri"},
    "lakeloop-approvals": {"signing-key"},
    # the alert destinations' URLs, one key per variable the shipped use case names
    "lakeloop-alerts": {"LAKELOOP_ALERTS_MODEL_RISK", "LAKELOOP_ALERTS_ML_ONCALL"},
    "dagster-postgresql-secret": {"postgresql-password"},
}
# Secret-valued variables and the one (Secret, key) each may come from.
SECRET_ENV = {
    "AWS_ACCESS_KEY_ID": ("lakeloop-object-storage", "AWS_ACCESS_KEY_ID"),
    "AWS_SECRET_ACCESS_KEY": ("lakeloop-object-storage", "AWS_SECRET_ACCESS_KEY"),
    "LAKELOOP_REDIS_PASSWORD": ("lakeloop-redis", "password"),
    "LAKELOOP_FEAST_REGISTRY": ("lakeloop-feast", "registry-url"),
    "MLFLOW_BACKEND_STORE_URI": ("lakeloop-mlflow", "backend-store-uri"),
    "LAKELOOP_APPROVAL_KEY": ("lakeloop-approvals", "signing-key"),
}
# The only Services, and the only ports each may bind.
SERVICE_PORTS = {
    "mlflow": {5000},
    "lakeloop-feature-server": {6566},
    "redis": {6379},
    "spark-connect": {15002},
}
# Reached through the contract but installed on their own (any S3-compatible service).
OUTSIDE_SERVICES = {"object-store"}

SECRETISH = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|AUTH|CREDENTIAL|(^|_)KEY(_|$)")
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


# === the strict loader =====================================================================
class StrictLoadError(ValueError):
    """A document the Kubernetes API's models do not represent exactly."""


@functools.cache
def _api(validate: bool) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    configuration.client_side_validation = validate
    return k8s.ApiClient(configuration)


def model_for(api_version: str, kind: str) -> str:
    """``apps/v1`` + ``Deployment`` -> ``V1Deployment``: the client's model for a manifest."""
    version = api_version.rpartition("/")[2]
    name = version[:1].upper() + version[1:] + kind
    if not hasattr(k8s, name):
        raise StrictLoadError(f"{api_version} {kind}: no such object in the Kubernetes API")
    return name


def strict_load(data: Any, model: str, where: str = "$", complete: bool = True) -> Any:
    """``data`` as the client's ``model`` (``V1Deployment``, ``list[V1EnvVar]`` ...), refusing
    whatever the model would not carry back out: unknown or misspelled fields, wrongly typed
    values, nulls. ``complete=False`` for fragments such as a Helm value's container without a
    name (the client otherwise enforces required fields)."""
    api = _api(complete)
    try:
        obj = api._ApiClient__deserialize(data, model)
    except (ValueError, TypeError, AttributeError) as exc:
        raise StrictLoadError(f"{where}: {exc}") from None
    problems = list(_differences(data, api.sanitize_for_serialization(obj), where))
    if problems:
        raise StrictLoadError("\n".join(problems))
    return obj


def _differences(given: Any, kept: Any, where: str) -> Iterator[str]:
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            yield f"{where}: an object where the API expects {type(kept).__name__}"
            return
        for key, value in given.items():
            here = f"{where}.{key}"
            if value is None:
                yield f"{here}: null (leave the field out instead)"
            elif key not in kept:
                yield f"{here}: unknown field (the Kubernetes API has no such field here)"
            else:
                yield from _differences(value, kept[key], here)
    elif isinstance(given, list):
        if not isinstance(kept, list) or len(kept) != len(given):
            yield f"{where}: a list where the API expects {type(kept).__name__}"
            return
        for index, (item, kept_item) in enumerate(zip(given, kept, strict=True)):
            yield from _differences(item, kept_item, f"{where}[{index}]")
    elif given != kept or type(given) is not type(kept):
        # Quantities may be written as numbers (cpu: 1); the API reads them as strings.
        quantity = where.split(".")[-2] in ("requests", "limits")
        if not (quantity and not isinstance(given, bool) and kept == str(given)):
            yield f"{where}: {given!r} is read as {kept!r}"


# === what there is to check ================================================================
@dataclass(frozen=True)
class Doc:
    where: str
    body: dict


@functools.cache
def manifests() -> tuple[Doc, ...]:
    docs = []
    for path in sorted([*K8S_DIR.glob("*.yaml"), *K8S_DIR.glob("*.yml")]):
        for index, body in enumerate(yaml.safe_load_all(path.read_text())):
            if body is None:
                continue
            name = (body.get("metadata") or {}).get("name", "?")
            docs.append(Doc(f"{path.relative_to(ROOT)}#{index} {body.get('kind')}/{name}", body))
    return tuple(docs)


@functools.cache
def pod_templates() -> tuple[Doc, ...]:
    """Pods that live inside ConfigMaps (Spark's executor pod template)."""
    docs = []
    for doc in manifests():
        if doc.body.get("kind") == "ConfigMap":
            for key, text in (doc.body.get("data") or {}).items():
                if key.endswith("pod-template.yaml"):
                    docs.append(Doc(f"{doc.where} data[{key}]", yaml.safe_load(text)))
    return tuple(docs)


def objects(kind: str | None = None) -> list[Doc]:
    return [d for d in (*manifests(), *pod_templates()) if kind in (None, d.body.get("kind"))]


def find(kind: str, name: str) -> dict:
    matches = [d.body for d in objects(kind) if d.body["metadata"].get("name") == name]
    assert len(matches) == 1, f"expected one {kind} {name!r} under infra/k8s, found {len(matches)}"
    return matches[0]


@functools.cache
def values() -> dict:
    return yaml.safe_load(VALUES_FILE.read_text())


def user_deployment() -> dict:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    return deployment


def launcher() -> dict:
    return values()["runLauncher"]["config"]["k8sRunLauncher"]


# Keys of the chart's values that hold Kubernetes objects, and the model of each.
HELM_EMBEDDED = {
    "resources": "V1ResourceRequirements",
    "podSecurityContext": "V1PodSecurityContext",
    "securityContext": "V1SecurityContext",
    "env": "list[V1EnvVar]",
    "envConfigMaps": "list[V1ConfigMapEnvSource]",
    "envSecrets": "list[V1SecretEnvSource]",
    "volumes": "list[V1Volume]",
    "volumeMounts": "list[V1VolumeMount]",
    "tolerations": "list[V1Toleration]",
    "affinity": "V1Affinity",
    "nodeSelector": "dict(str, str)",
    "livenessProbe": "V1Probe",
    "readinessProbe": "V1Probe",
    "startupProbe": "V1Probe",
    "imagePullSecrets": "list[V1LocalObjectReference]",
    "initContainers": "list[V1Container]",
    "sidecarContainers": "list[V1Container]",
    "containerConfig": "V1Container",
    "podSpecConfig": "V1PodSpec",
    "jobSpecConfig": "V1JobSpec",
    "podTemplateSpecMetadata": "V1ObjectMeta",
    "jobMetadata": "V1ObjectMeta",
}


def embedded_in_values(tree: Any) -> list[tuple[str, Any, str]]:
    """(path, object, model) for every Kubernetes object in the Helm values ``tree``."""
    found: list[tuple[str, Any, str]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{where}.{key}"
                model = HELM_EMBEDDED.get(key)
                # env as a mapping is the chart's own shorthand, written into a ConfigMap.
                if model and not (key == "env" and isinstance(value, dict)):
                    if key.endswith("Probe") and isinstance(value, dict):
                        # "enabled" is the chart's switch, not part of the Probe.
                        value = {k: v for k, v in value.items() if k != "enabled"}
                    found.append((here, value, model))
                else:
                    walk(value, here)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")

    walk(tree, "values")
    return found


RUN_K8S_CONFIG_KEYS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


@functools.cache
def run_worker_job() -> dict:
    """The Job the K8sRunLauncher creates for a run, built by dagster-k8s itself from the
    values, the way the chart's instance config hands them to it."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

    config, shared = launcher(), values()["global"]
    context = K8sContainerContext(
        image_pull_policy=config["imagePullPolicy"],
        service_account_name=shared["serviceAccountName"],
        env_config_maps=[source["name"] for source in config.get("envConfigMaps", [])],
        env_secrets=[source["name"] for source in config.get("envSecrets", [])],
        env_vars=config.get("envVars", []),
        volume_mounts=config.get("volumeMounts", []),
        volumes=config.get("volumes", []),
        labels=config.get("labels", {}),
        namespace=config["jobNamespace"],
        resources=config.get("resources"),
        security_context=config.get("securityContext"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {RUN_K8S_CONFIG_KEYS[k]: v for k, v in config.get("runK8sConfig", {}).items()}
        ),
    )
    job_config = context.get_k8s_job_config(
        job_image=USER_CODE_IMAGE,
        run_launcher=SimpleNamespace(
            job_image=None, dagster_home=shared["dagsterHome"],
            instance_config_map="dagster-instance",
            postgres_password_secret=shared["postgresqlSecretName"],
        ),
    )
    job = construct_dagster_k8s_job(
        job_config, args=["dagster", "api", "execute_run", "{}"], job_name="dagster-run-0",
        component="run_worker", user_defined_k8s_config=context.run_k8s_config,
    )
    return k8s.ApiClient().sanitize_for_serialization(job)


@dataclass(frozen=True)
class Workload:
    """A pod spec to judge: from a manifest, from the Helm values, or built by dagster-k8s."""

    where: str
    pod: dict
    # The chart's own webserver and daemon images keep DAGSTER_HOME in a writable root.
    read_only_root: bool = True
    # A StatefulSet's volumeClaimTemplates: volumes its pods get besides the spec's.
    claim_templates: tuple[str, ...] = ()

    @property
    def containers(self) -> list[dict]:
        return [*(self.pod.get("initContainers") or []), *(self.pod.get("containers") or [])]


def _pod_spec(body: dict) -> dict | None:
    kind, spec = body.get("kind"), body.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return spec["template"]["spec"]
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _helm_workload(where: str, part: dict, name: str, read_only_root: bool) -> Workload:
    env_from = [{"configMapRef": s} for s in part.get("envConfigMaps") or []]
    env_from += [{"secretRef": s} for s in part.get("envSecrets") or []]
    image = part.get("image") or {}
    container = {
        "name": name,
        "image": f"{image['repository']}:{image['tag']}" if image else None,
        "securityContext": part.get("securityContext"),
        "resources": part.get("resources"),
        "env": part.get("env") if isinstance(part.get("env"), list) else [],
        "envFrom": env_from,
        "volumeMounts": part.get("volumeMounts") or [],
    }
    pod = {"securityContext": part.get("podSecurityContext"), "volumes": part.get("volumes") or [],
           "containers": [container]}
    return Workload(where, pod, read_only_root)


@functools.cache
def workloads() -> tuple[Workload, ...]:
    found = [
        Workload(d.where, spec, claim_templates=tuple(
            t["metadata"]["name"] for t in d.body["spec"].get("volumeClaimTemplates") or []))
        for d in objects() if (spec := _pod_spec(d.body))
    ]
    found.append(_helm_workload("helm dagster-user-deployments.deployments[lakeloop]",
                                user_deployment(), "dagster-user-deployments", True))
    found.append(_helm_workload("helm dagsterWebserver", values()["dagsterWebserver"],
                                "dagster-webserver", False))
    found.append(_helm_workload("helm dagsterDaemon", values()["dagsterDaemon"],
                                "dagster-daemon", False))
    found.append(Workload("dagster-k8s run worker Job",
                          run_worker_job()["spec"]["template"]["spec"]))
    return tuple(found)


def workload_ids() -> list[str]:
    return [w.where for w in workloads()]


# === strictness: every object is exactly a Kubernetes object ===============================
@pytest.mark.parametrize("doc", manifests(), ids=lambda d: d.where)
def test_every_manifest_document_is_a_strict_kubernetes_object(doc):
    strict_load(doc.body, model_for(doc.body["apiVersion"], doc.body["kind"]), doc.where)


@pytest.mark.parametrize("doc", pod_templates(), ids=lambda d: d.where)
def test_pod_templates_inside_config_maps_are_strict_pods(doc):
    assert doc.body["kind"] == "Pod"
    strict_load(doc.body, "V1Pod", doc.where)


@pytest.mark.parametrize("embedded", embedded_in_values(values()), ids=lambda e: e[0])
def test_every_kubernetes_object_in_the_helm_values_is_strict(embedded):
    where, obj, model = embedded
    strict_load(obj, model, where, complete=False)


def test_the_helm_values_embed_the_objects_this_file_checks():
    paths = {where for where, _, _ in embedded_in_values(values())}
    deployment = "values.dagster-user-deployments.deployments[0]"
    runs = "values.runLauncher.config.k8sRunLauncher"
    for expected in (f"{deployment}.podSecurityContext", f"{deployment}.securityContext",
                     f"{deployment}.resources", f"{deployment}.env", f"{deployment}.volumes",
                     f"{runs}.runK8sConfig.containerConfig", f"{runs}.runK8sConfig.podSpecConfig",
                     f"{runs}.runK8sConfig.jobSpecConfig", f"{runs}.volumes",
                     "values.dagsterWebserver.securityContext", "values.dagsterDaemon.resources"):
        assert expected in paths


def test_the_strict_loader_rejects_a_misspelled_field():
    deployment = copy.deepcopy(find("Deployment", "mlflow"))
    strict_load(deployment, "V1Deployment")  # as written: accepted
    pod = deployment["spec"]["template"]["spec"]
    pod["containres"] = pod["containers"]
    with pytest.raises(StrictLoadError, match=r"spec\.template\.spec\.containres: unknown field"):
        strict_load(deployment, "V1Deployment")

    # Deep inside a Helm value, where a misspelling would silently disable a protection.
    context = dict(user_deployment()["securityContext"], readOnlyRootFileSystem=True)
    with pytest.raises(StrictLoadError, match=r"readOnlyRootFileSystem: unknown field"):
        strict_load(context, "V1SecurityContext", complete=False)
    # A wrongly typed value is refused too ("true" is not a boolean to the API).
    with pytest.raises(StrictLoadError, match=r"runAsNonRoot: 'true' is read as True"):
        strict_load({"runAsNonRoot": "true"}, "V1SecurityContext", complete=False)
    with pytest.raises(StrictLoadError, match="no such object"):
        model_for("apps/v1", "Deploymnet")


# === containers: non-root, bounded, read-only ==============================================
def security_problems(workload: Workload) -> list[str]:
    pod_context = workload.pod.get("securityContext") or {}
    problems = []
    for container in workload.containers:
        context = container.get("securityContext") or {}
        name = f"{workload.where}: container {container.get('name')}"
        capabilities = context.get("capabilities") or {}
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            problems.append(f"{name} may run as root (runAsNonRoot is not true)")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name} runs as uid 0")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name} allows privilege escalation")
        if "ALL" not in (capabilities.get("drop") or []) or capabilities.get("add"):
            problems.append(f"{name} keeps Linux capabilities (drop ALL, add none)")
        if context.get("privileged"):
            problems.append(f"{name} is privileged")
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name} has no seccomp profile")
    return problems


@pytest.mark.parametrize("workload", workloads(), ids=workload_ids())
def test_every_container_runs_as_non_root_without_privileges(workload):
    assert workload.containers
    assert security_problems(workload) == []


def test_the_security_check_catches_a_root_container():
    root = Workload("root pod", {"containers": [{"name": "c", "securityContext": {
        "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]})
    problems = "\n".join(security_problems(root))
    for expected in ("may run as root", "uid 0", "privilege escalation", "capabilities",
                     "seccomp"):
        assert expected in problems


@pytest.mark.parametrize("workload", workloads(), ids=workload_ids())
def test_every_container_has_requests_and_limits(workload):
    for container in workload.containers:
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert resource in (resources.get(bound) or {}), (
                    f"{workload.where}: container {container.get('name')} has no {bound}.{resource}"
                )


@pytest.mark.parametrize("workload", [w for w in workloads() if w.read_only_root],
                         ids=lambda w: w.where)
def test_root_filesystems_are_read_only_with_an_empty_dir_for_scratch(workload):
    volumes = {v["name"]: v for v in workload.pod.get("volumes") or []}
    for container in workload.containers:
        context = container.get("securityContext") or {}
        assert context.get("readOnlyRootFilesystem") is True, container.get("name")
        if container.get("image") == USER_CODE_IMAGE:
            tmp = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, f"{workload.where}: HOME=/tmp needs a writable /tmp"
            assert "emptyDir" in volumes[tmp[0]["name"]]


@pytest.mark.parametrize("workload", workloads(), ids=workload_ids())
def test_every_volume_mount_has_its_volume(workload):
    volumes = {v["name"] for v in workload.pod.get("volumes") or []} | set(workload.claim_templates)
    for container in workload.containers:
        for mount in container.get("volumeMounts") or []:
            assert mount["name"] in volumes, f"{workload.where}: {mount['name']} is not a volume"


@pytest.mark.parametrize("workload", workloads(), ids=workload_ids())
def test_every_dollar_reference_in_a_command_is_a_variable_of_the_container(workload):
    # Kubernetes expands $(NAME) only for variables of the container; others stay literal.
    for container in workload.containers:
        defined = {var["name"] for var in container.get("env") or []}
        for argument in [*(container.get("command") or []), *(container.get("args") or [])]:
            for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", argument):
                assert name in defined, f"{workload.where}: $({name}) is not in env"


def test_the_user_code_image_runs_as_its_own_user():
    # Hadoop (Spark's S3A) needs the uid to have a passwd entry: the image's user, uid 1000.
    assert "useradd --uid 1000" in USER_CODE_DOCKERFILE.read_text()
    for workload in workloads():
        pod_context = workload.pod.get("securityContext") or {}
        for container in workload.containers:
            if container.get("image") == USER_CODE_IMAGE:
                context = container.get("securityContext") or {}
                assert context.get("runAsUser", pod_context.get("runAsUser")) == UID, (
                    workload.where)


def test_images_are_pinned_and_name_no_registry_host():
    images = {c.get("image") for w in workloads() for c in w.containers} - {None}
    images.add(CONFIG["LAKELOOP_SERVING_IMAGE"])
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"{image} is not pinned"
        first = name.split("/")[0]
        assert "/" not in name or ("." not in first and ":" not in first), image
    lakeloop = {image for image in images if image.startswith("lakeloop/")}
    assert lakeloop == {USER_CODE_IMAGE, CONFIG["LAKELOOP_SERVING_IMAGE"]}


def test_only_pods_that_call_the_api_get_a_service_account_token():
    for doc in objects():
        spec = _pod_spec(doc.body)
        if spec is None:
            continue
        if spec.get("serviceAccountName"):
            assert spec.get("automountServiceAccountToken") is not False, doc.where
        else:
            assert spec.get("automountServiceAccountToken") is False, doc.where


# === the environment contract =============================================================
def env_problems(env: list[dict], where: str) -> list[str]:
    """Secret-valued variables must come from the right secretKeyRef, never a literal."""
    problems = []
    for var in env:
        name = var.get("name", "")
        reference = (var.get("valueFrom") or {}).get("secretKeyRef")
        if SECRETISH.search(name) or name in SECRET_ENV:
            if "value" in var:
                problems.append(f"{where}: {name} has a literal value, not a secretKeyRef")
            elif not reference:
                problems.append(f"{where}: {name} does not come from a secretKeyRef")
            elif name in SECRET_ENV and (reference["name"], reference["key"]) != SECRET_ENV[name]:
                problems.append(f"{where}: {name} must come from {SECRET_ENV[name]}")
        if isinstance(var.get("value"), str) and CREDENTIALS_IN_URL.search(var["value"]):
            problems.append(f"{where}: {name} carries credentials in a URL")
    return problems


def mapping_problems(data: dict[str, str], where: str) -> list[str]:
    """A ConfigMap (or the chart's env mapping) holds nothing secret."""
    problems = []
    for name, value in data.items():
        if SECRETISH.search(name) or name in SECRET_ENV:
            problems.append(f"{where}: {name} is secret-valued")
        if CREDENTIALS_IN_URL.search(str(value)):
            problems.append(f"{where}: {name} carries credentials in a URL")
    return problems


@pytest.mark.parametrize("workload", workloads(), ids=workload_ids())
def test_secret_valued_variables_come_from_secret_key_refs(workload):
    for container in workload.containers:
        assert env_problems(container.get("env") or [], workload.where) == []


def test_nothing_secret_sits_in_config_maps_or_plain_helm_values():
    for doc in objects("ConfigMap"):
        assert mapping_problems(doc.body.get("data") or {}, doc.where) == []
    for part in (values()["dagsterWebserver"], values()["dagsterDaemon"], user_deployment()):
        if isinstance(part.get("env"), dict):
            assert mapping_problems(part["env"], "helm env") == []
    pairs = dict(entry.partition("=")[::2] for entry in launcher().get("envVars") or [])
    assert mapping_problems(pairs, "k8sRunLauncher.envVars") == []


def test_the_secret_check_catches_literal_secrets():
    env = [
        {"name": "LAKELOOP_REDIS_PASSWORD", "value": "hunter2"},
        {"name": "MLFLOW_TRACKING_URI", "value": "http://admin:hunter2@mlflow:5000"},
        {"name": "LAKELOOP_FEAST_REGISTRY",
         "valueFrom": {"secretKeyRef": {"name": "lakeloop-redis", "key": "password"}}},
        {"name": "AWS_SECRET_ACCESS_KEY",
         "valueFrom": {"configMapKeyRef": {"name": "lakeloop-config", "key": "AWS_REGION"}}},
    ]
    assert len(env_problems(env, "bad pod")) == 4
    assert len(mapping_problems({"AWS_SECRET_ACCESS_KEY": "x"}, "bad config map")) == 1


def test_the_config_map_is_the_contract():
    assert find("ConfigMap", "lakeloop-config")["data"] == CONFIG
    assert CONFIG["MLFLOW_S3_ENDPOINT_URL"] == CONFIG["LAKELOOP_S3_ENDPOINT"]


def test_the_secret_examples_are_the_contract_with_placeholders_only():
    secrets = {d.body["metadata"]["name"]: d.body for d in objects("Secret")}
    assert {name: set(body["stringData"]) for name, body in secrets.items()} == SECRETS
    for name, body in secrets.items():
        assert "data" not in body, f"{name}: base64 data could hide a real value"
        assert body["metadata"]["namespace"] == NAMESPACE
        for key, value in body["stringData"].items():
            assert "CHANGE-ME" in value, f"{name}/{key} is not a placeholder"
    example = (K8S_DIR / "secrets.example.yaml").read_text()
    assert "AN EXAMPLE, NOT SECRETS" in example
    assert {d.where.split("#")[0] for d in objects("Secret")} == {"infra/k8s/secrets.example.yaml"}


def _references(workload: Workload) -> Iterator[tuple[str, str, str | None]]:
    for container in workload.containers:
        for var in container.get("env") or []:
            source = var.get("valueFrom") or {}
            for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if field in source and not source[field].get("optional"):
                    yield kind, source[field]["name"], source[field]["key"]
        for source in container.get("envFrom") or []:
            for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if field in source and not source[field].get("optional"):
                    yield kind, source[field]["name"], None
    for volume in workload.pod.get("volumes") or []:
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"], None
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None


def test_every_secret_config_map_and_claim_a_pod_uses_is_defined():
    defined: dict[tuple[str, str], set[str]] = {}
    for doc in manifests():
        kind, name = doc.body["kind"], doc.body["metadata"]["name"]
        keys = {**(doc.body.get("data") or {}), **(doc.body.get("stringData") or {})}
        defined[kind, name] = set(keys)
    for workload in workloads():
        for kind, name, key in _references(workload):
            assert (kind, name) in defined, f"{workload.where}: no {kind} {name}"
            assert key is None or key in defined[kind, name], f"{workload.where}: {name}/{key}"


def test_the_shared_volume_is_read_write_many_and_mounted_at_the_data_root():
    claim = find("PersistentVolumeClaim", "lakeloop-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    job_pod = run_worker_job()["spec"]["template"]["spec"]
    for where, pod, mounts in (
        ("code server", {"volumes": user_deployment()["volumes"]},
         user_deployment()["volumeMounts"]),
        ("run worker", job_pod, job_pod["containers"][0]["volumeMounts"]),
    ):
        claims = {v["name"] for v in pod["volumes"]
                  if v.get("persistentVolumeClaim", {}).get("claimName") == "lakeloop-data"}
        assert [m["mountPath"] for m in mounts if m["name"] in claims] == [DATA_ROOT], where


def test_the_feature_servers_configuration_reads_only_variables_it_is_given():
    text = find("ConfigMap", "lakeloop-feature-server")["data"]["feature_store.yaml"]
    store = yaml.safe_load(text)
    assert store["registry"]["registry_type"] == "sql"
    assert store["online_store"]["type"] == "redis"
    deployment = find("Deployment", "lakeloop-feature-server")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    given = {var["name"] for var in container["env"]}
    assert set(re.findall(r"\$\{(\w+)\}", text)) == given
    assert given == {"LAKELOOP_FEAST_REGISTRY", "LAKELOOP_REDIS_URL", "LAKELOOP_REDIS_PASSWORD"}
    assert container["command"][:3] == ["feast", "-c", "/etc/lakeloop/feast"]


# === services and namespaces ==============================================================
def test_services_bind_only_the_contracts_ports_and_reach_their_pods():
    services = objects("Service")
    assert {d.body["metadata"]["name"] for d in services} == set(SERVICE_PORTS)
    for doc in services:
        spec, name = doc.body["spec"], doc.body["metadata"]["name"]
        assert spec.get("type", "ClusterIP") == "ClusterIP", f"{name} is reachable from outside"
        assert {port["port"] for port in spec["ports"]} == SERVICE_PORTS[name]
        assert not any("nodePort" in port for port in spec["ports"])
        backends = [w for w in objects() if w.body["kind"] in ("Deployment", "StatefulSet")
                    and w.body["metadata"]["namespace"] == doc.body["metadata"]["namespace"]
                    and spec["selector"].items()
                    <= w.body["spec"]["template"]["metadata"]["labels"].items()]
        assert len(backends) == 1, f"{name} selects {len(backends)} workloads"
        containers = backends[0].body["spec"]["template"]["spec"]["containers"]
        ports = {p.get("name") for c in containers for p in c.get("ports", [])}
        ports |= {p["containerPort"] for c in containers for p in c.get("ports", [])}
        for port in spec["ports"]:
            assert port.get("targetPort", port["port"]) in ports, f"{name}: no such container port"


def test_every_in_cluster_address_of_the_contract_is_a_defined_service():
    for key, value in CONFIG.items():
        for host, namespace, port in re.findall(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc:(\d+)", value):
            if host in OUTSIDE_SERVICES:
                continue
            service = find("Service", host)
            assert service["metadata"]["namespace"] == namespace == NAMESPACE, key
            assert int(port) in {p["port"] for p in service["spec"]["ports"]}, key


def test_every_object_lives_in_a_lakeloop_namespace():
    namespaces = {d.body["metadata"]["name"] for d in objects("Namespace")}
    assert namespaces == {NAMESPACE}
    for doc in manifests():
        if doc.body["kind"] != "Namespace":
            assert doc.body["metadata"].get("namespace") in namespaces, doc.where


def test_the_webserver_is_only_reachable_by_port_forward():
    assert values()["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert values()["ingress"]["enabled"] is False


# === RBAC =================================================================================
def test_rbac_has_no_cluster_scope_and_no_wildcards():
    kinds = {d.body["kind"] for d in objects()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    for doc in objects("Role"):
        for rule in doc.body["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(field) or []), f"{doc.where}: {field} has *"


def test_every_role_binding_binds_a_defined_service_account_to_a_role_beside_it():
    accounts = {(d.body["metadata"]["namespace"], d.body["metadata"]["name"])
                for d in objects("ServiceAccount")}
    roles = {(d.body["metadata"]["namespace"], d.body["metadata"]["name"])
             for d in objects("Role")}
    for doc in objects("RoleBinding"):
        namespace = doc.body["metadata"]["namespace"]
        assert doc.body["roleRef"]["kind"] == "Role"
        assert (namespace, doc.body["roleRef"]["name"]) in roles, doc.where
        for subject in doc.body["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert (subject["namespace"], subject["name"]) in accounts, doc.where


def _grants(role: dict) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def dagster_k8s_api_calls() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every Kubernetes call in dagster-k8s's client, which the
    K8sRunLauncher, its run monitoring and the k8s_job_executor all go through."""
    source = Path(importlib.util.find_spec("dagster_k8s").origin).with_name("client.py")
    calls = set(re.findall(r"\b(batch_api|core_api)\.(\w+)\(", source.read_text()))
    assert calls, "dagster-k8s's client no longer looks as expected"
    verbs = {"create": "create", "read": "get", "list": "list", "delete": "delete",
             "patch": "patch", "replace": "update"}
    needed = set()
    for api, method in calls:
        match = re.fullmatch(r"(create|read|list|delete|patch|replace)_namespaced_(\w+?)"
                             r"(_status|_log)?", method)
        assert match, f"unexpected dagster-k8s call {api}.{method}"
        verb, kind, sub = match.groups()
        resource = kind + "s" + ("/" + sub[1:] if sub else "")
        needed.add(("batch" if api == "batch_api" else "", resource, verbs[verb]))
    return needed


def test_the_run_launcher_role_grants_exactly_what_dagster_k8s_calls():
    role = find("Role", RUN_SERVICE_ACCOUNT)
    assert role["metadata"]["namespace"] == NAMESPACE == launcher()["jobNamespace"]
    assert _grants(role) == dagster_k8s_api_calls()


def test_the_run_service_account_may_apply_seldon_deployments_and_nothing_else_there():
    roles = [d.body for d in objects("Role")
             if d.body["metadata"]["namespace"] == SERVING_NAMESPACE
             and any("machinelearning.seldon.io" in r.get("apiGroups", [])
                     for r in d.body["rules"])]
    assert len(roles) == 1
    group = "machinelearning.seldon.io"
    verbs = {"get", "list", "watch", "create", "patch", "update"}
    assert _grants(roles[0]) == ({(group, "seldondeployments", v) for v in verbs}
                                 | {(group, "seldondeployments/status", "get")})
    bindings = [d.body for d in objects("RoleBinding")
                if d.body["roleRef"]["name"] == roles[0]["metadata"]["name"]]
    assert [s["name"] for b in bindings for s in b["subjects"]] == [RUN_SERVICE_ACCOUNT]


def test_dagster_runs_as_the_least_privilege_account_not_the_charts_own():
    assert values()["rbacEnabled"] is False
    assert values()["dagster-user-deployments"]["rbacEnabled"] is False
    assert values()["serviceAccount"]["create"] is False
    assert values()["dagster-user-deployments"]["serviceAccount"]["create"] is False
    assert values()["global"]["serviceAccountName"] == RUN_SERVICE_ACCOUNT
    find("ServiceAccount", RUN_SERVICE_ACCOUNT)
    job_pod = run_worker_job()["spec"]["template"]["spec"]
    assert job_pod["serviceAccountName"] == RUN_SERVICE_ACCOUNT


# === Spark Connect ========================================================================
def test_spark_connect_is_one_driver_on_kubernetes_with_executor_pods():
    deployment = find("Deployment", "spark-connect")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "spark"
    (container,) = pod["containers"]
    spark_home = dockerfile_env(USER_CODE_DOCKERFILE)["SPARK_HOME"]
    assert container["command"] == [f"{spark_home}/bin/spark-submit"]
    args = container["args"]
    assert args[args.index("--class") + 1] == (
        "org.apache.spark.sql.connect.service.SparkConnectServer")
    assert args[args.index("--master") + 1] == "k8s://https://kubernetes.default.svc"
    conf = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")
    assert conf["spark.connect.grpc.binding.port"] == CONFIG["LAKELOOP_SPARK_REMOTE"].rsplit(
        ":", 1)[1]
    assert conf["spark.kubernetes.namespace"] == NAMESPACE
    assert conf["spark.kubernetes.container.image"] == USER_CODE_IMAGE
    from lakeloop.spark import JIT_OPTIONS  # the server's JVMs compile as a local driver does

    for role in ("driver", "executor"):
        assert set(JIT_OPTIONS) <= set(conf[f"spark.{role}.extraJavaOptions"].split())
    template = Path(conf["spark.kubernetes.executor.podTemplateFile"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(template.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert template.name in find("ConfigMap", volume["configMap"]["name"])["data"]
    role = find("Role", "spark")
    assert {r for _, r, _ in _grants(role)} == {"pods", "services", "configmaps"}


# === the Helm values ======================================================================
# The keys the chart's values.schema.json allows where it forbids others
# (additionalProperties: false), and the keys its templates read from free-form mappings.
SCHEMA_KEYS = {
    "dagsterWebserver": {
        "replicaCount", "image", "nameOverride", "pathPrefix", "service", "workspace", "env",
        "envConfigMaps", "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity",
        "tolerations", "podSecurityContext", "securityContext", "resources", "readinessProbe",
        "livenessProbe", "startupProbe", "annotations", "enableReadOnly", "dbStatementTimeout",
        "dbPoolRecycle", "logLevel", "schedulerName", "volumeMounts", "volumes",
        "initContainerResources"},
    "dagsterWebserver.service": {"type", "port", "annotations"},
    "dagsterDaemon": {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
        "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe",
        "startupProbe", "annotations", "runMonitoring", "runRetries", "sensors", "schedules",
        "schedulerName", "volumeMounts", "volumes", "initContainerResources"},
    "dagsterDaemon.runCoordinator": {"enabled", "type", "config"},
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds",
        "dequeueNumWorkers", "dequeueUseThreads", "blockOpConcurrencyLimitedRuns"},
    # configmap-instance.yaml reads these and drops anything else silently.
    "dagsterDaemon.runMonitoring": {
        "enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxResumeRunAttempts",
        "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds"},
    "dagsterDaemon.runRetries": {"enabled", "maxRetries"},
    "runLauncher": {"type", "config"},
    "runLauncher.config.k8sRunLauncher": {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig"},
    "runLauncher.config.k8sRunLauncher.runK8sConfig": set(RUN_K8S_CONFIG_KEYS),
    "computeLogManager": {"type", "config"},
    "telemetry": {"enabled"},
    "global": {"postgresqlSecretName", "dagsterHome", "serviceAccountName",
               "celeryConfigSecretName"},
    "dagster-user-deployments.deployments[0]": {
        "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
        "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations",
        "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
        "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels",
        "volumeMounts", "volumes", "schedulerName", "initContainers", "sidecarContainers"},
}


def _at(tree: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        tree = tree[int(part[1:-1])] if part.startswith("[") else tree[part]
    return tree


def unknown_keys(tree: dict) -> list[str]:
    problems = []
    for path, allowed in SCHEMA_KEYS.items():
        try:
            node = _at(tree, path)
        except KeyError:
            continue
        problems += [f"{path}.{key}" for key in set(node) - allowed]
    limits = _at(tree, "dagsterDaemon.runCoordinator.config.queuedRunCoordinator")
    for limit in limits.get("tagConcurrencyLimits") or []:
        unknown = set(limit) - {"key", "value", "limit"}
        problems += [f"tagConcurrencyLimits.{key}" for key in unknown]
    return problems


def test_the_helm_values_use_only_keys_the_chart_knows():
    assert unknown_keys(values()) == []
    broken = copy.deepcopy(values())
    broken["runLauncher"]["config"]["k8sRunLauncher"]["failPodOnRunFaliure"] = True
    broken["dagsterDaemon"]["runMonitoring"]["maxResumeRunAtempts"] = 1
    assert sorted(unknown_keys(broken)) == [
        "dagsterDaemon.runMonitoring.maxResumeRunAtempts",
        "runLauncher.config.k8sRunLauncher.failPodOnRunFaliure"]


def test_runs_are_kubernetes_jobs_queued_under_concurrency_limits():
    assert values()["runLauncher"]["type"] == "K8sRunLauncher"
    assert launcher()["jobNamespace"] == NAMESPACE
    assert launcher()["failPodOnRunFailure"] is True
    coordinator = values()["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] > 0
    limits = {limit["key"]: limit for limit in queued["tagConcurrencyLimits"]}
    assert limits["lakeloop/step"]["value"] == "train" and limits["lakeloop/step"]["limit"] >= 1
    assert limits["use_case"]["value"] == {"applyLimitPerUniqueValue": True}
    daemon = values()["dagsterDaemon"]
    assert daemon["runMonitoring"]["enabled"] is True
    assert daemon["runMonitoring"]["startTimeoutSeconds"] > 0
    assert "maxResumeRunAttempts" in daemon["runMonitoring"]
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": 2}


def test_the_instance_config_the_chart_renders_is_valid_for_dagster():
    """The values as the chart's instance template renders them into dagster.yaml, validated
    against Dagster's own config schemas (dagster 1.13.27, dagster-k8s 0.29.27)."""
    from dagster._config import Shape, process_config
    from dagster._core.instance.config import dagster_instance_config_schema
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    config, shared, daemon = launcher(), values()["global"], values()["dagsterDaemon"]
    run_launcher = {
        "load_incluster_config": config["loadInclusterConfig"],
        "job_namespace": config["jobNamespace"],
        "image_pull_policy": config["imagePullPolicy"],
        "service_account_name": shared["serviceAccountName"],
        "dagster_home": shared["dagsterHome"],
        "instance_config_map": "dagster-instance",
        "postgres_password_secret": shared["postgresqlSecretName"],
        "env_config_maps": [source["name"] for source in config["envConfigMaps"]],
        "env_secrets": [source["name"] for source in config["envSecrets"]],
        "volume_mounts": config["volumeMounts"],
        "volumes": config["volumes"],
        "labels": config["labels"],
        "fail_pod_on_run_failure": config["failPodOnRunFailure"],
        "run_k8s_config": {RUN_K8S_CONFIG_KEYS[k]: v for k, v in config["runK8sConfig"].items()},
    }
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    run_coordinator = {"max_concurrent_runs": queued["maxConcurrentRuns"],
                       "tag_concurrency_limits": queued["tagConcurrencyLimits"]}
    snake = {"enabled": "enabled", "startTimeoutSeconds": "start_timeout_seconds",
             "cancelTimeoutSeconds": "cancel_timeout_seconds",
             "maxResumeRunAttempts": "max_resume_run_attempts",
             "pollIntervalSeconds": "poll_interval_seconds",
             "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds",
             "maxRetries": "max_retries"}
    instance = {
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher",
                         "config": run_launcher},
        "run_coordinator": {"module": "dagster.core.run_coordinator",
                            "class": "QueuedRunCoordinator", "config": run_coordinator},
        "run_monitoring": {snake[k]: v for k, v in daemon["runMonitoring"].items()},
        "run_retries": {snake[k]: v for k, v in daemon["runRetries"].items()},
        "telemetry": {"enabled": values()["telemetry"]["enabled"]},
    }
    for config_type, value in ((Shape(dagster_instance_config_schema()), instance),
                               (K8sRunLauncher.config_type(), run_launcher),
                               (QueuedRunCoordinator.config_type(), run_coordinator)):
        result = process_config(config_type, value)
        assert result.success, [error.message for error in result.errors]


def test_the_run_worker_job_dagster_k8s_builds_carries_the_contract():
    job = run_worker_job()
    strict_load(job, "V1Job", "dagster-k8s run worker Job")
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == USER_CODE_IMAGE
    assert {s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]} == {
        "lakeloop-config", "lakeloop-object-storage", "lakeloop-alerts"}
    by_name = {var["name"]: var for var in container["env"]}
    for name in ("LAKELOOP_REDIS_PASSWORD", "LAKELOOP_FEAST_REGISTRY"):
        reference = by_name[name]["valueFrom"]["secretKeyRef"]
        assert (reference["name"], reference["key"]) == SECRET_ENV[name]


def test_the_code_location_serves_the_definitions_from_the_user_code_image():
    deployment = user_deployment()
    assert deployment["name"] == "lakeloop"
    assert (deployment["image"]["repository"], deployment["image"]["tag"]) == tuple(
        USER_CODE_IMAGE.split(":"))
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "lakeloop.definitions"]
    assert deployment["port"] == 4000
    # Runs are shaped by the launcher alone (see the comment in the values).
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    assert {s["name"] for s in deployment["envConfigMaps"]} == {"lakeloop-config"}
    assert {s["name"] for s in deployment["envSecrets"]} == {"lakeloop-object-storage",
                                                              "lakeloop-alerts"}
    cmd = dockerfile_instructions(USER_CODE_DOCKERFILE)
    (default,) = [args for op, args in cmd if op == "CMD"]
    assert default[default.index("-m") + 1] == "lakeloop.definitions"
    assert default[default.index("-p") + 1] == str(deployment["port"])


def test_the_postgres_password_secret_is_made_by_hand_not_by_the_chart():
    assert values()["generatePostgresqlPasswordSecret"] is False
    assert values()["postgresql"]["enabled"] is True
    name = values()["global"]["postgresqlSecretName"]
    assert name == values()["postgresql"]["existingSecret"] == "dagster-postgresql-secret"
    assert "postgresql-password" in find("Secret", name)["stringData"]
    assert "postgresqlPassword" not in values()["postgresql"]
    assert "created by hand" in VALUES_FILE.read_text()


# === Dockerfiles and the build context ====================================================
def dockerfile_instructions(path: Path) -> list[tuple[str, Any]]:
    """(INSTRUCTION, arguments): JSON-form arguments as lists, the rest as one string."""
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    instructions = []
    for line in logical:
        op, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        instructions.append((op.upper(), yaml.safe_load(rest) if rest.startswith("[") else rest))
    return instructions


def dockerfile_env(path: Path) -> dict[str, str]:
    env = {}
    for op, args in dockerfile_instructions(path):
        if op == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


@pytest.mark.parametrize("path", [USER_CODE_DOCKERFILE, SERVING_DOCKERFILE],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfiles_end_as_a_non_root_user(path):
    instructions = dockerfile_instructions(path)
    users = [i for i, (op, _) in enumerate(instructions) if op == "USER"]
    assert users, f"{path}: no USER"
    user = instructions[users[-1]][1].split(":")[0]
    assert user not in ("root", "0") and user == str(UID)
    # Nothing after it switches back or builds as another user.
    assert not [op for op, _ in instructions[users[-1] + 1:] if op in ("USER", "RUN", "COPY")]


def test_the_user_code_image_is_built_as_the_task_describes():
    instructions = dockerfile_instructions(USER_CODE_DOCKERFILE)
    ops = [op for op, _ in instructions]
    runs = [args for op, args in instructions if op == "RUN"]
    copies = [args.split() for op, args in instructions if op == "COPY"]
    assert instructions[0] == ("FROM", "python:3.11-slim-bookworm")
    assert any("openjdk-17-jre-headless" in run for run in runs)
    assert any("pip install uv==0.13.9" in run for run in runs)
    syncs = [i for i, (op, args) in enumerate(instructions) if op == "RUN" and "uv sync" in args]
    assert len(syncs) == 2
    first, second = instructions[syncs[0]][1], instructions[syncs[1]][1]
    assert "--frozen" in first and "--no-dev" in first and "--no-install-project" in first
    assert "--frozen" in second and "--no-install-project" not in second
    lock_copy = ops.index("COPY")
    assert "uv.lock" in copies[0] and lock_copy < syncs[0]
    project = {Path(c[-2]).name for c in copies if c[-2] in {"platform", "assets", "jobs",
                                                              "sensors", "feature_repo"}}
    assert project == {"platform", "assets", "jobs", "sensors", "feature_repo"}
    # Delta's jars and, in s3/, Hadoop's S3A connector (Delta tables on object storage)
    assert [".cache/jars/", "/opt/lakeloop/jars/"] in [c[-2:] for c in copies]
    env = dockerfile_env(USER_CODE_DOCKERFILE)
    assert env["LAKELOOP_JARS_DIR"] == "/opt/lakeloop/jars"
    assert env["LAKELOOP_ENV"] == CONFIG["LAKELOOP_ENV"]
    assert env["DAGSTER_HOME"] == values()["global"]["dagsterHome"]
    assert ("WORKDIR", "/app") in instructions and ("EXPOSE", "4000") in instructions
    assert ("CMD", ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m",
                    "lakeloop.definitions"]) in instructions
    # The chart and the run launcher pass whole command lines as arguments.
    assert "ENTRYPOINT" not in ops


def _docker_pattern(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def docker_ignores(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (the last matching
    pattern wins; a pattern matching a parent directory matches everything under it)."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _docker_pattern(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = not negated
    return ignored


def test_the_build_context_keeps_jars_and_sources_and_drops_the_rest():
    for ignored in (".venv/bin/python", ".venv-serving/bin/python", ".lakeloop/dagster/x",
                    ".cache/ivy/cache/x.jar", ".cache/stamps/venv.1", ".git/HEAD",
                    "bench/run.py", "tests/conftest.py", "platform/lakeloop/__pycache__/x.pyc"):
        assert docker_ignores(ignored), ignored
    for kept in (".cache/jars/delta-spark_4.2_2.13-4.4.0.jar",
                 ".cache/jars/lakeloop-local-log-store.jar", "uv.lock", "pyproject.toml",
                 "README.md", "platform/lakeloop/settings.py", "feature_repo/feature_store.yaml",
                 "infra/serving/requirements.lock"):
        assert not docker_ignores(kept), kept
    # Whatever either Dockerfile copies is in the context.
    for path in (USER_CODE_DOCKERFILE, SERVING_DOCKERFILE):
        for op, args in dockerfile_instructions(path):
            if op == "COPY" and "--from" not in args:
                for source in args.split()[:-1]:
                    sample = source.replace("*", "x") + ("" if "." in Path(source).name
                                                         else "/x.py")
                    assert not docker_ignores(sample), f"{path.name} copies {source}"
