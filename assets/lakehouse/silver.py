"""Silver: typed rows that keep their contract; every other row quarantined with its reasons."""

import dagster as dg

from lakeloop import keys
from lakeloop.governance import notices, record
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import quality
from lakeloop.lakehouse import silver as silver_lib
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    return [_silver_asset(use_case, name) for name in use_case.sources]


def check_result(asset_key: dg.AssetKey, outcome: quality.Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=outcome.name, passed=outcome.passed,
        severity=(dg.AssetCheckSeverity.ERROR if outcome.severity == "error"
                  else dg.AssetCheckSeverity.WARN),
        description=outcome.description,
        metadata={k: (dg.MetadataValue.md(v) if isinstance(v, str) and "|" in v else v)
                  for k, v in outcome.metadata.items()})


def _silver_asset(use_case: UseCase, source_name: str) -> dg.AssetsDefinition:
    source = use_case.sources[source_name]
    bronze_key = keys.key(use_case, keys.LAKEHOUSE, f"bronze_{source_name}")
    silver_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{source_name}")
    quarantine_key = keys.key(use_case, keys.LAKEHOUSE, f"quarantine_{source_name}")
    events_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.events_name}")
    common = keys.common(use_case, keys.LAKEHOUSE, "spark", "delta")
    descriptions = quality.descriptions(source)

    @dg.multi_asset(
        name=f"{use_case.name}__silver_{source_name}",
        specs=[
            dg.AssetSpec(silver_key, deps=[bronze_key],
                         description=f"Silver {source_name}: typed, validated against the "
                         "use case's contract, one row per key and snapshot.",
                         **common),
            dg.AssetSpec(quarantine_key, deps=[bronze_key],
                         description=f"Rows of {source_name} that broke a contract rule, with "
                         "every reason and the snapshot they came from.",
                         **common),
        ],
        check_specs=[dg.AssetCheckSpec(name, asset=silver_key, blocking=True,
                                       description=descriptions[name])
                     for name in silver_lib.CHECKS],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        op_tags=pod_tags(use_case, "spark"),
    )
    def silver(context: dg.AssetExecutionContext, spark: SparkResource,
               lakehouse: LakehouseResource):
        start, end = window_of(context)
        session = spark.session()
        tables = silver_lib.Tables(lakehouse.table(bronze_key), lakehouse.table(silver_key),
                                   lakehouse.table(quarantine_key))
        done = silver_lib.write(session, tables, source, start, end,
                                list(context.partition_keys), run_id=context.run.run_id)
        metadata = {
            "rows_in": dg.MetadataValue.int(done.rows_in),
            "rows_accepted": dg.MetadataValue.int(done.rows_accepted),
            "rows_quarantined": dg.MetadataValue.int(done.rows_quarantined),
            "quarantine_rate": dg.MetadataValue.float(
                round(done.rows_quarantined / done.rows_in, 6) if done.rows_in else 0.0),
            "delta_version": dg.MetadataValue.int(done.silver.version),
            "window": dg.MetadataValue.text(f"{start} .. {end}"),
            "per_day": dg.MetadataValue.md(done.outcomes[0].metadata["per_day"]),
            "path": dg.MetadataValue.path(tables.silver),
        }
        if source.role == "labels":  # what the label sensor re-runs
            metadata["event_days"] = dg.MetadataValue.json(silver_lib.event_days(
                session, tables.silver, lakehouse.table(events_key), use_case.events.key,
                start, end))
        yield dg.MaterializeResult(asset_key=silver_key, metadata=metadata)
        yield dg.MaterializeResult(asset_key=quarantine_key, metadata={
            "rows": dg.MetadataValue.int(done.rows_quarantined),
            "rules_broken": dg.MetadataValue.md(done.outcomes[1].metadata["rules_broken"]),
            "examples": dg.MetadataValue.json(done.examples),
            "delta_version": dg.MetadataValue.int(done.quarantine.version),
            "path": dg.MetadataValue.path(tables.quarantine),
        })
        for outcome in done.outcomes:
            if not outcome.passed and outcome.severity == "error":
                run_id = context.run.run_id
                record(lakehouse, use_case, notices.contract_error(
                    use_case.name, silver_key.path[-1], f"{start}..{end}", outcome.name,
                    outcome.description, run_id=run_id, run_url=lakehouse.run_url(run_id)),
                    log=context.log)
            yield check_result(silver_key, outcome)

    return silver
