"""The training set: labelled events joined point-in-time to their features through Feast."""

import dagster as dg
from pydantic import Field

from lakeloop import keys
from lakeloop.features.store import FeastResource
from lakeloop.k8s import pod_tags
from lakeloop.lakehouse.tables import LakehouseResource
from lakeloop.spark import SparkResource
from lakeloop.training import training_set as training_set_lib
from lakeloop.usecase import UseCase


class TrainingSetConfig(dg.Config):
    """Leave empty to read the latest data; name an earlier training-set version to rebuild
    it from exactly the table versions it recorded (Delta time travel)."""

    rebuild_version: int | None = Field(
        default=None, description="a training_set Delta version to rebuild exactly")


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    labeled_key = keys.key(use_case, keys.LAKEHOUSE, use_case.labeled_table)
    gold_key = keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table)
    registry_key = keys.key(use_case, keys.FEATURES, "feast_registry")
    raw_labels_key = keys.key(use_case, keys.RAW, use_case.labels_name)

    @dg.asset(
        key=keys.key(use_case, keys.TRAINING, "training_set"),
        description="Labelled events with their features as of each event's own time, "
        "versioned in Delta.\n\nPoint-in-time correct, through Feast.",
        deps=[dg.AssetDep(labeled_key, partition_mapping=dg.AllPartitionMapping()),
              dg.AssetDep(gold_key, partition_mapping=dg.AllPartitionMapping()),
              registry_key],
        **keys.common(use_case, keys.TRAINING, "feast", "spark", "delta"),
        op_tags=pod_tags(use_case, "spark"),
    )
    def training_set(context: dg.AssetExecutionContext, config: TrainingSetConfig,
                     spark: SparkResource, feast: FeastResource,
                     lakehouse: LakehouseResource) -> dg.MaterializeResult:
        path = lakehouse.table(context.asset_key)
        sources = training_set_lib.Sources(
            lakehouse.table(labeled_key), lakehouse.table(gold_key), lakehouse.uri(gold_key),
            lakehouse.path(raw_labels_key))
        try:
            built = training_set_lib.build(
                spark.session(), path, sources, use_case, run_id=context.run.run_id,
                repo_path=feast.repo_path or None, rebuild_version=config.rebuild_version)
        except training_set_lib.CannotRebuild as exc:
            raise dg.Failure(str(exc)) from None
        stats = built.stats
        return dg.MaterializeResult(metadata={
            "rows": dg.MetadataValue.int(int(stats["rows"])),
            "positives": dg.MetadataValue.int(int(stats["positives"] or 0)),
            "window": dg.MetadataValue.text(f"{stats['first']} .. {stats['last']}"),
            "delta_version": dg.MetadataValue.int(built.commit.version),
            "feature_service": dg.MetadataValue.text(built.feature_service),
            "source_versions": dg.MetadataValue.json(built.versions),
            "labels_as_of": dg.MetadataValue.text(built.labels_as_of or "no outcomes loaded"),
            "mature_until": dg.MetadataValue.text(built.mature_until or "none"),
            "immature_excluded": dg.MetadataValue.int(built.immature_excluded),
            "rebuilt_from_version": dg.MetadataValue.int(built.rebuilt_from)
            if built.rebuilt_from is not None else dg.MetadataValue.text("no"),
            "retrieval_s": dg.MetadataValue.float(round(built.seconds, 3)),
            "path": dg.MetadataValue.path(str(path)),
        })

    return [training_set]
