"""Drift reports: each day's production traffic against the data its model learnt from."""

import dagster as dg

from lakeloop import keys
from lakeloop.deployment import load_booster
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import LakehouseResource, read_table, read_window
from lakeloop.monitoring import drift_report, drift_table, sorted_columns
from lakeloop.partitions import backfill_policy, daily_partitions
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    log_key = keys.key(use_case, keys.MONITORING, "inference_log")
    training_set_key = keys.key(use_case, keys.TRAINING, "training_set")
    monitoring = use_case.monitoring
    features = list(use_case.feature_names)

    @dg.asset(
        key=keys.key(use_case, keys.MONITORING, "drift_report"),
        description="Data and prediction drift per day: live requests against the training "
        "set of the model that answered.\n\nExact statistics over the whole window; "
        "Evidently's HTML report and JSON.",
        deps=[log_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        output_required=False,
        **keys.common(use_case, keys.MONITORING, "spark", "evidently"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def drift_report_asset(context: dg.AssetExecutionContext, spark: SparkResource,
                           lakehouse: LakehouseResource, mlflow: MlflowResource):
        from pyspark.sql import functions as F

        session = spark.session()
        window = read_window(session, lakehouse.table(log_key), context.partition_keys[0],
                             context.partition_keys[-1]).where(F.col("status") == 200)
        current_all = window.select("ds", "model_version", *features, "probability").toPandas()
        client = mlflow.client()
        references = {}
        out_root = lakehouse.path(context.asset_key)
        for ds in context.partition_keys:
            current = current_all[current_all["ds"].astype(str) == ds]
            if current.empty:
                context.log.warning(f"{ds}: no requests were logged; no drift report")
                continue
            version = str(current["model_version"].mode().iloc[0])
            if version not in references:
                ts_version = int(client.get_model_version(use_case.name, version)
                                 .tags["training_set_version"])
                reference = read_table(session, lakehouse.table(training_set_key),
                                       ts_version).select(*features).toPandas()
                booster, config = load_booster(mlflow, use_case.name, version)
                reference["probability"] = booster.inplace_predict(
                    reference[config["features"]].to_numpy(dtype="float32"))
                references[version] = (reference, ts_version, sorted_columns(
                    reference, [*features, "probability"]))
            reference, ts_version, reference_sorted = references[version]
            summary = drift_report(reference, current, features, ds=ds,
                                   drift_share=monitoring.drift_share_max,
                                   stattest_threshold=monitoring.stattest_threshold,
                                   out_dir=out_root / f"ds={ds}",
                                   reference_sorted=reference_sorted)
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=ds,
                metadata={
                    "drift_share": dg.MetadataValue.float(round(summary.drift_share, 4)),
                    "drifted_features": dg.MetadataValue.int(summary.drifted_features),
                    "drifted": dg.MetadataValue.bool(summary.drifted),
                    "threshold_share": dg.MetadataValue.float(monitoring.drift_share_max),
                    "prediction_drift_score": dg.MetadataValue.float(
                        round(summary.prediction_drift_score or 0.0, 4)),
                    "rows": dg.MetadataValue.int(summary.rows),
                    "model_version": dg.MetadataValue.int(int(version)),
                    "reference_training_set_version": dg.MetadataValue.int(ts_version),
                    "features": dg.MetadataValue.md(drift_table(summary)),
                    "report": lakehouse.report_link(summary.html),
                    "report_path": dg.MetadataValue.path(summary.html),
                    "report_json": dg.MetadataValue.path(summary.json),
                })
            context.log.info(f"{ds}: drift share {summary.drift_share:.2f} "
                             f"({'drifted' if summary.drifted else 'stable'})")

    return [drift_report_asset]
