"""The training set: labelled events with mature outcomes, joined point-in-time to their
features through Feast, written as one Delta version that records what it was built from
(and can be rebuilt from exactly that: Delta time travel)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeloop.features.history import point_in_time
from lakeloop.features.store import feature_service_name
from lakeloop.lakehouse.tables import (
    Commit,
    commit_metadata,
    latest_version,
    overwrite_table,
    read_table,
)
from lakeloop.raw.snapshots import latest_loaded_day
from lakeloop.training.data import EVENT_TIMESTAMP, LABEL
from lakeloop.usecase import UseCase


class CannotRebuild(ValueError):
    """A training-set version that recorded no source versions."""


@dataclass(frozen=True)
class Sources:
    """Where a training set's inputs live."""

    labeled: str
    gold: str
    gold_uri: str
    raw_labels: Path


@dataclass
class TrainingSet:
    commit: Commit
    versions: dict[str, int]
    feature_service: str
    labels_as_of: str | None
    mature_until: str | None
    immature_excluded: int
    stats: dict[str, Any]
    seconds: float
    rebuilt_from: int | None = None


def mature_until(labels_as_of: str | None, use_case: UseCase) -> str | None:
    """The last event day whose outcomes are mature, given the newest day of outcomes."""
    if labels_as_of is None:
        return None
    return (dt.date.fromisoformat(labels_as_of)
            - dt.timedelta(days=use_case.label.maturity_days)).isoformat()


def entity_rows(labeled, use_case: UseCase, last_mature_day: str | None):
    """Labelled events with mature outcomes in the training window, as Feast's entity frame.

    An event younger than the use case's ``label.maturity_days`` is left out even when its
    outcome is already known: the outcomes that arrive first (repayments) would stand in for
    all of them."""
    from pyspark.sql import functions as F

    src = use_case.events
    if last_mature_day is None:
        labeled = labeled.limit(0)
    else:
        labeled = labeled.where(F.to_date(F.col(src.event_time))
                                <= F.lit(last_mature_day).cast("date"))
    rows = labeled.where(F.col(LABEL).isNotNull()).select(
        F.col(use_case.entity.join_key),
        F.col(src.event_time).alias(EVENT_TIMESTAMP),
        F.col(src.key),
        F.col(LABEL),
        *[F.col(c) for c in use_case.features.request],
        *[F.col(c) for c in use_case.protected_attributes],
        F.col("_snapshot_hash"),
    )
    newest = rows.agg(F.max(EVENT_TIMESTAMP)).first()[0]
    if newest is None:
        return rows
    since = F.lit(newest) - F.expr(f"INTERVAL {use_case.model.training_window_days} DAYS")
    return rows.where(F.col(EVENT_TIMESTAMP) >= since)


def build(session, path: str, sources: Sources, use_case: UseCase, *, run_id: str,
          repo_path: str | None = None, rebuild_version: int | None = None) -> TrainingSet:
    """Build (or rebuild ``rebuild_version`` of) the training set at ``path``."""
    from pyspark.sql import functions as F

    if rebuild_version is not None:
        recorded = commit_metadata(session, path, rebuild_version)
        if "source_versions" not in recorded:
            raise CannotRebuild(f"training_set version {rebuild_version} recorded no source "
                                "versions; it cannot be rebuilt exactly")
        versions = {k: int(v) for k, v in recorded["source_versions"].items()}
        labels_as_of = recorded.get("labels_as_of")
    else:
        versions = {use_case.labeled_table: latest_version(session, sources.labeled),
                    use_case.gold_table: latest_version(session, sources.gold)}
        labels_as_of = latest_loaded_day(sources.raw_labels)
    labeled = read_table(session, sources.labeled, versions[use_case.labeled_table])
    last_mature = mature_until(labels_as_of, use_case)
    service = feature_service_name(use_case)
    started = time.perf_counter()
    # Feast reads the gold table at the version recorded above, never "whatever is latest
    # by then": the lineage below is exactly what was read.
    with point_in_time(session, use_case, entity_rows(labeled, use_case, last_mature),
                       gold_uri=sources.gold_uri, gold_version=versions[use_case.gold_table],
                       feature_service=service, repo_path=repo_path) as df:
        lineage = {"source_versions": versions, "feature_service": service,
                   "rebuilt_from": rebuild_version, "labels_as_of": labels_as_of,
                   "maturity_days": use_case.label.maturity_days}
        commit = overwrite_table(df, path, run_id=run_id, lineage=lineage)
    seconds = time.perf_counter() - started
    known = labeled.where(F.col(LABEL).isNotNull())
    immature = (known.where(F.to_date(F.col(use_case.events.event_time))
                            > F.lit(last_mature).cast("date")).count()
                if last_mature else known.count())
    totals = read_table(session, path, commit.version).agg(
        F.count("*").alias("rows"), F.sum(LABEL).alias("positives"),
        F.min(EVENT_TIMESTAMP).alias("first"), F.max(EVENT_TIMESTAMP).alias("last"),
    ).first()
    assert totals is not None, "a global aggregation always returns one row"
    stats = totals.asDict()
    return TrainingSet(commit, versions, service, labels_as_of, last_mature, immature, stats,
                       seconds, rebuild_version)
