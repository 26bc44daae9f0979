"""Drift reports: each day's live traffic against the held-out rows of the model that
answered, judged at a false-alarm rate that holds at any volume."""

import datetime as dt

import dagster as dg

from lakeloop import keys
from lakeloop.governance import record
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.monitoring import alarms, drift
from lakeloop.monitoring.answers import answer_keys, live_answers
from lakeloop.monitoring.reference import load_reference
from lakeloop.partitions import backfill_policy, daily_partitions
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def metadata(verdict: drift.DriftVerdict, version: str, ts_version: int,
             lakehouse: LakehouseResource) -> dict:
    out = {
        "drifted": dg.MetadataValue.bool(verdict.drifted),
        "judged": dg.MetadataValue.bool(verdict.judged),
        "drift_share": dg.MetadataValue.float(round(verdict.drift_share, 4)),
        "drifted_features": dg.MetadataValue.int(verdict.drifted_features),
        "required_features": dg.MetadataValue.int(verdict.required_features),
        "alpha": dg.MetadataValue.float(verdict.alpha),
        "rows": dg.MetadataValue.int(verdict.rows),
        "window_days": dg.MetadataValue.int(len(verdict.days)),
        "window": dg.MetadataValue.text(f"{verdict.days[0]} .. {verdict.days[-1]}"),
        "reference_rows": dg.MetadataValue.int(verdict.reference_rows),
        "model_version": dg.MetadataValue.int(int(version)),
        "reference_training_set_version": dg.MetadataValue.int(ts_version),
        "verdict": dg.MetadataValue.text(verdict.explanation()),
    }
    if verdict.judged:
        prediction = verdict.columns.get(drift.PREDICTION)
        out.update({
            "prediction_drifted": dg.MetadataValue.bool(bool(verdict.prediction_drifted)),
            "prediction_p_value": dg.MetadataValue.float(float(prediction.p_value)),
            "prediction_shift_sd": dg.MetadataValue.float(round(prediction.effect, 4)),
            "columns": dg.MetadataValue.md(drift.table(verdict)),
            "report": lakehouse.report_link(verdict.html),
            "report_path": dg.MetadataValue.path(verdict.html),
            "report_json": dg.MetadataValue.path(verdict.json),
        })
    return out


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    rule = use_case.monitoring.drift
    features = list(use_case.feature_names)
    categorical = use_case.categorical_features

    @dg.asset(
        key=keys.key(use_case, keys.MONITORING, "drift_report"),
        description="Data and prediction drift per day: live requests against the held-out "
        "rows of the model that answered.\n\nA two-sample test per column at a day-level "
        "false-alarm rate, and an effect-size floor; small days are judged with the days "
        "before them. Evidently's HTML report and JSON.",
        deps=answer_keys(use_case),
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        output_required=False,
        **keys.common(use_case, keys.MONITORING, "spark", "evidently"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def drift_report_asset(context: dg.AssetExecutionContext, spark: SparkResource,
                           lakehouse: LakehouseResource, mlflow: MlflowResource):
        session = spark.session()
        first = dt.date.fromisoformat(context.partition_keys[0])
        since = (first - dt.timedelta(days=rule.max_window_days - 1)).isoformat()
        answers = live_answers(session, lakehouse, use_case, since, context.partition_keys[-1])
        references = drift.References(
            lambda version: load_reference(session, lakehouse, mlflow, use_case, version),
            lambda frame: drift.plan_columns(frame, features, categorical))
        out_root = lakehouse.path(context.asset_key)
        days_judged, jobs = drift.plan_days(
            answers, list(context.partition_keys), rule, len(features), references, out_root,
            lambda ds: context.log.warning(
                f"{ds}: no live requests were logged; no drift report"))
        rendered = drift.reports(jobs)
        for ds, version, judged in days_judged:
            verdict = judged if judged is not None else next(rendered)
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=ds,
                metadata=metadata(verdict, version,
                                  references[version].training_set_version, lakehouse))
            context.log.info(verdict.explanation())
            record(lakehouse, use_case, alarms.drift(
                use_case, verdict, version, report_url=lakehouse.report_href(verdict.html),
                run_id=context.run.run_id, run_url=lakehouse.run_url(context.run.run_id)),
                log=context.log)

    return [drift_report_asset]
