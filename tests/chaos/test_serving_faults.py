"""Chaos on the running inference graph: each of its processes (the model server, the
transformer, the executor and Feast's feature server) is killed with SIGKILL, as a crashed
container would be, and the online store the transformer reads is locked by a writer, while
clients send a steady stream of requests.

What must hold, for each:
- every request that got an answer is in the request log afterwards (nothing answered lost);
- while the component is down, a client gets a clear 503 naming what is unavailable (or, for
  the executor itself, a refused connection: nothing listens), and never waits longer than
  the graph's configured timeouts;
- the endpoint answers again once the platform restarts what died (``ensure_champion``, what
  ``lakeloop serve`` runs), without restarting anything else by hand;
- the local transformer reads the SQLite online store in its own process: Feast's feature
  server (still run for other clients) dying costs the graph nothing; a writer holding the
  store's file past the lookup timeout is a 503 FEATURE_STORE_UNAVAILABLE until it lets go.

Every wait is for an event (answers counted, failures counted), never for an amount of time.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from lakeloop import keys
from lakeloop.deployment.runtime import Runtime, component_name, endpoint_name, ensure_champion
from lakeloop.deployment.seldon.request_log import complete_lines
from lakeloop.tracking import CHAMPION

pytestmark = [pytest.mark.chaos, pytest.mark.integration]
STEP_TIMEOUT_S = 5.0  # the executor's per-step timeout (its config's timeout_s default)
CLIENT_LIMIT_S = 2 * STEP_TIMEOUT_S + 2.0  # two steps, and the client's own overhead
CLIENTS = 2


@dataclass
class Outcome:
    key: str
    status: int | None  # None: no HTTP answer at all (connection refused or reset)
    reason: str
    seconds: float
    info: str = ""


@dataclass
class Traffic:
    """Clients sending the sample request in a loop, each with its own event key."""

    url: str
    sample: dict
    event_key: str
    run: str
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Traffic:
        self.threads = [threading.Thread(target=self._client, args=(c,), daemon=True)
                        for c in range(CLIENTS)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=CLIENT_LIMIT_S + 5)

    def _client(self, client: int) -> None:
        http = requests.Session()
        n = 0
        while not self.stop.is_set():
            key = f"{self.run}-{client}-{n}"
            n += 1
            body = {"jsonData": {**self.sample, self.event_key: key}, "meta": {"puid": key}}
            started = time.perf_counter()
            try:
                response = http.post(self.url, json=body, timeout=CLIENT_LIMIT_S)
                status = response.status_code
                try:
                    answer = response.json().get("status", {})
                    reason, info = answer.get("reason", ""), answer.get("info", "")
                except ValueError:
                    reason, info = "not JSON", response.text[:200]
            except requests.Timeout:
                status, reason, info = None, "client timeout", ""
            except requests.ConnectionError:
                status, reason, info = None, "connection refused", ""
                time.sleep(0.05)  # nothing listens: do not spin
            with self.lock:
                self.outcomes.append(Outcome(key, status, reason,
                                             time.perf_counter() - started, info))

    def count(self, predicate, since: int = 0) -> int:
        with self.lock:
            return sum(1 for o in self.outcomes[since:] if predicate(o))

    def mark(self) -> int:
        with self.lock:
            return len(self.outcomes)

    def wait_for(self, predicate, n: int, since: int, what: str, limit_s: float = 300) -> None:
        """Until ``n`` outcomes since ``since`` satisfy ``predicate``; the limit only ends a
        wait on a graph that never gets there (which fails the test)."""
        deadline = time.monotonic() + limit_s
        while self.count(predicate, since) < n:
            assert time.monotonic() < deadline, f"never saw {n} {what}: {self.summary(since)}"
            time.sleep(0.05)

    def summary(self, since: int = 0) -> dict:
        with self.lock:
            seen: dict[str, int] = {}
            for o in self.outcomes[since:]:
                label = f"{o.status} {o.reason}".strip()
                seen[label] = seen.get(label, 0) + 1
            return seen


def _pid(rt: Runtime, component: str) -> int:
    uc = rt.use_case
    name = (endpoint_name(uc) if component == "executor"
            else component_name(uc, CHAMPION, component))
    endpoint = rt.serving.endpoint(name)
    assert endpoint is not None, f"{name} is not running"
    return endpoint.pid


def _restart(rt: Runtime) -> None:
    """What `lakeloop serve` does: restart whatever part of the graph is down."""
    ensure_champion(rt)


def _logged(rt: Runtime) -> set[str]:
    log_dir = Path(rt.lakehouse.path(keys.key(rt.use_case, keys.MONITORING, "requests")))
    return {json.loads(line)["request_id"] for path in log_dir.glob("ds=*/*.jsonl")
            for line in complete_lines(path)}


# What a client sees while each component is down.
DOWN = {
    "model": (503, "UPSTREAM_UNAVAILABLE"),
    "transformer": (503, "UPSTREAM_UNAVAILABLE"),
    "executor": (None, "connection refused"),
}


@pytest.mark.parametrize("component", list(DOWN))
def test_a_component_killed_under_traffic(live, component):
    rt, url, sample = live
    status, reason = DOWN[component]
    run = f"chaos-{component}-{time.time_ns()}"
    ok = lambda o: o.status == 200  # noqa: E731
    down = lambda o: (o.status, o.reason) == (status, reason)  # noqa: E731
    with Traffic(url, sample, rt.use_case.events.key, run) as traffic:
        traffic.wait_for(ok, 30, 0, "answers before the fault")
        pid = _pid(rt, component)
        os.killpg(pid, signal.SIGKILL)  # the process and its workers, like a dead container
        killed = traffic.mark()
        traffic.wait_for(down, 5, killed, f"'{status} {reason}' while {component} is down")
        _restart(rt)
        restarted = traffic.mark()
        traffic.wait_for(ok, 30, restarted, "answers after the restart")
        # the graph answers again without another failure once it is back
        settled = traffic.mark()
        traffic.wait_for(ok, 20, settled, "answers in a row")
    outcomes = traffic.outcomes
    # Restarting the champion restarts its executor too: a refused connection is the only
    # other thing a client may see. A client timeout (a hang) never is.
    allowed = {(200, ""), (status, reason), (None, "connection refused")}
    unexpected = {f"{o.status} {o.reason}: {o.info}" for o in outcomes
                  if (o.status, o.reason) not in allowed}
    assert not unexpected, traffic.summary()
    assert max(o.seconds for o in outcomes) < CLIENT_LIMIT_S, traffic.summary()
    assert traffic.count(lambda o: not ok(o), settled) == 0, traffic.summary(settled)
    answered = {o.key for o in outcomes if o.status == 200}
    missing = answered - _logged(rt)
    assert not missing, f"{len(missing)} answered request(s) not in the request log"


def test_the_feature_server_killed_under_traffic_costs_the_graph_nothing(live):
    rt, url, sample = live
    ok = lambda o: o.status == 200  # noqa: E731
    with Traffic(url, sample, rt.use_case.events.key, f"chaos-fs-{time.time_ns()}") as traffic:
        traffic.wait_for(ok, 30, 0, "answers before the fault")
        server = rt.feast.ensure_feature_server()
        os.killpg(server.pid, signal.SIGKILL)
        killed = traffic.mark()
        traffic.wait_for(ok, 50, killed, "answers with the feature server dead")
        assert rt.feast.ensure_feature_server().pid != server.pid  # back for other clients
    assert traffic.count(lambda o: not ok(o)) == 0, traffic.summary()
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 200


def test_the_online_store_locked_under_traffic(live):
    """A writer keeps SQLite's exclusive lock on the online store (a materialisation stuck
    mid-commit): lookups wait the transformer's timeout, then 503; once it lets go, answers."""
    import sqlite3

    rt, url, sample = live
    ok = lambda o: o.status == 200  # noqa: E731
    down = lambda o: (o.status, o.reason) == (503, "FEATURE_STORE_UNAVAILABLE")  # noqa: E731
    with Traffic(url, sample, rt.use_case.events.key, f"chaos-lock-{time.time_ns()}") as traffic:
        traffic.wait_for(ok, 30, 0, "answers before the fault")
        writer = sqlite3.connect(rt.feast.sqlite_path, timeout=STEP_TIMEOUT_S)
        writer.execute("BEGIN EXCLUSIVE")
        try:
            locked = traffic.mark()
            traffic.wait_for(down, 3, locked, "503s while the store is locked")
        finally:
            writer.rollback()
            writer.close()
        released = traffic.mark()
        traffic.wait_for(ok, 30, released, "answers once the lock is gone")
        settled = traffic.mark()
        traffic.wait_for(ok, 20, settled, "answers in a row")
    allowed = {(200, ""), (503, "FEATURE_STORE_UNAVAILABLE")}
    assert all((o.status, o.reason) in allowed for o in traffic.outcomes), traffic.summary()
    assert max(o.seconds for o in traffic.outcomes) < CLIENT_LIMIT_S, traffic.summary()
    assert traffic.count(lambda o: not ok(o), settled) == 0, traffic.summary(settled)
    answered = {o.key for o in traffic.outcomes if o.status == 200}
    assert not answered - _logged(rt), "answered requests missing from the request log"
