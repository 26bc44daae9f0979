"""Promotion: a candidate that passed every gate becomes challenger; the challenger becomes
champion once approved (sensitive use cases) or at once; the model card records all of it."""

import dagster as dg

from assets.training.model import candidate_version
from lakeloop import keys
from lakeloop.catalog import code_reference
from lakeloop.deployment import approvals, images, promotion
from lakeloop.deployment import champion as champion_lib
from lakeloop.deployment.runtime import Runtime
from lakeloop.deployment.serving import ServingResource
from lakeloop.features.store import FeastResource
from lakeloop.governance import notices, record
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.tracking import CHALLENGER, CHAMPION, MlflowResource
from lakeloop.usecase import UseCase


def approval_spec(use_case: UseCase) -> dg.AssetSpec:
    return dg.AssetSpec(
        keys.key(use_case, keys.DEPLOYMENT, "approval"),
        description="A person's decision on the challenger: who decided, when and why.\n\n"
        f"Recorded from the {use_case.name}_approval job or `lakeloop approve`/`reject`, and "
        "kept on the model version.",
        metadata=code_reference(approval_spec),
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow"))


def rollout_metadata(error: champion_lib.RolledBack) -> dict[str, dg.MetadataValue]:
    return {"rollout": dg.MetadataValue.md(error.report.table()),
            "strategy": dg.MetadataValue.text(error.report.strategy),
            "challenger_version": dg.MetadataValue.int(int(error.challenger)),
            "champion_version": dg.MetadataValue.int(int(error.champion)),
            "decision": dg.MetadataValue.text("rolled back")}


def promotion_metadata(done: champion_lib.Promotion) -> dict[str, dg.MetadataValue]:
    approval = done.approval
    out = {
        "model_version": dg.MetadataValue.int(int(done.version)),
        "previous_champion": dg.MetadataValue.text(done.previous or "none"),
        "decision": dg.MetadataValue.text(done.decision),
        "serving": dg.MetadataValue.text(done.serving),
        **{f"manifest_{k}": dg.MetadataValue.path(v) for k, v in done.manifests.items()},
        "approved_by": dg.MetadataValue.text(approval.by if approval else "not required"),
        "approved_at": dg.MetadataValue.text(approval.at if approval else ""),
        "approval_reason": dg.MetadataValue.text(approval.reason if approval else ""),
        "model_card": dg.MetadataValue.md(done.card),
    }
    if done.serving != "batch":
        out["endpoint"] = dg.MetadataValue.url(done.endpoint)
        out["rollout"] = dg.MetadataValue.md(done.report.table() if done.report else
                                             "first model: no champion to compare with")
    return out


def build(use_case: UseCase) -> list:
    model_key = keys.key(use_case, keys.TRAINING, "candidate_model")
    challenger_key = keys.key(use_case, keys.DEPLOYMENT, "challenger")
    champion_key = keys.key(use_case, keys.DEPLOYMENT, "champion")
    image_key = keys.key(use_case, keys.DEPLOYMENT, "serving_image")
    per_version = use_case.serving.image == "per_version"
    approval = approval_spec(use_case)

    @dg.asset(
        key=challenger_key,
        description="The candidate that passed every gate, as the registry's challenger, "
        "with its model card.",
        deps=[model_key],
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow"),
    )
    def challenger(context: dg.AssetExecutionContext, mlflow: MlflowResource,
                   lakehouse: LakehouseResource) -> dg.MaterializeResult:
        version = candidate_version(context, model_key)
        try:
            move = promotion.to_challenger(mlflow, use_case, version)
        except promotion.PromotionError as exc:
            raise dg.Failure(str(exc)) from None
        card = promotion.log_card(mlflow, use_case, version)
        if use_case.sensitive:
            run_id = context.run.run_id
            record(lakehouse, use_case, notices.approval_waiting(
                use_case.name, version, use_case.approvals.required, use_case.approvals.approvers,
                model_url=mlflow.model_version_url(use_case.name, version),
                launchpad_url=lakehouse.launchpad_url(approvals.job_name(use_case)),
                run_id=run_id, run_url=lakehouse.run_url(run_id)), log=context.log)
        return dg.MaterializeResult(metadata={
            "model_version": dg.MetadataValue.int(int(version)),
            "previous_challenger": dg.MetadataValue.text(move.previous or "none"),
            "approval_required": dg.MetadataValue.bool(use_case.sensitive),
            "model_version_url": dg.MetadataValue.url(
                mlflow.model_version_url(use_case.name, version)),
            "model_card": dg.MetadataValue.md(card),
        })

    @dg.asset(
        key=image_key,
        description="The challenger's own serving image: the shared serving image with its "
        "model files baked in, tagged with the model and version and labelled (OCI) with its "
        "MLflow run, data versions and commit; pushed when LAKELOOP_IMAGE_REGISTRY is set. "
        "The champion's too, when it has none yet (the canary runs both).",
        deps=[challenger_key],
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow", "seldon"),
    )
    def serving_image(context: dg.AssetExecutionContext, mlflow: MlflowResource,
                      serving: ServingResource) -> dg.MaterializeResult:
        versions = images.versions_to_build(
            mlflow.version_by_alias(use_case.name, CHALLENGER),
            mlflow.version_by_alias(use_case.name, CHAMPION))
        if not versions:
            raise dg.Failure(f"{use_case.name} has no challenger to build an image for: "
                             "materialize its challenger asset first")
        version = versions[0]
        try:
            all_built = [images.build_version_image(mlflow, serving, use_case, v)
                         for v in versions]
        except images.ImageError as exc:
            raise dg.Failure(str(exc)) from None
        for one in all_built:
            context.log.info(f"built {one.ref} in {one.seconds:.0f}s")
        built = all_built[0]
        table = "\n".join(["| label | value |", "|---|---|"]
                          + [f"| {k} | {v} |" for k, v in sorted(built.labels.items())])
        return dg.MaterializeResult(metadata={
            "image": dg.MetadataValue.text(built.ref),
            "image_id": dg.MetadataValue.text(built.image_id),
            "model_version": dg.MetadataValue.int(int(version)),
            "pushed": dg.MetadataValue.bool(built.pushed),
            "build_seconds": dg.MetadataValue.float(round(built.seconds, 1)),
            "also_built": dg.MetadataValue.text(", ".join(b.ref for b in all_built[1:])
                                                or "nothing else"),
            "labels": dg.MetadataValue.md(table),
        })

    @dg.asset(
        key=champion_key,
        description="The challenger rolled out on the live graph; it becomes champion only if "
        "every rollout check passes.\n\nSmoke, latency and shadow checks, then a canary (or "
        "shadow, or A/B) split of replayed traffic, after a recorded approval when the use "
        "case is sensitive; any failure puts the endpoint back on the champion alone.",
        deps=[challenger_key, approval.key, *([image_key] if per_version else [])],
        **keys.common(use_case, keys.DEPLOYMENT, "mlflow", "seldon"),
    )
    def champion(context: dg.AssetExecutionContext, mlflow: MlflowResource,
                 serving: ServingResource, lakehouse: LakehouseResource,
                 feast: FeastResource) -> dg.MaterializeResult:
        rt = Runtime(use_case, serving, mlflow, lakehouse, feast)
        try:
            version = champion_lib.challenger_to_promote(rt)
            done = champion_lib.promote(rt, version, out_dir=lakehouse.path(context.asset_key),
                                        reason=f"Dagster run {context.run.run_id}",
                                        run_id=context.run.run_id)
        except promotion.PromotionError as exc:
            raise dg.Failure(str(exc)) from None
        except champion_lib.RolledBack as exc:
            # Recorded on the instance at once: events logged by a step that then fails are
            # not guaranteed to be kept, and this decision must be.
            context.instance.report_runless_asset_event(dg.AssetObservation(
                asset_key=context.asset_key, metadata=rollout_metadata(exc),
                description=f"v{exc.challenger} rolled back: " + "; ".join(exc.report.reasons)))
            raise dg.Failure(str(exc), metadata=rollout_metadata(exc)) from None
        return dg.MaterializeResult(metadata=promotion_metadata(done))

    return [approval, challenger, *([serving_image] if per_version else []), champion]
