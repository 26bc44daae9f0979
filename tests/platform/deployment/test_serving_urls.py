"""Where a cluster rollout is reached: through the ingress gateway (Seldon's
/seldon/<namespace>/<deployment> route, the traffic split included) or, without a gateway,
through the one live predictor's Service; a split without a gateway is refused, since only
the ingress can split traffic."""

import pytest

from lakeloop.deployment.manifests import ManifestPredictor, render_seldon_deployment
from lakeloop.deployment.serving import ServingError, ServingResource


def manifest(*traffic: int, shadow: bool = False) -> dict:
    roles = ["champion", "challenger"]
    predictors = [ManifestPredictor(role=roles[i], model_version=str(i + 1), features=["a"],
                                    threshold=0.5, feature_service="fs", traffic=t)
                  for i, t in enumerate(traffic)]
    if shadow:
        predictors.append(ManifestPredictor(role="challenger", model_version="9",
                                            features=["a"], threshold=0.5,
                                            feature_service="fs", traffic=0, shadow=True))
    return render_seldon_deployment(
        name="credit-risk", namespace="lakeloop-serving", image="img", model_name="m",
        entity_key="applicant_id", request_features=[], feature_server_url="http://fs",
        predictors=predictors)


def serving(**kwargs) -> ServingResource:
    return ServingResource(python="python", state_dir="/nonexistent", kubernetes=True,
                           **kwargs)


def test_with_a_gateway_every_rollout_goes_through_seldons_ingress_route():
    gateway = serving(cluster_gateway_url="http://istio-ingressgateway.istio-system/")
    expected = ("http://istio-ingressgateway.istio-system/seldon/lakeloop-serving/credit-risk"
                "/api/v1.0/predictions")
    assert gateway.deployment_url(manifest(100)) == expected
    assert gateway.deployment_url(manifest(90, 10)) == expected
    assert gateway.deployment_url(manifest(100, shadow=True)) == expected


def test_without_a_gateway_the_one_live_predictor_is_reached_through_its_service():
    plain = serving()
    assert plain.deployment_url(manifest(100, shadow=True)) == (
        "http://credit-risk-champion.lakeloop-serving.svc.cluster.local:8000"
        "/api/v1.0/predictions")
    pinned = serving(cluster_predictor_urls={"champion": "http://127.0.0.1:9001"})
    assert pinned.deployment_url(manifest(100)) == "http://127.0.0.1:9001/api/v1.0/predictions"


def test_a_split_without_a_gateway_is_refused_with_the_setting_to_use():
    with pytest.raises(ServingError, match="LAKELOOP_SERVING_GATEWAY_URL"):
        serving().deployment_url(manifest(90, 10))


def test_the_local_executor_answers_the_ingress_route_too():
    from lakeloop.deployment.seldon.executor import INGRESS_PATH

    assert INGRESS_PATH.fullmatch("/seldon/lakeloop-serving/credit-risk/api/v1.0/predictions")
    assert not INGRESS_PATH.fullmatch("/seldon/../credit-risk/api/v1.0/predictions")
    assert not INGRESS_PATH.fullmatch("/seldon/ns/name/api/v1.0/predictions/extra")
