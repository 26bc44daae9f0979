"""The k8s environment without a cluster: the definitions load with LAKELOOP_ENV=k8s, resolve
the Kubernetes executor and the production resources, and the run and step pods that
dagster-k8s would create are built with dagster-k8s's own job construction and checked.

The Kubernetes API is the one thing stood in for: a kubeconfig pointing at a closed port,
so the launcher initialises exactly as it would, and nothing is ever sent.
"""

import re
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)
from kubernetes.client import ApiClient

from lakeloop import k8s
from lakeloop.definitions import build_definitions
from lakeloop.settings import Env, Settings
from tests.conftest import write_use_case

PROJECT = Path(__file__).resolve().parents[1]
HELM_VALUES = PROJECT / "infra" / "helm" / "dagster-values.yaml"
IMAGE = "lakeloop/user-code:0.1.0"
K8S_ENV = {
    "LAKELOOP_ENV": "k8s",
    "LAKELOOP_DATA_ROOT": "/var/lib/lakeloop",
    "LAKELOOP_TABLE_ROOT": "s3://lakeloop/tables",
    "LAKELOOP_S3_ENDPOINT": "http://object-store.lakeloop.svc:8333",
    "LAKELOOP_SPARK_REMOTE": "sc://spark-connect.lakeloop.svc:15002",
    "LAKELOOP_REDIS_URL": "redis.lakeloop.svc:6379",
    "LAKELOOP_FEATURE_SERVER_URL": "http://lakeloop-feature-server.lakeloop.svc:6566",
    "LAKELOOP_IMAGE": IMAGE,
}


@pytest.fixture(scope="module")
def gpu_use_cases(tmp_path_factory) -> Path:
    """The built-in use case asking for a GPU (model.device: cuda)."""
    return write_use_case(tmp_path_factory.mktemp("uc"), 9300,
                          **{r"^  seed: 42$": "  seed: 42\n  device: cuda"}).parent


@pytest.fixture(scope="module")
def settings(gpu_use_cases) -> Settings:
    return Settings.from_env({**K8S_ENV, "LAKELOOP_USE_CASES": str(gpu_use_cases)})


@pytest.fixture(scope="module")
def defs(settings) -> dg.Definitions:
    return build_definitions(settings)


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> K8sRunLauncher:
    """The run launcher exactly as the Helm values configure it (camelCase -> the instance's
    snake_case), with a kubeconfig for a cluster that is not there."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "none", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}]}))
    values = yaml.safe_load(HELM_VALUES.read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    cfg = values["runLauncher"]["config"]["k8sRunLauncher"]
    snake = {k: re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower() for k in cfg}
    kwargs = {snake[k]: v for k, v in cfg.items()
              if k not in ("loadInclusterConfig", "image", "envConfigMaps", "envSecrets")}
    kwargs["run_k8s_config"] = {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v
                                for k, v in cfg.get("runK8sConfig", {}).items()}
    kwargs["volume_mounts"] = [{re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v
                                for k, v in m.items()} for m in cfg.get("volumeMounts", [])]
    kwargs["volumes"] = [{"name": v["name"], **{
        re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): (
            {"claim_name": val["claimName"]} if k == "persistentVolumeClaim" else val)
        for k, val in v.items() if k != "name"}} for v in cfg.get("volumes", [])]
    return K8sRunLauncher(
        service_account_name="lakeloop-run-launcher",
        instance_config_map="dagster-instance",
        postgres_password_secret="dagster-postgresql-secret",
        dagster_home="/opt/dagster/dagster_home",
        job_image=IMAGE,
        load_incluster_config=False,
        kubeconfig_file=str(kubeconfig),
        env_config_maps=[m["name"] if isinstance(m, dict) else m
                         for m in cfg.get("envConfigMaps", [])],
        env_secrets=[s["name"] if isinstance(s, dict) else s for s in cfg.get("envSecrets", [])],
        **kwargs,
    )


def _pod(job) -> dict:
    return ApiClient().sanitize_for_serialization(job)["spec"]["template"]["spec"]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_k8s_settings_choose_the_cluster_defaults(settings):
    assert settings.env is Env.K8S
    assert settings.executor == "k8s" and settings.serving == "kubernetes"
    assert settings.online_store == "redis"
    assert settings.table_root == "s3a://lakeloop/tables"  # Hadoop's connector is s3a


def test_definitions_resolve_the_k8s_executor_and_production_resources(defs):
    assert defs.executor.name == "lakeloop_k8s_executor"
    resources = defs.resources
    lakehouse = resources["lakehouse"]
    assert lakehouse.table_root == "s3a://lakeloop/tables"
    assert lakehouse.data_root == "/var/lib/lakeloop"
    uc = "credit_risk"
    assert lakehouse.table([uc, "lakehouse", "silver_applications"]) == \
        "s3a://lakeloop/tables/credit_risk/lakehouse/silver_applications"
    spark = resources["spark"]
    assert spark.remote == "sc://spark-connect.lakeloop.svc:15002" and spark.object_storage
    # Secrets are environment variables read when the resource is used, never values.
    feast, mlflow = resources["feast"], resources["mlflow"]
    assert isinstance(feast.registry_path, dg.EnvVar)
    assert feast.registry_path.env_var_name == "LAKELOOP_FEAST_REGISTRY"
    assert isinstance(feast.redis_password, dg.EnvVar)
    assert feast.online_store == "redis"
    assert isinstance(mlflow.tracking_uri, dg.EnvVar)
    serving = resources["serving"]
    assert serving.kubernetes and serving.namespace == "lakeloop"
    assert serving.cluster_feature_server_url == K8S_ENV["LAKELOOP_FEATURE_SERVER_URL"]


def test_definitions_load_without_reading_secrets(settings, monkeypatch):
    for name, _, _ in k8s.SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    build_definitions(settings)  # no secret is needed to load the code location


def test_run_pod_from_the_helm_values(launcher):
    run = dg.DagsterRun(job_name="credit_risk_retrain", run_id="0" * 36)
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(None, launcher),
        args=["dagster", "api", "execute_run", "{}"], job_name="dagster-run-0000",
        user_defined_k8s_config=context.run_k8s_config, component="run_worker",
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": run.job_name}])
    pod = _pod(job)
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert pod["serviceAccountName"] == "lakeloop-run-launcher"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"] and container["resources"]["requests"]
    sources = {(s.get("configMapRef") or s.get("secretRef"))["name"]
               for s in container["envFrom"]}
    assert {"lakeloop-config", "lakeloop-object-storage"} <= sources
    env = _env(container)
    assert env["LAKELOOP_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "lakeloop-redis"
    assert "value" not in env["LAKELOOP_REDIS_PASSWORD"]


def _step_pod(defs, launcher, asset_key: dg.AssetKey) -> dict:
    """The step pod k8s_job_executor builds for one asset: the run's context, the executor's
    configuration, then the asset's own dagster-k8s/config tag (as dagster_k8s.executor
    merges them), through construct_dagster_k8s_job."""
    cfg = k8s.executor_config(IMAGE)
    executor_context = K8sContainerContext(
        service_account_name=cfg["service_account_name"],
        env_config_maps=cfg["env_config_maps"], volume_mounts=cfg["volume_mounts"],
        volumes=cfg["volumes"], labels=cfg["labels"], namespace=cfg["job_namespace"],
        resources=cfg.get("resources"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(cfg["step_k8s_config"]))
    op_tags = defs.resolve_assets_def(asset_key).op.tags
    run = dg.DagsterRun(job_name="credit_risk_retrain", run_id="1" * 36)
    context = (K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
               .merge(executor_context)
               .merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op_tags))))
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(cfg["job_image"], launcher),
        args=["dagster", "api", "execute_step"], job_name="dagster-step-1111",
        user_defined_k8s_config=context.run_k8s_config, component="step_worker",
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": run.job_name}])
    return _pod(job)


def test_training_step_pod_asks_for_a_gpu_and_tolerates_gpu_nodes(defs, launcher):
    pod = _step_pod(defs, launcher, dg.AssetKey(["credit_risk", "training", "candidate_model"]))
    container = pod["containers"][0]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits["nvidia.com/gpu"] == "1" and requests["nvidia.com/gpu"] == "1"
    assert limits["memory"] == k8s.PROFILES["train"]["limits"]["memory"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        pod["tolerations"]
    assert container["image"] == IMAGE
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = _env(container)
    for name, secret, key in k8s.SECRET_ENV:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}, name
        assert "value" not in env[name]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert k8s.DATA_MOUNT in mounts


def test_spark_steps_get_a_driver_sized_pod_and_no_gpu(defs, launcher):
    pod = _step_pod(defs, launcher,
                    dg.AssetKey(["credit_risk", "lakehouse", "gold_applicant_features"]))
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["memory"] == k8s.PROFILES["spark"]["limits"]["memory"]
    assert "nvidia.com/gpu" not in resources["limits"]
    assert not pod.get("tolerations")


def test_a_cpu_use_case_never_asks_for_a_gpu(tmp_path):
    uc_dir = write_use_case(tmp_path / "uc", 9400).parent
    defs = build_definitions(Settings.from_env({**K8S_ENV, "LAKELOOP_USE_CASES": str(uc_dir)}))
    tags = defs.resolve_assets_def(
        dg.AssetKey(["credit_risk", "training", "candidate_model"])).op.tags
    assert "nvidia.com/gpu" not in str(tags)
    assert tags["lakeloop/step"] == "train"


def test_large_backfills_run_in_windows_of_the_configured_days(tmp_path):
    """scale.backfill_days_per_run cuts a three-year backfill into runs of that many days
    (each one Spark job per asset); unset, any range is one run."""
    cut = write_use_case(tmp_path / "cut", 9500,
                         **{r"^serving:$": "scale:\n  backfill_days_per_run: 31\n\nserving:"})
    whole = write_use_case(tmp_path / "whole", 9600)
    silver = dg.AssetKey(["credit_risk", "lakehouse", "silver_applications"])
    for path, expected in ((cut, 31), (whole, None)):
        defs = build_definitions(Settings.from_env({"LAKELOOP_USE_CASES": str(path.parent)}))
        policy = defs.resolve_assets_def(silver).backfill_policy
        assert policy.max_partitions_per_run == expected, path
