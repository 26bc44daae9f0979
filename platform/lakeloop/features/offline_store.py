"""Feast's Spark offline store with a point-in-time join of one join and one window per view.

Feast's template deduplicates the entity rows (an aggregate), joins them with the feature
rows, picks each entity row's newest candidate in four steps (an aggregate of the newest
created time, a join back, a ``ROW_NUMBER``, another join back) and finally joins the result
back to every entity row, each step a shuffle of the entity rows or their candidates.
The same rows come out of one LEFT JOIN of the entity rows with their candidates and one
window over it, ``DENSE_RANK() = 1`` by (event time, created time), partitioned by the join
keys and Feast's row id (so the window reuses the join's partitioning):

- every candidate tied on both times is kept, as Feast's joins back keep them, and an entity
  row repeated n times comes out n times, as from Feast's final join;
- an entity row with no candidate keeps one row of nulls (the LEFT JOIN), as in Feast's;
- candidates without a created time never match, as in Feast's join on it;
- several views chain: each view's join starts from the previous view's result, so ties in
  two views multiply as Feast's two final joins do.

The candidate query (time bounds, TTL, partition pruning, column names) and the join
conditions are Feast's own template, cut at markers and rejoined here, so a change in Feast's
template fails loudly at import. One difference, on purpose: Feast's row id concatenates the
keys and the time with no separator, so two entity rows whose keys run together (("A", "BC")
and ("AB", "C") at one time) are one row to Feast, which crosses their answers; partitioning by
the keys as well keeps each row's own answer.

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
EOS = "---EOS---"
# Feast's pieces, by where they start and end in its template.
_CANDIDATES = ("    {{ featureview.name }}__subquery AS (",
               "    {{ featureview.name }}__base AS (")
_CONDITIONS = ("        ON TRUE", "\n    ),\n\n    /*\n     2. If the")
_FV = "{{ featureview.name }}"
_CREATED = "{% if featureview.created_timestamp_column %}"
_OUTPUT = ("{% if full_feature_names %}{{ featureview.name }}__{{featureview.field_mapping.get("
           "feature, feature)}}{% else %}{{ featureview.field_mapping.get(feature, feature) }}"
           "{% endif %}")
# The rows a view's join starts from: the entity rows, or the previous view's result.
_PREVIOUS = ("{% if loop.first %}entity_dataframe{% else %}{{ loop.previtem.name }}__cleaned"
             "{% endif %}")
_KEYS = "{% for entity in featureview.entities %}{{ entity }}, {% endfor %}"
_LAST = ("{% if featureviews %}{{ (featureviews | last).name }}__cleaned{% else %}"
         "entity_dataframe{% endif %}")


def _changed() -> RuntimeError:
    return RuntimeError("Feast's Spark point-in-time template changed: review "
                        "lakeloop.features.offline_store against it")


def _piece(template: str, start: str, end: str) -> str:
    at = template.find(start)
    stop = template.find(end, at)
    if at < 0 or stop < 0 or template.count(start) != 1:
        raise _changed()
    return template[at:stop]


def single_pass_template(feast_template: str) -> str:
    """Feast's point-in-time template as one LEFT JOIN and one window per view."""
    if feast_template.count(EOS) != 2:
        raise _changed()
    entity_view = feast_template[:feast_template.index(EOS) + len(EOS)]
    candidates = _piece(feast_template, *_CANDIDATES)
    conditions = _piece(feast_template, *_CONDITIONS)
    return f"""{entity_view}

{{% for featureview in featureviews %}}

CREATE OR REPLACE TEMPORARY VIEW {_FV}__cleaned AS (
    WITH
{candidates}    {_FV}__base AS (
        SELECT entity_dataframe.*,
            subquery.event_timestamp AS {_FV}__lakeloop_event_ts
            {_CREATED}, subquery.created_timestamp AS {_FV}__lakeloop_created_ts{{% endif %}}
            {{% for feature in featureview.features %}}, subquery.{_OUTPUT}{{% endfor %}}
        FROM {_PREVIOUS} AS entity_dataframe
        LEFT JOIN (
            SELECT * FROM {_FV}__subquery
            {_CREATED}WHERE created_timestamp IS NOT NULL{{% endif %}}
        ) AS subquery
{conditions}
    ),

    {_FV}__ranked AS (
        SELECT *,
            DENSE_RANK() OVER(
                PARTITION BY {_KEYS}{_FV}__entity_row_unique_id
                ORDER BY {_FV}__lakeloop_event_ts DESC
                {_CREATED}, {_FV}__lakeloop_created_ts DESC{{% endif %}}
            ) AS {_FV}__lakeloop_rank
        FROM {_FV}__base
    )

    SELECT * FROM {_FV}__ranked WHERE {_FV}__lakeloop_rank = 1
)

{EOS}

{{% endfor %}}

SELECT {{{{ final_output_feature_names | join(', ') }}}}
FROM {_LAST}
"""


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
