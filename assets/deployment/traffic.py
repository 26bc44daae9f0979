"""Traffic replay: each day's events sent to the live endpoint, as the front end would.

A demo and backtest option (``serving.replay`` in the use case): with real clients calling
the endpoint the asset does not exist. Locally it turns the landed history into production
traffic, so the inference log, the monitoring reports and the retraining loop run on real
requests. Each request is exactly what the README documents a client sends: the event's key
and time, the entity's key and the request-time fields, so a replayed day lands in its own
partition of the log and joins its outcomes like any client's request.
"""

import dagster as dg

from lakeloop import keys
from lakeloop.deployment.replay import NotLogged, replay, requests_for
from lakeloop.deployment.runtime import Runtime, deployment_url
from lakeloop.deployment.serving import ServingError, ServingResource
from lakeloop.features.store import FeastResource
from lakeloop.lakehouse.tables import LakehouseResource, read_window
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.spark import SparkResource
from lakeloop.tracking import MlflowResource
from lakeloop.usecase import UseCase


def build(use_case: UseCase) -> list[dg.AssetsDefinition]:
    if not (use_case.serving.replay and use_case.serving.online):
        return []
    events_key = keys.key(use_case, keys.LAKEHOUSE, f"silver_{use_case.events_name}")
    gold_key = keys.key(use_case, keys.LAKEHOUSE, use_case.gold_table)
    deployment_key = keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment")
    online_key = keys.key(use_case, keys.FEATURES, "online_features")

    @dg.asset(
        key=keys.key(use_case, keys.DEPLOYMENT, "traffic_replay"),
        description="Each day's events replayed as requests to the live endpoint "
        "(local stand-in for the application front end).",
        deps=[events_key, gold_key, deployment_key, online_key],
        partitions_def=daily_partitions(use_case),
        backfill_policy=backfill_policy(use_case),
        **keys.common(use_case, keys.DEPLOYMENT, "seldon"),
    )
    def traffic_replay(context: dg.AssetExecutionContext, spark: SparkResource,
                       lakehouse: LakehouseResource, serving: ServingResource,
                       mlflow: MlflowResource, feast: FeastResource) -> dg.MaterializeResult:
        start, end = window_of(context)
        try:
            url, model_version = deployment_url(Runtime(use_case, serving, mlflow, lakehouse,
                                                        feast))
        except ServingError as exc:
            raise dg.Failure(str(exc)) from None
        src = use_case.events
        frame = (read_window(spark.session(), lakehouse.table(events_key), start, end)
                 .select(src.key, use_case.entity.join_key, src.event_time,
                         *use_case.features.request).orderBy(src.event_time).toPandas())
        try:
            bodies = requests_for(frame, use_case, use_case.serving.replay_batch_rows)
            done = replay(url, bodies, days=list(context.partition_keys),
                          log_dir=lakehouse.path(keys.key(use_case, keys.MONITORING,
                                                          "requests")))
        except NotLogged as exc:
            raise dg.Failure(str(exc)) from None
        return dg.MaterializeResult(metadata={
            "events": dg.MetadataValue.int(len(frame)),
            "requests": dg.MetadataValue.int(done.requests),
            "errors": dg.MetadataValue.int(done.errors),
            "requests_per_s": dg.MetadataValue.float(
                round(done.requests / max(done.seconds, 1e-9), 1)),
            "latency_p50_ms": dg.MetadataValue.float(round(done.latency_p50_ms, 2)),
            "latency_p99_ms": dg.MetadataValue.float(round(done.latency_p99_ms, 2)),
            "endpoint": dg.MetadataValue.url(url),
            "model_version": dg.MetadataValue.int(int(model_version)),
        })

    return [traffic_replay]
