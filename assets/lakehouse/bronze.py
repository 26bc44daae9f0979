"""Bronze: every snapshot row as delivered (all text), with its lineage columns, in Delta."""

import dagster as dg

from lakeloop import keys
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse import bronze as bronze_lib
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.raw.snapshots import SnapshotError, current
from lakeloop.spark import SparkResource
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    return [_bronze_asset(use_case, name) for name in use_case.sources]


def _bronze_asset(use_case: UseCase, source_name: str) -> dg.AssetsDefinition:
    source = use_case.sources[source_name]
    raw_key = keys.key(use_case, keys.RAW, source_name)

    @dg.asset(
        key=keys.key(use_case, keys.LAKEHOUSE, f"bronze_{source_name}"),
        description=f"Bronze {source_name}: snapshot rows as delivered, as text, with lineage.",
        deps=[raw_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.LAKEHOUSE, "spark", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def bronze(
        context: dg.AssetExecutionContext, spark: SparkResource, lakehouse: LakehouseResource
    ) -> dg.MaterializeResult:
        start, end = window_of(context)
        days = list(context.partition_keys)
        snapshots = [current(lakehouse.path(raw_key), ds) for ds in days]
        missing = [ds for ds, s in zip(days, snapshots, strict=True) if s is None]
        if missing:
            raise SnapshotError(f"raw snapshots not loaded for {missing}: materialize "
                                f"{raw_key.to_user_string()} first")
        path = lakehouse.table(context.asset_key)
        done = bronze_lib.write(spark.session(), path, snapshots, source, days,
                                run_id=context.run.run_id)
        if done.skipped:
            context.log.info(f"already loaded (same snapshot hash), not loaded again: "
                             f"{done.skipped}")
        metadata = {
            "rows": dg.MetadataValue.int(done.commit.rows_written if done.commit else 0),
            "days_loaded": dg.MetadataValue.int(len(done.loaded)),
            "days_already_loaded": dg.MetadataValue.int(len(done.skipped)),
            "delta_version": dg.MetadataValue.int(done.version),
            "path": dg.MetadataValue.path(str(path)),
        }
        if done.commit is not None:
            metadata.update({
                "days_without_file": dg.MetadataValue.int(len(done.absent)),
                "window": dg.MetadataValue.text(f"{start} .. {end}"),
                "snapshot_sha256": dg.MetadataValue.text(
                    ",".join(s.sha256[:16] for s in done.loaded))})
        return dg.MaterializeResult(metadata=metadata)

    return bronze
