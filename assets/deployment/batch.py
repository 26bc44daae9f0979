"""Batch scores: each day's events scored in bulk by the champion, for use cases that score
in batches (``serving.mode: batch`` or ``both``)."""

import dagster as dg

from lakeloop import keys
from lakeloop.batch import EVENT_TIMESTAMP, Scorer, point_in_time, score_spark
from lakeloop.features import FeastResource, feature_service_name
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import LakehouseResource, latest_version, read_window, replace_window
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHAMPION, MlflowResource
from lakeloop.usecase import UseCase


def output_schema(use_case: UseCase) -> str:
    """The batch scores table: the event, its features as the model saw them, the answer
    and the exact model version that gave it."""
    events = use_case.events
    features = ", ".join(f"`{f}` {use_case.feature_type(f)}" for f in use_case.feature_names)
    return (f"`{events.key}` string, `{use_case.entity.join_key}` string, "
            f"event_time timestamp, ds date, {features}, model_name string, "
            "model_version string, probability double, prediction int")


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
        from pyspark.sql import functions as F

        start, end = window_of(context)
        champion = mlflow.version_by_alias(use_case.name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{use_case.name} has no champion to score with: promote one "
                             f"(the {use_case.name}_promote job) first")
        scorer = Scorer.load(mlflow, use_case.name, str(champion.version))
        session = spark.session()
        src = use_case.events
        events = read_window(session, lakehouse.table(events_key), start, end).select(
            F.col(src.key), F.col(use_case.entity.join_key),
            F.col(src.event_time).alias(EVENT_TIMESTAMP),
            *[F.col(f) for f in use_case.features.request], "ds")
        rows = events.count()
        engine = "spark" if rows >= use_case.serving.batch_spark_min_rows else "in-process"
        gold_version = latest_version(session, lakehouse.table(gold_key))
        schema = output_schema(use_case)
        with point_in_time(session, use_case, events, gold_uri=lakehouse.uri(gold_key),
                           gold_version=gold_version,
                           feature_service=scorer_service(mlflow, use_case, scorer),
                           repo_path=feast.repo_path or None) as featured:
            inputs = featured.select(
                F.col(src.key), F.col(use_case.entity.join_key),
                F.col(EVENT_TIMESTAMP).alias("event_time"), "ds",
                *[F.col(f) for f in use_case.feature_names])
            if engine == "spark":
                scored = score_spark(inputs, scorer, schema)
            else:
                scored = session.createDataFrame(scorer.score(inputs.toPandas()), schema)
            commit = replace_window(scored, lakehouse.table(context.asset_key), start, end,
                                    run_id=context.run.run_id,
                                    lineage={"model_version": scorer.model_version,
                                             "gold_version": gold_version})
        stats = read_window(session, lakehouse.table(context.asset_key), start, end).agg(
            F.count("*").alias("rows"), F.avg("prediction").alias("flagged"),
            F.countDistinct("model_version").alias("versions")).first()
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(int(stats["rows"])),
            "events": dg.MetadataValue.int(rows),
            "flagged_rate": dg.MetadataValue.float(round(float(stats["flagged"] or 0.0), 4)),
            "model_version": dg.MetadataValue.int(int(scorer.model_version)),
            "engine": dg.MetadataValue.text(engine),
            "gold_version": dg.MetadataValue.int(gold_version),
            "delta_version": dg.MetadataValue.int(commit.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "path": dg.MetadataValue.path(lakehouse.table(context.asset_key)),
        })

    return [batch_scores]


def scorer_service(mlflow: MlflowResource, use_case: UseCase, scorer: Scorer) -> str:
    """The feature service the champion was trained on (versions registered before the tag
    existed used the use case's current one)."""
    tags = mlflow.client().get_model_version(use_case.name, scorer.model_version).tags
    return tags.get("feature_service") or feature_service_name(use_case)
