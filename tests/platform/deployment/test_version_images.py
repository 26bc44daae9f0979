"""serving.image: per_version, without building anything: how a version's image is named,
labelled and described (its Dockerfile), which builder is used, how the SeldonDeployment
points at it, and where the asset sits in the graph. tests/images builds and runs one."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.deployment import images
from lakeloop.deployment.manifests import ManifestPredictor, render_seldon_deployment
from tests.conftest import free_port_pair, settings_for, write_use_case


def test_an_image_is_named_for_its_model_and_version_and_a_bad_registry_is_refused():
    assert images.image_ref("", "credit_risk", "7") == "localhost/lakeloop-model-credit-risk:v7"
    assert images.image_ref("registry.example:5000/ml/", "credit_risk", "12") == \
        "registry.example:5000/ml/lakeloop-model-credit-risk:v12"
    for bad in ("Registry.Example", "host;rm -rf /", "host/../x", "host/a b", "-host"):
        with pytest.raises(images.ImageError, match="LAKELOOP_IMAGE_REGISTRY"):
            images.image_ref(bad, "credit_risk", "7")
    with pytest.raises(images.ImageError, match="not a number"):
        images.image_ref("", "credit_risk", "7; true")


def test_labels_say_what_the_image_serves_and_what_it_came_from():
    tags = {"model_sha256": "ab" * 32, "training_set_version": "4",
            "lakeloop.source_versions": '{"silver_applications": 12}',
            "lakeloop.snapshots_sha256": "cd" * 32, "lakeloop.git_commit": "0123abc",
            "feature_service": "credit_risk_v1", "onnx_max_abs_diff": "3e-08",
            "unrelated": "x"}
    got = images.labels("credit_risk", "7", tags, "run-1", "lakeloop/serving:0.1.0",
                        created=dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC))
    assert got["org.opencontainers.image.version"] == "7"
    assert got["org.opencontainers.image.created"] == "2026-12-03T12:00:00+00:00"
    assert got["org.opencontainers.image.revision"] == "0123abc"
    assert got["org.opencontainers.image.base.name"] == "lakeloop/serving:0.1.0"
    assert got["io.lakeloop.mlflow.run_id"] == "run-1"
    assert got["io.lakeloop.training_set.version"] == "4"
    assert got["io.lakeloop.data.delta_versions"] == '{"silver_applications": 12}'
    assert got["io.lakeloop.model.sha256"] == "ab" * 32
    assert "x" not in got.values()


def test_the_build_context_holds_the_model_files_and_quoted_labels(tmp_path):
    model_dir, context = tmp_path / "model", tmp_path / "context"
    model_dir.mkdir()
    (model_dir / "model.ubj").write_bytes(b"booster")
    (model_dir / "MLmodel").write_text("not copied")
    labels = {"io.lakeloop.note": 'a "quoted" value\nwith a newline'}
    images.write_context(context, model_dir, "lakeloop/serving:0.1.0", labels)
    text = (context / "Dockerfile").read_text()
    assert text.splitlines()[0] == "FROM lakeloop/serving:0.1.0"
    assert 'LABEL "io.lakeloop.note"="a \\"quoted\\" value\\nwith a newline"' in text
    assert "COPY model/model.ubj /models/model.ubj" in text and "model.onnx" not in text
    assert sorted(p.name for p in (context / "model").iterdir()) == ["model.ubj"]
    (model_dir / "model.onnx").write_bytes(b"onnx")
    images.write_context(tmp_path / "again", model_dir, "base", {})
    assert "COPY model/model.onnx /models/model.onnx" in (tmp_path / "again" /
                                                           "Dockerfile").read_text()
    with pytest.raises(images.ImageError, match="no model.ubj"):
        images.write_context(tmp_path / "empty", tmp_path / "context" / "nothing", "b", {})


def test_the_builder_is_the_one_named_or_the_first_on_path(tmp_path, monkeypatch):
    with pytest.raises(images.ImageError, match="one of buildah, podman, docker"):
        images.builder("kaniko")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(images.ImageError, match="no image builder found"):
        images.builder()
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\n")
    docker.chmod(0o755)
    assert images.builder() == "docker"
    with pytest.raises(images.ImageError, match="buildah not on PATH"):
        images.builder("buildah")


def test_a_per_version_manifest_runs_the_versions_image_with_the_model_inside():
    def predictor(role, version, traffic, image, runtime="xgboost"):
        return ManifestPredictor(role, version, ["income"], 0.3, "credit_risk_v1", traffic,
                                 runtime=runtime, image=image)

    manifest = render_seldon_deployment(
        name="credit-risk", namespace="lakeloop", image="lakeloop/serving:0.1.0",
        model_name="credit_risk", entity_key="applicant_id", request_features=[],
        feature_server_url="http://feast:6566", rollout="canary", predictors=[
            predictor("champion", "3", 90, "localhost/lakeloop-model-credit-risk:v3"),
            predictor("challenger", "4", 10, "localhost/lakeloop-model-credit-risk:v4",
                      "onnx")])
    for p, version in zip(manifest["spec"]["predictors"], ("3", "4"), strict=True):
        containers = p["componentSpecs"][0]["spec"]["containers"]
        assert {c["image"] for c in containers} == {
            f"localhost/lakeloop-model-credit-risk:v{version}"}
        model = p["graph"]["children"][0]
        assert "modelUri" not in model and "envSecretRefName" not in model  # baked in
        params = {q["name"]: q["value"] for q in model["parameters"]}
        assert params["model_path"] == "/models/model.ubj"
    assert params["onnx_path"] == "/models/model.onnx"


def test_the_serving_image_asset_sits_between_challenger_and_champion(tmp_path):
    shared = build_definitions(settings_for(tmp_path, write_use_case(
        tmp_path / "shared", free_port_pair()).parent))
    path = write_use_case(tmp_path / "per_version", free_port_pair(),
                          **{r"^  image: shared$": "  image: per_version"})
    defs = build_definitions(settings_for(tmp_path, path.parent))
    graph = defs.resolve_asset_graph()

    def deployment(name):
        return dg.AssetKey(["credit_risk", keys.DEPLOYMENT, name])

    image = graph.get(deployment("serving_image"))
    assert image.parent_keys == {deployment("challenger")}
    assert deployment("serving_image") in graph.get(deployment("champion")).parent_keys
    assert "LAKELOOP_IMAGE_REGISTRY" in (image.description or "")
    assert deployment("serving_image") not in shared.resolve_asset_graph().get_all_asset_keys()


@pytest.mark.integration
def test_a_version_without_its_image_is_refused_before_anything_is_applied(materialized):
    """Rendering for the cluster looks the image up on the model version (the session's
    registry): none yet is a clear error naming the asset that builds it."""
    from lakeloop.deployment.runtime import Runtime, version_image
    from lakeloop.deployment.serving import ServingError
    from lakeloop.tracking import CHAMPION
    from lakeloop.usecase import load_use_cases

    base = load_use_cases(materialized.settings.use_case_dirs)[0]
    per_version = base.model_copy(update={"serving": base.serving.model_copy(
        update={"image": "per_version"})})
    r = materialized.resources
    rt = Runtime(per_version, r["serving"], r["mlflow"], r["lakehouse"], r["feast"])
    version = str(r["mlflow"].version_by_alias(base.name, CHAMPION).version)
    with pytest.raises(ServingError, match=rf"credit_risk v{version} has no image of its "
                                           r"own.*materialize credit_risk/deployment/"
                                           r"serving_image"):
        version_image(rt, version)
    client = r["mlflow"].client()
    ref = f"localhost/lakeloop-model-credit-risk:v{version}"
    client.set_model_version_tag(base.name, version, images.IMAGE_TAG, json.dumps(
        {"ref": ref, "image_id": "x", "pushed": False}))
    try:
        assert version_image(rt, version) == ref
        shared = Runtime(base, r["serving"], r["mlflow"], r["lakehouse"], r["feast"])
        assert version_image(shared, version) == ""  # the shared image: nothing to look up
    finally:
        client.delete_model_version_tag(base.name, version, images.IMAGE_TAG)


def test_the_champion_gets_an_image_only_when_it_has_none_and_is_another_version():
    from types import SimpleNamespace as V

    tagged = {images.IMAGE_TAG: '{"ref": "x"}'}
    assert images.versions_to_build(None, V(version=3, tags={})) == []
    assert images.versions_to_build(V(version=4, tags={}), None) == ["4"]
    assert images.versions_to_build(V(version=4, tags={}), V(version=3, tags={})) == ["4", "3"]
    assert images.versions_to_build(V(version=4, tags={}), V(version=3, tags=tagged)) == ["4"]
    # the first deployment: one version is both, and is built once
    assert images.versions_to_build(V(version=2, tags={}), V(version=2, tags={})) == ["2"]
