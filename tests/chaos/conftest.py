"""The running inference graph of a materialised loop, for chaos and soak: the graph up to
the deployed champion (monitoring, which reads what serving logs, is not what they test)."""

from __future__ import annotations

import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.deployment.runtime import Runtime, ensure_champion
from lakeloop.usecase import load_use_cases
from tests.conftest import materialize_loop


@pytest.fixture(scope="session")
def serving_loop(tmp_path_factory, spark):
    """The graph up to the seldon deployment, without the replay and the monitoring assets."""
    selection = (dg.AssetSelection.all(include_sources=False)
                 - dg.AssetSelection.groups("credit_risk_monitoring")
                 - dg.AssetSelection.assets(["credit_risk", "deployment", "traffic_replay"]))
    yield from materialize_loop(tmp_path_factory.mktemp("serving"), selection)


@pytest.fixture(scope="module")
def live(serving_loop):
    uc = load_use_cases(serving_loop.settings.use_case_dirs)[0]
    r = serving_loop.resources
    rt = Runtime(uc, r["serving"], r["mlflow"], r["lakehouse"], r["feast"])
    endpoint, _ = ensure_champion(rt)
    mat = next(e.event_specific_data.materialization
               for e in reversed(serving_loop.result.all_events)
               if e.event_type_value == "ASSET_MATERIALIZATION"
               and e.event_specific_data.materialization.asset_key
               == keys.key(uc, keys.DEPLOYMENT, "seldon_deployment"))
    yield rt, endpoint.predictions_url, mat.metadata["sample_request"].value
    ensure_champion(rt)
