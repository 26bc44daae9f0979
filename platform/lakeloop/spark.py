"""Spark as a Dagster resource: one session (one JVM) per process, shared by every asset.

Locally the session runs ``local[*]`` with Delta Lake's jars from the project cache; on
Kubernetes the same resource points at a Spark Connect endpoint or a ``k8s://`` master.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

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
    # No join is broadcast on the planner's estimate (a filtered Delta table's size is a
    # guess, and a key set grows with the day): joins start as shuffles and adaptive
    # execution turns them into broadcasts when the side it measured at run time is small.
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    "spark.sql.adaptive.autoBroadcastJoinThreshold": str(32 << 20),
    # A large read in at least 16 tasks (Spark's default is the parallelism, 4 here): ten
    # 39 MB days were 5 tasks on 2 cores, the last of them alone on one core. Measured on a
    # 10M-row window, 3 runs each: silver 53.6 -> 49.4 s, gold 11.7 -> 10.5 s. Small files
    # are still packed into one task (spark.sql.files.openCostInBytes).
    "spark.sql.files.minPartitionNum": "16",
}

# The JIT compiles a method of any size. Spark generates one method per stage of fused
# operators, and a contract over a wide table (every column trimmed, typed and checked) makes
# it longer than HotSpot's 8,000-byte limit for compiling: the stage then runs interpreted.
# Measured on 2M rows of the 15-column benchmark contract: silver's pass 31 s interpreted,
# 4 s compiled.
JIT_OPTIONS = ("-XX:-DontCompileHugeMethods",)

# Direct (off-heap) buffers a driver this resource starts may hold (local or k8s:// client;
# not a cluster's executors, not the Spark Connect server). The JVM's default is the heap's size,
# and buffers that Parquet's compressors drop are freed only when the heap is collected: with
# less garbage per row, a 50M-row backfill's driver grew to 20.6 GiB resident (heap 9.6 GiB).
# At the bound the JVM collects them first. Measured on bronze's write of 2 days x 5M rows:
# 20.4 -> 10.3 GiB peak, time unchanged (25.7 s). LAKELOOP_SPARK_JAVA_OPTIONS can override it.
DIRECT_MEMORY = "1g"

# Share of the machine's (or the pod's) memory the local driver's heap may use: the rest is
# for Python (pandas, XGBoost, the serving processes) and the OS.
DRIVER_MEMORY_SHARE = 0.4
MIN_DRIVER_MIB = 1024


def memory_limit_bytes() -> int:
    """The memory this process may use: the container's cgroup limit when there is one,
    else the machine's."""
    import psutil

    total = psutil.virtual_memory().total
    for path, unlimited in (("/sys/fs/cgroup/memory.max", "max"),
                            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", None)):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text and text != unlimited and text.isdigit() and int(text) < total:
            return int(text)
    return total


def driver_memory(setting: str) -> str:
    """``auto``: a share of the memory available (at least 1 GiB); anything else as given
    (Spark's notation, e.g. ``6g``)."""
    if setting != "auto":
        return setting
    mib = int(memory_limit_bytes() * DRIVER_MEMORY_SHARE) // 2**20
    return f"{max(MIN_DRIVER_MIB, mib)}m"


@contextlib.contextmanager
def session_conf(session: SparkSession, settings: dict[str, str]):
    """Set runtime SQL settings for the actions inside the block, then restore them."""
    before = {k: session.conf.get(k, None) for k in settings}
    for key, value in settings.items():
        session.conf.set(key, value)
    try:
        yield session
    finally:
        for key, previous in before.items():
            if previous is None:
                session.conf.unset(key)
            else:
                session.conf.set(key, previous)


class JarsMissingError(RuntimeError):
    pass


# Set-up compiles it into the jars folder (platform/lakeloop/lakehouse/LocalLogStore.java):
# commits to local tables that writers in several processes (JVMs) cannot overwrite.
LOCAL_LOG_STORE_JAR = "lakeloop-local-log-store.jar"
LOCAL_LOG_STORE = {"spark.delta.logStore.file.impl": "io.lakeloop.delta.LocalLogStore"}


def delta_jars(jars_dir: Path) -> list[Path]:
    jars = sorted(Path(jars_dir).glob("delta-*.jar"))
    log_store = Path(jars_dir) / LOCAL_LOG_STORE_JAR
    if not any(j.name.startswith("delta-spark") for j in jars) or not log_store.exists():
        raise JarsMissingError(
            f"Delta Lake's jars are not in {jars_dir}. Run `make setup` once (it fetches them "
            "from Maven Central and compiles the local log store), or set LAKELOOP_JARS_DIR "
            "to a folder that holds them."
        )
    return [*jars, log_store]


def s3_jars(jars_dir: Path) -> list[Path]:
    """Hadoop's S3A connector and the AWS SDK modules it needs (``<jars>/s3``): on the
    classpath only when tables live on object storage."""
    jars = sorted((Path(jars_dir) / "s3").glob("*.jar"))
    if not any(j.name.startswith("hadoop-aws") for j in jars):
        raise JarsMissingError(
            f"the S3A connector is not in {Path(jars_dir) / 's3'}. Run `make setup` once (it "
            "fetches hadoop-aws and the AWS SDK modules), or point LAKELOOP_JARS_DIR elsewhere."
        )
    return jars


def s3a_conf(endpoint: str, region: str, log_store: str, ddb_table: str) -> dict[str, str]:
    """Spark settings for Delta tables on S3 or an S3-compatible store. Credentials come
    from the JVM's environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a Kubernetes
    secret in production): never from Spark's configuration, which the UI and logs show."""
    conf = {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.aws.credentials.provider":
            "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
        "spark.hadoop.fs.s3a.endpoint.region": region,
        "spark.hadoop.fs.s3a.fast.upload": "true",
    }
    if endpoint:  # an S3-compatible store (SeaweedFS, MinIO, Ceph): path-style addressing
        conf.update({
            "spark.hadoop.fs.s3a.endpoint": endpoint,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https"))
            .lower(),
        })
    # Delta's commit protocol on S3 needs a log store that serialises writers: S3 has no
    # atomic put-if-absent for every client. One driver commits all writes (local Spark,
    # or one Spark Connect server for the whole cluster): the single-driver store is
    # correct. Several drivers (a k8s:// master per step pod): DynamoDB arbitrates.
    if log_store == "single-driver":
        conf["spark.delta.logStore.s3a.impl"] = "io.delta.storage.S3SingleDriverLogStore"
    elif log_store == "dynamodb":
        conf.update({
            "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
            "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": ddb_table,
            "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": region,
        })
    else:
        raise ValueError(f"delta_log_store must be single-driver or dynamodb, not {log_store!r}")
    return conf


T = TypeVar("T")


def fold(items: Sequence[T], combine: Callable[[T, T], T]) -> T:
    """``combine`` over ``items`` pairwise, as a balanced tree (depth log2 n, not n).

    A Spark Connect client sends a plan as nested protobuf messages, and protobuf refuses a
    message nested beyond its recursion limit (100): a chain of 50 ORs or unions built one
    after the other fails there ("Error parsing message with type 'spark.connect...'"),
    the same expression as a balanced tree does not."""
    if not items:
        raise ValueError("nothing to fold")
    level = list(items)
    while len(level) > 1:
        level = [combine(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


class SparkConnectError(RuntimeError):
    pass


CONNECT_WAIT_S = 120.0  # a Connect server starting in its pod takes tens of seconds


def connect(url: str, app_name: str, wait_s: float = CONNECT_WAIT_S) -> SparkSession:
    """A session on the Spark Connect endpoint ``url`` (``sc://host:port``), once its port
    answers (the client itself retries a dead endpoint for many minutes with no word).

    ``SPARK_REMOTE`` is set for the whole process: a library that asks for a session its
    own way (Feast's Spark offline store, code in another thread) gets this endpoint too,
    never a local JVM beside it. Spark settings and jars are the server's, not the client's.
    """
    import socket
    import time
    from urllib.parse import urlparse

    from pyspark.sql import SparkSession

    parsed = urlparse(url.replace("sc://", "http://", 1))
    host, port = parsed.hostname or "", parsed.port or 15002
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection((host, port), timeout=5).close()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise SparkConnectError(
                    f"the Spark Connect endpoint {url} does not answer ({exc}) after "
                    f"{wait_s:.0f}s: is the server running (infra/k8s/spark-connect.yaml)?"
                ) from None
            time.sleep(1.0)
    os.environ["SPARK_REMOTE"] = url
    return SparkSession.builder.remote(url).appName(app_name).getOrCreate()


def is_connect(session: SparkSession) -> bool:
    """True for a Spark Connect session (no SparkContext, no broadcast, no RDDs)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


class SparkResource(dg.ConfigurableResource):
    """A Spark session with Delta Lake: ``local[*]`` here, the cluster in production."""

    master: str = "local[*]"
    remote: str | None = Field(default=None, description="Spark Connect URL (sc://host:15002)")
    app_name: str = "lakeloop"
    # auto: sized from the machine or the pod (see driver_memory); a day ten times larger
    # than the last must not fail for a setting sized for a small one.
    driver_memory: str = "auto"
    # More options for the local driver's JVM (LAKELOOP_SPARK_JAVA_OPTIONS), space-separated.
    java_options: str = ""
    jars_dir: str = ""
    warehouse_dir: str = ""
    # Object storage for Delta tables (s3a://): the S3A connector joins the classpath.
    object_storage: bool = False
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    delta_log_store: str = "single-driver"
    delta_ddb_table: str = "delta_log"
    conf: dict[str, str] = Field(default_factory=dict)

    def session(self) -> SparkSession:
        with _LOCK:
            return self._get_or_create()

    def session_settings(self, record_archive: Path | None = None) -> dict[str, str]:
        """The settings a classic (non-Connect) session starts with."""
        settings = dict(DELTA_CONF)
        if self.master.startswith("local"):
            settings.update(LOCAL_CONF)
        settings["spark.driver.memory"] = driver_memory(self.driver_memory)
        java_options = [f"-Dlog4j2.configurationFile=file:{_LOG4J}", *JIT_OPTIONS,
                        f"-XX:MaxDirectMemorySize={DIRECT_MEMORY}"]
        if self.jars_dir:
            jars_dir = Path(self.jars_dir).resolve()
            jars = delta_jars(jars_dir)
            settings.update(LOCAL_LOG_STORE)
            if self.object_storage:
                jars += s3_jars(jars_dir)
            if self.master.startswith("local"):
                # On the driver's own classpath, not added at run time (spark.jars): the
                # class archive can only hold classes the JVM's built-in loaders load.
                settings["spark.driver.extraClassPath"] = os.pathsep.join(map(str, jars))
                from lakeloop.class_archive import class_archive

                archive = class_archive(jars_dir, jars)
                if record_archive is not None:
                    # (what it cannot archive, signed jars among them, is left out quietly)
                    java_options += [f"-XX:ArchiveClassesAtExit={record_archive}",
                                     "-Xlog:cds*=error"]
                elif archive is not None and archive.exists():
                    java_options.append(f"-XX:SharedArchiveFile={archive}")
            else:
                settings["spark.jars"] = ",".join(str(j) for j in jars)
        java_options += self.java_options.split()
        settings["spark.driver.extraJavaOptions"] = " ".join(java_options)
        if not self.master.startswith("local"):
            settings["spark.executor.extraJavaOptions"] = " ".join(JIT_OPTIONS)
        if self.object_storage:
            settings.update(s3a_conf(self.s3_endpoint, self.s3_region, self.delta_log_store,
                                     self.delta_ddb_table))
        if self.warehouse_dir:
            settings["spark.sql.warehouse.dir"] = self.warehouse_dir
        settings.update(self.conf)
        return settings

    def _get_or_create(self, record_archive: Path | None = None) -> SparkSession:
        from pyspark.sql import SparkSession

        if self.remote:
            return connect(self.remote, self.app_name)
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        if self.master.startswith("local"):
            # Python workers run this interpreter (the project's environment), not whatever
            # python3 is first on PATH; PySpark reads this from the environment only.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.master(self.master).appName(self.app_name)
        settings = self.session_settings(record_archive)
        for key, value in settings.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
        return session
