"""The code location loads, with the asset graph the snapshot records."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from lakeloop.definitions import build_definitions
from lakeloop.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).with_name("snapshots") / "asset_keys.txt"


def _keys(defs: dg.Definitions) -> list[str]:
    return sorted(k.to_user_string() for k in defs.resolve_all_asset_keys())


def test_asset_keys_match_snapshot(tmp_path):
    defs = build_definitions(Settings.from_env({}).with_data_root(tmp_path))
    assert _keys(defs) == SNAPSHOT.read_text().split(), (
        "the asset graph changed; if intended, update tests/snapshots/asset_keys.txt")


def test_every_asset_has_description_group_owner_and_kinds(tmp_path):
    defs = build_definitions(Settings.from_env({}).with_data_root(tmp_path))
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name.startswith("credit_risk_"), key
        assert node.owners == ["team:credit-risk"], key
        assert node.kinds, key


def test_dagster_cli_validates_the_code_location(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "LAKELOOP_DATA_ROOT": str(tmp_path),
           "DAGSTER_HOME": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run([str(Path(sys.executable).with_name("dagster")), "definitions",
                           "validate", "-m", "lakeloop.definitions"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_jobs_sensors_and_schedule_are_defined(tmp_path):
    defs = build_definitions(Settings.from_env({}).with_data_root(tmp_path))
    assert defs.resolve_job_def("credit_risk_daily").partitions_def is not None
    assert defs.resolve_job_def("credit_risk_retrain")
    assert defs.resolve_sensor_def("credit_risk_drift_sensor")
    assert defs.resolve_schedule_def("credit_risk_daily_schedule")


def test_promotion_jobs_and_checks_are_defined(tmp_path):
    defs = build_definitions(Settings.from_env({}).with_data_root(tmp_path))
    for job in ("credit_risk_promote", "credit_risk_approval", "credit_risk_rollback"):
        assert defs.resolve_job_def(job), job
    assert defs.resolve_sensor_def("credit_risk_approval_sensor")
    graph = defs.resolve_asset_graph()
    model = dg.AssetKey(["credit_risk", "training", "candidate_model"])
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == model}
    assert checks == {"performance_gate", "fairness_gate", "no_regression_gate",
                      "reproducibility_gate", "onnx_parity_gate"}
    # The shipped use case is sensitive: retraining stops at the challenger.
    retrain = defs.resolve_job_def("credit_risk_retrain")
    ops = {n.name for n in retrain.nodes_in_topological_order}
    assert "credit_risk__deployment__challenger" in ops
    assert "credit_risk__deployment__champion" not in ops


def test_spark_settings_from_the_environment_reach_every_session(tmp_path):
    settings = Settings.from_env({"LAKELOOP_SPARK_CONF":
                                  " spark.sql.codegen.wholeStage=false  spark.x.y=a=b "})
    spark = build_definitions(settings.with_data_root(tmp_path)).resources["spark"]
    started = spark.session_settings()
    assert started["spark.sql.codegen.wholeStage"] == "false"
    assert started["spark.x.y"] == "a=b"
    assert Settings.from_env({}).spark_conf_map == {}
    for bad in ("spark.sql.codegen.wholeStage", "codegen=false", "spark.a="):
        with pytest.raises(SettingsError, match=r"LAKELOOP_SPARK_CONF=.*spark\.<setting>"):
            Settings.from_env({"LAKELOOP_SPARK_CONF": bad})


def test_the_jit_compiles_the_long_methods_spark_generates(spark):
    """A contract over a wide table is one generated method longer than HotSpot compiles by
    default: the flag must reach the running driver, and executors on a cluster."""
    from lakeloop.spark import SparkResource

    runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert "-XX:-DontCompileHugeMethods" in list(runtime.getInputArguments())
    cluster = SparkResource(master="k8s://https://127.0.0.1:6443").session_settings()
    assert "-XX:-DontCompileHugeMethods" in cluster["spark.executor.extraJavaOptions"].split()
    assert "-XX:-DontCompileHugeMethods" in cluster["spark.driver.extraJavaOptions"].split()


def test_the_drivers_direct_buffers_are_bounded_below_its_heap(spark):
    """Unbounded, the JVM lets direct buffers grow to the heap's size again (a 50M-row
    backfill's driver reached 20.6 GiB); the bound reaches the running driver, and a user's
    own option (LAKELOOP_SPARK_JAVA_OPTIONS) still wins, being last."""
    from lakeloop.spark import DIRECT_MEMORY, SparkResource

    jvm = spark._jvm
    diagnostic = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    bound = int(diagnostic.getVMOption("MaxDirectMemorySize").getValue())
    assert bound == int(DIRECT_MEMORY.rstrip("g")) << 30
    assert bound < jvm.java.lang.Runtime.getRuntime().maxMemory()
    options = SparkResource(java_options="-XX:MaxDirectMemorySize=4g").session_settings()[
        "spark.driver.extraJavaOptions"].split()
    assert [o for o in options if o.startswith("-XX:MaxDirectMemorySize=")][-1] == (
        "-XX:MaxDirectMemorySize=4g")
