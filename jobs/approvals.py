"""A person's decisions as jobs: approve or reject a challenger, roll the champion back; both
from the Launchpad (the CLI's approve, reject and rollback do the same)."""

import dagster as dg

from lakeloop import keys
from lakeloop.deployment import approvals, promotion
from lakeloop.deployment.champion import decide, rollback
from lakeloop.deployment.runtime import Runtime
from lakeloop.deployment.serving import ServingResource
from lakeloop.features.store import FeastResource
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def approval_job_name(use_case: UseCase) -> str:
    return approvals.job_name(use_case)


def rollback_job_name(use_case: UseCase) -> str:
    return f"{use_case.name}_rollback"


class ApprovalConfig(dg.Config):
    version: int
    decision: str = "approved"
    by: str
    reason: str


def approval_job(use_case: UseCase) -> dg.JobDefinition:
    """Approve or reject a challenger from the Dagster UI (Launchpad)."""
    @dg.op(name=f"{use_case.name}__record_approval")
    def record(context: dg.OpExecutionContext, config: ApprovalConfig, mlflow: MlflowResource,
               lakehouse: LakehouseResource):
        try:
            event = decide(mlflow, lakehouse, use_case, config.version, config.decision,
                           config.by, config.reason)
        except approvals.ApprovalError as exc:
            raise dg.Failure(str(exc)) from None
        context.log_event(event)

    @dg.job(name=approval_job_name(use_case),
            description=f"Record a person's decision on a {use_case.name} challenger.",
            tags={"use_case": use_case.name})
    def job():
        record()

    return job


class RollbackConfig(dg.Config):
    by: str
    reason: str


def rollback_job(use_case: UseCase) -> dg.JobDefinition:
    champion_key = keys.key(use_case, keys.DEPLOYMENT, "champion")

    @dg.op(name=f"{use_case.name}__rollback")
    def roll_back(context: dg.OpExecutionContext, config: RollbackConfig,
                  mlflow: MlflowResource, serving: ServingResource,
                  lakehouse: LakehouseResource, feast: FeastResource):
        try:
            move, endpoint = rollback(Runtime(use_case, serving, mlflow, lakehouse, feast),
                                      by=config.by, reason=config.reason)
        except promotion.PromotionError as exc:
            raise dg.Failure(str(exc)) from None
        context.log.info(f"champion is v{move.version} again (was v{move.previous})")
        context.log_event(dg.AssetMaterialization(asset_key=champion_key, metadata={
            "model_version": dg.MetadataValue.int(int(move.version)),
            "rolled_back_from": dg.MetadataValue.text(move.previous or ""),
            "by": dg.MetadataValue.text(config.by),
            "reason": dg.MetadataValue.text(config.reason),
            "endpoint": dg.MetadataValue.text(endpoint.predictions_url if endpoint
                                              else "not running locally"),
        }))

    @dg.job(name=rollback_job_name(use_case),
            description=f"Put the previous {use_case.name} champion back, in one action.",
            tags={"use_case": use_case.name})
    def job():
        roll_back()

    return job
