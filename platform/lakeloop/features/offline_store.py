"""Feast's Spark offline store with a single-pass point-in-time join.

Feast's template finds each entity row's latest feature row in four steps over the joined
rows: the newest ``created_timestamp`` per event time (an aggregate), joined back, then a
``ROW_NUMBER`` for the newest event time, then joined back again for the feature values.
Each step is a shuffle of every entity row's candidates. The same rows come out of one
window: every candidate whose (event time, created time) is the newest of its entity row,
``DENSE_RANK() = 1``. Ties on both times keep every tied row, as Feast's joins back do, and
rows without a created time never match, as in Feast's join on it. Everything else (the
entity frame, the time bounds, the TTL, the column names, the final joins) is Feast's own
template, cut and rejoined here, so a change in Feast's template fails loudly at import.

Selected in feature_store.yaml / RepoConfig with
``type: lakeloop.features.offline_store.SinglePassSparkOfflineStore``.
"""

from __future__ import annotations

import threading
from typing import Literal

from feast.infra.offline_stores.contrib.spark_offline_store import spark as feast_spark
from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
    SparkOfflineStore,
    SparkOfflineStoreConfig,
)

STORE_TYPE = "lakeloop.features.offline_store.SinglePassSparkOfflineStore"

# Feast's per-view steps, from the aggregate to the last join back, replaced by one window.
_FEAST_STEPS_START = "    /*\n     2. If the `created_timestamp_column` has been set"
_FEAST_STEPS_END = "\n)\n\n---EOS---\n\n{% endfor %}"
_SINGLE_PASS = """    {{ featureview.name }}__ranked AS (
        SELECT *,
            DENSE_RANK() OVER(
                PARTITION BY {{featureview.name}}__entity_row_unique_id
                ORDER BY event_timestamp DESC
                {% if featureview.created_timestamp_column %}, created_timestamp DESC{% endif %}
            ) AS lakeloop__rank
        FROM {{ featureview.name }}__base
        {% if featureview.created_timestamp_column %}WHERE created_timestamp IS NOT NULL{% endif %}
    )

    SELECT * FROM {{ featureview.name }}__ranked WHERE lakeloop__rank = 1"""


def single_pass_template(feast_template: str) -> str:
    """Feast's point-in-time template with its dedup-and-join-back steps as one window."""
    start = feast_template.find(_FEAST_STEPS_START)
    end = feast_template.find(_FEAST_STEPS_END, start)
    if start < 0 or end < 0 or feast_template.count(_FEAST_STEPS_START) != 1:
        raise RuntimeError("Feast's Spark point-in-time template changed: review "
                           "lakeloop.features.offline_store against it")
    return feast_template[:start] + _SINGLE_PASS + feast_template[end:]


FEAST_TEMPLATE = feast_spark.MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN
TEMPLATE = single_pass_template(FEAST_TEMPLATE)
_RENDERING = threading.Lock()


class SinglePassSparkOfflineStoreConfig(SparkOfflineStoreConfig):
    type: Literal["lakeloop.features.offline_store.SinglePassSparkOfflineStore"] = STORE_TYPE  # type: ignore[assignment]


class SinglePassSparkOfflineStore(SparkOfflineStore):
    @staticmethod
    def get_historical_features(*args, **kwargs):
        # Feast renders its query from the module's template inside this call (the job
        # keeps the rendered text): the template is ours for the call's duration only. The
        # swap is process-wide: a stock Spark offline store called at that moment in this
        # process would render ours too (Lakeloop configures none). Not reentrant.
        with _RENDERING:
            feast_spark.MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN = TEMPLATE
            try:
                return SparkOfflineStore.get_historical_features(*args, **kwargs)
            finally:
                feast_spark.MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN = FEAST_TEMPLATE
