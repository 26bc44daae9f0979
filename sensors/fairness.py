"""The fairness sensor: a day whose live answers breach the use case's fairness tolerances
beyond sampling noise (see lakeloop.monitoring.fairness) requests one run of the retraining
assets, when the use case says so (monitoring.fairness.retrain), by the rules the drift and
performance sensors follow: one run per day (its run key), the cooldown, the reason in the
run's tags."""

import dagster as dg

from lakeloop import keys
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.usecase import UseCase
from sensors.performance import evaluate_reports, report_tick

TRIGGER = "fairness"


def sensor_name(use_case: UseCase) -> str:
    return f"{use_case.name}_fairness_sensor"


def reason_of(metadata: dict, use_case: UseCase) -> str | None:
    entry, breaches = metadata.get("breached"), metadata.get("breaches")
    if entry is None or not entry.value:
        return None
    return f"fairness breached at level {use_case.monitoring.fairness.alpha:g}: " + (
        breaches.value if breaches is not None else "see the day's report")


def evaluate(records, cursor: dict, use_case: UseCase,
             coverage: dict | None = None) -> tuple[list[dg.RunRequest], dict]:
    return evaluate_reports(records, cursor, use_case, coverage, TRIGGER, reason_of)


def build(use_case: UseCase, retrain_job) -> dg.SensorDefinition:
    report_key = keys.key(use_case, keys.MONITORING, "fairness_report")
    policy = use_case.monitoring.fairness

    @dg.sensor(
        name=sensor_name(use_case), job=retrain_job, minimum_interval_seconds=60,
        description=f"Requests retraining of {use_case.name} when a day's live answers breach "
        f"the fairness tolerances (approval-rate ratio {use_case.gates.fairness_ratio_min}, "
        f"TPR gap {use_case.gates.tpr_gap_max}) at level {policy.alpha:g} (cooldown "
        f"{use_case.monitoring.retrain_cooldown_days} days). Running only when the use case "
        "sets monitoring.fairness.retrain.",
        default_status=(dg.DefaultSensorStatus.RUNNING if policy.retrain
                        else dg.DefaultSensorStatus.STOPPED),
    )
    def fairness_sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        if not policy.retrain:
            return dg.SkipReason(f"{use_case.name} does not retrain on fairness breaches "
                                 "(monitoring.fairness.retrain is false); the reports still "
                                 "show them")
        return report_tick(context, lakehouse, report_key, use_case, evaluate,
                           "fairness reports; no breach")

    return fairness_sensor
