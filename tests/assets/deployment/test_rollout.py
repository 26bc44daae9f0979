"""Rollouts: SeldonDeployment manifests valid against the CRD's schema and Kubernetes'
object models (no cluster needed); a canary that fails a check is rolled back on its own;
a shadow predictor gets mirrored traffic whose answers never reach the client."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import yaml

from jobs.use_case_jobs import retrain_job_name, retrain_selection
from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.deployment.manifests import ManifestPredictor, render_seldon_deployment
from lakeloop.settings import PROJECT_ROOT
from lakeloop.tracking import CHALLENGER, CHAMPION
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET, settings_for, write_use_case
from tests.services import logged_records, mirrored

CRD = PROJECT_ROOT / ".cache" / "crds" / "machinelearning.seldon.io_seldondeployments.yaml"
FEATURES = ["income", "loan_amount"]


def _predictor(role, version, traffic=100, shadow=False, runtime="xgboost", image=""):
    return ManifestPredictor(role, version, FEATURES, 0.3, "credit_risk_v1", traffic, shadow,
                             runtime=runtime, image=image)


def _render(rollout, predictors):
    return render_seldon_deployment(
        name="credit-risk", namespace="lakeloop", image="lakeloop-serving:test",
        model_name="credit_risk", entity_key="applicant_id",
        request_features=["loan_amount"], feature_server_url="http://feast:6566",
        predictors=predictors, rollout=rollout)


MANIFESTS = {
    "champion": lambda: _render("champion", [_predictor("champion", "3")]),
    "canary": lambda: _render("canary", [_predictor("champion", "3", 90),
                                         _predictor("challenger", "4", 10)]),
    "shadow": lambda: _render("shadow", [_predictor("champion", "3", 100),
                                         _predictor("challenger", "4", 0, shadow=True)]),
    "ab": lambda: _render("ab", [_predictor("champion", "3", 50),
                                 _predictor("challenger", "4", 50)]),
    # serving.runtime: onnx, on the challenger only (a use case switching runtimes)
    "onnx": lambda: _render("canary", [_predictor("champion", "3", 90),
                                       _predictor("challenger", "4", 10, runtime="onnx")]),
    # serving.image: per_version: each predictor's pods run its version's own image
    "per_version": lambda: _render("canary", [
        _predictor("champion", "3", 90, image="localhost/lakeloop-model-credit-risk:v3"),
        _predictor("challenger", "4", 10, image="localhost/lakeloop-model-credit-risk:v4")]),
}


@pytest.fixture(scope="module")
def crd_schema():
    assert CRD.exists(), f"{CRD} is missing: run `make setup` (it fetches the CRD)"
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["names"]["kind"] == "SeldonDeployment"
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]


def _validate(schema, manifest):
    import jsonschema

    jsonschema.validate(manifest, schema, cls=jsonschema.Draft7Validator)


def _round_trip(kind: str, data: dict) -> dict:
    """Through the Kubernetes client's object model and back: a field the model does not
    know is dropped, so any difference is a misspelt or misplaced field."""
    from kubernetes.client import ApiClient

    client = ApiClient()
    obj = client._ApiClient__deserialize(data, kind)  # noqa: SLF001 - the model's own parser
    return client.sanitize_for_serialization(obj)


@pytest.mark.parametrize("rollout", sorted(MANIFESTS))
def test_manifests_are_valid_seldon_deployments_and_pod_specs(crd_schema, rollout):
    manifest = MANIFESTS[rollout]()
    _validate(crd_schema, manifest)
    predictors = manifest["spec"]["predictors"]
    live = [p for p in predictors if not p.get("shadow")]
    assert sum(p["traffic"] for p in live) == 100
    for predictor in predictors:
        spec = predictor["componentSpecs"][0]["spec"]
        assert _round_trip("V1PodSpec", spec) == spec
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert set(container["resources"]) == {"requests", "limits"}
        graph = predictor["graph"]
        assert (graph["type"], graph["children"][0]["type"]) == ("TRANSFORMER", "MODEL")
        if rollout == "per_version":  # the model is in the image: no storage to read
            assert "modelUri" not in graph["children"][0]
        else:
            assert graph["children"][0]["modelUri"].startswith("models:/credit_risk/")
    metadata = _round_trip("V1ObjectMeta", manifest["metadata"])
    assert metadata == manifest["metadata"]
    if rollout == "canary":
        assert [p["traffic"] for p in predictors] == [90, 10]
    if rollout == "shadow":
        assert predictors[1]["shadow"] is True and "traffic" not in predictors[1]
    models = [_model_node(p) for p in predictors]
    runtimes = [("OnnxModel" if rollout == "onnx" and p["name"] == "challenger"
                 else "XGBoostModel") for p in predictors]
    assert [m["class"].rsplit(".", 1)[1] for m in models] == runtimes
    for model, runtime in zip(models, runtimes, strict=True):
        files = "/models" if rollout == "per_version" else "/mnt/models"
        assert model["model_path"] == f"{files}/model.ubj"
        assert model.get("onnx_path") == (f"{files}/model.onnx"
                                          if runtime == "OnnxModel" else None)


def _model_node(predictor: dict) -> dict:
    """The model container's class and the model node's parameters."""
    [container] = [c for c in predictor["componentSpecs"][0]["spec"]["containers"]
                   if c["name"] == "model"]
    env = {e["name"]: e["value"] for e in container["env"]}
    params = {p["name"]: p["value"] for p in predictor["graph"]["children"][0]["parameters"]}
    return {"class": env["MODEL_NAME"], **params}


def test_a_malformed_manifest_is_caught_without_a_cluster(crd_schema):
    import jsonschema

    manifest = MANIFESTS["canary"]()
    manifest["spec"]["predictors"][1]["traffic"] = "ten percent"
    with pytest.raises(jsonschema.ValidationError, match="ten percent"):
        _validate(crd_schema, manifest)
    spec = manifest["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    spec["containers"][0]["resource"] = spec["containers"][0].pop("resources")  # a typo
    assert _round_trip("V1PodSpec", spec) != spec
    with pytest.raises(ValueError, match="add up to 100"):
        _render("canary", [_predictor("champion", "3", 90), _predictor("challenger", "4", 20)])


@pytest.mark.slow
@pytest.mark.integration
def test_a_failing_canary_is_rolled_back_and_the_decision_recorded(materialized, tmp_path):
    """A challenger slower than the use case allows (a 0.01 ms p99 limit no service meets)
    never takes the traffic: the endpoint goes back to the champion alone."""
    base = load_use_cases(materialized.settings.use_case_dirs)[0]
    path = write_use_case(tmp_path / "use_cases", base.serving.port, **{
        r"^sensitive: true$": "sensitive: false",
        r"^serving:$": "rollout:\n  latency_p99_ms_max: 0.01\n\nserving:"})
    defs = build_definitions(settings_for(materialized.root, path.parent))
    uc = load_use_cases((path.parent,))[0]
    mlflow, serving = materialized.resources["mlflow"], materialized.resources["serving"]
    champion = str(mlflow.version_by_alias(uc.name, CHAMPION).version)
    selection = retrain_selection(uc).resolve(defs.resolve_asset_graph()) - {
        keys.key(uc, keys.TRAINING, "training_set")}
    result = defs.resolve_job_def(retrain_job_name(uc)).execute_in_process(
        instance=materialized.instance, run_config=QUIET, asset_selection=sorted(selection),
        raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE"
                   and e.step_key.endswith("deployment__champion"))
    text = str(failure.event_specific_data.error)
    assert "was rolled back" in text and f"champion v{champion} keeps the traffic" in text
    assert "p99" in text and "limit 0.01 ms" in text
    challenger = str(mlflow.version_by_alias(uc.name, CHALLENGER).version)
    assert str(mlflow.version_by_alias(uc.name, CHAMPION).version) == champion
    tags = mlflow.client().get_model_version(uc.name, challenger).tags
    assert tags["rollout.decision"] == "rolled back"
    checks = {c["name"]: c for c in json.loads(tags["rollout"])["checks"]}
    assert checks["latency_p99_ms"]["passed"] is False and checks["smoke"]["passed"]
    endpoint = serving.endpoint(uc.name)
    assert endpoint.model_version == champion
    assert endpoint.rollout == {"predictors": {"champion": [champion, 100]}, "shadow": None}
    assert serving.endpoint(f"{uc.name}-challenger-model") is None
    observed = materialized.instance.fetch_observations(
        keys.key(uc, keys.DEPLOYMENT, "champion"), limit=1).records
    decision = observed[0].asset_observation
    assert decision.metadata["decision"].value == "rolled back"
    assert "latency_p99_ms" in decision.metadata["rollout"].value
    _assert_answers(materialized, endpoint.predictions_url)


def _assert_answers(materialized, url):
    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    mat = next(e.event_specific_data.materialization
               for e in reversed(materialized.result.all_events)
               if e.event_type_value == "ASSET_MATERIALIZATION"
               and e.event_specific_data.materialization.asset_key
               == keys.key(uc, keys.DEPLOYMENT, "seldon_deployment"))
    response = requests.post(url, json={"jsonData": mat.metadata["sample_request"].value},
                             timeout=10)
    assert response.status_code == 200, response.text
    return mat


@pytest.mark.slow
@pytest.mark.integration
def test_a_shadow_gets_mirrored_traffic_and_its_answers_are_discarded(materialized):
    from lakeloop.deployment.runtime import Runtime, ensure_champion, predictor_for, route

    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    r = materialized.resources
    rt = Runtime(uc, r["serving"], r["mlflow"], r["lakehouse"], r["feast"])
    champion = str(r["mlflow"].version_by_alias(uc.name, CHAMPION).version)
    older = str(min(int(v.version) for v in r["mlflow"].client().search_model_versions(
        f"name='{uc.name}'")))
    champ = predictor_for(rt, champion, CHAMPION)
    shadow = predictor_for(rt, older, CHALLENGER)
    endpoint = route(rt, [(champ, 100)], shadow=shadow)
    try:
        mat = _assert_answers(materialized, endpoint.predictions_url)
        stamp = f"shadow-{time.time_ns()}"
        event = {**mat.metadata["sample_request"].value, uc.events.key: stamp}
        body = {"jsonData": event, "meta": {"puid": stamp}}
        answer = requests.post(endpoint.predictions_url, json=body, timeout=10).json()
        assert answer["meta"]["tags"]["predictor"] == CHAMPION
        assert answer["meta"]["tags"]["model_version"] == champion
        log_dir = Path(r["lakehouse"].path(keys.key(uc, keys.MONITORING, "requests")))
        mirrored(f"{endpoint.url}/health/status")  # the shadow's copy has been answered
        records = logged_records(log_dir, stamp)
        assert records[stamp]["predictor"] == CHAMPION
        assert records[f"{stamp}-shadow"]["predictor"] == "challenger"
        assert records[f"{stamp}-shadow"]["model_version"] == older
    finally:
        r["serving"].stop(f"{uc.name}-challenger-model")
        r["serving"].stop(f"{uc.name}-challenger-transformer")
        ensure_champion(rt)



def test_with_a_cluster_the_manifest_is_applied_server_side():
    """No API server runs here: the Kubernetes API object is a stand-in that records the
    call, which is what the cluster would receive."""
    from lakeloop.deployment.serving import ServingResource

    class FakeCustomObjects:
        def __init__(self):
            self.calls = []

        def patch_namespaced_custom_object(self, **kwargs):
            self.calls.append(kwargs)
            return {"metadata": {"resourceVersion": "7"}}

    api = FakeCustomObjects()
    serving = ServingResource(python="/nonexistent", state_dir="/tmp/none", kubernetes=True)
    manifest = MANIFESTS["canary"]()
    assert serving.apply(manifest, api=api)["metadata"]["resourceVersion"] == "7"
    [call] = api.calls
    assert (call["group"], call["version"], call["plural"]) == (
        "machinelearning.seldon.io", "v1", "seldondeployments")
    assert call["namespace"] == "lakeloop" and call["name"] == "credit-risk"
    assert call["_content_type"] == "application/apply-patch+yaml"
    assert call["field_manager"] == "lakeloop" and call["force"] is True
    assert call["body"] is manifest
