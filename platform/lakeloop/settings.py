"""One settings object: where data lives and which environment (local or k8s) runs it.

Read once, at call time (``Settings.from_env()``), never at import.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILTIN_USE_CASES = Path(__file__).resolve().parent / "usecases"


def _choice(environ: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = environ.get(name, default).strip().lower()
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
    return value


def _table_root(value: str) -> str:
    value = value.strip()
    if not value or value.startswith("s3a://"):
        return value
    if value.startswith("s3://"):  # Hadoop's S3 connector is s3a
        return "s3a://" + value.removeprefix("s3://")
    if "://" in value:
        raise SettingsError(f"LAKELOOP_TABLE_ROOT={value!r}: use a local folder or s3a://bucket/prefix")
    return str(Path(value).expanduser().resolve())


class Env(enum.Enum):
    LOCAL = "local"
    K8S = "k8s"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    env: Env = Env.LOCAL
    data_root: Path = PROJECT_ROOT / ".lakeloop"
    use_case_dirs: tuple[Path, ...] = (BUILTIN_USE_CASES,)
    jars_dir: Path = PROJECT_ROOT / ".cache" / "jars"
    serving_python: Path = PROJECT_ROOT / ".venv-serving" / "bin" / "python"
    serving_host: str = "127.0.0.1"
    # in_process: every step of a run shares one process, so Spark starts one JVM per run.
    # multiprocess: a process (and a JVM) per step, for graphs without Spark.
    # k8s: a pod per step (dagster-k8s's k8s_job_executor), the default on Kubernetes.
    executor: str = "in_process"
    online_store: str = "sqlite"
    redis_url: str = "127.0.0.1:6379"
    feature_server_port: int = 6566
    feature_repo: Path = PROJECT_ROOT / "feature_repo"
    # Delta tables: under the data root by default, or object storage (s3a://bucket/prefix).
    table_root: str = ""
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    # single-driver: one Spark driver commits every Delta write (local, Spark Connect);
    # dynamodb: several drivers write the same tables (a k8s:// master per step pod).
    delta_log_store: str = "single-driver"
    # Spark: a master URL (local[*], k8s://https://...) or a Spark Connect endpoint (sc://).
    spark_master: str = "local[*]"
    spark_remote: str = ""
    # The local driver's memory: auto sizes it from the machine or the pod (lakeloop.spark).
    spark_driver_memory: str = "auto"
    # local: seldon-core microservices on this machine; kubernetes: applied to the cluster.
    serving: str = "local"
    serving_namespace: str = "lakeloop"
    serving_gateway_url: str = ""
    serving_image: str = "lakeloop/serving:0.1.0"
    feature_server_url: str = ""
    image: str = "lakeloop/user-code:0.1.0"
    reports_url: str = "http://127.0.0.1:8765"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        env = Env(_choice(environ, "LAKELOOP_ENV", "local", tuple(e.value for e in Env)))
        k8s = env is Env.K8S
        data_root = Path(environ.get("LAKELOOP_DATA_ROOT", PROJECT_ROOT / ".lakeloop"))
        custom = [e for e in environ.get("LAKELOOP_USE_CASES", "").split(os.pathsep) if e.strip()]
        dirs = [Path(e).expanduser().resolve() for e in custom] or [BUILTIN_USE_CASES]
        return cls(
            env=env,
            data_root=data_root.expanduser().resolve(),
            use_case_dirs=tuple(dirs),
            jars_dir=Path(environ.get("LAKELOOP_JARS_DIR", PROJECT_ROOT / ".cache" / "jars")),
            serving_python=Path(
                environ.get("LAKELOOP_SERVING_PYTHON",
                            PROJECT_ROOT / ".venv-serving" / "bin" / "python")
            ),
            serving_host=environ.get("LAKELOOP_SERVING_HOST", "127.0.0.1"),
            executor=_choice(environ, "LAKELOOP_EXECUTOR", "k8s" if k8s else "in_process",
                             ("in_process", "multiprocess", "k8s")),
            online_store=_choice(environ, "LAKELOOP_ONLINE_STORE", "redis" if k8s else "sqlite",
                                 ("sqlite", "redis")),
            redis_url=environ.get("LAKELOOP_REDIS_URL", "127.0.0.1:6379"),
            feature_server_port=int(environ.get("LAKELOOP_FEATURE_SERVER_PORT", "6566")),
            feature_repo=Path(environ.get("LAKELOOP_FEATURE_REPO",
                                          PROJECT_ROOT / "feature_repo")),
            table_root=_table_root(environ.get("LAKELOOP_TABLE_ROOT", "")),
            s3_endpoint=environ.get("LAKELOOP_S3_ENDPOINT", ""),
            s3_region=environ.get("AWS_REGION", "us-east-1"),
            delta_log_store=_choice(environ, "LAKELOOP_DELTA_LOG_STORE", "single-driver",
                                    ("single-driver", "dynamodb")),
            spark_master=environ.get("LAKELOOP_SPARK_MASTER", "local[*]"),
            spark_remote=environ.get("LAKELOOP_SPARK_REMOTE", ""),
            spark_driver_memory=environ.get("LAKELOOP_SPARK_DRIVER_MEMORY", "auto"),
            serving=_choice(environ, "LAKELOOP_SERVING", "kubernetes" if k8s else "local",
                            ("local", "kubernetes")),
            serving_namespace=environ.get("LAKELOOP_SERVING_NAMESPACE", "lakeloop"),
            serving_gateway_url=environ.get("LAKELOOP_SERVING_GATEWAY_URL", ""),
            serving_image=environ.get("LAKELOOP_SERVING_IMAGE", "lakeloop/serving:0.1.0"),
            feature_server_url=environ.get("LAKELOOP_FEATURE_SERVER_URL", ""),
            image=environ.get("LAKELOOP_IMAGE", "lakeloop/user-code:0.1.0"),
            reports_url=environ.get("LAKELOOP_REPORTS_URL", "http://127.0.0.1:8765"),
        )

    @property
    def uses_object_storage(self) -> bool:
        return self.table_root.startswith(("s3a://", "s3://"))

    def with_data_root(self, data_root: Path) -> Settings:
        return dataclasses.replace(self, data_root=Path(data_root).resolve())

    # --- the layout under the data root -------------------------------------------------
    @property
    def dagster_home(self) -> Path:
        return self.data_root / "dagster"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_root / "mlflow"

    @property
    def feast_dir(self) -> Path:
        return self.data_root / "feast"

    def landing_dir(self, use_case: str, source: str) -> Path:
        return self.data_root / "landing" / use_case / source

    def use_case_root(self, use_case: str) -> Path:
        return self.data_root / use_case
