"""A rollout with a cluster configured: the champion asset applies the strategy's manifests
server-side and judges the cluster's predictors, not local microservices.

No Kubernetes API server runs here. The stand-in below is the API and Seldon's operator in
one: it records each server-side apply exactly as the cluster would receive it, and does
what the operator would do with it, starting each predictor of the manifest as real
seldon-core microservices behind an executor of its own (the predictor's Service) and the
traffic split behind a gateway (the ingress route), then reports the deployment Available.
"""

from __future__ import annotations

import copy

import dagster as dg
import pytest

from jobs.use_case_jobs import retrain_selection
from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.deployment.runtime import Runtime, ensure_champion, predictor_for, route
from lakeloop.deployment.serving import ServingResource
from lakeloop.tracking import CHALLENGER, CHAMPION
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET, free_port, settings_for, write_use_case

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class StandInCluster:
    """CustomObjectsApi for seldondeployments, plus what the operator does on apply."""

    def __init__(self, rt: Runtime, ports: dict[str, int]):
        self.rt, self.ports = rt, ports
        self.applied: list[dict] = []
        self.objects: dict[tuple[str, str], dict] = {}

    def patch_namespaced_custom_object(self, *, group, version, namespace, plural, name, body,
                                       field_manager, force, _content_type):
        assert (group, version, plural) == ("machinelearning.seldon.io", "v1",
                                            "seldondeployments")
        assert _content_type == "application/apply-patch+yaml" and force
        self.applied.append(copy.deepcopy(body))
        self._reconcile(body)
        self.objects[(namespace, name)] = {**body, "status": {"state": "Available"}}
        return self.objects[(namespace, name)]

    def get_namespaced_custom_object(self, *, group, version, namespace, plural, name):
        return self.objects[(namespace, name)]

    def _reconcile(self, manifest: dict) -> None:
        live, shadow = [], None
        for p in manifest["spec"]["predictors"]:
            role, version = p["name"], p["labels"]["lakeloop/model-version"]
            predictor = predictor_for(self.rt, version, role)
            # The predictor's own Service: an executor in front of its graph alone.
            self.rt.serving.start_executor(
                f"{self.rt.use_case.name}-svc-{role}",
                {"name": role, "model_name": self.rt.use_case.name,
                 "predictors": [predictor.route(100)], "shadow": None}, self.ports[role])
            if p.get("shadow"):
                shadow = predictor
            else:
                live.append((predictor, int(p["traffic"])))
        route(self.rt, live, shadow=shadow)  # the ingress route: the split, the mirror


def test_a_rollout_on_the_cluster_is_applied_and_judged_there(materialized, tmp_path,
                                                               monkeypatch):
    base = load_use_cases(materialized.settings.use_case_dirs)[0]
    path = write_use_case(tmp_path / "use_cases", base.serving.port,
                          **{r"^sensitive: true$": "sensitive: false"})
    defs = build_definitions(settings_for(materialized.root, path.parent))
    uc = load_use_cases((path.parent,))[0]
    r = materialized.resources
    ports = {CHAMPION: free_port(), CHALLENGER: free_port()}
    local = r["serving"]
    serving = ServingResource(
        python=local.python, host=local.host, state_dir=local.state_dir, kubernetes=True,
        namespace="lakeloop-serving",
        cluster_predictor_urls={role: f"http://127.0.0.1:{port}" for role, port in ports.items()},
        cluster_gateway_url=f"http://127.0.0.1:{uc.serving.port}")
    rt = Runtime(uc, local, r["mlflow"], r["lakehouse"], r["feast"])
    cluster = StandInCluster(rt, ports)
    monkeypatch.setattr(ServingResource, "custom_objects", lambda self: cluster)
    mlflow = r["mlflow"]
    champion = str(mlflow.version_by_alias(uc.name, CHAMPION).version)
    selection = retrain_selection(uc).resolve(defs.resolve_asset_graph()) - {
        keys.key(uc, keys.TRAINING, "training_set"),
        keys.key(uc, keys.DEPLOYMENT, "seldon_deployment")}
    try:
        result = dg.materialize(
            list(defs.assets), selection=sorted(selection),
            resources={**defs.resources, "serving": serving},
            instance=materialized.instance, run_config=QUIET, raise_on_error=False)
        assert result.success, [e.message for e in result.all_events
                                if e.event_type_value == "STEP_FAILURE"]
        new = str(mlflow.version_by_alias(uc.name, CHAMPION).version)
        assert new != champion
        # Shadow first (validated before taking traffic), then the strategy's split, then
        # the new champion alone: each one a server-side apply of a rendered manifest.
        rollouts = [m["metadata"]["labels"]["lakeloop/rollout"] for m in cluster.applied]
        assert rollouts == ["shadow", uc.rollout.strategy, "champion"]
        shadow, split, final = cluster.applied
        assert [(p["name"], p["labels"]["lakeloop/model-version"], p.get("shadow", False))
                for p in shadow["spec"]["predictors"]] == [
            (CHAMPION, champion, False), (CHALLENGER, new, True)]
        assert {p["name"]: p["traffic"] for p in split["spec"]["predictors"]} == {
            CHAMPION: 100 - uc.rollout.canary_traffic, CHALLENGER: uc.rollout.canary_traffic}
        assert [p["labels"]["lakeloop/model-version"]
                for p in final["spec"]["predictors"]] == [new]
        for manifest in cluster.applied:
            model = manifest["spec"]["predictors"][0]["graph"]["children"][0]
            assert {"name": "predictor", "value": manifest["spec"]["predictors"][0]["name"],
                    "type": "STRING"} in model["parameters"]
        tags = mlflow.client().get_model_version(uc.name, new).tags
        assert tags["rollout.decision"] == "promoted"
        mat = next(e.event_specific_data.materialization for e in result.all_events
                   if e.event_type_value == "ASSET_MATERIALIZATION"
                   and e.event_specific_data.materialization.asset_key
                   == keys.key(uc, keys.DEPLOYMENT, "champion"))
        assert mat.metadata["serving"].value == "kubernetes"
        assert "smoke" in mat.metadata["rollout"].value
    finally:
        for role in (CHAMPION, CHALLENGER):
            local.stop(f"{uc.name}-svc-{role}")
        local.stop(f"{uc.name}-challenger-model")
        local.stop(f"{uc.name}-challenger-transformer")
        # The session's other tests expect the champion the shared materialisation made.
        mlflow.client().set_registered_model_alias(uc.name, CHAMPION, champion)
        ensure_champion(rt)
