"""Traffic replay: each day's events sent to the live endpoint, as the front end would.

A demo and backtest option (``serving.replay`` in the use case): with real clients calling
the endpoint the asset does not exist. Locally it turns the landed history into production
traffic, so the inference log, the monitoring reports and the retraining loop run on real
requests. Each request is exactly what the README documents a client sends: the event's key
and time, the entity's key and the request-time fields, so a replayed day lands in its own
partition of the log and joins its outcomes like any client's request.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import numpy as np
import requests

from lakeloop import keys
from lakeloop.deployment import Runtime, ensure_champion, render
from lakeloop.features import FeastResource
from lakeloop.lakehouse import LakehouseResource, read_window
from lakeloop.partitions import backfill_policy, daily_partitions, window_of
from lakeloop.serving import ServingResource, graph_request, request_value
from lakeloop.spark import SparkResource
from lakeloop.tracking import CHAMPION, MlflowResource
from lakeloop.usecase import UseCase

REPLAY_CONCURRENCY = 4


def replay_requests(frame, use_case: UseCase) -> list[dict]:
    """Each event as a client sends it (see the README): its key and time, the entity's key
    and the request-time fields (the transformer fetches the rest from the feature store)."""
    events = use_case.events
    join_key = use_case.entity.join_key
    out = []
    for record in frame.to_dict("records"):
        instance = {events.key: str(record[events.key]),
                    events.event_time: record[events.event_time].isoformat() + "Z",
                    join_key: str(record[join_key]),
                    **{f: request_value(use_case, f, record[f])
                       for f in use_case.features.request}}
        out.append(graph_request([instance], puid=f"replay-{record[events.key]}"))
    return out



def logged_request_ids(log_dir: Path, days: list[str]) -> set[str]:
    seen = set()
    for ds in days:
        for path in (log_dir / f"ds={ds}").glob("*.jsonl"):
            with path.open(encoding="utf-8") as fh:
                seen.update(json.loads(line)["request_id"] for line in fh if line.strip())
    return seen


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
        rt = Runtime(use_case, serving, mlflow, lakehouse, feast)
        if serving.kubernetes:  # the cluster's deployment, through its ingress route
            champion = mlflow.version_by_alias(use_case.name, CHAMPION)
            if champion is None:
                raise dg.Failure(f"{use_case.name} has no champion to send traffic to")
            url = serving.deployment_url(render(rt, "champion", str(champion.version)))
            model_version = str(champion.version)
        else:
            endpoint, _ = ensure_champion(rt)
            url, model_version = endpoint.predictions_url, endpoint.model_version
        session = spark.session()
        src = use_case.events
        frame = (read_window(session, lakehouse.table(events_key), start, end)
                 .select(src.key, use_case.entity.join_key, src.event_time,
                         *use_case.features.request)
                 .orderBy(src.event_time).toPandas())
        bodies = replay_requests(frame, use_case)

        http = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=REPLAY_CONCURRENCY)
        http.mount("http://", adapter)

        def send(body):
            t0 = time.perf_counter()
            response = http.post(url, json=body, timeout=10)
            return response.status_code, (time.perf_counter() - t0) * 1000

        started = time.perf_counter()
        with ThreadPoolExecutor(REPLAY_CONCURRENCY) as pool:
            results = list(pool.map(send, bodies))
        seconds = time.perf_counter() - started
        errors = sum(1 for status, _ in results if status != 200)
        latencies = np.array([ms for _, ms in results]) if results else np.array([0.0])

        log_dir = lakehouse.path(keys.key(use_case, keys.MONITORING, "requests"))
        wanted = {b["meta"]["puid"] for b, (status, _) in zip(bodies, results, strict=True)
                  if status == 200}
        deadline = time.monotonic() + 30
        while wanted - logged_request_ids(log_dir, context.partition_keys):
            if time.monotonic() > deadline:
                raise dg.Failure("the endpoint did not log every replayed request within 30s")
            time.sleep(0.25)
        return dg.MaterializeResult(metadata={
            "requests": dg.MetadataValue.int(len(bodies)),
            "errors": dg.MetadataValue.int(errors),
            "requests_per_s": dg.MetadataValue.float(round(len(bodies) / max(seconds, 1e-9), 1)),
            "latency_p50_ms": dg.MetadataValue.float(round(float(np.percentile(latencies, 50)), 2)),
            "latency_p99_ms": dg.MetadataValue.float(round(float(np.percentile(latencies, 99)), 2)),
            "endpoint": dg.MetadataValue.url(url),
            "model_version": dg.MetadataValue.int(int(model_version)),
        })

    return [traffic_replay]
