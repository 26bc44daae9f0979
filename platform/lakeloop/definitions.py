"""The composition root: every use case's subgraph, jobs, schedules and sensors."""

from __future__ import annotations

import warnings

import dagster as dg

from lakeloop.catalog import with_code_references
from lakeloop.resources import build_resources
from lakeloop.settings import Settings
from lakeloop.usecase import UseCase, load_use_cases

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def use_case_assets(use_case: UseCase) -> list:
    from assets.deployment import batch, promotion, seldon, traffic
    from assets.features import feast_store
    from assets.lakehouse import bronze, gold, labeled, silver
    from assets.monitoring import drift, inference_log, quality
    from assets.raw import snapshots
    from assets.training import model, training_set

    modules = (snapshots, bronze, silver, gold, labeled, feast_store, training_set, model,
               promotion, seldon, traffic, batch, inference_log, drift, quality)
    return [a for module in modules for a in module.build(use_case)]


def build_definitions(settings: Settings) -> dg.Definitions:
    from jobs import use_case_jobs
    from jobs.approvals import approval_job, rollback_job
    from sensors import approvals as approval_sensor
    from sensors import drift as drift_sensor
    from sensors import fairness as fairness_sensor
    from sensors import labels as label_sensor
    from sensors import landing as landing_sensor
    from sensors import performance as performance_sensor
    from sensors import run_failures

    assets: list[dg.AssetsDefinition | dg.AssetSpec] = []
    checks: list[dg.AssetChecksDefinition] = []
    jobs, schedules, sensors = [], [], []
    use_cases = load_use_cases(settings.use_case_dirs)
    for use_case in use_cases:
        for item in use_case_assets(use_case):
            (checks if isinstance(item, dg.AssetChecksDefinition) else assets).append(item)
        uc_jobs, uc_schedules = use_case_jobs.build(use_case)
        jobs += [*uc_jobs, approval_job(use_case), rollback_job(use_case)]
        schedules += uc_schedules
        by_name = {j.name: j for j in uc_jobs}
        sensors += [
            drift_sensor.build(use_case, by_name[use_case_jobs.retrain_job_name(use_case)]),
            performance_sensor.build(use_case,
                                     by_name[use_case_jobs.retrain_job_name(use_case)]),
            fairness_sensor.build(use_case, by_name[use_case_jobs.retrain_job_name(use_case)]),
            label_sensor.build(use_case),
            landing_sensor.build(use_case, by_name[use_case_jobs.ingest_job_name(use_case)],
                                 settings),
            approval_sensor.build(use_case, by_name[use_case_jobs.promote_job_name(use_case)]),
        ]
    sensors.append(run_failures.build(use_cases))
    return dg.Definitions(
        assets=with_code_references(assets),
        asset_checks=checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=build_resources(settings),
        executor=executor_for(settings),
    )


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    if settings.executor == "k8s":  # a pod per step (dagster-k8s)
        from lakeloop.k8s import k8s_executor

        return k8s_executor(settings.image)
    return (dg.in_process_executor if settings.executor == "in_process"
            else dg.multiprocess_executor)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
