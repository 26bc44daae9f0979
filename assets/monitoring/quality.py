"""Model quality in production, per day: performance (measured once outcomes mature,
estimated from the scores before) and fairness by protected group, from the inference log
joined to the labels."""

import json
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import LakehouseResource
from lakeloop.monitoring import performance as perf
from lakeloop.monitoring.answers import answer_keys, live_answers
from lakeloop.monitoring.reference import Reference, load_reference
from lakeloop.partitions import backfill_policy, daily_partitions
from lakeloop.snapshots import latest_loaded_day
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def _html(title: str, sections: dict[str, str]) -> str:
    body = "".join(f"<h2>{name}</h2>{html}" for name, html in sections.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head>"
            f"<body><h1>{title}</h1>{body}</body></html>")


def _write(out_dir: Path, title: str, summary: dict, sections: dict[str, str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True,
                                                     default=str))
    html = out_dir / "report.html"
    html.write_text(_html(title, sections))
    return html


def _days(context, spark: SparkResource, lakehouse: LakehouseResource,
          mlflow: MlflowResource, use_case: UseCase):
    """Per day of the run's window that has live answers: (day, answers, answers whose
    outcome is known, whether the day's outcomes are mature, the answering model's
    reference)."""
    frame = live_answers(spark.session(), lakehouse, use_case, context.partition_keys[0],
                         context.partition_keys[-1], with_outcomes=True)
    as_of = latest_loaded_day(lakehouse.path(keys.key(use_case, keys.RAW,
                                                      use_case.labels_name)))
    references: dict[str, Reference] = {}
    for ds in context.partition_keys:
        day = frame[frame["ds"] == ds]
        if day.empty:
            context.log.warning(f"{ds}: no live requests logged; no report")
            continue
        version = str(day["model_version"].mode().iloc[0])
        if version not in references:
            references[version] = load_reference(spark.session(), lakehouse, mlflow,
                                                 use_case, version)
        mature = perf.is_mature(ds, use_case.label.maturity_days, as_of)
        yield ds, day, day[day["label"].notna()], mature, references[version]


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    labeled_key = keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table)
    rule, gates = use_case.monitoring.performance, use_case.gates
    maturity = use_case.label.maturity_days
    common = {
        "deps": [*answer_keys(use_case), labeled_key],
        "partitions_def": daily_partitions(use_case),
        "backfill_policy": backfill_policy(use_case),
        "output_required": False,
        **keys.common(use_case, keys.MONITORING, "spark", "pandas"),
        "op_tags": pod_tags(use_case, "spark"),
    }

    @dg.asset(key=keys.key(use_case, keys.MONITORING, "performance_report"),
              description="Live recall per day: measured against outcomes once they mature, "
              "estimated from the calibrated scores (CBPE) before.\n\nEach verdict states "
              "its evidence; HTML and JSON report.",
              **common)
    def performance_report(context: dg.AssetExecutionContext, spark: SparkResource,
                           lakehouse: LakehouseResource, mlflow: MlflowResource):
        out_root = lakehouse.path(context.asset_key)
        calibrations: dict[str, perf.Calibration] = {}
        for ds, day, known, mature, reference in _days(context, spark, lakehouse, mlflow,
                                                       use_case):
            threshold = reference.threshold
            measured = perf.measured(known["label"].to_numpy(), known["probability"].to_numpy(),
                                     threshold, rows=len(day), mature=mature,
                                     maturity_on=perf.matures_on(ds, maturity), rule=rule)
            if reference.model_version not in calibrations:
                calibrations[reference.model_version] = perf.Calibration(
                    reference.frame["probability"].to_numpy(),
                    reference.frame["label"].to_numpy())
            estimated = perf.estimated(day["probability"].to_numpy(), threshold,
                                       calibrations[reference.model_version], rule)
            summary = {"ds": ds, "model_version": reference.model_version,
                       **perf.summary(measured, estimated, rule.recall_min)}
            table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary.items())
            html = _write(out_root / f"ds={ds}", f"{use_case.title}: performance on {ds}",
                          summary, {"Verdict": f"<table>{table}</table>"})
            metadata = {
                "rows": dg.MetadataValue.int(len(day)),
                "labeled_rows": dg.MetadataValue.int(len(known)),
                "label_coverage": dg.MetadataValue.float(round(len(known) / len(day), 4)),
                "positives": dg.MetadataValue.int(measured.evidence.positives),
                "negatives": dg.MetadataValue.int(measured.evidence.negatives),
                "mature": dg.MetadataValue.bool(mature),
                "judged": dg.MetadataValue.bool(measured.judged),
                "degraded": dg.MetadataValue.bool(measured.degraded),
                "estimated_degraded": dg.MetadataValue.bool(
                    rule.estimate and estimated.degraded),
                "recall_min": dg.MetadataValue.float(rule.recall_min),
                "verdict": dg.MetadataValue.text(measured.explanation(rule.recall_min)),
                "estimate": dg.MetadataValue.text(estimated.explanation(rule.recall_min)),
                "model_version": dg.MetadataValue.int(int(reference.model_version)),
                "report": lakehouse.report_link(html),
                "report_path": dg.MetadataValue.path(str(html)),
            }
            # Outcome-based figures only for judged days: a recall on the few outcomes that
            # arrived early (or on a handful of positives) would plot as if it were one.
            figures = {"approval_rate": measured.approval_rate,
                       "estimated_recall": estimated.recall}
            if measured.judged:
                figures.update(recall=measured.recall, precision=measured.precision,
                               auc=measured.auc)
            for name, value in figures.items():
                if value is not None:
                    metadata[name] = dg.MetadataValue.float(round(float(value), 4))
            if measured.judged and measured.recall_interval is not None:
                metadata["recall_low"] = dg.MetadataValue.float(
                    round(measured.recall_interval[0], 4))
                metadata["recall_high"] = dg.MetadataValue.float(
                    round(measured.recall_interval[1], 4))
            yield dg.AssetMaterialization(asset_key=context.asset_key, partition=ds,
                                          metadata=metadata)
            context.log.info(f"{ds}: {measured.explanation(rule.recall_min)}; "
                             f"{estimated.explanation(rule.recall_min)}")

    @dg.asset(key=keys.key(use_case, keys.MONITORING, "fairness_report"),
              description="Approval-rate ratio and true-positive-rate gap per protected "
              "attribute, on each day's live answers.\n\nGroups too small to judge are "
              "listed, not judged; TPR only on mature outcomes. HTML and JSON report.",
              **common)
    def fairness_report(context: dg.AssetExecutionContext, spark: SparkResource,
                        lakehouse: LakehouseResource, mlflow: MlflowResource):
        from lakeloop.training import fairness

        if not use_case.protected_attributes:
            context.log.info("no protected attributes declared: no fairness report")
            return
        out_root = lakehouse.path(context.asset_key)
        for ds, day, known, mature, reference in _days(context, spark, lakehouse, mlflow,
                                                       use_case):
            threshold = reference.threshold
            # Approval rates need no outcome: judged on every answer. TPR needs mature ones.
            rates = fairness(day, day["probability"].to_numpy(),
                             day["label"].fillna(0).astype(int).to_numpy(), threshold,
                             use_case.protected_attributes,
                             min_group_rows=gates.fairness_min_group_rows,
                             min_group_positives=10**9)
            outcomes = known if mature else known.iloc[0:0]
            tprs = fairness(outcomes, outcomes["probability"].to_numpy(),
                            outcomes["label"].astype(int).to_numpy(), threshold,
                            use_case.protected_attributes,
                            min_group_rows=gates.fairness_min_group_rows,
                            min_group_positives=gates.fairness_min_group_positives)
            metadata, sections, unfair, notes = {}, {}, [], []
            for rate, tpr in zip(rates, tprs, strict=True):
                a = rate.attribute
                if rate.approval_ratio is not None:
                    metadata[f"{a}_approval_ratio"] = dg.MetadataValue.float(
                        round(float(rate.approval_ratio), 4))
                    if rate.approval_ratio < gates.fairness_ratio_min:
                        unfair.append(f"{a}: approval-rate ratio {rate.approval_ratio:.3f}")
                else:
                    notes.append(f"{a}: approval rates not judged ({len(rate.rate_groups)} "
                                 f"of {len(rate.groups)} groups have "
                                 f"{gates.fairness_min_group_rows} answers)")
                if tpr.tpr_gap is not None:
                    metadata[f"{a}_tpr_gap"] = dg.MetadataValue.float(round(tpr.tpr_gap, 4))
                    if tpr.tpr_gap > gates.tpr_gap_max:
                        unfair.append(f"{a}: TPR gap {tpr.tpr_gap:.3f}")
                else:
                    notes.append(f"{a}: TPR gap not judged ("
                                 + (f"{len(tpr.tpr_groups)} of {len(tpr.groups)} groups have "
                                    f"{gates.fairness_min_group_positives} positives"
                                    if mature else f"outcomes mature on "
                                    f"{perf.matures_on(ds, maturity)}") + ")")
                metadata[f"{a}_groups_judged"] = dg.MetadataValue.int(len(rate.rate_groups))
                sections[a] = rate.groups.to_html(float_format="%.3f", na_rep="not judged")
            summary = {"ds": ds, "rows": len(day), "labeled_rows": len(known),
                       "mature": mature, "findings": unfair, "not_judged": notes,
                       **{k: v.value for k, v in metadata.items()}}
            html = _write(out_root / f"ds={ds}", f"{use_case.title}: fairness on {ds}",
                          summary, sections)
            yield dg.AssetMaterialization(asset_key=context.asset_key, partition=ds, metadata={
                **metadata,
                "rows": dg.MetadataValue.int(len(day)),
                "labeled_rows": dg.MetadataValue.int(len(known)),
                "mature": dg.MetadataValue.bool(mature),
                "within_tolerance": dg.MetadataValue.bool(not unfair),
                "findings": dg.MetadataValue.text("; ".join(unfair) or "none"),
                "not_judged": dg.MetadataValue.text("; ".join(notes) or "none"),
                "report": lakehouse.report_link(html),
                "report_path": dg.MetadataValue.path(str(html)),
            })
            context.log.info(f"{ds}: fairness {'; '.join(unfair) or 'within tolerance'}"
                             + (f" ({'; '.join(notes)})" if notes else ""))

    return [performance_report, fairness_report]
