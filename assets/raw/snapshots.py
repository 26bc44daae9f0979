"""Raw snapshots: each landed file copied immutably, content-hashed, one daily partition."""

import dagster as dg

from lakeloop import keys
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.partitions import backfill_policy, daily_partitions
from lakeloop.raw import snapshots
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    return [_snapshot_asset(use_case, name) for name in use_case.sources]


def _snapshot_asset(use_case: UseCase, source_name: str) -> dg.AssetsDefinition:
    source = use_case.sources[source_name]
    nothing = "no outcomes arrived" if source.role == "labels" else "no rows"

    @dg.asset(
        key=keys.key(use_case, keys.RAW, source_name),
        description=f"Immutable daily snapshots of {source_name} as delivered, hashed.\n\n"
        f"{source.description}",
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.RAW, "python", source.format),
    )
    def raw_snapshot(context: dg.AssetExecutionContext,
                     lakehouse: LakehouseResource) -> dg.MaterializeResult:
        raw_dir = lakehouse.path(context.asset_key)
        try:
            loaded = snapshots.load_window(
                lakehouse.landing(use_case.name, source_name), raw_dir,
                list(context.partition_keys), source.format,
                {name: col.type for name, col in source.columns.items()},
                missing_means_empty=source.missing_file_means_empty)
        except snapshots.WindowRefused as exc:
            for problem in exc.problems:  # in full in the run's log, as a CLI run shows it
                context.log.error(f"{source_name}: {problem}")
            raise dg.Failure(description=f"{source_name}: {exc}", metadata={
                "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in exc.problems))
            }) from None
        new = [s for s in loaded if not s.duplicate_of_current]
        absent = [s.ds for s in loaded if s.absent]
        context.log.info(f"{len(new)} new, {len(loaded) - len(new)} already loaded snapshots"
                         + (f"; no file for {len(absent)} day(s) ({nothing})" if absent else ""))
        metadata = {
            "rows": dg.MetadataValue.int(sum(s.rows for s in loaded)),
            "snapshots": dg.MetadataValue.int(len(loaded)),
            "new_snapshots": dg.MetadataValue.int(len(new)),
            "bytes": dg.MetadataValue.int(sum(s.size_bytes for s in loaded)),
            "snapshot_table": dg.MetadataValue.md(snapshots.table(loaded, nothing)),
            "path": dg.MetadataValue.path(str(raw_dir)),
        }
        if absent:
            metadata["days_without_file"] = dg.MetadataValue.int(len(absent))
            metadata["no_file"] = dg.MetadataValue.text(f"{nothing}: {', '.join(absent)}")
        if len(loaded) == 1:  # a daily run: the partition's own hash, plotted per partition
            metadata["snapshot_sha256"] = dg.MetadataValue.text(loaded[0].sha256)
        extra = sorted({c for s in loaded for c in s.extra_columns})
        if extra:
            metadata["extra_columns"] = dg.MetadataValue.text(", ".join(extra))
            context.log.warning(f"columns outside the contract, carried as text: {extra}")
        return dg.MaterializeResult(metadata=metadata)

    return raw_snapshot
