"""The running inference graph of the session's materialised loop, for chaos and soak."""

from __future__ import annotations

import pytest

from lakeloop import keys
from lakeloop.deployment.runtime import Runtime, ensure_champion
from lakeloop.usecase import load_use_cases


@pytest.fixture(scope="module")
def live(materialized):
    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    r = materialized.resources
    rt = Runtime(uc, r["serving"], r["mlflow"], r["lakehouse"], r["feast"])
    endpoint, _ = ensure_champion(rt)
    mat = next(e.event_specific_data.materialization
               for e in reversed(materialized.result.all_events)
               if e.event_type_value == "ASSET_MATERIALIZATION"
               and e.event_specific_data.materialization.asset_key
               == keys.key(uc, keys.DEPLOYMENT, "seldon_deployment"))
    yield rt, endpoint.predictions_url, mat.metadata["sample_request"].value
    ensure_champion(rt)
