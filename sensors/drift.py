"""The drift sensor: drifted days' reports request one run of the retraining assets."""

import datetime as dt
import json

import dagster as dg

from lakeloop import governance, keys
from lakeloop.governance import notices
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.usecase import UseCase

TRIGGER_TAG = "lakeloop/trigger"
DAY_TAG = "lakeloop/report_day"
COVERED_TAG = "lakeloop/covered_to"
REASON_TAG = "lakeloop/reason"
USE_CASE_TAG = "use_case"
BATCH = 500


def sensor_name(use_case: UseCase) -> str:
    return f"{use_case.name}_drift_sensor"


def already_acted_on(day: dt.date, covered: str | None, last: str | None,
                     cooldown: dt.timedelta) -> bool:
    """A retraining already trained after ``day`` (covered), or the last one was triggered
    less than the cooldown before it: a report of that day requests nothing."""
    return ((covered is not None and day <= dt.date.fromisoformat(covered))
            or (last is not None and day < dt.date.fromisoformat(last) + cooldown))


def evaluate(records, cursor: dict, use_case: UseCase) -> tuple[list[dg.RunRequest], dict]:
    """At most one retraining request for the drifted days in ``records`` (ascending).

    Every report is judged once (the cursor keeps the last storage id). A request covers
    every drifted day it read, since the run retrains on all of them; later drifted days
    request nothing until the cooldown after the last trigger has passed.
    """
    cooldown = dt.timedelta(days=use_case.monitoring.retrain_cooldown_days)
    last = cursor.get("last_trigger_day")
    covered = cursor.get("covered_to")
    triggering: list[tuple[str, float]] = []
    for record in records:
        cursor["storage_id"] = max(cursor.get("storage_id", 0), record.storage_id)
        materialization = record.asset_materialization
        if materialization is None or materialization.partition is None:
            continue
        drifted = materialization.metadata.get("drifted")
        if drifted is None or not drifted.value:
            continue
        day = dt.date.fromisoformat(materialization.partition)
        if already_acted_on(day, covered, last, cooldown):
            continue
        verdict = materialization.metadata.get("verdict")
        triggering.append((day.isoformat(), verdict.value if verdict is not None else
                           f"drift share {materialization.metadata['drift_share'].value:.2f}"))
    if not triggering:
        return [], cursor
    first_day, why = min(triggering)
    last_day = max(d for d, _ in triggering)
    cursor.update(last_trigger_day=first_day, covered_to=last_day)
    reason = (f"drift on {first_day}: {why.removeprefix(first_day + ': ')}"
              + (f" ({len(triggering)} drifted days to {last_day})" if len(triggering) > 1 else ""))
    return [dg.RunRequest(
        run_key=f"{use_case.name}-drift-{first_day}",
        tags={TRIGGER_TAG: "drift", DAY_TAG: first_day, COVERED_TAG: last_day,
              REASON_TAG: reason, USE_CASE_TAG: use_case.name},
    )], cursor


def retrain_coverage(instance: dg.DagsterInstance, use_case: UseCase) -> dict:
    """What the latest retraining runs already cover, whichever sensor requested them: the
    latest trigger day (for the cooldown) and the last report day they trained after."""
    out: dict[str, str] = {}
    for trigger in ("drift", "performance"):
        # A retraining that failed or was cancelled covers nothing.
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={TRIGGER_TAG: trigger, USE_CASE_TAG: use_case.name},
                                  statuses=[dg.DagsterRunStatus.SUCCESS,
                                            dg.DagsterRunStatus.STARTED,
                                            dg.DagsterRunStatus.STARTING,
                                            dg.DagsterRunStatus.QUEUED,
                                            dg.DagsterRunStatus.NOT_STARTED]),
            limit=1)
        for key, tag in (("last_trigger_day", DAY_TAG), ("covered_to", COVERED_TAG)):
            if runs and tag in runs[0].tags:
                out[key] = max(out.get(key, ""), runs[0].tags[tag])
    return out


def record_requests(lakehouse: LakehouseResource, use_case: UseCase,
                    requests: list[dg.RunRequest], log=None) -> None:
    """Each retraining request, with its reason, in the audit trail (and alerted when routed);
    a repeated tick rebuilds the same run key, which is recorded once."""
    for request in requests:
        governance.record(lakehouse, use_case, notices.retraining(
            use_case.name, str(request.run_key), request.tags[TRIGGER_TAG],
            request.tags[REASON_TAG]), log=log)


def recover_cursor(instance: dg.DagsterInstance, use_case: UseCase) -> dict:
    """Without a cursor (a new sensor, a reset), the last retraining runs say what is
    already covered, so old reports do not launch a second retraining."""
    return retrain_coverage(instance, use_case)


def build(use_case: UseCase, retrain_job) -> dg.SensorDefinition:
    drift_key = keys.key(use_case, keys.MONITORING, "drift_report")

    @dg.sensor(
        name=sensor_name(use_case),
        job=retrain_job,
        minimum_interval_seconds=60,
        description=f"Requests retraining of {use_case.name} when a day's drift report is "
        f"drifted (a false-alarm rate of {use_case.monitoring.drift.alpha:g} a day; cooldown "
        f"{use_case.monitoring.retrain_cooldown_days} days).",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def drift_sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        cursor = (json.loads(context.cursor) if context.cursor
                  else recover_cursor(context.instance, use_case))
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=drift_key,
                                  after_storage_id=cursor.get("storage_id")),
            limit=BATCH, ascending=True)
        requests, cursor = evaluate(result.records, cursor, use_case)
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason(
                f"{len(result.records)} new drift reports; none drifted outside what was "
                "already retrained"), cursor=json.dumps(cursor))
        record_requests(lakehouse, use_case, requests, context.log)
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))

    return drift_sensor
