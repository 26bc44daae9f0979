"""Jobs per use case: ingest (landing sensor), daily (scheduled) and retrain (drift sensor)."""

import dagster as dg

from lakeloop import keys
from lakeloop.usecase import UseCase


def ingest_job_name(use_case: UseCase) -> str:
    return f"{use_case.name}_ingest"


def daily_job_name(use_case: UseCase) -> str:
    return f"{use_case.name}_daily"


def retrain_job_name(use_case: UseCase) -> str:
    return f"{use_case.name}_retrain"


def promote_job_name(use_case: UseCase) -> str:
    return f"{use_case.name}_promote"


def ingest_selection(use_case: UseCase) -> dg.AssetSelection:
    """A day's snapshots through raw, the lakehouse and the online store."""
    return (dg.AssetSelection.groups(keys.group(use_case, keys.RAW),
                                     keys.group(use_case, keys.LAKEHOUSE))
            | dg.AssetSelection.assets(keys.key(use_case, keys.FEATURES, "online_features")))


def promote_selection(use_case: UseCase) -> dg.AssetSelection:
    """The champion, and (served online) its deployment."""
    deployed = [keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment")] \
        if use_case.serving.online else []
    return dg.AssetSelection.assets(keys.key(use_case, keys.DEPLOYMENT, "champion"), *deployed)


def serving_keys(use_case: UseCase) -> list[dg.AssetKey]:
    """What a production day serves: the replayed traffic (a demo or backtest) and its log,
    the batch scores, or both."""
    out = []
    if use_case.serving.online:
        if use_case.serving.replay:
            out.append(keys.key(use_case, keys.DEPLOYMENT, "traffic_replay"))
        out.append(keys.key(use_case, keys.MONITORING, "inference_log"))
    if use_case.serving.batch:
        out.append(keys.key(use_case, keys.DEPLOYMENT, "batch_scores"))
    return out


def retrain_selection(use_case: UseCase) -> dg.AssetSelection:
    """A new training set, a candidate and its gates, and the challenger; a use case that
    needs no approval goes on to champion and deployment in the same run."""
    selection = dg.AssetSelection.assets(
        keys.key(use_case, keys.TRAINING, "training_set"),
        keys.key(use_case, keys.TRAINING, "candidate_model"),
        keys.key(use_case, keys.DEPLOYMENT, "challenger"),
    )
    return selection if use_case.sensitive else selection | promote_selection(use_case)


def build(use_case: UseCase) -> tuple[list, list[dg.ScheduleDefinition]]:
    ingest = dg.define_asset_job(
        ingest_job_name(use_case),
        selection=ingest_selection(use_case),
        description=f"{use_case.title}: snapshots through raw, bronze, silver, gold, labels "
        "and the online store (what a new or late snapshot needs).",
        tags={"use_case": use_case.name},
    )
    daily = dg.define_asset_job(
        daily_job_name(use_case),
        selection=ingest_selection(use_case) | dg.AssetSelection.assets(
            *serving_keys(use_case),
            keys.key(use_case, keys.MONITORING, "drift_report"),
            keys.key(use_case, keys.MONITORING, "performance_report"),
            keys.key(use_case, keys.MONITORING, "fairness_report")),
        description=f"{use_case.title}: the day's ingest, "
        + ("replayed traffic and " if use_case.serving.replay and use_case.serving.online
           else "") + f"{use_case.serving.mode} scores, and monitoring reports (drift, "
        "performance, fairness).",
        tags={"use_case": use_case.name},
    )
    retrain = dg.define_asset_job(
        retrain_job_name(use_case),
        selection=retrain_selection(use_case),
        description=f"{use_case.title}: a new training set, candidate, gates and challenger"
        + (" (promotion waits for approval)." if use_case.sensitive else ", then deployment."),
        # lakeloop/step: the run queue limits concurrent training runs (infra/helm values).
        tags={"use_case": use_case.name, "lakeloop/step": "train"},
    )
    promote = dg.define_asset_job(
        promote_job_name(use_case),
        selection=promote_selection(use_case),
        description=f"{use_case.title}: the (approved) challenger becomes champion and is "
        "deployed.",
        tags={"use_case": use_case.name},
    )
    schedule = dg.build_schedule_from_partitioned_job(
        daily, hour_of_day=2, minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    return [ingest, daily, retrain, promote], [schedule]
