"""Shared fixtures: one Spark session for the whole run, and one end-to-end materialisation
of the full graph on tiny generated data that the end-to-end tests read from."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from lakeloop.settings import BUILTIN_USE_CASES, Settings

os.environ.setdefault("TZ", "UTC")
time.tzset()
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TINY_DAYS = 30
TINY_ROWS = 300
TINY_DRIFT_DAY = 21
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def free_port_pair() -> int:
    """A port p with p and p+1 free on 127.0.0.1 (seldon-core needs both)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 64000:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 1))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port pair")


def write_use_case(directory: Path, port: int, **replacements: str) -> Path:
    """The built-in credit_risk use case, with its own serving port (and any overrides:
    regex -> replacement applied to the YAML text)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = (BUILTIN_USE_CASES / "credit_risk.yaml").read_text()
    text = re.sub(r"(?m)^  port: \d+$", f"  port: {port}", text)
    for pattern, replacement in replacements.items():
        text, count = re.subn(pattern, replacement, text, flags=re.M)
        assert count, f"override {pattern!r} matched nothing"
    path = directory / "credit_risk.yaml"
    path.write_text(text)
    return path


def settings_for(root: Path, use_case_dir: Path) -> Settings:
    """Settings for a test data root; its feature server gets a port of its own (derived
    from the root, so every Settings of one root agree on it)."""
    import zlib

    port = 20000 + zlib.crc32(str(root.resolve()).encode()) % 20000
    return dataclasses.replace(Settings.from_env({}), data_root=root.resolve(),
                               use_case_dirs=(use_case_dir,), feature_server_port=port)


@pytest.fixture(scope="session")
def spark_resource():
    from lakeloop.spark import SparkResource

    return SparkResource(jars_dir=str(Settings.from_env({}).jars_dir))


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

    @property
    def resources(self):
        return self.defs.resources


@pytest.fixture(scope="session")
def materialized(tmp_path_factory, spark) -> Materialized:
    """The whole graph, raw snapshots to drift reports, in ONE materialisation."""
    from lakeloop.definitions import build_definitions
    from lakeloop.demo_data import DemoSpec, generate

    root = tmp_path_factory.mktemp("lakeloop")
    # Not sensitive: the whole graph runs in one materialisation (a sensitive use case
    # waits for a person's approval between challenger and champion; tested on its own).
    use_cases = write_use_case(root / "use_cases", free_port_pair(),
                               **{r"^sensitive: true$": "sensitive: false"}).parent
    settings = settings_for(root, use_cases)
    spec = DemoSpec(days=TINY_DAYS, rows_per_day=TINY_ROWS, drift_day=TINY_DRIFT_DAY, seed=11)
    generate(root / "landing", spec)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    days = [(spec.start + dt.timedelta(d)).isoformat() for d in range(spec.days)]
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks], resources=defs.resources, instance=instance,
        run_config=QUIET, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": days[0],
              "dagster/asset_partition_range_end": days[-1]})
    yield Materialized(root, settings, defs, instance, result, days, spec.drift_date.isoformat())
    defs.resources["serving"].stop_all()
    defs.resources["feast"].stop_feature_server()
    shutil.rmtree(root, ignore_errors=True)
