"""Spark as a Dagster resource: one session (one JVM) per process, shared by every asset.

Locally the session runs ``local[*]`` with Delta Lake's jars from the project cache; on
Kubernetes the same resource points at a Spark Connect endpoint or a ``k8s://`` master.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_LOCK = threading.Lock()
_LOG4J = Path(__file__).with_name("log4j2.properties")

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

LOCAL_CONF = {
    # Small machines: few shuffle partitions, no UI, no progress bars, loopback only.
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    # Key sets of a day (a few MB) join by broadcast instead of shuffling the other side.
    "spark.sql.autoBroadcastJoinThreshold": str(64 << 20),
}


@contextlib.contextmanager
def session_conf(session: SparkSession, settings: dict[str, str]):
    """Set runtime SQL settings for the actions inside the block, then restore them."""
    before = {k: session.conf.get(k, None) for k in settings}
    for key, value in settings.items():
        session.conf.set(key, value)
    try:
        yield session
    finally:
        for key, value in before.items():
            if value is None:
                session.conf.unset(key)
            else:
                session.conf.set(key, value)


class JarsMissingError(RuntimeError):
    pass


def delta_jars(jars_dir: Path) -> list[Path]:
    jars = sorted(Path(jars_dir).glob("delta-*.jar"))
    if not any(j.name.startswith("delta-spark") for j in jars):
        raise JarsMissingError(
            f"Delta Lake's jars are not in {jars_dir}. Run `make setup` once (it fetches them "
            "from Maven Central), or set LAKELOOP_JARS_DIR to a folder that holds them."
        )
    return jars


class SparkResource(dg.ConfigurableResource):
    """A Spark session with Delta Lake: ``local[*]`` here, the cluster in production."""

    master: str = "local[*]"
    remote: str | None = Field(default=None, description="Spark Connect URL (sc://host:15002)")
    app_name: str = "lakeloop"
    driver_memory: str = "2g"
    jars_dir: str = ""
    warehouse_dir: str = ""
    conf: dict[str, str] = Field(default_factory=dict)

    def session(self) -> SparkSession:
        with _LOCK:
            return self._get_or_create()

    def _get_or_create(self) -> SparkSession:
        from pyspark.sql import SparkSession

        if self.remote:
            return SparkSession.builder.remote(self.remote).appName(self.app_name).getOrCreate()
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        builder = SparkSession.builder.master(self.master).appName(self.app_name)
        settings = dict(DELTA_CONF)
        if self.master.startswith("local"):
            settings.update(LOCAL_CONF)
            # Python workers run this interpreter (the project's environment), not whatever
            # python3 is first on PATH; PySpark reads this from the environment only.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        settings["spark.driver.memory"] = self.driver_memory
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{_LOG4J}"
        if self.jars_dir:
            settings["spark.jars"] = ",".join(str(j) for j in delta_jars(Path(self.jars_dir)))
        if self.warehouse_dir:
            settings["spark.sql.warehouse.dir"] = self.warehouse_dir
        settings.update(self.conf)
        for key, value in settings.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
        return session
