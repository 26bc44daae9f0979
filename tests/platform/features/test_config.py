"""One Feast configuration: the files people read are rendered from the builder the resource
and the feature server use, so the three cannot drift apart."""

from pathlib import Path

import yaml

from lakeloop.features import config
from lakeloop.features.store import FeastResource

ROOT = Path(__file__).resolve().parents[3]


def test_the_feature_repo_file_is_the_rendered_local_configuration():
    text = (ROOT / "feature_repo" / "feature_store.yaml").read_text()
    assert text == config.LOCAL_HEADER + config.render(config.local_file()), (
        "regenerate: python -m lakeloop.features.config local > feature_repo/feature_store.yaml")


def test_the_k8s_feature_servers_file_is_the_rendered_configuration():
    manifest = next(doc for doc in yaml.safe_load_all((ROOT / "infra/k8s/feature-server.yaml")
                                                      .read_text())
                    if doc and doc["kind"] == "ConfigMap")
    assert yaml.safe_load(manifest["data"]["feature_store.yaml"]) == \
        config.k8s_feature_server_file()


def test_the_k8s_feature_server_runs_as_the_local_one_does():
    deployment = next(doc for doc in yaml.safe_load_all((ROOT / "infra/k8s/feature-server.yaml")
                                                        .read_text())
                      if doc and doc["kind"] == "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["feast", "-c", "/etc/lakeloop/feast", "serve", "-h", "0.0.0.0",
                       "-p", "6566", *config.SERVE_OPTIONS]


def test_the_resource_builds_the_same_configuration_as_the_file(tmp_path):
    feast = FeastResource(registry_path=str(tmp_path / "registry.db"),
                          sqlite_path=str(tmp_path / "online.db"))
    built = feast.repo_config()
    local = config.local_file()
    assert built.online_store.type == local["online_store"]["type"]
    assert built.offline_store.type == local["offline_store"]["type"]
    assert built.registry.registry_type == "file" and built.project == local["project"]
    assert built.entity_key_serialization_version == local["entity_key_serialization_version"]


def test_the_local_feature_servers_file_keeps_secrets_in_variables(tmp_path, monkeypatch):
    feast = FeastResource(registry_path="postgresql+psycopg://u:secret@127.0.0.1/db",
                          online_store="redis", redis_connection_string="127.0.0.1:6379",
                          redis_password="hunter2", state_dir=str(tmp_path))
    started = {}
    monkeypatch.setattr("lakeloop.features.store.Registry.start",
                        lambda self, name, cmd, env, *a, **k: started.update(env=env))
    feast.ensure_feature_server()
    text = (tmp_path / "repo" / "feature_store.yaml").read_text()
    assert "secret" not in text and "hunter2" not in text
    assert yaml.safe_load(text) == config.repo_config(
        "${LAKELOOP_FEAST_REGISTRY}", config.online_config(
            "redis", redis="127.0.0.1:6379", redis_password="${LAKELOOP_REDIS_PASSWORD}"),
        offline="file")
    assert started["env"]["LAKELOOP_REDIS_PASSWORD"] == "hunter2"
