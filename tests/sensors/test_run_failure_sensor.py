"""A failed run of a use case is recorded and alerted once, with the error, the failed step
and the link to the run; a run of no use case is skipped. The failure is a real Dagster run
failing in a real instance."""

from __future__ import annotations

import dagster as dg

from lakeloop import governance
from sensors.run_failures import SENSOR_NAME, build, use_case_of


def _failed_run(instance, name: str, tags: dict[str, str]):
    @dg.op
    def read_window():
        raise RuntimeError("the Spark driver died mid-window")

    @dg.job(name=name, tags=tags)
    def job():
        read_window()

    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    [failure] = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return run, failure.dagster_event


def _tick(sensor, instance, run, event, resources):
    return sensor(dg.build_run_status_sensor_context(
        sensor_name=SENSOR_NAME, dagster_event=event, dagster_instance=instance,
        dagster_run=run, resources=resources).for_run_failure())


def test_a_failed_run_is_alerted_once_with_its_error_step_and_link(alerting, monkeypatch):
    for name, url in alerting.environ.items():
        monkeypatch.setenv(name, url)
    sensor = build([alerting.use_case])
    resources = {"lakehouse": alerting.lakehouse}
    with dg.instance_for_test() as instance:
        run, event = _failed_run(instance, "credit_risk_retrain", {"use_case": "credit_risk"})
        _tick(sensor, instance, run, event, resources)
        _tick(sensor, instance, run, event, resources)  # seen again: nothing new
    [entry] = governance.trail(alerting.lakehouse, alerting.use_case).read()
    assert entry.kind == "run_failed" and entry.run_id == run.run_id
    assert entry.details["job"] == "credit_risk_retrain"
    assert entry.details["failed_steps"] == "read_window"
    [mail], [hook] = alerting.smtp.texts(), alerting.webhook.bodies
    for text in (mail, hook["message"]):
        assert f"http://127.0.0.1:3000/runs/{run.run_id}" in text
        assert "credit_risk_retrain" in text and "read_window" in text


def test_whose_run_it_is_comes_from_its_tag_its_assets_or_its_job(alerting):
    uc = alerting.use_case
    silver = dg.AssetKey(["credit_risk", "lakehouse", "silver_applications"])
    with dg.instance_for_test() as instance:
        tagged, _ = _failed_run(instance, "anything", {"use_case": "credit_risk"})
        prefixed, _ = _failed_run(instance, "credit_risk_rollback", {})
        other, event = _failed_run(instance, "housekeeping", {})
        selected = dg.DagsterRun(job_name="__ASSET_JOB", asset_selection=frozenset({silver}))
        assert use_case_of(tagged, [uc]) is uc and use_case_of(prefixed, [uc]) is uc
        assert use_case_of(selected, [uc]) is uc and use_case_of(other, [uc]) is None
        skipped = _tick(build([uc]), instance, other, event,
                        {"lakehouse": alerting.lakehouse})
    assert isinstance(skipped, dg.SkipReason) and "belongs to no use case" in \
        skipped.skip_message
    assert governance.trail(alerting.lakehouse, uc).read() == []
