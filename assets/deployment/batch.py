"""Batch scores: each day's events scored in bulk by the champion, for use cases that score
in batches (``serving.mode: batch`` or ``both``)."""

import dagster as dg

from lakeloop import keys
from lakeloop.deployment.batch import Scorer, score_window
from lakeloop.features.store import FeastResource, feature_service_name
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHAMPION, MlflowResource
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    if not use_case.serving.batch:
        return []
    events_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.events_name}")
    gold_key = keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table)
    registry_key = keys.key(use_case, keys.FEATURES, "feast_registry")
    champion_key = keys.key(use_case, keys.DEPLOYMENT, "champion")

    @dg.asset(
        key=keys.key(use_case, keys.DEPLOYMENT, "batch_scores"),
        description="Each day's events scored by the champion in bulk, with the exact model "
        "version on every row.\n\nFeatures as of each event's time (the training set's "
        "point-in-time path); in Spark for large days, in-process for small ones.",
        deps=[events_key, gold_key, registry_key, champion_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.DEPLOYMENT, "spark", "xgboost", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def batch_scores(context: dg.AssetExecutionContext, spark: SparkResource,
                     lakehouse: LakehouseResource, mlflow: MlflowResource,
                     feast: FeastResource) -> dg.MaterializeResult:
        start, end = window_of(context)
        champion = mlflow.version_by_alias(use_case.name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{use_case.name} has no champion to score with: promote one "
                             f"(the {use_case.name}_promote job) first")
        version = str(champion.version)
        scorer = Scorer.load(mlflow, use_case.name, version)
        service = (mlflow.client().get_model_version(use_case.name, version)
                   .tags.get("feature_service") or feature_service_name(use_case))
        out = lakehouse.table(context.asset_key)
        done = score_window(spark.session(), use_case, scorer,
                            events_path=lakehouse.table(events_key),
                            gold_path=lakehouse.table(gold_key), gold_uri=lakehouse.uri(gold_key),
                            out_path=out, start=start, end=end, feature_service=service,
                            repo_path=feast.repo_path or None, run_id=context.run.run_id)
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(done.commit.rows_written),
            "events": dg.MetadataValue.int(done.rows),
            "flagged_rate": dg.MetadataValue.float(round(done.flagged_rate, 4)),
            "model_version": dg.MetadataValue.int(int(version)),
            "engine": dg.MetadataValue.text(done.engine),
            "gold_version": dg.MetadataValue.int(done.gold_version),
            "delta_version": dg.MetadataValue.int(done.commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "path": dg.MetadataValue.path(out),
        })

    return [batch_scores]
