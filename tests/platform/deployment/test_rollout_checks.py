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

from lakeloop.deployment.rollout import (
    Report,
    agreement_check,
    canary,
    error_rate_check,
    recent_instances,
    shift_check,
    validate,
)
from lakeloop.evidence import lower_bound
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")


def _answer(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    """A JSON answer from one of the fake servers below."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


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
                _answer(self, graph.status if self.path == "/predict" else 200, body)

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


# The rate checks judge a sample: seeded challengers whose true rate sits exactly at the
# limit must pass at every volume (at most alpha of the time failing, plus sampling slack),
# and ones clearly past it must fail once the sample can show it.

def _verdicts(check, draws) -> float:
    """The share of seeded samples the check fails."""
    return float(np.mean([not check(d).passed for d in draws]))


def _answers(errors: int, n: int) -> list[tuple[int, str]]:
    return [(503, "UPSTREAM_UNAVAILABLE")] * errors + [(200, "")] * (n - errors)


@pytest.mark.parametrize("n, trials", [(40, 400), (400, 400), (4_000, 200), (40_000, 50)])
def test_the_error_rate_rule_holds_at_every_volume(n, trials):
    cfg = _rollout().use_case.rollout
    assert (cfg.max_error_rate, cfg.alpha) == (0.01, 0.05)
    rng = np.random.default_rng(n)

    def check(errors):
        return error_rate_check("canary", _answers(int(errors), n), n * 10, cfg)

    at_limit = _verdicts(check, rng.binomial(n, 0.01, trials))
    # The point-estimate rule it replaces fails a 40-request share a third of the time.
    assert at_limit <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials), at_limit
    assert _verdicts(check, rng.binomial(n, 0.002, trials)) <= at_limit
    five_times = _verdicts(check, rng.binomial(n, 0.05, trials))
    assert five_times >= (0.95 if n >= 400 else 0.2), five_times
    assert check(n).passed is False  # a challenger that only errors


def test_an_error_rate_limit_of_zero_is_absolute():
    cfg = _rollout(max_error_rate=0.0).use_case.rollout
    for n in (40, 40_000):
        assert error_rate_check("canary", _answers(0, n), n, cfg).passed
        assert not error_rate_check("canary", _answers(1, n), n, cfg).passed
    assert not error_rate_check("ab", [], 400, cfg).passed  # no share is no evidence


@pytest.mark.parametrize("n", [40, 400, 4_000])
def test_the_shadow_rules_hold_at_every_volume(n):
    cfg = _rollout().use_case.rollout
    assert (cfg.min_agreement, cfg.max_mean_score_shift) == (0.9, 0.1)
    rng = np.random.default_rng(n)
    trials, slack = 300, 3 * math.sqrt(0.05 * 0.95 / 300)

    def agree(p):
        return [rng.random(n) < p for _ in range(trials)]

    assert _verdicts(lambda a: agreement_check(a, cfg), agree(0.9)) <= 0.05 + slack
    far = _verdicts(lambda a: agreement_check(a, cfg), agree(0.8))
    assert far >= (0.95 if n >= 400 else 0.3), far

    def shifts(mean):  # |probability differences|: skewed, in [0, 1], with this mean
        return [rng.beta(0.5, 0.5 * (1 - mean) / mean, n) for _ in range(trials)]

    assert _verdicts(lambda s: shift_check(s, cfg), shifts(0.1)) <= 0.05 + slack
    far = _verdicts(lambda s: shift_check(s, cfg), shifts(0.15))
    assert far >= (0.95 if n >= 400 else 0.3), far


class FakeExecutor:
    """An executor that answers every tenth request from the challenger, which fails the
    requests ``challenger_fails`` names with the executor's 503."""

    def __init__(self, challenger_fails):
        self.fails = challenger_fails

    def __enter__(self) -> str:
        fails = self.fails

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                i = int(body["meta"]["puid"].rsplit("-", 1)[1])
                predictor = "challenger" if i % 10 == 0 else "champion"
                status = 503 if predictor == "challenger" and fails(i) else 200
                answer = {"data": {"ndarray": [[0.1, 0]]}} if status == 200 else {
                    "status": {"code": -1, "info": "challenger: model did not answer "
                               "(ReadTimeout)", "reason": "UPSTREAM_UNAVAILABLE"}}
                answer["meta"] = {"tags": {"predictor": predictor}}
                _answer(self, status, answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1.0/predictions"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("fails, passed", [
    (lambda i: i == 0, True),  # one error in a 40-request share: 2.5%, not proof of > 1%
    (lambda i: i % 20 == 0, False),  # half of its share
])
def test_the_canary_counts_the_challengers_errors_and_says_what_they_were(fails, passed):
    report = Report("1", "2", "canary")
    with FakeExecutor(fails) as url:
        canary(_runtime(), report, None, None, _instances(400), url=url)
    [check] = report.checks
    assert check.name == "canary_error_rate" and check.passed is passed
    errors = 1 if passed else 20
    assert check.value == pytest.approx(errors / 40)
    assert f"answered 40 of 400 replayed requests with {errors} error(s)" in check.description
    assert (f"{errors} x 503 UPSTREAM_UNAVAILABLE challenger: model did not answer "
            "(ReadTimeout)") in check.description
    assert "the champion 0 of 360" in check.description
    assert check.bound == pytest.approx(lower_bound(errors, 40, 0.05))
    assert json.loads(report.to_json())["checks"][0]["bound"] == check.bound
