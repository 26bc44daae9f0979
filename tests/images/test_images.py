"""Smoke tests of the built images (make images): each started as its deployment starts it,
answering on 127.0.0.1, as its non-root user. Without Docker here, buildah runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import xgboost as xgb

from lakeloop.deployment.manifests import (
    COMPONENTS,
    MODEL_CLASSES,
    request_schema,
    seldon_parameters,
)
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case
from tests.images.conftest import SERVING, USER_CODE, entrypoint, run, serving

pytestmark = pytest.mark.images
SELDON = "http://127.0.0.1:9000"  # the serving image's port (its ENTRYPOINT)
FEATURES = ["income", "loan_amount"]


def _component(name: str, params: dict, component: str | None = None) -> dict[str, str]:
    """The environment the Seldon operator gives a container of a graph node."""
    default, service_type = COMPONENTS[name]
    component = component or default
    return {"MODEL_NAME": component, "SERVICE_TYPE": service_type,
            "PREDICTIVE_UNIT_PARAMETERS": json.dumps(seldon_parameters(params))}


@pytest.mark.parametrize("runtime", sorted(MODEL_CLASSES))
def test_the_serving_image_answers_as_a_model_node_as_its_non_root_user(tmp_path, runtime):
    from lakeloop.training.onnx_export import to_onnx

    rng = np.random.default_rng(3)
    x = rng.random((300, 2))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(x, label=x[:, 0] > 0.4), num_boost_round=5)
    models, data = tmp_path / "models", tmp_path / "data"
    models.mkdir()
    data.mkdir()
    data.chmod(0o777)  # the volume, writable by the pod's user (fsGroup)
    booster.save_model(models / "model.ubj")
    (models / "model.onnx").write_bytes(to_onnx(booster, 2))
    onnx = {"onnx_path": "/mnt/models/model.onnx"} if runtime == "onnx" else {}
    env = _component("model", {
        "model_path": "/mnt/models/model.ubj", **onnx, "features": json.dumps(FEATURES),
        "threshold": 0.5, "model_name": "credit_risk", "model_version": "7",
        "predictor": "champion", "log_dir": "/mnt/data/requests"}, MODEL_CLASSES[runtime])
    rows = [[0.9, 0.1], [0.1, 0.8]]
    with serving(SERVING, entrypoint(SERVING), f"{SELDON}/health/ping", env,
                 {models: "/mnt/models:ro", data: "/mnt/data"}):
        answer = requests.post(f"{SELDON}/predict", timeout=10,
                               json={"data": {"names": FEATURES, "ndarray": rows}})
        bad = requests.post(f"{SELDON}/predict", timeout=10,
                            json={"data": {"names": ["income"], "ndarray": [[0.5]]}})
        metadata = requests.get(f"{SELDON}/api/v1.0/metadata", timeout=10)
    assert answer.status_code == 200, answer.text
    got = [p for p, _ in answer.json()["data"]["ndarray"]]
    want = booster.inplace_predict(np.array(rows)).tolist()
    # the ONNX export agrees within the parity gate's default tolerance
    assert np.allclose(got, want, rtol=0, atol=1e-6 if runtime == "xgboost" else 1e-5)
    assert answer.json()["meta"]["tags"]["model_version"] == "7"
    assert bad.status_code == 400 and "loan_amount" in bad.text
    assert metadata.json()["versions"] == ["7"]
    assert metadata.json()["platform"] == runtime
    logged = list((data / "requests").rglob("*.jsonl"))
    assert logged, "the answered requests were not logged"
    assert {p.stat().st_uid for p in logged} == {1000}  # written by the image's user
    records = [json.loads(line) for p in logged for line in p.read_text().splitlines()]
    assert sorted(r["status"] for r in records) == [200, 200, 400]


def test_the_serving_image_checks_requests_as_a_transformer_node(tmp_path):
    use_case = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
    schema = request_schema(use_case)
    env = _component("transformer", {
        "feature_server_url": "http://127.0.0.1:9",  # nothing there: the store is down
        "feature_service": "credit_risk_v1", "entity_key": schema["entity_key"],
        "request_features": json.dumps(schema["request_features"]),
        "features": json.dumps(list(use_case.feature_names)), "schema": json.dumps(schema)})
    good = {schema["event_key"]: "app-1", schema["entity_key"]: "A1",
            "loan_amount": 12000.0, "loan_term_months": 36, "channel": "online"}
    with serving(SERVING, entrypoint(SERVING), f"{SELDON}/health/ping", env):
        outside = requests.post(f"{SELDON}/transform-input", timeout=10,
                                json={"jsonData": {**good, "loan_amount": -5.0}})
        store_down = requests.post(f"{SELDON}/transform-input", timeout=10,
                                   json={"jsonData": good})
    assert outside.status_code == 422, outside.text
    assert "loan_amount" in outside.text
    assert store_down.status_code == 503, store_down.text
    assert "FEATURE_STORE_UNAVAILABLE" in store_down.text


def test_the_user_code_image_loads_the_cluster_definitions():
    done = run(USER_CODE, ["dagster", "definitions", "validate", "-m", "lakeloop.definitions"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Validation successful" in done.stdout + done.stderr


SPARK_CHECK = """
import json
from lakeloop.settings import Settings
from lakeloop.spark import SparkResource
settings = Settings.from_env()
spark = SparkResource(master="local[1]", jars_dir=str(settings.jars_dir), object_storage=True,
                      s3_endpoint="http://127.0.0.1:9", driver_memory="1g").session()
spark.range(5).selectExpr("id", "DATE'2026-09-01' AS ds").write.format("delta") \\
    .partitionBy("ds").save("/tmp/smoke/table")
rows = spark.read.format("delta").load("/tmp/smoke/table").count()
jvm = spark.sparkContext._jvm
s3a = jvm.java.lang.Class.forName("org.apache.hadoop.fs.s3a.S3AFileSystem").getName()
print(json.dumps({"rows": rows, "s3a": s3a, "user": __import__("os").getuid()}))
"""


def test_the_user_code_image_runs_spark_with_delta_and_s3_on_its_own_java():
    # A pod's /etc/hosts names the pod; a buildah container's hostname resolves nowhere, so
    # the driver is told its address (what SPARK_LOCAL_IP is for).
    done = run(USER_CODE, ["python", "-c", SPARK_CHECK], timeout=600,
               env={"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "localhost"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"rows": 5, "s3a": "org.apache.hadoop.fs.s3a.S3AFileSystem",
                      "user": 1000}


def test_the_user_code_image_starts_the_feature_server(tmp_path):
    data = tmp_path / "data"
    (data / "feast").mkdir(parents=True)
    data.chmod(0o777)
    (data / "feast").chmod(0o777)
    port = 6566
    command = ["feast", "-c", "/app/feature_repo", "serve", "-h", "127.0.0.1", "-p",
               str(port), "-w", "1", "--no-access-log"]
    with serving(USER_CODE, command, f"http://127.0.0.1:{port}/health",
                 {"LAKELOOP_DATA_ROOT": "/mnt/data"}, {data: "/mnt/data"}):
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
        unknown = requests.post(f"http://127.0.0.1:{port}/get-online-features", timeout=10,
                                json={"feature_service": "no_such_service",
                                      "entities": {"applicant_id": ["A1"]}})
    assert health.status_code == 200, health.text
    assert unknown.status_code in (404, 422, 500) and "no_such_service" in unknown.text
