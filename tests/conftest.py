"""Shared fixtures: one Spark session for the whole run, and one end-to-end materialisation
of the full graph on tiny generated data that the end-to-end tests read from."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from lakeloop.settings import BUILTIN_USE_CASES, Settings, spark_conf_pairs
from tests.support import ports
from tests.support.receivers import SmtpReceiver, WebhookReceiver

os.environ.setdefault("TZ", "UTC")
time.tzset()
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Approvals are signed with a key from the environment: the suite's own, for this run.
os.environ.setdefault("LAKELOOP_APPROVAL_KEY", secrets.token_hex(32))
# The processes the tests start (writers, Dagster runs, code servers) each run a cold JVM on
# tiny data: with the quick JIT alone their first queries run about twice as fast (README:
# LAKELOOP_SPARK_JAVA_OPTIONS); they inherit this. The suite's own session (the spark
# fixture, settings_for) runs thousands of queries in one JVM and keeps both tiers: the quick
# JIT alone made it slower (a training-set rebuild 86 s -> 160 s). Results never depend on it.
os.environ.setdefault("LAKELOOP_SPARK_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")
# The unit suite's JVMs (its own session and the processes it starts) evaluate Spark's
# expressions interpreted, generating no code: on its tiny windows compiling each query's
# generated code cost more than running it (one day's ingest 11 s -> 6 s). Spark's results do
# not depend on it (its own suite runs both modes). `make chaos` (the system tests: the
# second dataset, the production shape) and the demo keep code generation, so that path
# runs in CI too.
TINY_DATA_SPARK_CONF = ("spark.sql.codegen.wholeStage=false "
                        "spark.sql.codegen.factoryMode=NO_CODEGEN")
_SPARK_CONF: dict[str, str] = {}


def pytest_configure(config):
    if "not system" in (config.option.markexpr or ""):  # the unit suite (make test)
        os.environ.setdefault("LAKELOOP_SPARK_CONF", TINY_DATA_SPARK_CONF)
        _SPARK_CONF.update(spark_conf_pairs(TINY_DATA_SPARK_CONF))

TINY_DAYS = 30
TINY_ROWS = 300
TINY_DRIFT_DAY = 21
GRAPH_LATENCY_MS = 10_000  # the request timeout: no answer is slower and still an answer
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


SERVING_PORT_OFFSETS = (0, 10, 11, 12, 13, 20, 21, 22, 23)  # executor, two predictors


def free_port_pair() -> int:
    """A base port P whose serving ports (P, P+10..13, P+20..23) are all free on 127.0.0.1
    and not handed out to another fixture of this session."""
    return ports.reserve(SERVING_PORT_OFFSETS)


def free_port() -> int:
    return ports.reserve()


_FEATURE_SERVER_PORTS: dict[Path, int] = {}


def write_use_case(directory: Path, port: int, **replacements: str) -> Path:
    """The built-in credit_risk use case, with its own serving port (and any overrides:
    regex -> replacement applied to the YAML text)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = (BUILTIN_USE_CASES / "credit_risk.yaml").read_text()
    text = re.sub(r"(?m)^  port: \d+$", f"  port: {port}", text)
    for pattern, replacement in replacements.items():
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        assert count, f"override {pattern!r} matched nothing"
    if not re.search(r"(?m)^rollout:", text):
        # The latency rule's verdict is tested with injected latencies
        # (tests/platform/deployment/test_rollout_checks.py) and real timings are a
        # benchmark's (bench/serving.py): a graph test's outcome never rests on how loaded
        # the machine is. Only the limit changes; every request is still timed and recorded.
        text = re.sub(r"(?m)^serving:$", f"rollout:\n  latency_p99_ms_max: {GRAPH_LATENCY_MS}"
                      "\n\nserving:", text, count=1)
    path = directory / "credit_risk.yaml"
    path.write_text(text)
    return path


def settings_for(root: Path, use_case_dir: Path) -> Settings:
    """Settings for a test data root; its feature server gets a free port of its own (the
    same for every Settings of one root)."""
    port = _FEATURE_SERVER_PORTS.setdefault(root.resolve(), free_port())
    return Settings.from_env({}).replace(data_root=root.resolve(),
                               use_case_dirs=(use_case_dir,), feature_server_port=port)


@pytest.fixture
def alerting(tmp_path):
    """A real SMTP server and a webhook receiver on 127.0.0.1, and the built-in use case
    routing every event to both (their URLs in ``environ``)."""
    from tests.support.receivers import alerting_in

    yield from alerting_in(tmp_path / "alerting")


@pytest.fixture(scope="session")
def spark_resource():
    from lakeloop.spark import SparkResource

    return SparkResource(jars_dir=str(Settings.from_env({}).jars_dir),
                         conf=dict(_SPARK_CONF))


@pytest.fixture(scope="session")
def spark(spark_resource):
    return spark_resource.session()


@dataclass
class Materialized:
    root: Path
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult
    days: list[str]
    drift_date: str
    # Where the use case's alerts went: its ml_oncall destination (a webhook) and its
    # model_risk one (an SMTP server), both on 127.0.0.1.
    webhook: WebhookReceiver | None = None
    smtp: SmtpReceiver | None = None

    @property
    def resources(self):
        return self.defs.resources

    @property
    def dagster_home(self) -> Path:
        """The instance's directory: DAGSTER_HOME for a webserver or daemon over this state."""
        return Path(self.instance.root_directory)


def materialize_loop(root: Path, selection=None):
    """The whole graph (or ``selection`` of it, with what it needs upstream), raw snapshots
    to drift reports, in ONE materialisation over tiny generated days; yields it, then stops
    its services and removes it."""
    from lakeloop.definitions import build_definitions
    from tests.support.demo_data import DemoSpec, generate

    # Not sensitive: the whole graph runs in one materialisation (a sensitive use case
    # waits for a person's approval between challenger and champion; tested on its own).
    use_cases = write_use_case(root / "use_cases", free_port_pair(),
                               **{r"^sensitive: true$": "sensitive: false"}).parent
    settings = settings_for(root, use_cases)
    spec = DemoSpec(days=TINY_DAYS, rows_per_day=TINY_ROWS, drift_day=TINY_DRIFT_DAY, seed=11)
    generate(root / "landing", spec)
    defs = build_definitions(settings)
    receivers = contextlib.ExitStack()
    webhook = receivers.enter_context(WebhookReceiver())
    smtp = receivers.enter_context(SmtpReceiver())
    # The shipped use case's destinations, as a deployment sets them: its alerts arrive here.
    alert_env = {"LAKELOOP_ALERTS_ML_ONCALL": webhook.url,
                 "LAKELOOP_ALERTS_MODEL_RISK": smtp.url}
    saved = {name: os.environ.get(name) for name in alert_env}
    os.environ.update(alert_env)
    settings.dagster_home.mkdir()  # on disk, so that a webserver and a daemon can read it
    instance = dg.DagsterInstance.local_temp(str(settings.dagster_home),
                                             overrides={"telemetry": {"enabled": False}})
    days = [(spec.start + dt.timedelta(d)).isoformat() for d in range(spec.days)]
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, instance=instance,
        run_config=QUIET, raise_on_error=False, selection=selection,
        tags={"dagster/asset_partition_range_start": days[0],
              "dagster/asset_partition_range_end": days[-1]})
    yield Materialized(root, settings, defs, instance, result, days, spec.drift_date.isoformat(),
                       webhook, smtp)
    defs.resources["serving"].stop_all()
    defs.resources["feast"].stop_feature_server()
    receivers.close()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def materialized(tmp_path_factory, spark) -> Materialized:
    """The whole graph, raw snapshots to drift reports, in ONE materialisation."""
    yield from materialize_loop(tmp_path_factory.mktemp("lakeloop"))
