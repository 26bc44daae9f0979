"""Redis, the production online store, stopped and restarted under online lookups: while it is
down the transformer answers 503 FEATURE_STORE_UNAVAILABLE within its lookup timeout; once
it is back, lookups answer the same values again, through the same feature server process
(nothing of Lakeloop restarted).

The transformer is the serving graph's own component class, called in-process (seldon-core
turns its RequestError into the HTTP status); the feature server and Redis are real."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.deployment.manifests import request_schema
from lakeloop.deployment.seldon.errors import RequestError
from lakeloop.deployment.seldon.transformer import FeatureTransformer
from lakeloop.features.store import feature_service_name
from lakeloop.usecase import load_use_cases
from tests.assets.lakehouse.conftest import DAYS, failure_text, make_lake
from tests.conftest import QUIET, settings_for
from tests.support.services import Redis

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
LOOKUP_TIMEOUT_S = 2.0


def _transformer(uc, server_url: str) -> FeatureTransformer:
    transformer = FeatureTransformer(
        feature_server_url=server_url, feature_service=feature_service_name(uc),
        features=json.dumps(list(uc.feature_names)),
        schema=json.dumps(request_schema(uc)), timeout_s=LOOKUP_TIMEOUT_S)
    transformer.load()
    return transformer


def _lookup(transformer, uc, frame) -> list[list]:
    """One request per applicant of the day, as a client sends it (request fields only)."""
    rows = []
    for record in frame.head(10).to_dict("records"):
        instance = {uc.events.key: record[uc.events.key],
                    uc.events.event_time: record[uc.events.event_time].replace(" ", "T") + "Z",
                    uc.entity.join_key: record[uc.entity.join_key],
                    **{f: record[f] for f in uc.features.request}}
        for f in uc.features.request:  # typed as the contract says
            kind = uc.feature_type(f)
            instance[f] = (float(instance[f]) if kind == "double" else
                           int(instance[f]) if kind == "int" else instance[f])
        answer = transformer.transform_input_raw({"jsonData": instance})
        rows.append(answer["data"]["ndarray"][0])
    return rows


def test_redis_restarted_under_lookups(tmp_path, spark):
    lake = make_lake(tmp_path, spark)
    redis = Redis(tmp_path / "redis", password=False, persist=True)
    try:
        base = settings_for(lake.root, next(iter(lake.root.parent.glob("use_cases"))))
        settings = base.replace(online_store="redis", redis_url=redis.url)
        lake.defs = build_definitions(settings)
        uc = lake.use_case = load_use_cases(settings.use_case_dirs)[0]
        selection = [lake.key(keys.RAW, "applications"),
                     lake.key(keys.LAKEHOUSE, "bronze_applications"),
                     lake.key(keys.LAKEHOUSE, "silver_applications"),
                     lake.key(keys.LAKEHOUSE, "quarantine_applications"),
                     lake.key(keys.LAKEHOUSE, uc.gold_table),
                     lake.key(keys.FEATURES, "feast_registry"),
                     lake.key(keys.FEATURES, "online_features")]
        result = dg.materialize(list(lake.defs.assets), selection=selection,
                                resources=lake.defs.resources, instance=lake.instance,
                                run_config=QUIET, raise_on_error=False,
                                tags={"dagster/asset_partition_range_start": DAYS[0],
                                      "dagster/asset_partition_range_end": DAYS[-1]})
        assert result.success, failure_text(result)
        feast = lake.defs.resources["feast"]
        server = feast.ensure_feature_server()
        transformer = _transformer(uc, server.url)
        frame = lake.frame(DAYS[-1])
        before = _lookup(transformer, uc, frame)
        assert all(v is not None for row in before for v in row)

        redis.stop()
        started = time.perf_counter()
        with pytest.raises(RequestError) as down:
            _lookup(transformer, uc, frame)
        assert time.perf_counter() - started < LOOKUP_TIMEOUT_S + 1.0  # no hang
        assert (down.value.status_code, down.value.reason) == (503,
                                                               "FEATURE_STORE_UNAVAILABLE")
        assert "feature store" in down.value.message

        redis.start()
        assert _lookup(transformer, uc, frame) == before  # the same values, from Redis
        assert feast.ensure_feature_server().pid == server.pid  # nothing was restarted
    finally:
        lake.defs.resources["feast"].stop_feature_server()
        redis.stop()
