"""Promotion: a candidate that passed every gate becomes challenger; the challenger becomes
champion once approved (sensitive use cases) or at once; the model card records all of it."""

import dagster as dg

from lakeloop import approvals, keys, promotion
from lakeloop.deployment import Runtime, endpoint_name, ensure_champion
from lakeloop.features import FeastResource
from lakeloop.lakehouse import LakehouseResource
from lakeloop.serving import ServingResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def candidate(context, model_key: dg.AssetKey) -> str:
    event = context.instance.get_latest_materialization_event(model_key)
    if event is None or event.asset_materialization is None:
        raise dg.Failure(f"{model_key.to_user_string()} has not been materialised")
    return str(event.asset_materialization.metadata["model_version"].value)


def approval_spec(use_case: UseCase) -> dg.AssetSpec:
    return dg.AssetSpec(
        keys.key(use_case, keys.DEPLOYMENT, "approval"),
        description="A person's decision on a challenger (who, when, why); recorded from the "
        f"{use_case.name}_approval job or `lakeloop approve`, and kept on the model version.",
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow"))


def build(use_case: UseCase) -> list:
    model_key = keys.key(use_case, keys.TRAINING, "candidate_model")
    challenger_key = keys.key(use_case, keys.DEPLOYMENT, "challenger")
    champion_key = keys.key(use_case, keys.DEPLOYMENT, "champion")
    approval = approval_spec(use_case)

    @dg.asset(
        key=challenger_key,
        description="The candidate that passed every gate, as the registry's challenger, "
        "with its model card.",
        deps=[model_key],
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow"),
    )
    def challenger(context: dg.AssetExecutionContext,
                   mlflow: MlflowResource) -> dg.MaterializeResult:
        version = candidate(context, model_key)
        try:
            move = promotion.to_challenger(mlflow, use_case, version)
        except promotion.PromotionError as exc:
            raise dg.Failure(str(exc)) from None
        card = promotion.log_card(mlflow, use_case, version)
        needs = use_case.sensitive
        if needs:
            context.log.info(f"v{version} is challenger and awaits approval: `lakeloop approve "
                             f"{use_case.name} {version} --by <you> --reason <why>`")
        return dg.MaterializeResult(metadata={
            "model_version": dg.MetadataValue.int(int(version)),
            "previous_challenger": dg.MetadataValue.text(move.previous or "none"),
            "approval_required": dg.MetadataValue.bool(needs),
            "model_version_url": dg.MetadataValue.url(
                mlflow.model_version_url(use_case.name, version)),
            "model_card": dg.MetadataValue.md(card),
        })

    @dg.asset(
        key=champion_key,
        description="The challenger promoted to champion: after a recorded approval when the "
        "use case is sensitive. The previous champion is kept for rollback.",
        deps=[challenger_key, approval.key],
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow"),
    )
    def champion(context: dg.AssetExecutionContext,
                 mlflow: MlflowResource) -> dg.MaterializeResult:
        from lakeloop.tracking import CHALLENGER

        current = mlflow.version_by_alias(use_case.name, CHALLENGER)
        if current is None:
            raise dg.Failure(f"{use_case.name} has no challenger to promote")
        version = str(current.version)
        try:
            move = promotion.to_champion(mlflow, use_case, version,
                                         reason=f"Dagster run {context.run.run_id}")
        except promotion.PromotionError as exc:
            raise dg.Failure(str(exc)) from None
        card = promotion.log_card(mlflow, use_case, version)
        decision = (approvals.read(mlflow.client(), use_case.name, version)
                    if use_case.sensitive else None)
        return dg.MaterializeResult(metadata={
            "model_version": dg.MetadataValue.int(int(version)),
            "previous_champion": dg.MetadataValue.text(move.previous or "none"),
            "approved_by": dg.MetadataValue.text(decision.by if decision else "not required"),
            "approved_at": dg.MetadataValue.text(decision.at if decision else ""),
            "approval_reason": dg.MetadataValue.text(decision.reason if decision else ""),
            "model_card": dg.MetadataValue.md(card),
        })

    return [approval, challenger, champion]


def decide(mlflow: MlflowResource, use_case: UseCase, version: int, decision: str, by: str,
           reason: str) -> dg.AssetMaterialization:
    """Record a person's decision on the model version (MLflow tags, model card) and return
    the approval asset's materialisation that carries it into Dagster (and the sensor)."""
    done = approvals.record(mlflow.client(), use_case.name, str(version), decision, by, reason)
    promotion.log_card(mlflow, use_case, str(version))
    return dg.AssetMaterialization(
        asset_key=keys.key(use_case, keys.DEPLOYMENT, "approval"),
        description=f"v{version} {done.status} by {done.by}: {done.reason}",
        metadata={
            "model_version": dg.MetadataValue.int(int(version)),
            "decision": dg.MetadataValue.text(done.status),
            "by": dg.MetadataValue.text(done.by),
            "at": dg.MetadataValue.text(done.at),
            "reason": dg.MetadataValue.text(done.reason),
        })


class ApprovalConfig(dg.Config):
    version: int
    decision: str = "approved"
    by: str
    reason: str


def approval_job(use_case: UseCase) -> dg.JobDefinition:
    """Approve or reject a challenger from the Dagster UI (Launchpad)."""
    @dg.op(name=f"{use_case.name}__record_approval")
    def record(context: dg.OpExecutionContext, config: ApprovalConfig, mlflow: MlflowResource):
        try:
            event = decide(mlflow, use_case, config.version, config.decision, config.by,
                           config.reason)
        except approvals.ApprovalError as exc:
            raise dg.Failure(str(exc)) from None
        context.log_event(event)

    @dg.job(name=f"{use_case.name}_approval",
            description=f"Record a person's decision on a {use_case.name} challenger.",
            tags={"use_case": use_case.name})
    def job():
        record()

    return job


def rollback(rt: Runtime, *, by: str, reason: str):
    """The previous champion back in the registry and, when a local endpoint serves the use
    case, on that endpoint too: one action."""
    move = promotion.rollback(rt.mlflow, rt.use_case, by=by, reason=reason)
    endpoint = None
    if rt.serving.endpoint(endpoint_name(rt.use_case)) is not None:
        endpoint, _ = ensure_champion(rt)
    return move, endpoint


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

    @dg.job(name=f"{use_case.name}_rollback",
            description=f"Put the previous {use_case.name} champion back, in one action.",
            tags={"use_case": use_case.name})
    def job():
        roll_back()

    return job
