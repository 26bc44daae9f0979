"""The run-failure sensor: a failed run of any use case is an event (audit trail, and an alert
where the use case routes ``run_failed``), once per run: Dagster's run-failure cursor sees each
failure once, and the run id is the event's key."""

from __future__ import annotations

import dagster as dg

from lakeloop import governance
from lakeloop.governance import notices
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.usecase import UseCase

SENSOR_NAME = "lakeloop_run_failures"


def use_case_of(run: dg.DagsterRun, use_cases: list[UseCase]) -> UseCase | None:
    """Whose run it is: the run's ``use_case`` tag (every Lakeloop job sets it), else its
    assets' first key part (a selection launched from the UI), else its job's name prefix."""
    by_name = {u.name: u for u in use_cases}
    if run.tags.get("use_case") in by_name:
        return by_name[run.tags["use_case"]]
    for key in run.asset_selection or ():
        if key.path and key.path[0] in by_name:
            return by_name[key.path[0]]
    for name in sorted(by_name, key=len, reverse=True):
        if run.job_name.startswith(f"{name}_"):
            return by_name[name]
    return None


def build(use_cases: list[UseCase]) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=SENSOR_NAME, minimum_interval_seconds=30,
        description="Records every failed run of a use case in its audit trail and alerts the "
        "destinations its use case routes run_failed to, once per run.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def run_failures(context: dg.RunFailureSensorContext, lakehouse: LakehouseResource):
        run = context.dagster_run
        use_case = use_case_of(run, use_cases)
        if use_case is None:
            return dg.SkipReason(f"run {run.run_id} belongs to no use case")
        error = (context.failure_event.message or "").strip() or "no message"
        steps = sorted({e.step_key for e in context.get_step_failure_events() if e.step_key})
        governance.record(lakehouse, use_case, notices.run_failed(
            use_case.name, run.run_id, run.job_name, error[:500], steps=steps,
            run_url=lakehouse.run_url(run.run_id)), log=context.log)
        return None

    return run_failures
