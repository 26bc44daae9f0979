"""The label sensor: newly arrived outcomes re-materialise exactly the event days they label."""

import datetime as dt
import json

import dagster as dg

from lakeloop import keys
from lakeloop.partitions import RANGE_END, RANGE_START
from lakeloop.usecase import UseCase

BATCH = 200


def sensor_name(use_case: UseCase) -> str:
    return f"{use_case.name}_label_sensor"


def contiguous(days: list[str]) -> list[tuple[str, str]]:
    """[("2026-09-01", "2026-09-03"), ...] for sorted days, split where a day is missing."""
    parsed = sorted({dt.date.fromisoformat(d) for d in days})
    out = []
    for day in parsed:
        if out and (day - dt.date.fromisoformat(out[-1][1])).days == 1:
            out[-1] = (out[-1][0], day.isoformat())
        else:
            out.append((day.isoformat(), day.isoformat()))
    return out


def targets(use_case: UseCase) -> list[dg.AssetKey]:
    """What newly known outcomes change: the labelled events and the day's quality reports."""
    return [keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table),
            keys.key(use_case, keys.MONITORING, "performance_report"),
            keys.key(use_case, keys.MONITORING, "fairness_report")]


def reports(use_case: UseCase) -> list[dg.AssetKey]:
    return [keys.key(use_case, keys.MONITORING, "performance_report"),
            keys.key(use_case, keys.MONITORING, "fairness_report")]


def maturing(label_days: set[str], use_case: UseCase) -> list[str]:
    """Event days whose outcomes become mature with these days of outcomes (the day a
    report may first judge them): ``label.maturity_days`` before each."""
    lag = dt.timedelta(days=use_case.label.maturity_days)
    out = {(dt.date.fromisoformat(d) - lag) for d in label_days}
    return sorted(d.isoformat() for d in out if d >= use_case.start_date)


def evaluate(records, cursor: dict, use_case: UseCase) -> tuple[list[dg.RunRequest], dict]:
    """Requests for the event days the new outcomes label (their labelled rows and reports)
    and for the event days they make mature (their reports, judged for the first time)."""
    days, sources = set(), set()
    for record in records:
        cursor["storage_id"] = max(cursor.get("storage_id", 0), record.storage_id)
        mat = record.asset_materialization
        entry = mat.metadata.get("event_days") if mat else None
        if entry is None:
            continue
        days.update(entry.value)
        if mat.partition:
            sources.add(mat.partition)
    requests = []
    for first, last in contiguous(sorted(days)):
        requests.append(dg.RunRequest(
            run_key=f"{use_case.name}-labels-{first}-{last}-{cursor['storage_id']}",
            asset_selection=targets(use_case),
            tags={RANGE_START: first, RANGE_END: last, "lakeloop/trigger": "labels",
                  "lakeloop/label_days": ",".join(sorted(sources)), "use_case": use_case.name},
        ))
    matured = [d for d in maturing(sources, use_case) if d not in days]
    if use_case.label.maturity_days:
        for first, last in contiguous(matured):
            requests.append(dg.RunRequest(
                run_key=f"{use_case.name}-mature-{first}-{last}-{cursor['storage_id']}",
                asset_selection=reports(use_case),
                tags={RANGE_START: first, RANGE_END: last, "lakeloop/trigger": "labels",
                      "lakeloop/matured": "true", "use_case": use_case.name}))
    return requests, cursor


def build(use_case: UseCase) -> dg.SensorDefinition:
    labels_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.labels_name}")
    @dg.sensor(
        name=sensor_name(use_case),
        target=targets(use_case),
        minimum_interval_seconds=60,
        description=f"When {use_case.labels_name} land, re-materialises the partitions of "
        f"{use_case.labeled_table} (by event day) that they label, and only those, with "
        "their performance and fairness reports.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def label_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        if "storage_id" not in cursor:  # start from now: history was labelled when it ran
            latest = context.instance.fetch_materializations(labels_key, limit=1)
            cursor["storage_id"] = latest.records[0].storage_id if latest.records else 0
            return dg.SensorResult(cursor=json.dumps(cursor),
                                   skip_reason="watching from the latest outcomes on")
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=labels_key, after_storage_id=cursor["storage_id"]),
            limit=BATCH, ascending=True)
        requests, cursor = evaluate(result.records, cursor, use_case)
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor),
                               skip_reason=None if requests else "no new outcomes")

    return label_sensor
