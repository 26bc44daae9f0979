"""The performance sensor: a day whose live recall is significantly below the use case's
floor requests one run of the retraining assets: measured once the day's outcomes are mature,
or estimated from the model's calibrated scores before (CBPE), when the use case allows it."""

import datetime as dt
import json
from collections.abc import Callable

import dagster as dg

from lakeloop import keys
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.usecase import UseCase
from sensors.drift import (
    BATCH,
    COVERED_TAG,
    DAY_TAG,
    REASON_TAG,
    TRIGGER_TAG,
    USE_CASE_TAG,
    already_acted_on,
    record_requests,
    retrain_coverage,
)

TRIGGER = "performance"


def sensor_name(use_case: UseCase) -> str:
    return f"{use_case.name}_performance_sensor"


def evaluate(records, cursor: dict, use_case: UseCase,
             coverage: dict | None = None) -> tuple[list[dg.RunRequest], dict]:
    """One request for the earliest degraded day not yet acted on; later degraded days wait
    out the cooldown (a report re-materialised as more outcomes arrive counts once).
    ``coverage`` (see sensors.drift.retrain_coverage): days a retraining run, whichever
    sensor requested it, already trained after, and its trigger day for the cooldown."""
    return evaluate_reports(records, cursor, use_case, coverage, TRIGGER, reason_of)


def evaluate_reports(records, cursor: dict, use_case: UseCase, coverage: dict | None,
                     trigger: str, reason: Callable[[dict, UseCase], str | None]
                     ) -> tuple[list[dg.RunRequest], dict]:
    """The rule every report-driven sensor shares: one request, keyed by trigger and day, for
    the earliest day whose report gives a ``reason`` and that no retraining covers yet."""
    cooldown = dt.timedelta(days=use_case.monitoring.retrain_cooldown_days)
    coverage = coverage or {}
    last = max(filter(None, (cursor.get("last_trigger_day"),
                             coverage.get("last_trigger_day"))), default=None)
    covered = coverage.get("covered_to")
    degraded: list[tuple[str, str]] = []
    for record in records:
        cursor["storage_id"] = max(cursor.get("storage_id", 0), record.storage_id)
        mat = record.asset_materialization
        if mat is None or mat.partition is None:
            continue
        why = reason(mat.metadata, use_case)
        if why is None:
            continue
        day = dt.date.fromisoformat(mat.partition)
        if already_acted_on(day, covered, last, cooldown):
            continue
        degraded.append((day.isoformat(), why))
    if not degraded:
        return [], cursor
    day, why = min(degraded)
    cursor["last_trigger_day"] = day
    return [dg.RunRequest(
        run_key=f"{use_case.name}-{trigger}-{day}",
        tags={TRIGGER_TAG: trigger, DAY_TAG: day, COVERED_TAG: max(d for d, _ in degraded),
              REASON_TAG: f"{day}: {why}", USE_CASE_TAG: use_case.name})], cursor


def reason_of(metadata: dict, use_case: UseCase) -> str | None:
    """Why a report requests retraining, or None: measured recall on mature outcomes first,
    else the estimate (never a day whose outcomes are immature or too few)."""
    def value(name):
        entry = metadata.get(name)
        return None if entry is None else entry.value

    floor = use_case.monitoring.performance.recall_min
    if value("degraded") and value("judged") is not False:
        return value("verdict") or f"live recall {value('recall'):.3f} < {floor}"
    if value("estimated_degraded") and use_case.monitoring.performance.estimate:
        return (value("estimate") or "estimated recall below the floor") + \
            " (estimated from scores; outcomes not mature yet)"
    return None


def build(use_case: UseCase, retrain_job) -> dg.SensorDefinition:
    report_key = keys.key(use_case, keys.MONITORING, "performance_report")

    @dg.sensor(
        name=sensor_name(use_case), job=retrain_job, minimum_interval_seconds=60,
        description=f"Requests retraining of {use_case.name} when a day's live recall is "
        f"significantly below {use_case.monitoring.performance.recall_min}: measured on at "
        f"least {use_case.monitoring.performance.min_positives} mature positives, or "
        "estimated from the scores before outcomes arrive (cooldown "
        f"{use_case.monitoring.retrain_cooldown_days} days).",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def performance_sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        return report_tick(context, lakehouse, report_key, use_case, evaluate,
                           "performance reports; none below the floor")

    return performance_sensor


def report_tick(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource,
                report_key: dg.AssetKey, use_case: UseCase, evaluate_fn,
                nothing: str) -> dg.SensorResult:
    """One tick of a report-driven sensor: the reports materialised since the cursor, judged
    by ``evaluate_fn`` against what retraining runs already cover; each request recorded in
    the audit trail."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=report_key, after_storage_id=cursor.get("storage_id")),
        limit=BATCH, ascending=True)
    requests, cursor = evaluate_fn(result.records, cursor, use_case,
                                   retrain_coverage(context.instance, use_case))
    record_requests(lakehouse, use_case, requests, context.log)
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(cursor),
        skip_reason=None if requests else
        f"{len(result.records)} new {nothing} outside what a retraining already covers")
