"""The drift sensor on real drift reports: drifted days request retraining, others do not."""

import json

import dagster as dg
import pytest

from lakeloop import governance, keys
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.usecase import load_use_cases
from sensors.drift import COVERED_TAG, REASON_TAG, evaluate, sensor_name

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _records(m):
    uc = load_use_cases(m.settings.use_case_dirs)[0]
    result = m.instance.fetch_materializations(
        keys.key(uc, keys.MONITORING, "drift_report"), limit=1000, ascending=True)
    return uc, result.records


def test_a_drifted_day_requests_retraining(materialized):
    uc, records = _records(materialized)
    drifted = [r for r in records if r.asset_materialization.metadata["drifted"].value]
    requests, cursor = evaluate(drifted[:1], {}, uc)
    assert len(requests) == 1
    day = drifted[0].asset_materialization.partition
    assert requests[0].run_key == f"{uc.name}-drift-{day}"
    assert day in requests[0].tags[REASON_TAG]
    assert cursor["storage_id"] == drifted[0].storage_id


def test_an_undrifted_day_requests_nothing(materialized):
    uc, records = _records(materialized)
    stable = [r for r in records if not r.asset_materialization.metadata["drifted"].value]
    assert stable
    requests, cursor = evaluate(stable, {}, uc)
    assert requests == []
    assert cursor["storage_id"] == max(r.storage_id for r in stable)


def test_sensor_tick_requests_once_then_nothing_for_the_same_reports(materialized, tmp_path):
    uc, records = _records(materialized)
    sensor = materialized.defs.resolve_sensor_def(sensor_name(uc))
    # The request's audit row goes to a trail of this test's own (the shared graph's stays
    # as the graph left it).
    lakehouse = LakehouseResource(data_root=str(tmp_path))
    resources = {**materialized.defs.resources, "lakehouse": lakehouse}
    first = sensor(dg.build_sensor_context(instance=materialized.instance,
                                           definitions=materialized.defs, resources=resources))
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.tags[COVERED_TAG] >= materialized.drift_date
    # a tick that repeats (no cursor kept: a daemon restart) records the request once
    again = sensor(dg.build_sensor_context(instance=materialized.instance,
                                           definitions=materialized.defs, resources=resources))
    assert again.run_requests[0].run_key == request.run_key
    [entry] = governance.trail(lakehouse, uc).read()
    assert entry.kind == "retraining_requested" and entry.actor == "drift sensor"
    assert entry.event_key.endswith(request.run_key)
    assert request.tags[REASON_TAG] in entry.summary
    second = sensor(dg.build_sensor_context(instance=materialized.instance,
                                            definitions=materialized.defs,
                                            resources=resources, cursor=first.cursor))
    assert not second.run_requests
    assert json.loads(second.cursor)["storage_id"] == records[-1].storage_id
