"""The approval sensor launches the promote job once per approval, never for a rejection."""

import dagster as dg

from lakeloop import keys
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case
from sensors.approvals import build, request_for

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")


def _decision(decision: str, version: int) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        asset_key=keys.key(UC, keys.DEPLOYMENT, "approval"),
        metadata={"decision": decision, "model_version": version, "by": "ada", "reason": "ok"})


def test_an_approval_requests_one_promote_run_and_a_rejection_none():
    request = request_for(_decision("approved", 3), UC)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"{UC.name}-approved-3"
    assert request.tags["lakeloop/approved_by"] == "ada"
    assert isinstance(request_for(_decision("rejected", 4), UC), dg.SkipReason)


def test_each_recorded_decision_is_seen_once():
    promote = dg.define_asset_job("promote", selection=dg.AssetSelection.keys("champion"))
    sensor = build(UC, promote)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert not sensor.evaluate_tick(context).run_requests  # nothing decided yet
        instance.report_runless_asset_event(_decision("approved", 3))
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert [r.run_key for r in tick.run_requests] == [f"{UC.name}-approved-3"]
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance,
                                                             cursor=tick.cursor))
        assert not again.run_requests
        instance.report_runless_asset_event(_decision("rejected", 4))
        later = sensor.evaluate_tick(dg.build_sensor_context(instance=instance,
                                                             cursor=tick.cursor))
        assert not later.run_requests and later.cursor != tick.cursor
