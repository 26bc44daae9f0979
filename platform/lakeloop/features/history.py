"""Point-in-time feature retrieval: Feast's historical retrieval over the gold Delta table,
pinned to a gold version, as the training set and batch scores read features."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path


@contextlib.contextmanager
def point_in_time(session, use_case, entity_df, *, gold_uri: str, gold_version: int,
                  feature_service: str, repo_path: str | None):
    """Each row of ``entity_df`` (entity key, ``event_timestamp``, ...) with the entity's
    features as of its own time, through the use case's Feast feature service; use the
    frame inside the block (Feast's store and Spark settings live as long as it)."""
    from lakeloop.features.store import (
        hand_written_objects,
        pinned_store,
        spark_guard,
        use_case_objects,
    )

    objects = use_case_objects(use_case, gold_uri, gold_version=gold_version)
    extra = hand_written_objects(Path(repo_path), use_case) if repo_path else []
    with tempfile.TemporaryDirectory() as tmp, spark_guard(session):
        store = pinned_store([*objects, *extra], Path(tmp))
        service = store.get_feature_service(feature_service)
        yield store.get_historical_features(entity_df=entity_df,
                                            features=service).to_spark_df()
