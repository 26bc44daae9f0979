"""Jobs per use case: the daily pipeline (scheduled) and retraining (sensor-launched)."""

import dagster as dg

from lakeloop import keys
from lakeloop.usecase import UseCase


def daily_job_name(use_case: UseCase) -> str:
    return f"{use_case.name}_daily"


def retrain_job_name(use_case: UseCase) -> str:
    return f"{use_case.name}_retrain"


def retrain_selection(use_case: UseCase) -> dg.AssetSelection:
    return dg.AssetSelection.assets(
        keys.key(use_case, keys.TRAINING, "training_set"),
        keys.key(use_case, keys.TRAINING, "candidate_model"),
        keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment"),
    )


def build(use_case: UseCase) -> tuple[list, list[dg.ScheduleDefinition]]:
    partitioned = (
        dg.AssetSelection.groups(*(keys.group(use_case, layer) for layer in
                                   (keys.RAW, keys.LAKEHOUSE, keys.FEATURES, keys.DEPLOYMENT,
                                    keys.MONITORING)))
        - dg.AssetSelection.assets(keys.key(use_case, keys.FEATURES, "feast_registry"),
                                   keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment"))
    )
    daily = dg.define_asset_job(
        daily_job_name(use_case),
        selection=partitioned,
        description=f"{use_case.title}: the day's snapshots through the lakehouse, features, "
        "traffic, inference log and drift report.",
        tags={"use_case": use_case.name},
    )
    retrain = dg.define_asset_job(
        retrain_job_name(use_case),
        selection=retrain_selection(use_case),
        description=f"{use_case.title}: a new training set, candidate, gates and deployment.",
        tags={"use_case": use_case.name},
    )
    schedule = dg.build_schedule_from_partitioned_job(
        daily, hour_of_day=2, minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    return [daily, retrain], [schedule]
