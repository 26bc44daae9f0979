"""The approval sensor: when a person approves the challenger, promote and deploy it."""

import json

import dagster as dg

from lakeloop import keys
from lakeloop.usecase import UseCase


def sensor_name(use_case: UseCase) -> str:
    return f"{use_case.name}_approval_sensor"


def evaluate(records, cursor: dict, use_case: UseCase) -> tuple[list[dg.RunRequest], dict]:
    requests = []
    for record in records:
        cursor["storage_id"] = max(cursor.get("storage_id", 0), record.storage_id)
        mat = record.asset_materialization
        if mat is None or mat.metadata.get("decision") is None:
            continue
        if mat.metadata["decision"].value != "approved":
            continue
        version = mat.metadata["model_version"].value
        requests.append(dg.RunRequest(
            run_key=f"{use_case.name}-approved-{version}",
            tags={"lakeloop/trigger": "approval", "lakeloop/model_version": str(version),
                  "lakeloop/approved_by": mat.metadata["by"].value, "use_case": use_case.name}))
    return requests, cursor


def build(use_case: UseCase, promote_job) -> dg.SensorDefinition:
    approval_key = keys.key(use_case, keys.DEPLOYMENT, "approval")

    @dg.sensor(name=sensor_name(use_case), job=promote_job, minimum_interval_seconds=30,
               description=f"Promotes and deploys an approved {use_case.name} challenger.",
               default_status=dg.DefaultSensorStatus.RUNNING)
    def approval_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        if "storage_id" not in cursor:
            latest = context.instance.fetch_materializations(approval_key, limit=1)
            cursor["storage_id"] = latest.records[0].storage_id if latest.records else 0
            return dg.SensorResult(cursor=json.dumps(cursor),
                                   skip_reason="watching approvals from now on")
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=approval_key, after_storage_id=cursor["storage_id"]),
            limit=50, ascending=True)
        requests, cursor = evaluate(result.records, cursor, use_case)
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor),
                               skip_reason=None if requests else "no new approvals")

    return approval_sensor
