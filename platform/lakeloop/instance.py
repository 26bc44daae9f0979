"""The Dagster instance under the data root, prepared the same way for the demo and the CLI."""

from __future__ import annotations

import os
import shutil
import time

from lakeloop.settings import PROJECT_ROOT, Settings


def prepare_environment(settings: Settings) -> None:
    """UTC, DAGSTER_HOME under the data root (with the local dagster.yaml), quiet MLflow."""
    os.environ["TZ"] = "UTC"
    time.tzset()
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    target = settings.dagster_home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(PROJECT_ROOT / "infra" / "local" / "dagster.yaml", target)
    from lakeloop.tracking import quiet_mlflow

    quiet_mlflow()


def dagster_instance(settings: Settings):
    import dagster as dg

    prepare_environment(settings)
    return dg.DagsterInstance.get()
