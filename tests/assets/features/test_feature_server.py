"""Feast's HTTP feature server, started as a service over the materialised store, answers with
the same values as the Python SDK."""

import psutil
import pytest
import requests

from lakeloop.features.store import feature_service_name, online_features_http
from lakeloop.resources import build_resources
from lakeloop.usecase import load_use_cases

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_feature_server_serves_the_online_values_over_http(materialized):
    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    # The deployment's transformer already uses this server; it is found, not started twice.
    feast = build_resources(materialized.settings)["feast"]
    running = feast.ensure_feature_server()
    assert running.url.endswith(f":{materialized.settings.feature_server_port}")
    assert running.url.startswith("http://127.0.0.1:")
    assert requests.get(f"{running.url}/health", timeout=5).status_code == 200
    store = materialized.resources["feast"].store()
    service = feature_service_name(uc)
    sdk = store.get_online_features(
        features=store.get_feature_service(service),
        entity_rows=[{uc.entity.join_key: f"A{i}"} for i in range(60)]).to_dict()
    known = [k for k, v in zip(sdk[uc.entity.join_key], sdk["income"], strict=True)
             if v is not None][:10]
    assert len(known) >= 5, "the demo data should have these applicants"
    wanted = [*known, "nobody"]
    http = online_features_http(running.url, service, uc.entity.join_key, wanted)
    by_sdk = store.get_online_features(
        features=store.get_feature_service(service),
        entity_rows=[{uc.entity.join_key: k} for k in wanted]).to_dict()
    for feature in uc.entity_features:
        for got, want in zip(http[feature], by_sdk[feature], strict=True):
            assert (got is None and want is None) or got == pytest.approx(want), feature
    assert http["income"][-1] is None  # an unknown applicant has no features
    # the same server is found again rather than started twice
    assert feast.ensure_feature_server().pid == running.pid


# `feast serve` recycles its worker after 1,000 requests plus up to 50 of jitter by default.
FEAST_DEFAULT_RECYCLE = 1000 + 50


def test_the_feature_servers_worker_is_not_recycled_under_traffic(materialized):
    """With one worker, a recycled worker leaves nobody answering while its successor boots:
    every transformer lookup in that gap times out (a 503). The worker serves on."""
    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    running = build_resources(materialized.settings)["feast"].ensure_feature_server()
    workers = psutil.Process(running.pid).children()
    assert len(workers) == 1
    service = feature_service_name(uc)
    with requests.Session() as http:
        for i in range(FEAST_DEFAULT_RECYCLE + 1):
            online_features_http(running.url, service, uc.entity.join_key, [f"A{i % 60}"],
                                 session=http, timeout=30)
    assert psutil.Process(running.pid).children() == workers
