"""One settings object: where data lives and which environment (local or k8s) runs it.

Read once, at call time (``Settings.from_env()``), never at import: pydantic-settings reads
the ``LAKELOOP_*`` variables (and ``AWS_REGION``) from the process environment, or from the
mapping a test passes; the environment (``LAKELOOP_ENV``) decides the defaults of the
settings that differ on Kubernetes.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILTIN_USE_CASES = Path(__file__).resolve().parent / "usecases"
PREFIX = "LAKELOOP_"


def spark_conf_pairs(text: str) -> dict[str, str]:
    """``key=value key=value`` (Spark settings, keys starting with ``spark.``) as a dict."""
    pairs = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("spark.") or not value:
            raise ValueError(f"{item!r} is not spark.<setting>=<value> (pairs are separated "
                             "by spaces)")
        pairs[key] = value
    return pairs


def _problem(err: Any) -> str:
    name = str(err["loc"][0]) if err["loc"] else "?"
    variable = name if name.isupper() else f"{PREFIX}{name.upper()}"
    return f"{variable}={err.get('input')!r}: {err['msg'].removeprefix('Value error, ')}"


class Env(enum.Enum):
    LOCAL = "local"
    K8S = "k8s"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


# Defaults that differ when LAKELOOP_ENV=k8s.
K8S_DEFAULTS = {"executor": "k8s", "online_store": "redis", "serving": "kubernetes"}


# The environment a from_env(mapping) call reads instead of os.environ.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("lakeloop_environ", default=None)


class _MappingEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore",
                                      case_sensitive=False, populate_by_name=True)

    env: Env = Env.LOCAL
    data_root: Path = PROJECT_ROOT / ".lakeloop"
    # LAKELOOP_USE_CASES: folders separated by os.pathsep (not JSON).
    use_case_dirs: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(BUILTIN_USE_CASES,), validation_alias=f"{PREFIX}USE_CASES")
    jars_dir: Path = PROJECT_ROOT / ".cache" / "jars"
    serving_python: Path = PROJECT_ROOT / ".venv-serving" / "bin" / "python"
    serving_host: str = "127.0.0.1"
    # in_process: every step of a run shares one process, so Spark starts one JVM per run.
    # multiprocess: a process (and a JVM) per step, for graphs without Spark.
    # k8s: a pod per step (dagster-k8s's k8s_job_executor), the default on Kubernetes.
    executor: Literal["in_process", "multiprocess", "k8s"] = "in_process"
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "127.0.0.1:6379"
    feature_server_port: int = 6566
    feature_repo: Path = PROJECT_ROOT / "feature_repo"
    # Delta tables: under the data root by default, or object storage (s3a://bucket/prefix).
    table_root: str = ""
    s3_endpoint: str = ""
    s3_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # single-driver: one Spark driver commits every Delta write (local, Spark Connect);
    # dynamodb: several drivers write the same tables (a k8s:// master per step pod).
    delta_log_store: Literal["single-driver", "dynamodb"] = "single-driver"
    # Spark: a master URL (local[*], k8s://https://...) or a Spark Connect endpoint (sc://).
    spark_master: str = "local[*]"
    spark_remote: str = ""
    # The local driver's memory: auto sizes it from the machine or the pod (lakeloop.spark).
    spark_driver_memory: str = "auto"
    # More options for the local driver's JVM (space-separated). Small data (the demo, the
    # tests): "-XX:TieredStopAtLevel=1" compiles only with the quick JIT, and a cold session's
    # first queries run about twice as fast; large windows want the default (both tiers).
    spark_java_options: str = ""
    # More Spark settings for every session this process starts (space-separated
    # key=value; LAKELOOP_SPARK_CONF). Tiny data (the tests): interpreted expressions, no
    # code generation, cost less than compiling every query (see tests/conftest.py).
    spark_conf: str = ""
    # local: seldon-core microservices on this machine; kubernetes: applied to the cluster.
    serving: Literal["local", "kubernetes"] = "local"
    serving_namespace: str = "lakeloop"
    serving_gateway_url: str = ""
    serving_image: str = "lakeloop/serving:0.1.0"
    # serving.image: per_version: where the images built per model version are pushed
    # (host[:port][/path]; empty: kept where they were built), and what builds them
    # (buildah, podman or docker; empty: the first on PATH).
    image_registry: str = ""
    image_builder: str = ""
    feature_server_url: str = ""
    image: str = "lakeloop/user-code:0.1.0"
    reports_url: str = "http://127.0.0.1:8765"
    # The Dagster UI people open: alerts link to the run that raised them.
    dagster_url: str = "http://127.0.0.1:3000"

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        environment = env_settings if environ is None else _MappingEnvironment(settings_cls,
                                                                               environ)
        return init_settings, environment

    @model_validator(mode="before")
    @classmethod
    def _environment_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        values = dict(data)
        env = values.get("env", "local")
        env = (env.value if isinstance(env, Env) else str(env)).strip().lower()
        values["env"] = env
        if env == Env.K8S.value:
            for name, default in K8S_DEFAULTS.items():
                values.setdefault(name, default)
        for name in ("executor", "online_store", "serving", "delta_log_store"):
            if isinstance(values.get(name), str):
                values[name] = values[name].strip().lower()
        return values

    @field_validator("use_case_dirs", mode="before")
    @classmethod
    def _folders(cls, value: Any) -> Any:
        if isinstance(value, str):  # LAKELOOP_USE_CASES: folders separated by os.pathsep
            value = [e for e in value.split(os.pathsep) if e.strip()]
        if not value:
            return (BUILTIN_USE_CASES,)
        return tuple(Path(e).expanduser().resolve() for e in value)

    @field_validator("spark_conf")
    @classmethod
    def _spark_conf(cls, value: str) -> str:
        spark_conf_pairs(value)  # refused here, with the setting's name, not at a session
        return value.strip()

    @property
    def spark_conf_map(self) -> dict[str, str]:
        return spark_conf_pairs(self.spark_conf)

    @field_validator("data_root")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("table_root")
    @classmethod
    def _table_root(cls, value: str) -> str:
        value = value.strip()
        if not value or value.startswith("s3a://"):
            return value
        if value.startswith("s3://"):  # Hadoop's S3 connector is s3a
            return "s3a://" + value.removeprefix("s3://")
        if "://" in value:
            raise ValueError("use a local folder or s3a://bucket/prefix")
        return str(Path(value).expanduser().resolve())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (the process environment by default); a malformed
        value is a SettingsError naming the variable and what it accepts."""
        token = _ENVIRON.set(environ)
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError("; ".join(_problem(err) for err in exc.errors())) from None
        finally:
            _ENVIRON.reset(token)

    @property
    def uses_object_storage(self) -> bool:
        return self.table_root.startswith(("s3a://", "s3://"))

    def replace(self, **changes: Any) -> Settings:
        """These settings with some changed (validated again, the environment not read)."""
        token = _ENVIRON.set({})
        try:
            return type(self)(**{**self.model_dump(), **changes})
        finally:
            _ENVIRON.reset(token)

    def with_data_root(self, data_root: Path) -> Settings:
        return self.replace(data_root=Path(data_root))

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
