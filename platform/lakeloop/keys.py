"""Asset keys, groups and common asset arguments per use case: ``[use case, layer, noun]``."""

from __future__ import annotations

from typing import Any

import dagster as dg

from lakeloop.usecase import UseCase

RAW, LAKEHOUSE, FEATURES, TRAINING, DEPLOYMENT, MONITORING = (
    "raw", "lakehouse", "features", "training", "deployment", "monitoring",
)
# Not an asset layer: where a use case's audit trail lives, beside its assets' folders.
GOVERNANCE = "governance"


def key(use_case: UseCase, layer: str, noun: str) -> dg.AssetKey:
    return dg.AssetKey([use_case.name, layer, noun])


def group(use_case: UseCase, layer: str) -> str:
    return f"{use_case.name}_{layer}"


def common(use_case: UseCase, layer: str, *kinds: str) -> dict[str, Any]:
    """Arguments every asset of a use case shares: group, owner, kinds, tags."""
    return {
        "group_name": group(use_case, layer),
        "owners": [use_case.owner],
        "kinds": set(kinds),
        "tags": {"use_case": use_case.name, "layer": layer},
    }
