"""A new local registry starts as a copy of an empty one at MLflow's schema: the same
registry MLflow would build, never over one that exists, and MLflow's own build when the
cache cannot be written."""

import contextlib
import filecmp
import sqlite3

import mlflow
import pytest

from lakeloop.tracking import CHAMPION, MlflowResource, seed_sqlite

pytestmark = pytest.mark.integration


def resource(root, cache=None) -> MlflowResource:
    return MlflowResource(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                          artifact_root=str(root / "artifacts"),
                          schema_cache=str(cache) if cache else "")


def default_experiment(mlflow_resource: MlflowResource):
    return mlflow_resource.client().get_experiment_by_name("Default")


def test_a_new_registry_is_a_copy_of_the_migrated_one_and_works_as_mlflows_own(tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "a").mkdir()
    seed_sqlite(tmp_path / "a" / "mlflow.db", cache)
    template = cache / f"mlflow-{mlflow.__version__}.db"
    assert template.is_file()
    # the database is the template, byte for byte: MLflow did not build it again
    assert filecmp.cmp(tmp_path / "a" / "mlflow.db", template, shallow=False)

    seeded, built = resource(tmp_path / "a", cache), resource(tmp_path / "b")
    for registry in (seeded, built):
        client = registry.client()
        run = client.create_run(registry.experiment("credit_risk"))
        client.log_metric(run.info.run_id, "auc", 0.9)
        client.create_registered_model("credit_risk")
        version = client.create_model_version("credit_risk", "file:///model", run.info.run_id)
        client.set_registered_model_alias("credit_risk", CHAMPION, version.version)
        assert registry.version_by_alias("credit_risk", CHAMPION).version == 1
        assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.9}
    # the Default experiment is created by the tracking store on first use, as MLflow does
    assert default_experiment(seeded).artifact_location == \
        default_experiment(built).artifact_location
    assert [e.artifact_location for e in seeded.client().search_experiments()
            if e.name == "credit_risk"] == [str(tmp_path / "a" / "artifacts" / "credit_risk")]


def test_a_registry_that_exists_is_never_replaced(tmp_path):
    cache = tmp_path / "cache"
    registry = resource(tmp_path, cache)
    registry.experiment("kept")
    seed_sqlite(tmp_path / "mlflow.db", cache)
    # read from the file itself (MLflow's open connections would still see a replaced one)
    with contextlib.closing(sqlite3.connect(tmp_path / "mlflow.db")) as db:
        assert db.execute("SELECT name FROM experiments WHERE name = 'kept'").fetchall() \
            == [("kept",)]
    assert not list(tmp_path.glob(".mlflow.db.*"))  # no copy left behind


def test_a_cache_that_cannot_be_written_leaves_the_build_to_mlflow(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    seed_sqlite(tmp_path / "mlflow.db", blocked / "cache")
    assert not (tmp_path / "mlflow.db").exists()
    registry = resource(tmp_path, blocked / "cache")
    assert registry.experiment("credit_risk")
    assert registry.client().get_experiment_by_name("credit_risk") is not None
