"""The approval sensor: when a person approves the challenger, promote and deploy it.

Dagster's asset sensor keeps the cursor: each new materialization of the approval asset (a
decision recorded by `lakeloop approve/reject` or the approval job) is seen once.
"""

from typing import Any

import dagster as dg

from lakeloop import keys
from lakeloop.usecase import UseCase


def sensor_name(use_case: UseCase) -> str:
    return f"{use_case.name}_approval_sensor"


def request_for(mat: dg.AssetMaterialization | None,
                use_case: UseCase) -> dg.RunRequest | dg.SkipReason:
    """A promote run once a version's approvals are complete; a rejection, or an approval
    still waiting for other approvers, starts nothing."""
    meta = mat.metadata if mat is not None else {}
    # ``status``: the version's state after this decision (enough approvals or not);
    # decisions recorded before approvers could be several carry only ``decision``.
    state = meta.get("status") or meta.get("decision")
    if mat is None or state is None or state.value != "approved":
        return dg.SkipReason("the version's approvals are not complete (or it was rejected)")
    version = mat.metadata["model_version"].value
    return dg.RunRequest(
        run_key=f"{use_case.name}-approved-{version}",
        tags={"lakeloop/trigger": "approval", "lakeloop/model_version": str(version),
              "lakeloop/approved_by": str(mat.metadata["by"].value), "use_case": use_case.name})


def build(use_case: UseCase, promote_job: Any) -> dg.SensorDefinition:
    @dg.asset_sensor(asset_key=keys.key(use_case, keys.DEPLOYMENT, "approval"),
                     job=promote_job, name=sensor_name(use_case), minimum_interval_seconds=30,
                     description=f"Promotes and deploys an approved {use_case.name} challenger.",
                     default_status=dg.DefaultSensorStatus.RUNNING)
    def approval_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
        return request_for(asset_event.asset_materialization, use_case)

    return approval_sensor
