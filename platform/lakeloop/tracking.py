"""MLflow as a Dagster resource: tracking, the model registry and links for the UI."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"

# No telemetry from a laptop or a cluster: set before mlflow is imported.
QUIET_ENV = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def quiet_mlflow() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def muted_stderr():
    """MLflow prints registry chatter straight to stderr; keep run logs readable."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


class MlflowResource(dg.ConfigurableResource):
    """Tracking server and model registry (SQLite locally, PostgreSQL + S3 in production)."""

    tracking_uri: str
    # A folder for an empty SQLite registry already migrated to this MLflow's schema: a new
    # ``sqlite:///`` registry starts as a copy of it (see ``seed_sqlite``). Empty: MLflow
    # builds each new database itself.
    schema_cache: str = ""
    # Empty: the tracking server decides (``--artifacts-destination``, proxied to the
    # object store), so clients need no storage credentials of their own.
    artifact_root: str = ""
    ui_url: str = "http://127.0.0.1:5000"
    dagster_ui_url: str = "http://127.0.0.1:3000"

    def setup(self):
        quiet_mlflow()
        import mlflow

        if self.tracking_uri.startswith("sqlite:///"):
            database = Path(self.tracking_uri.removeprefix("sqlite:///"))
            database.parent.mkdir(parents=True, exist_ok=True)
            if self.schema_cache and not database.exists():
                seed_sqlite(database, Path(self.schema_cache))
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return mlflow

    def client(self) -> MlflowClient:
        self.setup()
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment(self, name: str) -> str:
        mlflow = self.setup()
        existing = mlflow.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        if not self.artifact_root:
            return mlflow.create_experiment(name)
        location = self.artifact_root.rstrip("/") + f"/{name}"
        if "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
        return mlflow.create_experiment(name, artifact_location=location)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, name: str, version: int | str) -> str:
        return f"{self.ui_url}/#/models/{name}/versions/{version}"

    def version_by_alias(self, name: str, alias: str):
        """The model version behind an alias, or None when the alias is not set."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(name, alias)
        except MlflowException:
            return None


def seed_sqlite(database: Path, cache: Path) -> None:
    """Start a new SQLite registry as a copy of an empty one at this MLflow's schema.

    MLflow builds a new database by running every migration of its schema: about 3 s, paid
    by every new data root (each test's, a demo after ``make clean``); a copy takes 0.05 s.
    The empty database is built once per MLflow version, by MLflow itself (its registry
    store, which creates no experiment: the tracking store adds the Default experiment, with
    this root's artifact location, when it first opens the copy). Both files appear whole
    or not at all, and a database that exists is never replaced."""
    import uuid

    import mlflow

    template = cache / f"mlflow-{mlflow.__version__}.db"
    if not template.exists():
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        building = cache / f".{template.name}.{uuid.uuid4().hex}"
        try:
            cache.mkdir(parents=True, exist_ok=True)
            building.touch()
        except OSError:  # a read-only cache (an image): MLflow builds the database itself
            return
        try:
            with muted_stderr():
                SqlAlchemyStore(f"sqlite:///{building}").engine.dispose()
            os.replace(building, template)
        finally:  # a failed build leaves no half-migrated file in the cache
            building.unlink(missing_ok=True)
    copy = database.with_name(f".{database.name}.{uuid.uuid4().hex}")
    try:
        shutil.copyfile(template, copy)
        with contextlib.suppress(FileExistsError):  # another process seeded it first
            os.link(copy, database)
    finally:
        copy.unlink(missing_ok=True)
