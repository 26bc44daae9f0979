"""The inference log: every request the endpoints answered, one Delta partition per day."""

import dagster as dg

from lakeloop import keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import LakehouseResource, replace_window
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase


def log_schema():
    from pyspark.sql.types import (
        DoubleType,
        IntegerType,
        MapType,
        StringType,
        StructField,
        StructType,
    )

    return StructType([
        StructField("request_id", StringType()),
        StructField("row", IntegerType()),
        StructField("request_key", StringType()),
        StructField("entity_key", StringType()),
        StructField("event_time", StringType()),
        StructField("ds", StringType()),
        StructField("logged_at", StringType()),
        StructField("model_name", StringType()),
        StructField("model_version", StringType()),
        StructField("predictor", StringType()),
        # Values as text: numbers and categories side by side; typed per feature on ingest.
        StructField("features", MapType(StringType(), StringType())),
        StructField("probability", DoubleType()),
        StructField("prediction", IntegerType()),
        StructField("status", IntegerType()),
        StructField("error", StringType()),
        StructField("latency_ms", DoubleType()),
        # The reasons an answer carried when the request asked for them (JSON text).
        StructField("reasons", StringType()),
    ])


def _inference_log(spark, files: list[str], use_case: UseCase):
    """Flatten request-log records; a request logged twice (a replay rerun) counts once."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    raw = (spark.read.schema(log_schema()).json(files) if files
           else spark.createDataFrame([], log_schema()))
    latest = Window.partitionBy("request_id", "row").orderBy(F.col("logged_at").desc())
    # A record being appended as the day is read parses as nulls: it is read next time.
    raw = raw.where(F.col("request_id").isNotNull())
    return (raw.withColumn("_n", F.row_number().over(latest)).where("_n = 1").select(
        "request_id", "row", "request_key", "entity_key",
        F.to_timestamp("event_time").alias("event_time"),
        F.to_timestamp("logged_at").alias("logged_at"),
        "model_name", "model_version",
        F.when(F.coalesce(F.col("predictor"), F.lit("")) == "", F.lit("direct"))
        .otherwise(F.col("predictor")).alias("predictor"),
        *[F.col("features").getItem(f).cast(use_case.feature_type(f)).alias(f)
          for f in use_case.feature_names],
        "probability", "prediction", "status", "error", "latency_ms", "reasons",
        F.to_date("ds").alias("ds"),
    ))


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    if not use_case.serving.online:
        return []
    # What fills the request log: the replay of landed events (a demo or backtest), or
    # clients calling the deployed endpoint.
    upstream = keys.key(use_case, keys.DEPLOYMENT, "traffic_replay" if use_case.serving.replay
                        else "seldon_deployment")
    requests_key = keys.key(use_case, keys.MONITORING, "requests")

    @dg.asset(
        key=keys.key(use_case, keys.MONITORING, "inference_log"),
        description="Every request and answer of the endpoints, ingested from their buffered "
        "logs into Delta.\n\nFeatures, probability, model version, status and latency.",
        deps=[upstream],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.MONITORING, "spark", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def inference_log(context: dg.AssetExecutionContext, spark: SparkResource,
                      lakehouse: LakehouseResource) -> dg.MaterializeResult:
        from pyspark.sql import functions as F

        start, end = window_of(context)
        log_dir = lakehouse.path(requests_key)
        files = sorted(str(p) for ds in context.partition_keys
                       for p in (log_dir / f"ds={ds}").glob("*.jsonl"))
        df = _inference_log(spark.session(), files, use_case).cache()
        stats = df.agg(F.count("*").alias("rows"),
                       F.sum(F.when(F.col("status") != 200, 1).otherwise(0)).alias("errors"),
                       F.expr("percentile_approx(latency_ms, 0.5)").alias("p50"),
                       F.expr("percentile_approx(latency_ms, 0.99)").alias("p99")).first()
        path = lakehouse.table(context.asset_key)
        # mergeSchema: a log written before a column existed (reasons) takes it.
        commit = replace_window(df, path, start, end, run_id=context.run.run_id,
                                merge_schema=True)
        df.unpersist()
        rows = int(stats["rows"] or 0)
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(rows),
            "errors": dg.MetadataValue.int(int(stats["errors"] or 0)),
            "error_rate": dg.MetadataValue.float(
                round((stats["errors"] or 0) / rows, 6) if rows else 0.0),
            "latency_p50_ms": dg.MetadataValue.float(float(stats["p50"] or 0.0)),
            "latency_p99_ms": dg.MetadataValue.float(float(stats["p99"] or 0.0)),
            "log_files": dg.MetadataValue.int(len(files)),
            "delta_version": dg.MetadataValue.int(commit.version),
            "path": dg.MetadataValue.path(str(path)),
        })

    return [inference_log]
