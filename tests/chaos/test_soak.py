"""A soak of the local inference graph: ten minutes (LAKELOOP_SOAK_S) of steady traffic at
70% of the capacity measured just before, through executor, transformer, feature server and
model. Zero 5xx, every answered request in the request log, and no serving process's
resident memory grows by 10% or more after the warm-up. The figures are printed (run with
-s) and written to LAKELOOP_SOAK_REPORT when it is set."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from lakeloop import keys
from lakeloop.deployment.runtime import component_name, endpoint_name
from lakeloop.deployment.seldon.request_log import complete_lines
from lakeloop.tracking import CHAMPION

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
SOAK_S = float(os.environ.get("LAKELOOP_SOAK_S", "600"))
WARM_UP_S = min(60.0, SOAK_S / 5)
CAPACITY_S = 15.0
CLIENTS = 4
LOAD = 0.7  # of the measured capacity
MAX_GROWTH = 0.10


def _send(http, url, sample, event_key, key):
    body = {"jsonData": {**sample, event_key: key}, "meta": {"puid": key}}
    try:
        response = http.post(url, json=body, timeout=15)
    except requests.RequestException as exc:
        return type(exc).__name__
    if response.status_code == 200:
        return 200
    return f"{response.status_code} {response.text[:300]}"  # what went wrong, in the report


def _run(url, sample, event_key, run, seconds, rate=None):
    """CLIENTS clients for ``seconds``: as fast as they can (rate None) or paced to ``rate``
    requests a second in all. Returns {key: status}."""
    results: dict[str, object] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(c):
        http = requests.Session()
        interval = CLIENTS / rate if rate else 0.0
        start, n = time.monotonic(), 0
        while time.monotonic() < stop_at:
            if interval:  # paced: wait for this request's slot (none when running late)
                time.sleep(max(0.0, start + n * interval - time.monotonic()))
            key = f"{run}-{c}-{n}"
            status = _send(http, url, sample, event_key, key)
            with lock:
                results[key] = status
            n += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _serving_processes(rt) -> dict[str, psutil.Process]:
    uc = rt.use_case
    pids = {"executor": rt.serving.endpoint(endpoint_name(uc)).pid,
            "model": rt.serving.endpoint(component_name(uc, CHAMPION, "model")).pid,
            "transformer": rt.serving.endpoint(component_name(uc, CHAMPION, "transformer")).pid,
            "feature_server": rt.feast.ensure_feature_server().pid}
    return {name: psutil.Process(pid) for name, pid in pids.items()}


def _rss(process: psutil.Process) -> int:
    """Resident memory of a component: its process and its workers."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def test_a_steady_soak_has_no_errors_loses_no_record_and_does_not_grow(live):
    rt, url, sample = live
    key = rt.use_case.events.key
    stamp = time.time_ns()
    burst = _run(url, sample, key, f"capacity-{stamp}", CAPACITY_S)
    capacity = sum(1 for s in burst.values() if s == 200) / CAPACITY_S
    rate = LOAD * capacity
    processes = _serving_processes(rt)

    warm = _run(url, sample, key, f"warm-{stamp}", WARM_UP_S, rate)
    before = {name: _rss(p) for name, p in processes.items()}
    soak = _run(url, sample, key, f"soak-{stamp}", SOAK_S - WARM_UP_S, rate)
    after = {name: _rss(p) for name, p in processes.items()}

    results = {**warm, **soak}
    statuses: dict[str, int] = {}
    for status in results.values():
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    log_dir = Path(rt.lakehouse.path(keys.key(rt.use_case, keys.MONITORING, "requests")))
    logged = {json.loads(line)["request_id"] for path in log_dir.glob("ds=*/*.jsonl")
              for line in complete_lines(path)}
    answered = {k for k, s in results.items() if s == 200}
    growth = {name: (after[name] - before[name]) / before[name] for name in before}
    report = {
        "capacity_rps": round(capacity, 1), "rate_rps": round(rate, 1),
        "achieved_rps": round(len(results) / SOAK_S, 1), "seconds": SOAK_S,
        "requests": len(results), "statuses": statuses,
        "not_logged": len(answered - logged),
        "rss_mib_after_warm_up": {n: round(v / 2**20, 1) for n, v in before.items()},
        "rss_mib_at_end": {n: round(v / 2**20, 1) for n, v in after.items()},
        "rss_growth": {n: round(g, 4) for n, g in growth.items()},
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    if os.environ.get("LAKELOOP_SOAK_REPORT"):
        Path(os.environ["LAKELOOP_SOAK_REPORT"]).write_text(json.dumps(report, indent=2))
    assert statuses == {"200": len(results)}, report
    assert report["not_logged"] == 0, report
    assert all(g < MAX_GROWTH for g in growth.values()), report
