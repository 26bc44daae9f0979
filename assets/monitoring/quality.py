"""Model quality in production, per day, once outcomes are known: performance (concept
drift) and fairness by protected group, from the inference log joined to the labels."""

import json
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import LakehouseResource, is_delta_table, read_window
from lakeloop.partitions import backfill_policy, daily_partitions
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase

LIVE_PREDICTORS = ("champion", "direct")


def scored_with_outcomes(session, lakehouse: LakehouseResource, use_case: UseCase,
                         first: str, last: str):
    """The window's answered live requests with their event's outcome and protected
    attributes (pandas), joined on the event key."""
    import pandas as pd
    from pyspark.sql import functions as F

    log_path = lakehouse.table(keys.key(use_case, keys.MONITORING, "inference_log"))
    if not is_delta_table(log_path):  # nothing served yet
        return pd.DataFrame(columns=["ds", "model_version", "probability", "prediction",
                                     "label", *use_case.protected_attributes])
    log = read_window(session, log_path, first, last)
    labeled = read_window(session, lakehouse.table(keys.key(use_case, keys.LAKEHOUSE,
                                                           use_case.labeled_table)), first, last)
    key = use_case.events.key
    return (log.where((F.col("status") == 200) & F.col("predictor").isin(*LIVE_PREDICTORS))
            .select(F.col("ds").cast("string").alias("ds"), F.col("request_key").alias(key),
                    "model_version", "probability", "prediction")
            .join(labeled.select(key, "label", *use_case.protected_attributes), key, "left")
            .toPandas())


def _html(title: str, sections: dict[str, str]) -> str:
    body = "".join(f"<h2>{name}</h2>{html}" for name, html in sections.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head>"
            f"<body><h1>{title}</h1>{body}</body></html>")


def _write(out_dir: Path, title: str, summary: dict, sections: dict[str, str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True,
                                                     default=float))
    html = out_dir / "report.html"
    html.write_text(_html(title, sections))
    return html


def _days(context, spark: SparkResource, lakehouse: LakehouseResource,
          mlflow: MlflowResource, use_case: UseCase):
    """Per day of the run's window that has live answers: (day, answers, answers with a
    known outcome, the model version that answered most, its decision threshold)."""
    frame = scored_with_outcomes(spark.session(), lakehouse, use_case,
                                 context.partition_keys[0], context.partition_keys[-1])
    thresholds: dict[str, float] = {}
    for ds in context.partition_keys:
        day = frame[frame["ds"] == ds]
        if day.empty:
            context.log.warning(f"{ds}: no live requests logged; no report")
            continue
        version = str(day["model_version"].mode().iloc[0])
        if version not in thresholds:
            thresholds[version] = float(mlflow.client().get_model_version(
                use_case.name, version).tags["threshold"])
        yield ds, day, day[day["label"].notna()], version, thresholds[version]


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    log_key = keys.key(use_case, keys.MONITORING, "inference_log")
    labeled_key = keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table)
    monitoring, gates = use_case.monitoring, use_case.gates
    common = {
        "deps": [log_key, labeled_key],
        "partitions_def": daily_partitions(use_case),
        "backfill_policy": backfill_policy(use_case),
        "output_required": False,
        **keys.common(use_case, keys.MONITORING, "spark", "pandas"),
        "op_tags": pod_tags(use_case, "spark"),
    }

    @dg.asset(key=keys.key(use_case, keys.MONITORING, "performance_report"),
              description="Live recall, precision, AUC and approval rate per day, against the "
              "outcomes known so far.\n\nShows concept drift; HTML and JSON report.",
              **common)
    def performance_report(context: dg.AssetExecutionContext, spark: SparkResource,
                           lakehouse: LakehouseResource, mlflow: MlflowResource):
        from lakeloop.training import classification_metrics

        out_root = lakehouse.path(context.asset_key)
        for ds, day, known, version, threshold in _days(context, spark, lakehouse, mlflow,
                                                        use_case):
            coverage = len(known) / len(day)
            enough = len(known) >= monitoring.performance_min_labeled
            metrics = (classification_metrics(known["label"].astype(int).to_numpy(),
                                              known["probability"].to_numpy(), threshold)
                       if len(known) else {})
            recall = metrics.get("recall", float("nan"))
            degraded = bool(enough and recall == recall
                            and recall < monitoring.performance_recall_min)
            summary = {**{k: v for k, v in metrics.items() if k != "rows"},
                       "ds": ds, "rows": len(day), "labeled_rows": len(known),
                       "label_coverage": coverage, "model_version": version,
                       "judged": enough, "degraded": degraded,
                       "recall_min": monitoring.performance_recall_min}
            table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary.items())
            html = _write(out_root / f"ds={ds}", f"{use_case.title}: performance on {ds}",
                          summary, {"Metrics": f"<table>{table}</table>"})
            metadata = {
                "rows": dg.MetadataValue.int(len(day)),
                "labeled_rows": dg.MetadataValue.int(len(known)),
                "label_coverage": dg.MetadataValue.float(round(coverage, 4)),
                "judged": dg.MetadataValue.bool(enough),
                "degraded": dg.MetadataValue.bool(degraded),
                "recall_min": dg.MetadataValue.float(monitoring.performance_recall_min),
                "model_version": dg.MetadataValue.int(int(version)),
                "report": lakehouse.report_link(html),
                "report_path": dg.MetadataValue.path(str(html)),
            }
            for name in ("recall", "precision", "auc", "approval_rate"):
                value = metrics.get(name)
                if value is not None and value == value:
                    metadata[name] = dg.MetadataValue.float(round(float(value), 4))
            yield dg.AssetMaterialization(asset_key=context.asset_key, partition=ds,
                                          metadata=metadata)
            context.log.info(f"{ds}: recall {recall:.3f} on {len(known)} labelled rows"
                             + (" (degraded)" if degraded else ""))

    @dg.asset(key=keys.key(use_case, keys.MONITORING, "fairness_report"),
              description="Approval-rate ratio and true-positive-rate gap per protected "
              "attribute, on each day's live answers.\n\nHTML and JSON report.",
              **common)
    def fairness_report(context: dg.AssetExecutionContext, spark: SparkResource,
                        lakehouse: LakehouseResource, mlflow: MlflowResource):
        from lakeloop.training import fairness

        if not use_case.protected_attributes:
            context.log.info("no protected attributes declared: no fairness report")
            return
        out_root = lakehouse.path(context.asset_key)
        for ds, day, known, _, threshold in _days(context, spark, lakehouse, mlflow, use_case):
            # Approval rates need no outcome: judged on every answer. TPR needs outcomes.
            rates = fairness(day, day["probability"].to_numpy(),
                             day["label"].fillna(0).astype(int).to_numpy(), threshold,
                             use_case.protected_attributes,
                             min_group_rows=gates.fairness_min_group_rows,
                             min_group_positives=10**9)
            tprs = fairness(known, known["probability"].to_numpy(),
                            known["label"].astype(int).to_numpy(), threshold,
                            use_case.protected_attributes,
                            min_group_rows=gates.fairness_min_group_rows,
                            min_group_positives=gates.fairness_min_group_positives)
            metadata, sections, unfair = {}, {}, []
            for rate, tpr in zip(rates, tprs, strict=True):
                a = rate.attribute
                metadata[f"{a}_approval_ratio"] = dg.MetadataValue.float(
                    round(float(rate.approval_ratio), 4))
                metadata[f"{a}_tpr_gap"] = dg.MetadataValue.float(round(float(tpr.tpr_gap), 4))
                if rate.approval_ratio < gates.fairness_ratio_min:
                    unfair.append(f"{a}: approval-rate ratio {rate.approval_ratio:.3f}")
                if tpr.tpr_gap > gates.tpr_gap_max:
                    unfair.append(f"{a}: TPR gap {tpr.tpr_gap:.3f}")
                sections[a] = rate.groups.to_html(float_format="%.3f")
            summary = {"ds": ds, "rows": len(day), "labeled_rows": len(known),
                       "findings": unfair,
                       **{k: v.value for k, v in metadata.items()}}
            html = _write(out_root / f"ds={ds}", f"{use_case.title}: fairness on {ds}",
                          summary, sections)
            yield dg.AssetMaterialization(asset_key=context.asset_key, partition=ds, metadata={
                **metadata,
                "rows": dg.MetadataValue.int(len(day)),
                "labeled_rows": dg.MetadataValue.int(len(known)),
                "within_tolerance": dg.MetadataValue.bool(not unfair),
                "findings": dg.MetadataValue.text("; ".join(unfair) or "none"),
                "report": lakehouse.report_link(html),
                "report_path": dg.MetadataValue.path(str(html)),
            })

    return [performance_report, fairness_report]
