"""The Feast repository configuration, built in one place.

``repo_config`` is what Dagster's Feast resource, the local feature server and the two files
people read with the feast CLI (feature_repo/feature_store.yaml, the Kubernetes feature
server's ConfigMap) all hold. The files are rendered from it, and a test keeps them equal:

    python -m lakeloop.features.config local > feature_repo/feature_store.yaml
    python -m lakeloop.features.config k8s    # the ConfigMap's feature_store.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

PROJECT = "lakeloop"
# SQLite that never rolls a value back (see lakeloop.features.online_store).
SQLITE_STORE = "lakeloop.features.online_store.MonotonicSqliteOnlineStore"
# Feast's Spark offline store with a one-join, one-window point-in-time join (see
# lakeloop.features.offline_store): the same rows, 5x faster at 1M entity rows.
SPARK_STORE = "lakeloop.features.offline_store.SinglePassSparkOfflineStore"
ENTITY_KEY_SERIALIZATION = 3
# How `feast serve` runs, locally and on Kubernetes. One worker per process (replicas scale it
# out), the registry re-read every 5 s, and --max-requests 0: Feast's default (1,000 plus up to
# 50 of jitter) recycles the worker, and with one worker that leaves nobody listening for the
# two seconds a new one takes to boot, which a transformer sees as a timeout (the soak's 503s).
# The soak proves the worker does not grow without the recycling.
SERVE_OPTIONS = ("-w", "1", "--no-access-log", "-r", "5", "--max-requests", "0")


def is_sql_registry(registry: str) -> bool:
    """A SQL registry (PostgreSQL in production) rather than a registry file."""
    return registry.startswith(("postgresql", "mysql", "sqlite:", "${LAKELOOP_FEAST_REGISTRY"))


def registry_config(registry: str) -> dict[str, Any]:
    if is_sql_registry(registry):
        return {"registry_type": "sql", "path": registry, "cache_ttl_seconds": 5,
                "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True}}
    return {"registry_type": "file", "path": registry, "cache_ttl_seconds": 5}


def online_config(online_store: str, *, sqlite_path: str = "", redis: str = "",
                  redis_password: str = "") -> dict[str, Any]:
    if online_store == "sqlite":
        return {"type": SQLITE_STORE, "path": sqlite_path}
    if online_store == "redis":
        return {"type": "redis",
                "connection_string": redis + (f",password={redis_password}"
                                              if redis_password else "")}
    raise ValueError(f"online_store must be sqlite or redis, not {online_store!r}")


def repo_config(registry: str, online: dict[str, Any], offline: str = SPARK_STORE,
                project: str = PROJECT) -> dict[str, Any]:
    """Feast's feature_store.yaml as a mapping (``feast.RepoConfig(**repo_config(...))``).
    The offline store is Spark over the Delta tables where features are computed; the feature
    server only reads online, so its files name the file offline store (no Spark there)."""
    return {"project": project, "provider": "local", "registry": registry_config(registry),
            "online_store": online, "offline_store": {"type": offline},
            "entity_key_serialization_version": ENTITY_KEY_SERIALIZATION}


def render(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)


# The files people read, with the values Feast expands from the environment when it loads them.
def local_file() -> dict[str, Any]:
    return repo_config("${LAKELOOP_DATA_ROOT}/feast/registry.db",
                       online_config("sqlite", sqlite_path="${LAKELOOP_DATA_ROOT}/feast/online.db"))


def k8s_feature_server_file() -> dict[str, Any]:
    return repo_config("${LAKELOOP_FEAST_REGISTRY}",
                       online_config("redis", redis="${LAKELOOP_REDIS_URL}",
                                     redis_password="${LAKELOOP_REDIS_PASSWORD}"),
                       offline="file")


LOCAL_HEADER = """\
# The Feast repository of Lakeloop, for the feast CLI, for example
#   LAKELOOP_DATA_ROOT=$PWD/.lakeloop .venv/bin/feast -c feature_repo feature-views list
# Rendered from lakeloop.features.config, which Dagster's resource and the feature server use
# too (regenerate: python -m lakeloop.features.config local > feature_repo/feature_store.yaml).
# Feast expands the variables before parsing this file.
"""


def main(argv: list[str]) -> int:
    which = argv[0] if argv else "local"
    if which == "local":
        sys.stdout.write(LOCAL_HEADER + render(local_file()))
    elif which == "k8s":
        sys.stdout.write(render(k8s_feature_server_file()))
    else:
        sys.stderr.write("usage: python -m lakeloop.features.config [local|k8s]\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
