"""Replay: landed events sent to the live endpoint as clients would send them (a demo's
stand-in for a front end, or a backtest), and waited for in the request log."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from lakeloop.deployment.seldon.request_log import complete_lines
from lakeloop.deployment.serving import graph_request, request_value
from lakeloop.usecase import UseCase

CONCURRENCY = 4


class NotLogged(RuntimeError):
    """The endpoint answered but did not log every request in time."""


@dataclass(frozen=True)
class Replayed:
    requests: int
    errors: int
    seconds: float
    latency_p50_ms: float
    latency_p99_ms: float


def requests_for(frame, use_case: UseCase, batch_rows: int = 1) -> list[dict]:
    """Each event as a client sends it (see the README): its key and time, the entity's key
    and the request-time fields (the transformer fetches the rest from the feature store);
    ``batch_rows`` consecutive events per request (``serving.replay_batch_rows``)."""
    events = use_case.events
    join_key = use_case.entity.join_key
    instances = []
    for record in frame.to_dict("records"):
        instances.append((str(record[events.key]), {
            events.key: str(record[events.key]),
            events.event_time: record[events.event_time].isoformat() + "Z",
            join_key: str(record[join_key]),
            **{f: request_value(use_case, f, record[f]) for f in use_case.features.request}}))
    out = []
    for i in range(0, len(instances), batch_rows):
        chunk = instances[i:i + batch_rows]
        puid = f"replay-{chunk[0][0]}" + (f"-n{len(chunk)}" if len(chunk) > 1 else "")
        out.append(graph_request([body for _, body in chunk], puid=puid))
    return out


def logged_request_ids(log_dir: Path, days: list[str]) -> set[str]:
    seen: set[str] = set()
    for ds in days:
        for path in (log_dir / f"ds={ds}").glob("*.jsonl"):
            seen.update(json.loads(line)["request_id"] for line in complete_lines(path))
    return seen


def replay(url: str, bodies: list[dict], *, log_dir: Path, days: list[str]) -> Replayed:
    """Send every request (a few at a time), then check that the endpoint logged each one
    it answered."""
    http = requests.Session()
    http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=CONCURRENCY))

    def send(body):
        t0 = time.perf_counter()
        response = http.post(url, json=body, timeout=10)
        return response.status_code, (time.perf_counter() - t0) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(send, bodies))
    seconds = time.perf_counter() - started
    latencies = np.array([ms for _, ms in results]) if results else np.array([0.0])
    wanted = {b["meta"]["puid"] for b, (status, _) in zip(bodies, results, strict=True)
              if status == 200}
    # The log is written before an answer leaves the server: an answered request missing
    # from it is a lost record, not a slow one.
    missing = wanted - logged_request_ids(log_dir, days)
    if missing:
        raise NotLogged(f"{len(missing)} answered request(s) are not in the request log "
                        f"(for example {sorted(missing)[0]})")
    return Replayed(len(bodies), sum(1 for status, _ in results if status != 200), seconds,
                    float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)))
