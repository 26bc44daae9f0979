"""Model quality in production, per day: performance (measured once outcomes mature,
estimated from the scores before) and fairness by protected group, from the answers joined
to the labels."""

import dagster as dg

from lakeloop import keys
from lakeloop.governance import record
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.monitoring import alarms, quality
from lakeloop.monitoring import performance as perf
from lakeloop.monitoring.answers import answer_keys, live_answers
from lakeloop.monitoring.reference import load_reference
from lakeloop.monitoring.workers import in_order
from lakeloop.partitions import backfill_policy, daily_partitions
from lakeloop.raw.snapshots import latest_loaded_day
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def window_days(context, spark: SparkResource, lakehouse: LakehouseResource,
                mlflow: MlflowResource, use_case: UseCase):
    """The run's days that have answers (a day without any is logged and skipped)."""
    frame = live_answers(spark.session(), lakehouse, use_case, context.partition_keys[0],
                         context.partition_keys[-1], with_outcomes=True)
    as_of = latest_loaded_day(lakehouse.path(keys.key(use_case, keys.RAW,
                                                      use_case.labels_name)))
    references: dict = {}

    def reference_of(version: str):
        if version not in references:
            references[version] = load_reference(spark.session(), lakehouse, mlflow,
                                                 use_case, version)
        return references[version]

    for day in quality.days(frame, list(context.partition_keys), use_case, as_of,
                            reference_of):
        if isinstance(day, str):
            context.log.warning(f"{day}: no answers logged or scored; no report")
        else:
            yield day


def performance_metadata(done: quality.PerformanceDay, lakehouse: LakehouseResource,
                         estimate: bool) -> dict[str, dg.MetadataValue]:
    m, e = done.measured, done.estimated
    out = {
        "rows": dg.MetadataValue.int(m.rows), "labeled_rows": dg.MetadataValue.int(m.labelled),
        "label_coverage": dg.MetadataValue.float(round(m.labelled / m.rows, 4)),
        "positives": dg.MetadataValue.int(m.evidence.positives),
        "negatives": dg.MetadataValue.int(m.evidence.negatives),
        "mature": dg.MetadataValue.bool(m.mature), "judged": dg.MetadataValue.bool(m.judged),
        "degraded": dg.MetadataValue.bool(m.degraded),
        "estimated_degraded": dg.MetadataValue.bool(estimate and e.degraded),
        "recall_min": dg.MetadataValue.float(done.summary["recall_min"]),
        "verdict": dg.MetadataValue.text(done.summary["measured"]),
        "estimate": dg.MetadataValue.text(done.summary["estimated"]),
        "model_version": dg.MetadataValue.int(int(done.version)),
        "report": lakehouse.report_link(done.html),
        "report_path": dg.MetadataValue.path(done.html),
    }
    # Outcome-based figures only for judged days: a recall on the few outcomes that arrived
    # early (or on a handful of positives) would plot as if it were one.
    figures = {"approval_rate": m.approval_rate, "estimated_recall": e.recall}
    if m.judged:
        figures.update(recall=m.recall, precision=m.precision, auc=m.auc)
        if m.recall_interval is not None:
            figures.update(recall_low=m.recall_interval[0], recall_high=m.recall_interval[1])
    out.update({name: dg.MetadataValue.float(round(float(value), 4))
                for name, value in figures.items() if value is not None})
    return out


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    labeled_key = keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table)
    common = {
        "deps": [*answer_keys(use_case), labeled_key],
        "partitions_def": daily_partitions(use_case),
        "backfill_policy": backfill_policy(use_case),
        "output_required": False,
        **keys.common(use_case, keys.MONITORING, "spark", "evidently"),
        "op_tags": pod_tags(use_case, "spark"),
    }

    @dg.asset(key=keys.key(use_case, keys.MONITORING, "performance_report"),
              description="Live recall per day: measured against outcomes once they mature, "
              "estimated from the calibrated scores (CBPE) before.\n\nEach verdict states "
              "its evidence; Evidently's classification report and JSON.",
              **common)
    def performance_report(context: dg.AssetExecutionContext, spark: SparkResource,
                           lakehouse: LakehouseResource, mlflow: MlflowResource):
        calibrations: dict[str, perf.Calibration] = {}
        jobs = []
        for day in window_days(context, spark, lakehouse, mlflow, use_case):
            ref = day.reference
            if ref.model_version not in calibrations:
                calibrations[ref.model_version] = perf.Calibration(
                    ref.frame["probability"].to_numpy(), ref.frame["label"].to_numpy())
            jobs.append(quality.PerformanceJob(
                day, use_case, calibrations[ref.model_version],
                lakehouse.path(context.asset_key) / f"ds={day.ds}"))
        # Each day's Evidently report renders in a process of its own (workers.in_order).
        for done in in_order(quality.performance_job, jobs):
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=done.ds,
                metadata=performance_metadata(done, lakehouse,
                                              use_case.monitoring.performance.estimate))
            context.log.info(f"{done.ds}: {done.summary['measured']}; "
                             f"{done.summary['estimated']}")
            record(lakehouse, use_case, alarms.performance(
                use_case, done, report_url=lakehouse.report_href(done.html),
                run_id=context.run.run_id, run_url=lakehouse.run_url(context.run.run_id)),
                log=context.log)

    @dg.asset(key=keys.key(use_case, keys.MONITORING, "fairness_report"),
              description="Approval-rate ratio and true-positive-rate gap per protected "
              "attribute, on each day's live answers.\n\nGroups too small to judge are "
              "listed, not judged; TPR only on mature outcomes. HTML and JSON report.",
              **common)
    def fairness_report(context: dg.AssetExecutionContext, spark: SparkResource,
                        lakehouse: LakehouseResource, mlflow: MlflowResource):
        if not use_case.protected_attributes:
            context.log.info("no protected attributes declared: no fairness report")
            return
        for day in window_days(context, spark, lakehouse, mlflow, use_case):
            done = quality.fairness_day(day, use_case,
                                        lakehouse.path(context.asset_key) / f"ds={day.ds}")
            yield dg.AssetMaterialization(asset_key=context.asset_key, partition=day.ds,
                                          metadata={
                **{f"{a}_approval_ratio": dg.MetadataValue.float(round(v, 4))
                   for a, v in done.approval_ratios.items()},
                **{f"{a}_tpr_gap": dg.MetadataValue.float(round(v, 4))
                   for a, v in done.tpr_gaps.items()},
                **{f"{a}_groups_judged": dg.MetadataValue.int(n)
                   for a, n in done.groups_judged.items()},
                "rows": dg.MetadataValue.int(len(day.answers)),
                "labeled_rows": dg.MetadataValue.int(len(day.known)),
                "mature": dg.MetadataValue.bool(day.mature),
                "within_tolerance": dg.MetadataValue.bool(not done.findings),
                "findings": dg.MetadataValue.text("; ".join(done.findings) or "none"),
                # What acts (the fairness sensor): tolerances exceeded beyond sampling noise.
                "breached": dg.MetadataValue.bool(bool(done.breaches)),
                "breaches": dg.MetadataValue.text("; ".join(done.breaches) or "none"),
                "not_judged": dg.MetadataValue.text("; ".join(done.not_judged) or "none"),
                "report": lakehouse.report_link(done.html),
                "report_path": dg.MetadataValue.path(done.html),
            })
            record(lakehouse, use_case, alarms.fairness(
                use_case, day, done, report_url=lakehouse.report_href(done.html),
                run_id=context.run.run_id, run_url=lakehouse.run_url(context.run.run_id)),
                log=context.log)

    return [performance_report, fairness_report]
