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
    executor: str = "in_process"
    online_store: str = "sqlite"
    redis_url: str = "127.0.0.1:6379"
    feature_server_port: int = 6566
    feature_repo: Path = PROJECT_ROOT / "feature_repo"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        env = Env(_choice(environ, "LAKELOOP_ENV", "local", tuple(e.value for e in Env)))
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
            executor=_choice(environ, "LAKELOOP_EXECUTOR", "in_process",
                             ("in_process", "multiprocess")),
            online_store=_choice(environ, "LAKELOOP_ONLINE_STORE", "sqlite",
                                 ("sqlite", "redis")),
            redis_url=environ.get("LAKELOOP_REDIS_URL", "127.0.0.1:6379"),
            feature_server_port=int(environ.get("LAKELOOP_FEATURE_SERVER_PORT", "6566")),
            feature_repo=Path(environ.get("LAKELOOP_FEATURE_REPO",
                                          PROJECT_ROOT / "feature_repo")),
        )

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
