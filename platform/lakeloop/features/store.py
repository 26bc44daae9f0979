"""The Feast side of a use case: objects generated from the use-case file, and the store.

Every use case gets, without hand-written Feast code: its entity, a Spark source over its
gold Delta table, a feature view with the use case's TTL and one feature service per feature
set (``<use case>_v1``). Hand-written objects in ``feature_repo/`` are applied beside them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from lakeloop.features import config
from lakeloop.processes import Registry, Running
from lakeloop.usecase import UseCase

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
    from feast.data_source import DataSource

GENERATED_TAG = "lakeloop_generated"
FEAST_DTYPES = {"int": "Int64", "double": "Float64", "boolean": "Bool", "string": "String"}

warnings.filterwarnings("ignore", message=r"(?s).*The spark (data source|offline store)",
                        category=RuntimeWarning)


def quiet_feast() -> None:
    """Feast's Spark offline store warns on every use that it is "an experimental feature in
    alpha development", and its modules put their own filter first when imported; ours goes
    in front after them, so run logs keep what matters."""
    import warnings

    import feast.infra.offline_stores.contrib.spark_offline_store.spark  # noqa: F401
    import feast.infra.offline_stores.contrib.spark_offline_store.spark_source  # noqa: F401

    warnings.filterwarnings("ignore", message=".*experimental feature in alpha development",
                            category=RuntimeWarning)


def feature_dtype(use_case: UseCase, feature: str) -> str:
    column = use_case.events.columns.get(feature)
    return FEAST_DTYPES[column.type] if column is not None else "Float64"


def source_name(use_case: UseCase) -> str:
    return f"{use_case.name}_{use_case.entity.name}_source"


def feature_view_name(use_case: UseCase) -> str:
    return f"{use_case.name}_{use_case.entity.name}_fv"


def feature_service_name(use_case: UseCase, version: int | None = None) -> str:
    return f"{use_case.name}_v{use_case.features.version if version is None else version}"


class FeatureSetChanged(ValueError):
    """The features of a use case changed but its features.version did not."""


def check_feature_version(store, use_case: UseCase) -> None:
    """A feature service, once applied, keeps its features: changing them needs a new
    version, or models trained on the old set would silently serve with another one."""
    from feast.errors import FeatureServiceNotFoundException

    name = feature_service_name(use_case)
    try:
        existing = store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        return
    had = sorted(f.name for p in existing.feature_view_projections for f in p.features)
    wants = sorted(use_case.entity_features)
    if had != wants:
        raise FeatureSetChanged(
            f"the features of {use_case.name} changed (registry {name}: {', '.join(had)}; "
            f"use-case file: {', '.join(wants)}) but features.version is still "
            f"{use_case.features.version}: bump features.version in {use_case.name}.yaml")


def feature_refs(use_case: UseCase) -> list[str]:
    return [f"{feature_view_name(use_case)}:{f}" for f in use_case.entity_features]


def use_case_objects(use_case: UseCase, gold_path: str,
                     gold_version: int | None = None) -> list[Any]:
    """Entity, source, feature view and feature service for one use case.

    With ``gold_version`` the source reads that Delta version of the gold table (time
    travel), so a training set can be rebuilt from exactly the data it was built from.
    """
    from feast import Entity, FeatureService, FeatureView, Field, ValueType
    from feast import types as feast_types

    quiet_feast()
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from feast.table_format import DeltaFormat

    tags = {GENERATED_TAG: "true", "use_case": use_case.name}
    entity = Entity(name=use_case.entity.name, join_keys=[use_case.entity.join_key],
                    value_type=ValueType.STRING, description=use_case.entity.description,
                    tags=tags)
    source = SparkSource(
        name=source_name(use_case),
        path=gold_path,
        table_format=DeltaFormat(properties=(
            {"versionAsOf": str(gold_version)} if gold_version is not None else {})),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        date_partition_column="ds",
        description=f"Gold {use_case.entity.name} features of {use_case.name} (Delta).",
        tags=tags,
    )
    view = FeatureView(
        name=feature_view_name(use_case),
        entities=[entity],
        ttl=dt.timedelta(days=use_case.features.entity.ttl_days),
        schema=[Field(name=f, dtype=getattr(feast_types, feature_dtype(use_case, f)))
                for f in use_case.entity_features],
        source=source,
        online=True,
        description=f"{use_case.entity.name} features for {use_case.title}",
        owner=use_case.owner,
        tags=tags,
    )
    service = FeatureService(
        name=feature_service_name(use_case), features=[view], tags=tags,
        description=f"Feature set {use_case.features.version} of {use_case.name}: what its "
        "models train and serve with.")
    return [entity, source, view, service]


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _inside(repo_path: Path):
    """Feast names repository modules relative to the working directory, as `feast apply`
    does when run inside the repository; do the same, briefly."""
    repo = str(Path(repo_path).resolve())
    with _CWD_LOCK:
        previous = os.getcwd()
        sys.path.insert(0, repo)
        os.chdir(repo)
        try:
            yield
        finally:
            os.chdir(previous)
            sys.path.remove(repo)


def hand_written_objects(repo_path: Path, use_case: UseCase) -> list[Any]:
    """Objects defined by hand in the Feast repository for this use case (tag use_case)."""
    from feast.repo_operations import parse_repo

    with _inside(repo_path):
        repo = parse_repo(Path(repo_path).resolve())
    objects: list[Entity | DataSource | FeatureView | OnDemandFeatureView | FeatureService] = [
        *repo.entities, *repo.data_sources, *repo.feature_views,
        *repo.on_demand_feature_views, *repo.feature_services]
    return [o for o in objects
            if o.tags.get(GENERATED_TAG) != "true" and o.tags.get("use_case") == use_case.name]


_STORES: dict[tuple, FeatureStore] = {}
_STORE_LOCK = threading.Lock()
FEATURE_SERVER = "feature-server"


class FeastResource(dg.ConfigurableResource):
    """Feast: Spark offline store over the Delta gold tables, SQLite or Redis online, and
    Feast's HTTP feature server for the serving layer."""

    project: str = "lakeloop"
    registry_path: str
    online_store: str = "sqlite"
    sqlite_path: str = ""
    redis_connection_string: str = ""
    redis_password: str = ""
    repo_path: str = ""
    server_host: str = "127.0.0.1"
    server_port: int = 6566
    state_dir: str = ""

    @property
    def registry_display(self) -> str:
        """Where the registry lives, fit to show: a SQL URL without its password."""
        if not self.sql_registry:
            return self.registry_path
        from sqlalchemy.engine import make_url

        return make_url(self.registry_path).render_as_string(hide_password=True)

    @property
    def sql_registry(self) -> bool:
        """A SQL registry (PostgreSQL in production) rather than a registry file."""
        return config.is_sql_registry(self.registry_path)

    def online_config(self, password: str | None = None) -> dict[str, Any]:
        if self.online_store == "sqlite":
            Path(self.sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        return config.online_config(
            self.online_store, sqlite_path=self.sqlite_path,
            redis=self.redis_connection_string,
            redis_password=self.redis_password if password is None else password)

    def repo_config(self) -> Any:
        from feast import RepoConfig

        quiet_feast()
        if "://" not in self.registry_path and not self.sql_registry:
            Path(self.registry_path).parent.mkdir(parents=True, exist_ok=True)
        return RepoConfig(**config.repo_config(self.registry_path, self.online_config(),
                                               project=self.project),
                          repo_path=Path(self.repo_path) if self.repo_path else None)

    def store(self) -> FeatureStore:
        from feast import FeatureStore

        key = (self.project, self.registry_path, self.online_store, self.sqlite_path,
               self.redis_connection_string)
        with _STORE_LOCK:
            if key not in _STORES:
                _STORES[key] = FeatureStore(config=self.repo_config())
            return _STORES[key]

    # --- the HTTP feature server -------------------------------------------------------
    @property
    def feature_server_url(self) -> str:
        return f"http://{self.server_host}:{self.server_port}"

    def _server_dir(self) -> Path:
        return Path(self.state_dir or Path(self.registry_path).parent / "server")

    def ensure_feature_server(self, timeout: float = 90.0) -> Running:
        """Feast's HTTP feature server over this registry and online store, started once."""
        registry = Registry(self._server_dir())
        running = registry.get(FEATURE_SERVER, _server_answers)
        if running is not None:
            return running
        repo = self._server_dir() / "repo"
        repo.mkdir(parents=True, exist_ok=True)
        # Secrets never land in the file: Feast expands ${VAR} from the server's environment.
        secrets = {"LAKELOOP_FEAST_REGISTRY": self.registry_path} if self.sql_registry else {}
        if self.redis_password:
            secrets["LAKELOOP_REDIS_PASSWORD"] = self.redis_password
        (repo / "feature_store.yaml").write_text(config.render(config.repo_config(
            "${LAKELOOP_FEAST_REGISTRY}" if self.sql_registry else self.registry_path,
            self.online_config("${LAKELOOP_REDIS_PASSWORD}" if self.redis_password else None),
            offline="file", project=self.project)))
        feast = Path(sys.executable).with_name("feast")
        cmd = [str(feast), "-c", str(repo), "serve", "-h", self.server_host, "-p",
               str(self.server_port), *config.SERVE_OPTIONS]
        env = {**{k: v for k, v in os.environ.items()
                  if k in ("PATH", "HOME", "LANG", "TZ", "PYTHONPATH")},
               "DO_NOT_TRACK": "true", "FEAST_USAGE": "False", **secrets}
        return registry.start(FEATURE_SERVER, cmd, env, self.server_host, [self.server_port],
                              ready=_server_answers, timeout=timeout)

    def stop_feature_server(self) -> bool:
        return Registry(self._server_dir()).stop(FEATURE_SERVER)


def _server_answers(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def online_features_http(url: str, service: str, join_key: str, keys: list[str],
                         session=None, timeout: float = 5.0) -> dict[str, list]:
    """Online features over HTTP, as {name: [values...]} aligned with ``keys``."""
    import requests

    http = session or requests
    response = http.post(f"{url}/get-online-features", timeout=timeout,
                         json={"feature_service": service, "entities": {join_key: keys}})
    response.raise_for_status()
    body = response.json()
    names = body["metadata"]["feature_names"]
    return {name: result["values"] for name, result in zip(names, body["results"], strict=True)}


def pinned_store(objects: list[Any], directory: Path, offline: str = config.SPARK_STORE):
    """A throwaway store whose registry holds ``objects`` (for example a source pinned to a
    Delta version): historical retrieval against exactly those definitions, on Lakeloop's
    offline store (``offline="spark"``: Feast's stock one, which tests and benchmarks
    compare it with)."""
    from feast import FeatureStore, RepoConfig

    directory.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(config=RepoConfig(**config.repo_config(
        str(directory / "registry.db"),
        config.online_config("sqlite", sqlite_path=str(directory / "online.db")),
        offline=offline, project="lakeloop_pinned")))
    store.apply(objects)
    return store


@contextlib.contextmanager
def spark_guard(spark):
    """Feast flips ``spark.sql.parser.quotedRegexColumnNames`` on the shared session, which
    breaks Delta's metadata-only aggregates afterwards; restore it when Feast is done."""
    before = spark.conf.get("spark.sql.parser.quotedRegexColumnNames", "false")
    try:
        yield
    finally:
        spark.conf.set("spark.sql.parser.quotedRegexColumnNames", before)
