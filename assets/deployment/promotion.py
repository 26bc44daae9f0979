"""Promotion: a candidate that passed every gate becomes challenger; the challenger becomes
champion once approved (sensitive use cases) or at once; the model card records all of it."""

import dagster as dg
import yaml

from assets.training.model import candidate_version
from lakeloop import approvals, keys, promotion
from lakeloop.catalog import code_reference
from lakeloop.deployment import Runtime, endpoint_name, ensure_champion
from lakeloop.features import FeastResource
from lakeloop.lakehouse import LakehouseResource
from lakeloop.serving import ServingResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def approval_spec(use_case: UseCase) -> dg.AssetSpec:
    return dg.AssetSpec(
        keys.key(use_case, keys.DEPLOYMENT, "approval"),
        description="A person's decision on the challenger: who decided, when and why.\n\n"
        f"Recorded from the {use_case.name}_approval job or `lakeloop approve`/`reject`, and "
        "kept on the model version.",
        metadata=code_reference(approval_spec),
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
        version = candidate_version(context, model_key)
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
        description="The challenger rolled out on the live graph; it becomes champion only if "
        "every rollout check passes.\n\nSmoke, latency and shadow checks, then a canary (or "
        "shadow, or A/B) split of replayed traffic, after a recorded approval when the use "
        "case is sensitive; any failure puts the endpoint back on the champion alone.",
        deps=[challenger_key, approval.key],
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow", "seldon"),
    )
    def champion(context: dg.AssetExecutionContext, mlflow: MlflowResource,
                 serving: ServingResource, lakehouse: LakehouseResource,
                 feast: FeastResource) -> dg.MaterializeResult:
        from lakeloop import rollout
        from lakeloop.deployment import (
            apply_on_cluster,
            cluster_predictors,
            render,
            serve_champion,
        )
        from lakeloop.tracking import CHALLENGER, CHAMPION

        current = mlflow.version_by_alias(use_case.name, CHALLENGER)
        if current is None:
            raise dg.Failure(f"{use_case.name} has no challenger to promote")
        version = str(current.version)
        try:
            promotion.check_promotable(mlflow, use_case, version)
        except promotion.PromotionError as exc:
            raise dg.Failure(str(exc)) from None
        if not use_case.serving.online:  # scored in batches: no endpoint to roll out on
            return promote_for_batch(context, mlflow, use_case, version)
        rt = Runtime(use_case, serving, mlflow, lakehouse, feast)
        previous = mlflow.version_by_alias(use_case.name, CHAMPION)
        previous = None if previous is None else str(previous.version)
        out_dir = lakehouse.path(context.asset_key)
        out_dir.mkdir(parents=True, exist_ok=True)
        manifests = {}
        for strategy in ("canary", "shadow", "ab"):
            if previous is None or previous == version:
                break
            path = out_dir / f"v{version}-{strategy}.yaml"
            path.write_text(yaml.safe_dump(render(
                rt, strategy, previous, version, use_case.rollout.canary_traffic),
                sort_keys=False))
            manifests[strategy] = dg.MetadataValue.path(str(path))

        report = None
        cluster = serving.kubernetes
        if previous is not None and previous != version:
            log_dir = lakehouse.path(keys.key(use_case, keys.MONITORING, "requests"))
            instances = rollout.recent_instances(log_dir, use_case,
                                                 use_case.rollout.replay_requests)
            if cluster:
                try:
                    # The challenger first joins as a shadow (mirrored traffic, answers
                    # discarded): it is validated before it takes any traffic.
                    manifest = apply_on_cluster(rt, "shadow", previous, version)
                    report, champ, chall = rollout.validate(
                        rt, previous, version, instances,
                        predictors=cluster_predictors(rt, manifest, previous, version))
                    if report.passed:
                        strategy = use_case.rollout.strategy
                        manifest = apply_on_cluster(rt, strategy, previous, version,
                                                    use_case.rollout.canary_traffic)
                        rollout.canary(rt, report, champ, chall, instances,
                                       url=serving.deployment_url(manifest))
                except Exception:  # whatever broke, the champion alone keeps the traffic
                    apply_on_cluster(rt, "champion", previous)
                    raise
            else:
                report, champ, chall = rollout.validate(rt, previous, version, instances)
                if report.passed:
                    rollout.canary(rt, report, champ, chall, instances)
            promotion.record_rollout(mlflow, use_case, version, report)
            numbers = {"rollout": dg.MetadataValue.md(report.table()),
                       "strategy": dg.MetadataValue.text(report.strategy),
                       "challenger_version": dg.MetadataValue.int(int(version)),
                       "champion_version": dg.MetadataValue.int(int(previous))}
            if not report.passed:  # the endpoint goes back to the champion alone
                if cluster:
                    apply_on_cluster(rt, "champion", previous)
                else:
                    serve_champion(rt, previous)
                # Recorded on the instance at once: events logged by a step that then
                # fails are not guaranteed to be kept, and this decision must be.
                context.instance.report_runless_asset_event(dg.AssetObservation(
                    asset_key=context.asset_key,
                    description=f"v{version} rolled back: " + "; ".join(report.reasons),
                    metadata={**numbers, "decision": dg.MetadataValue.text("rolled back")}))
                raise dg.Failure(
                    f"{use_case.name} v{version} was rolled back; champion v{previous} keeps "
                    "the traffic: " + "; ".join(report.reasons),
                    metadata={**numbers, "decision": dg.MetadataValue.text("rolled back")})
        try:
            move = promotion.to_champion(mlflow, use_case, version,
                                         reason=f"Dagster run {context.run.run_id}")
        except promotion.PromotionError as exc:
            raise dg.Failure(str(exc)) from None
        if cluster:
            endpoint_url = serving.deployment_url(apply_on_cluster(rt, "champion", version))
        else:
            endpoint_url = serve_champion(rt, version)[0].predictions_url
        card = promotion.log_card(mlflow, use_case, version)
        decision = (approvals.read(mlflow.client(), use_case.name, version)
                    if use_case.sensitive else None)
        return dg.MaterializeResult(metadata={
            "model_version": dg.MetadataValue.int(int(version)),
            "previous_champion": dg.MetadataValue.text(move.previous or "none"),
            "decision": dg.MetadataValue.text(
                f"promoted after validation and {report.strategy}" if report
                else "promoted (first model: nothing to compare with)"),
            "rollout": dg.MetadataValue.md(report.table() if report else
                                           "first model: no champion to compare with"),
            "endpoint": dg.MetadataValue.url(endpoint_url),
            "serving": dg.MetadataValue.text("kubernetes" if cluster else "local"),
            **{f"manifest_{k}": v for k, v in manifests.items()},
            "approved_by": dg.MetadataValue.text(decision.by if decision else "not required"),
            "approved_at": dg.MetadataValue.text(decision.at if decision else ""),
            "approval_reason": dg.MetadataValue.text(decision.reason if decision else ""),
            "model_card": dg.MetadataValue.md(card),
        })

    return [approval, challenger, champion]


def promote_for_batch(context, mlflow: MlflowResource, use_case: UseCase,
                      version: str) -> dg.MaterializeResult:
    """A batch-scored use case's challenger becomes champion once approved (if needed):
    the next batch_scores run scores with it, and every score names its version."""
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
        "decision": dg.MetadataValue.text("promoted; batch scoring uses it from its next run"),
        "serving": dg.MetadataValue.text("batch"),
        "approved_by": dg.MetadataValue.text(decision.by if decision else "not required"),
        "model_card": dg.MetadataValue.md(card),
    })


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
