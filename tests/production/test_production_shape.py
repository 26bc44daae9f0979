"""The production shape, really running: the whole graph in the k8s environment's settings
against PostgreSQL (Dagster's storage, MLflow's backend store, Feast's registry), Redis
with a password (Feast's online store), SeaweedFS's S3 gateway (the Delta tables and MLflow's
artifacts), an MLflow tracking server and a Spark Connect server (every Spark query of the
run), all started here from real binaries. Only the Kubernetes API is missing: steps run
in-process and serving runs locally.

The graph runs in its own process (``python -m tests.support.graph_run``): a process holds
either a classic Spark session or a Connect client, and the other tests' is classic.
"""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, free_port_pair, write_use_case
from tests.support.services import ProductionShape

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.integration]

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    root = tmp_path_factory.mktemp("production")
    data_root = root / "data"
    shape = ProductionShape(root / "services", data_root)
    use_cases = write_use_case(root / "use_cases", free_port_pair(),
                               **{r"^sensitive: true$": "sensitive: false"}).parent
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("LAKELOOP_", "MLFLOW_"))},
           **shape.env, "LAKELOOP_USE_CASES": str(use_cases),
           "LAKELOOP_FEATURE_SERVER_PORT": str(free_port()), "TZ": "UTC"}
    out = root / "run.json"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.support.graph_run", "--days", "30", "--rows-per-day",
             "300", "--json", str(out)],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=1500)
        result = json.loads(out.read_text()) if out.exists() else {}
        yield shape, proc, result
    finally:
        shape.stop()


def test_the_whole_graph_succeeds_on_production_services(production):
    _, proc, result = production
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert result["success"] and result["env"] == "k8s", result.get("failures")
    assert result["table_root"].startswith("s3a://")
    # Every query went through the Spark Connect server: the run started no JVM of its own.
    assert result["spark"] == "connect" and result["local_jvms"] == [], result
    for step in ("credit_risk__silver_applications", "credit_risk__training__candidate_model",
                 "credit_risk__deployment__seldon_deployment",
                 "credit_risk__monitoring__drift_report"):
        assert step in result["steps"], sorted(result["steps"])


def test_delta_tables_live_on_object_storage_not_local_disk(production):
    shape, _, _ = production
    for table in ("lakehouse/bronze_applications", "lakehouse/silver_applications",
                  "lakehouse/quarantine_applications", "lakehouse/gold_applicant_features",
                  "training/training_set", "monitoring/inference_log"):
        commits = [k for k in shape.s3.keys(f"tables/credit_risk/{table}/_delta_log/")
                   if k.endswith(".json")]
        assert commits, f"no Delta commits for {table} on S3"
    # The one Delta table on the data root's volume is the audit trail, by design: delta-rs
    # writes it from every process (the CLI and sensors included, no Spark), on the volume
    # every pod mounts (README, "Alerts and the audit trail"). No lakehouse table is there.
    local = [str(p.parent.relative_to(shape.data_root))
             for p in shape.data_root.rglob("_delta_log")]
    assert set(local) <= {"credit_risk/governance/audit"}, \
        f"Delta tables written to local disk: {local}"
    assert local, "the run recorded no decision in its audit trail"


def test_dagster_runs_and_events_are_in_postgres(production):
    import psycopg2

    shape, _, result = production
    with contextlib.closing(psycopg2.connect(shape.postgres.url("dagster"))) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_id = %s", (result["run_id"],))
            assert cur.fetchone() == ("SUCCESS",)
            cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND "
                        "dagster_event_type = 'ASSET_MATERIALIZATION'", (result["run_id"],))
            assert cur.fetchone()[0] >= 15


def test_mlflow_registry_in_postgres_and_artifacts_on_s3(production):
    from mlflow import MlflowClient

    shape, _, _ = production
    client = MlflowClient(tracking_uri=shape.mlflow.url, registry_uri=shape.mlflow.url)
    champion = client.get_model_version_by_alias("credit_risk", "champion")
    run = client.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    stored = shape.s3.keys("mlflow/")
    assert any(k.endswith("model.ubj") for k in stored), stored[:20]
    assert not any(k.endswith((".pkl", ".pickle")) for k in stored)


def test_feast_registry_in_postgres_and_online_store_in_redis(production):
    import psycopg2
    import redis

    shape, _, _ = production
    with contextlib.closing(psycopg2.connect(shape.postgres.url("feast"))) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM feature_views")
            assert cur.fetchone()[0] >= 1
    client = redis.Redis(port=shape.redis.port, password=shape.redis.password)
    assert client.dbsize() > 100  # one hash per applicant
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=shape.redis.port).ping()
