"""The rollout's checks as a library, with no Dagster: which recent requests are replayed,
and how smoke, latency and shadow comparison judge a challenger beside the champion.

The predictors are small HTTP servers on 127.0.0.1 that answer the seldon-core protocol the
way the real graph does (transform-input, then predict), with a score that is a known function
of the request, so the expected verdicts are computed, not assumed.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest

from lakeloop.deployment.rollout import Report, recent_instances, validate
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")


@dataclass
class FakeGraph:
    """One predictor's graph: transform-input passes the request on, predict scores it."""

    bias: float = 0.0
    status: int = 200
    delay_s: float = 0.0  # an injected latency: predict sleeps this long

    def score(self, instance: dict) -> float:
        return 1 / (1 + math.exp(-(instance["loan_amount"] / 10_000 - 2 + self.bias)))

    def __enter__(self) -> FakeGraph:
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/predict":
                    time.sleep(graph.delay_s)
                if self.path == "/predict" and graph.status == 200:
                    p = graph.score(body["jsonData"])
                    body = {"data": {"ndarray": [[p, int(p >= 0.5)]]}, "meta": body["meta"]}
                elif self.path == "/predict":
                    body = {"status": {"code": graph.status, "info": "broken"}}
                answer = json.dumps(body).encode()
                self.send_response(graph.status if self.path == "/predict" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.predictor = SimpleNamespace(graph=[f"{url}/transform-input", f"{url}/predict"])
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _instances(n: int) -> list[dict]:
    return [{"application_id": f"a{i}", "applicant_id": f"p{i}",
             "loan_amount": 1_000 + 37_000 * (i % 11) / 10, "loan_term_months": 36,
             "channel": "online"} for i in range(n)]


def _runtime():
    return SimpleNamespace(use_case=UC)


def test_an_identical_challenger_passes_every_check():
    instances = _instances(40)
    with FakeGraph() as champion, FakeGraph() as challenger:
        report, _, _ = validate(_runtime(), "1", "2", instances,
                                (champion.predictor, challenger.predictor))
    assert [c.name for c in report.checks] == ["smoke", "latency_p99_ms", "shadow_agreement",
                                               "shadow_mean_score_shift"]
    assert report.passed, report.table()
    agreement = next(c for c in report.checks if c.name == "shadow_agreement")
    assert agreement.value == 1.0 and "40 replayed" in agreement.description


def test_a_challenger_that_scores_differently_fails_the_shadow_comparison():
    instances = _instances(44)
    with FakeGraph() as champion, FakeGraph(bias=1.5) as challenger:
        report, _, _ = validate(_runtime(), "1", "2", instances,
                                (champion.predictor, challenger.predictor))
        expected_shift = sum(abs(champion.score(i) - challenger.score(i))
                             for i in instances) / len(instances)
    shift = next(c for c in report.checks if c.name == "shadow_mean_score_shift")
    assert shift.value == pytest.approx(expected_shift, rel=1e-9)
    assert not shift.passed and not report.passed
    assert any("mean |probability difference|" in r for r in report.reasons)


def test_a_challenger_that_errors_fails_the_smoke_check_and_stops_there():
    with FakeGraph() as champion, FakeGraph(status=500) as challenger:
        report, _, _ = validate(_runtime(), "1", "2", _instances(5),
                                (champion.predictor, challenger.predictor))
    assert [(c.name, c.passed) for c in report.checks] == [("smoke", False)]
    assert "v2 answered 500" in report.reasons[0]


def test_no_recent_requests_is_a_failed_check_not_a_pass():
    with FakeGraph() as champion, FakeGraph() as challenger:
        report, _, _ = validate(_runtime(), "1", "2", [],
                                (champion.predictor, challenger.predictor))
    assert not report.passed and "no recent requests" in report.reasons[0]
    assert not Report("1", "2", "canary").passed  # no checks at all never passes


def _rollout(**settings):
    """The built-in use case with rollout settings changed."""
    use_case = UC.model_copy(update={"rollout": UC.rollout.model_copy(update=settings)})
    return SimpleNamespace(use_case=use_case)


def scripted(latencies_ms):
    """A clock under which the n-th timed request takes latencies_ms[n]."""
    ticks, now = [], 0.0
    for ms in latencies_ms:
        ticks += [now, now + ms / 1000]
        now += ms / 1000 + 1.0
    return iter(ticks).__next__


@pytest.mark.parametrize("latencies, passed", [
    ([240.0] * 50, True),
    ([250.0] * 50, True),  # at the limit is within it
    ([251.0] * 50, False),
    ([10.0] * 49 + [1_000.0], False),  # one slow request in 50 is the p99
    ([10.0] * 48 + [1_000.0] + [10.0], False),  # wherever it comes
])
def test_the_latency_rule_is_the_p99_of_the_timed_requests_against_the_limit(latencies, passed):
    rt = _rollout(latency_requests=50, latency_p99_ms_max=250.0)
    with FakeGraph() as champion, FakeGraph() as challenger:
        report, _, _ = validate(rt, "1", "2", _instances(10),
                                (champion.predictor, challenger.predictor),
                                clock=scripted(latencies))
    check = next(c for c in report.checks if c.name == "latency_p99_ms")
    assert check.value == pytest.approx(float(np.percentile(latencies, 99)))
    assert check.passed is passed and report.passed is passed
    assert "over 50 sequential requests (limit 250 ms)" in check.description


def test_a_challenger_slower_than_the_limit_fails_on_the_wire():
    """A real delay in the challenger's predict (not a scripted clock): each request takes
    at least the delay, so the check fails whatever the machine's load."""
    rt = _rollout(latency_requests=5, latency_p99_ms_max=100.0)
    with FakeGraph() as champion, FakeGraph(delay_s=0.15) as challenger:
        report, _, _ = validate(rt, "1", "2", _instances(5),
                                (champion.predictor, challenger.predictor))
    check = next(c for c in report.checks if c.name == "latency_p99_ms")
    assert not check.passed and check.value >= 150.0 and not report.passed


def _log(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_recent_instances_are_the_newest_answered_production_requests(tmp_path):
    def record(i, **extra):
        return {"request_id": f"r{i}", "status": 200, "entity_key": f"p{i}", "predictor": "",
                "features": {"loan_amount": 1000.0 + i, "loan_term_months": 36,
                             "channel": "online"}, **extra}

    _log(tmp_path / "ds=2026-10-01" / "a.jsonl", [record(1), record(2)])
    _log(tmp_path / "ds=2026-10-02" / "a.jsonl", [
        record(3), record(4, status=422), record(5, predictor="challenger"),
        record(6, entity_key=""), record(3), record(7)])
    got = recent_instances(tmp_path, UC, limit=3)
    # newest first; errors, challenger traffic, keyless and repeated requests left out
    assert [g["applicant_id"] for g in got] == ["p7", "p3", "p2"]
    assert [g["application_id"] for g in got] == ["rollout-0", "rollout-1", "rollout-2"]
    assert got[0] == {"application_id": "rollout-0", "applicant_id": "p7",
                      "loan_amount": 1007.0, "loan_term_months": 36, "channel": "online"}
