"""The production shape on one machine: PostgreSQL, Redis, an S3-compatible object store and
an MLflow tracking server, started from the real binaries set-up installs, on 127.0.0.1.

The k8s environment's services, minus the Kubernetes API: Dagster's run and event storage
and MLflow's backend store on PostgreSQL, Feast's registry on PostgreSQL and its online store
on Redis (with a password), Delta tables and MLflow's artifacts on S3 (SeaweedFS). Used by
the production-shape test and benchmark; ``ProductionShape.env`` is exactly what a pod gets
from the ``lakeloop-config`` map and the secrets.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from mirakuru import Executor
from mirakuru.exceptions import ProcessExitedWithError, ProcessFinishedWithError, TimeoutExpired

from lakeloop.settings import PROJECT_ROOT
from tests.support import ports

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
WEED = PROJECT_ROOT / ".cache" / "bin" / "weed"
BUCKET = "lakeloop"


class ServiceError(RuntimeError):
    """A service did not start; the message says which and where its log is."""


def free_port() -> int:
    return ports.reserve()


port_is_free = ports.is_free


class _Launched(Executor):
    """A service process under mirakuru: its own session, its output in its log, started
    when ``ready`` answers (any exception means not yet), stopped with its whole group, and
    killed at interpreter exit if a test forgot it."""

    def __init__(self, cmd: list[str], ready: Callable[[], bool], log: Path, timeout: float,
                 env: dict[str, str] | None = None, stop_timeout: float = 15.0):
        self._ready, self._stop_timeout = ready, stop_timeout
        self._log = open(log, "ab")  # noqa: SIM115 - the server's output for its lifetime
        super().__init__(cmd, timeout=timeout, sleep=0.2, envvars=env,
                         stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def pre_start_check(self) -> bool:
        return False  # every service here gets fresh ports

    def after_start_check(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self._ready())
        return False

    def stop(self, *args, **kwargs) -> _Launched:
        self._timeout = self._stop_timeout  # then SIGKILL: throwaway data needs no grace
        with contextlib.suppress(ProcessFinishedWithError):  # a non-zero exit on SIGTERM
            super().stop(*args, **kwargs)
        self._log.close()
        return self


def _launch(cmd: list[str], ready: Callable[[], bool], what: str, log: Path,
            timeout: float = 60.0, env: dict[str, str] | None = None,
            stop_timeout: float = 15.0) -> _Launched:
    """Start a service and wait until it answers; if it exits or never answers, it is
    stopped (its process would otherwise hold its ports) and the error shows its log."""
    service = _Launched(cmd, ready, log, timeout, env, stop_timeout)
    try:
        return service.start()
    except (TimeoutExpired, ProcessExitedWithError) as exc:
        service.stop()
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        why = (f"did not become ready within {timeout:.0f}s"
               if isinstance(exc, TimeoutExpired) else f"exited with {exc.exit_code}")
        raise ServiceError(f"{what} {why} (log {log}):\n{tail}") from None


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Postgres:
    """A throwaway PostgreSQL cluster (initdb) on 127.0.0.1 with one database per user."""

    def __init__(self, databases: tuple[str, ...]):
        if not (POSTGRES_BIN / "postgres").exists():
            raise ServiceError("PostgreSQL 15 is not installed; `make setup` installs it")
        # Under /tmp, owned by the server's user (pytest's own tmp folders are 0700 root).
        self.dir = Path(tempfile.mkdtemp(prefix="lakeloop-pg-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.log = self.dir / "postgres.log"
        data = self.dir / "data"
        pwfile = self.dir / "pw"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            shutil.chown(pwfile, "postgres")
        subprocess.run([*_as_postgres_user(), str(POSTGRES_BIN / "initdb"), "-D", str(data),
                        "-U", "lakeloop", "--pwfile", str(pwfile), "-A", "scram-sha-256",
                        "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True)
        pwfile.unlink()
        self._cmd = [*_as_postgres_user(), str(POSTGRES_BIN / "postgres"), "-D", str(data),
                     "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.dir),
                     "-c", "fsync=off", "-c", "max_connections=200"]
        self.start()
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.url("postgres"))) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                for db in databases:
                    cur.execute(f'CREATE DATABASE "{db}"')

    def start(self) -> None:
        self.proc = _launch(self._cmd, self._ready, "PostgreSQL", self.log)

    def restart(self) -> None:
        """Stop the server (every client connection is dropped) and start it again on the
        same data and port, as a failover or a maintenance restart does."""
        self.proc.stop()
        self.start()

    def _ready(self) -> bool:
        import psycopg2

        psycopg2.connect(self.url("postgres"), connect_timeout=1).close()
        return True

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://lakeloop:{self.password}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """redis-server on 127.0.0.1; with a password unless asked otherwise. Without
    ``persist`` it keeps nothing on disk; with it, every write goes to its append-only file,
    so a restart (``restart``) comes back with the data, as a production Redis does."""

    def __init__(self, directory: Path, password: bool = True, persist: bool = False):
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed; `make setup` installs it")
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = secrets.token_urlsafe(16) if password else None
        self.log = directory / "redis.log"
        config = directory / "redis.conf"  # the password in a file, not on the command line
        auth = f"requirepass {self.password}\n" if password else ""
        durability = ("appendonly yes\nappendfsync always\n" if persist
                      else "save \"\"\nappendonly no\n")
        config.write_text(f"bind 127.0.0.1\nport {self.port}\n{durability}"
                          f"dir {directory}\n{auth}")
        config.chmod(0o600)
        self._cmd = [binary, str(config)]
        self.start()

    def start(self) -> None:
        self.proc = _launch(self._cmd, self._ready, "Redis", self.log)

    def _ready(self) -> bool:
        import redis

        return bool(redis.Redis(port=self.port, password=self.password,
                                socket_timeout=1).ping())

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.running():
            self.proc.stop()


class SeaweedS3:
    """SeaweedFS (master, volume, filer and S3 gateway in one process) on 127.0.0.1, with
    one identity allowed on the bucket, and the bucket created."""

    def __init__(self, directory: Path, bucket: str = BUCKET):
        if not WEED.exists():
            raise ServiceError(f"SeaweedFS is not built ({WEED}); run `make setup`")
        directory.mkdir(parents=True, exist_ok=True)
        self.access_key = "lakeloop"
        self.secret_key = secrets.token_urlsafe(24)
        self.bucket = bucket
        config = directory / "s3.json"
        config.write_text('{"identities": [{"name": "lakeloop", "credentials": [{"accessKey": "'
                          + self.access_key + '", "secretKey": "' + self.secret_key
                          + '"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}')
        config.chmod(0o600)
        # gRPC ports are the HTTP ports + 10000: pick HTTP ports whose twins are free too.
        master, volume, filer, self.port = (ports.reserve((0, 10000)) for _ in range(4))
        self.log = directory / "weed.log"
        (directory / "data").mkdir(exist_ok=True)
        self.proc = _launch(
            [str(WEED), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-dir={directory / 'data'}", f"-master.port={master}",
             f"-volume.port={volume}", f"-filer.port={filer}", "-s3",
             f"-s3.port={self.port}", f"-s3.config={config}",
             "-master.volumeSizeLimitMB=64", "-volume.max=0"],
            self._ready, "SeaweedFS's S3 gateway", self.log, timeout=90, stop_timeout=3)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def _ready(self) -> bool:
        client = self.client()
        if self.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=self.bucket)
        return True

    def keys(self, prefix: str) -> list[str]:
        out, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix,
                      **({"ContinuationToken": token} if token else {})}
            page = self.client().list_objects_v2(**kwargs)
            out += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return out

    def stop(self) -> None:
        self.proc.stop()



class MlflowServer:
    """``mlflow server``: PostgreSQL backend store, artifacts proxied to the object store
    (clients need no storage credentials), on 127.0.0.1."""

    def __init__(self, directory: Path, backend_store_uri: str, s3: SeaweedS3):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "mlflow-server.log"
        env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
               "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
               "AWS_DEFAULT_REGION": "us-east-1", "DO_NOT_TRACK": "true",
               "MLFLOW_DISABLE_TELEMETRY": "true",
               "MLFLOW_BACKEND_STORE_URI": backend_store_uri}
        mlflow = Path(sys.executable).with_name("mlflow")
        # The backend store URI (it holds a password) goes in the environment, where
        # `mlflow server` reads MLFLOW_BACKEND_STORE_URI, never on the command line.
        self.proc = _launch(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--artifacts-destination", f"s3://{s3.bucket}/mlflow", "--serve-artifacts",
             "--workers", "2"],
            self._ready, "the MLflow tracking server", self.log, timeout=120, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        import requests

        return requests.get(f"{self.url}/health", timeout=1).status_code == 200

    def stop(self) -> None:
        self.proc.stop()


class SparkConnectServer:
    """A Spark Connect server (the one in pyspark's own jars) on 127.0.0.1, with Delta's and
    the S3 connector's jars and the settings a cluster's server gets
    (infra/k8s/spark-connect.yaml): Delta's session extension, the local sizing, S3A on
    ``s3``. Clients bring no jars or settings of their own; the server holds them."""

    def __init__(self, directory: Path, s3: SeaweedS3, jars_dir: Path,
                 driver_memory: str = "2g"):
        import pyspark

        from lakeloop.spark import DELTA_CONF, LOCAL_CONF, delta_jars, s3_jars, s3a_conf

        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "spark-connect.log"
        home = Path(pyspark.__file__).parent
        jars = [*delta_jars(jars_dir), *s3_jars(jars_dir)]
        conf = {**DELTA_CONF, **LOCAL_CONF,
                **s3a_conf(s3.endpoint, "us-east-1", "single-driver", ""),
                "spark.connect.grpc.binding.address": "127.0.0.1",
                "spark.connect.grpc.binding.port": str(self.port)}
        cmd = [str(home / "bin" / "spark-submit"), "--class",
               "org.apache.spark.sql.connect.service.SparkConnectServer",
               "--master", "local[2]", "--driver-memory", driver_memory,
               "--jars", ",".join(map(str, jars)),
               *[a for k, v in conf.items() for a in ("--conf", f"{k}={v}")]]
        env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable,
               "SPARK_LOCAL_IP": "127.0.0.1", "AWS_ACCESS_KEY_ID": s3.access_key,
               "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}
        env.pop("SPARK_REMOTE", None)
        env.pop("SPARK_CONNECT_MODE_ENABLED", None)
        self.proc = _launch(cmd, self._ready, "Spark Connect server", self.log,
                            timeout=180, env=env)

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        import socket

        socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        return True

    def stop(self) -> None:
        self.proc.stop()


DAGSTER_YAML = """\
# Dagster's run, event-log and schedule storage on PostgreSQL, as the Helm chart configures it.
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
telemetry:
  enabled: false
run_monitoring:
  enabled: false
"""


class ProductionShape:
    """All four services, and the environment a run of the k8s environment reads (with the
    step executor in-process and serving local: there is no Kubernetes API here)."""

    def __init__(self, directory: Path, data_root: Path):
        self.dir = Path(directory)
        self.data_root = Path(data_root)
        self.postgres = self.redis = self.s3 = self.mlflow = self.spark = None
        try:
            self.postgres = Postgres(("dagster", "mlflow", "feast"))
            self.redis = Redis(self.dir / "redis")
            self.s3 = SeaweedS3(self.dir / "s3")
            self.mlflow = MlflowServer(self.dir / "mlflow",
                                       self.postgres.url("mlflow", "postgresql+psycopg2"),
                                       self.s3)
            self.spark = SparkConnectServer(self.dir / "spark", self.s3,
                                            PROJECT_ROOT / ".cache" / "jars")
        except BaseException:
            self.stop()
            raise
        # Where prepare_environment points DAGSTER_HOME: the instance config lives there.
        self.dagster_home = self.data_root / "dagster"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)

    @property
    def env(self) -> dict[str, str]:
        return {
            "LAKELOOP_ENV": "k8s",
            "LAKELOOP_EXECUTOR": "in_process",
            "LAKELOOP_SERVING": "local",
            "LAKELOOP_SPARK_REMOTE": self.spark.url,
            "LAKELOOP_TABLE_ROOT": f"s3a://{self.s3.bucket}/tables",
            "LAKELOOP_S3_ENDPOINT": self.s3.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "LAKELOOP_REDIS_URL": self.redis.url,
            "LAKELOOP_REDIS_PASSWORD": self.redis.password,
            "LAKELOOP_FEAST_REGISTRY": self.postgres.url("feast", "postgresql+psycopg2"),
            "MLFLOW_TRACKING_URI": self.mlflow.url,
            "MLFLOW_UI_URL": self.mlflow.url,
            "LAKELOOP_DATA_ROOT": str(self.data_root),
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_PG_URL": self.postgres.url("dagster"),
        }

    def stop(self) -> None:
        for service in (self.spark, self.mlflow, self.s3, self.redis, self.postgres):
            if service is not None:
                service.stop()

    def __enter__(self) -> ProductionShape:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def production_shape(directory: Path, data_root: Path) -> Iterator[ProductionShape]:
    shape = ProductionShape(directory, data_root)
    try:
        yield shape
    finally:
        shape.stop()


class CodeServer:
    """A Dagster code server (``dagster api grpc``) on 127.0.0.1 serving ``module``, and the
    workspace file that points at it. Runs launched through it (Dagster's default run
    launcher) execute in a run-worker process it starts, as on a deployment without
    Kubernetes; it marks a run failed when that worker dies."""

    def __init__(self, directory: Path, module: str, env: dict[str, str]):
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "code-server.log"
        self.workspace = directory / "workspace.yaml"
        self.workspace.write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.port}\n      location_name: lakeloop\n")
        self.proc = _launch(
            [sys.executable, "-m", "dagster", "api", "grpc", "--module-name", module,
             "--host", "127.0.0.1", "--port", str(self.port),
             "--working-directory", str(PROJECT_ROOT)],
            self._ready, "Dagster code server", self.log, timeout=180, env=env)

    def _ready(self) -> bool:
        from dagster._grpc.client import DagsterGrpcClient

        DagsterGrpcClient(port=self.port, host="127.0.0.1").ping("ready")
        return True

    @property
    def pid(self) -> int:
        return self.proc.process.pid

    def stop(self) -> None:
        self.proc.stop()
