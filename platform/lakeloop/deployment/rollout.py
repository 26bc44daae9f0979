"""Post-deployment validation and the canary: what a challenger must show, on the live
graph, before it takes all the traffic.

1. smoke: a real request through the challenger's graph answers a probability;
2. latency: p99 of sequential requests to the challenger's graph under the use case's limit;
3. shadow comparison: recent production requests (from the request log) replayed through
   the champion's and the challenger's graphs: decision agreement and mean score shift;
4. canary (or A/B): the executor splits replayed traffic between the two; the challenger's
   error rate must stay under the limit.
Agreement, shift and error rate are rates on a sample, so each is judged by its one-sided
confidence bound (``rollout.alpha``), not its point estimate: one error in a 40-request
canary share is not proof of a 1% error rate, and 40 in 4,000 is.
Any failed check rolls the endpoint back to the champion alone; every number is recorded.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import requests

from lakeloop.deployment.runtime import Predictor, Runtime, predictor_for, route
from lakeloop.deployment.seldon.request_log import complete_lines
from lakeloop.deployment.serving import graph_request
from lakeloop.evidence import lower_bound, mean_lower_bound, upper_bound
from lakeloop.tracking import CHALLENGER, CHAMPION
from lakeloop.usecase import UseCase


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float
    limit: float
    description: str
    # The one-sided confidence bound that decided, for a check on a sampled rate.
    bound: float | None = None


@dataclass
class Report:
    champion: str
    challenger: str
    strategy: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.description for c in self.checks if not c.passed]

    def to_json(self) -> str:
        return json.dumps({"champion": self.champion, "challenger": self.challenger,
                           "strategy": self.strategy, "passed": self.passed,
                           "checks": [asdict(c) for c in self.checks]}, sort_keys=True)

    def table(self) -> str:
        lines = ["| check | value | confidence bound | limit | verdict |",
                 "|---|---:|---:|---:|---|"]
        for c in self.checks:
            bound = "" if c.bound is None else f"{c.bound:.4g}"
            lines.append(f"| {c.name} | {c.value:.4g} | {bound} | {c.limit:.4g} | "
                         f"{'passed' if c.passed else '**failed**'} |")
        return "\n".join(lines)


def recent_instances(log_dir: Path, use_case: UseCase, limit: int) -> list[dict]:
    """The newest answered production requests, as a client would send them again: the
    entity and its request-time fields (under a rollout key of their own, so that rollout
    traffic never joins a real event's outcome)."""
    files = sorted(log_dir.glob("ds=*/*.jsonl"), key=lambda p: (p.parent.name, p.name),
                   reverse=True)
    out: list[dict] = []
    seen: set[str] = set()
    key = use_case.entity.join_key
    for path in files:
        for line in reversed(list(complete_lines(path))):
            record = json.loads(line)
            if record.get("status") != 200 or not record.get("features") \
                    or not record.get("entity_key") or record["request_id"] in seen \
                    or record.get("predictor") not in (CHAMPION, "", None):
                continue
            seen.add(record["request_id"])
            out.append({use_case.events.key: f"rollout-{len(out)}", key: record["entity_key"],
                        **{f: record["features"][f] for f in use_case.features.request}})
            if len(out) >= limit:
                return out
    return out


def walk(http: requests.Session, predictor: Predictor, instance: dict,
         tags: dict | None = None, clock=time.perf_counter) -> tuple[int, dict, float]:
    """One request through a predictor's graph, as the executor does; (status, body, ms).
    ``clock``: seconds, monotonic (a test passes scripted latencies through it)."""
    started = clock()
    body = graph_request([instance], tags)
    for step in predictor.graph:
        response = http.post(step, json=body, timeout=10)
        body = response.json()
        if response.status_code != 200:
            return response.status_code, body, (clock() - started) * 1000
    return 200, body, (clock() - started) * 1000


def _probability(body: dict) -> float:
    return float(body["data"]["ndarray"][0][0])


def validate(rt: Runtime, champion: str, challenger: str, instances: list[dict],
             predictors: tuple | None = None,
             clock=time.perf_counter) -> tuple[Report, Predictor, Predictor]:
    """Run checks 1 to 3 on the challenger's graph beside the champion's: the local
    microservices (started here), or ``predictors`` already running on the cluster.
    ``clock`` times the latency check's requests."""
    cfg = rt.use_case.rollout
    report = Report(champion, challenger, cfg.strategy)
    if predictors is None:
        predictors = (predictor_for(rt, champion, CHAMPION),
                      predictor_for(rt, challenger, CHALLENGER))
    champ, chall = predictors
    http = requests.Session()
    if not instances:
        report.checks.append(Check("smoke", False, 0, 1, "no recent requests in the "
                                   "request log to validate with"))
        return report, champ, chall
    tags = {"request_key": "rollout-validation", "predictor": "validation"}
    status, body, _ = walk(http, chall, instances[0], tags)
    ok = status == 200 and 0.0 <= _probability(body) <= 1.0
    report.checks.append(Check("smoke", ok, float(status), 200.0,
                               f"v{challenger} answered {status} to a real request"))
    if not ok:
        return report, champ, chall

    latencies = [walk(http, chall, instances[i % len(instances)], tags, clock)[2]
                 for i in range(cfg.latency_requests)]
    p99 = float(np.percentile(latencies, 99))
    report.checks.append(Check(
        "latency_p99_ms", p99 <= cfg.latency_p99_ms_max, p99, cfg.latency_p99_ms_max,
        f"p99 {p99:.1f} ms over {len(latencies)} sequential requests (limit "
        f"{cfg.latency_p99_ms_max:g} ms)"))

    pairs = []
    for instance in instances:
        s1, b1, _ = walk(http, champ, instance, tags)
        s2, b2, _ = walk(http, chall, instance, tags)
        if s1 == 200 and s2 == 200:
            pairs.append((_probability(b1), int(b1["data"]["ndarray"][0][1]),
                          _probability(b2), int(b2["data"]["ndarray"][0][1])))
    arr = np.array(pairs) if pairs else np.zeros((0, 4))
    report.checks.append(agreement_check(arr[:, 1] == arr[:, 3], cfg))
    report.checks.append(shift_check(np.abs(arr[:, 0] - arr[:, 2]), cfg))
    return report, champ, chall


def _confidence(cfg) -> str:
    return f"{1 - cfg.alpha:.0%} bound"


def agreement_check(agrees: np.ndarray, cfg) -> Check:
    """Fails when the decisions' agreement is significantly below ``min_agreement``."""
    n, agreed = len(agrees), int(np.sum(agrees))
    if not n:
        return Check("shadow_agreement", False, 0.0, cfg.min_agreement,
                     "no replayed request was answered by both graphs", 0.0)
    rate, bound = agreed / n, upper_bound(agreed, n, cfg.alpha)
    return Check(
        "shadow_agreement", bound >= cfg.min_agreement, rate, cfg.min_agreement,
        f"decisions agree on {rate:.1%} of {n} replayed recent requests ({_confidence(cfg)} "
        f"{bound:.1%}; at least {cfg.min_agreement:.0%})", bound)


def shift_check(shifts: np.ndarray, cfg) -> Check:
    """Fails when the mean |probability difference| is significantly above the limit."""
    limit = cfg.max_mean_score_shift
    if not len(shifts):
        return Check("shadow_mean_score_shift", False, 1.0, limit,
                     "no replayed request was answered by both graphs", 1.0)
    mean, bound = float(np.mean(shifts)), mean_lower_bound(shifts, cfg.alpha)
    return Check(
        "shadow_mean_score_shift", bound <= limit, mean, limit,
        f"mean |probability difference| {mean:.4f} over {len(shifts)} requests "
        f"({_confidence(cfg)} {bound:.4f}; at most {limit})", bound)


def error_rate_check(strategy: str, answers: list[tuple[int, str]], replayed: int,
                     cfg, champion_errors: tuple[int, int] = (0, 0)) -> Check:
    """Fails when the challenger's error rate on its share of ``replayed`` requests is
    significantly above ``max_error_rate``. ``answers``: (status, reason) of each request the
    challenger answered; ``champion_errors``: (errors, answered) of the champion beside it,
    for the reader (an error both share points at the environment, not the model)."""
    name, limit = f"{strategy}_error_rate", cfg.max_error_rate
    served = len(answers)
    if not served:
        return Check(name, False, 1.0, limit,
                     f"{strategy}: the challenger answered none of {replayed} replayed "
                     "requests", 1.0)
    failed = Counter(f"{status} {reason}".strip() for status, reason in answers
                     if status != 200)
    errors = sum(failed.values())
    rate, bound = errors / served, lower_bound(errors, served, cfg.alpha)
    kinds = "; ".join(f"{count} x {kind}" for kind, count in failed.most_common())
    return Check(
        name, bound <= limit, rate, limit,
        f"{strategy}: the challenger answered {served} of {replayed} replayed requests with "
        f"{errors} error(s) ({rate:.1%}, {_confidence(cfg)} {bound:.2%}; at most "
        f"{limit:.0%})" + (f": {kinds}" if kinds else "")
        + f"; the champion {champion_errors[0]} of {champion_errors[1]}", bound)


def canary(rt: Runtime, report: Report, champ: Predictor, chall: Predictor,
           instances: list[dict], url: str | None = None) -> None:
    """Split replayed traffic through the executor (canary or A/B) or mirror it (shadow);
    the challenger's share of errors decides. ``url``: the deployment already routes the
    split (on the cluster, Seldon's ingress route)."""
    cfg = rt.use_case.rollout
    if url is None:
        if cfg.strategy == "shadow":
            url = route(rt, [(champ, 100)], shadow=chall).predictions_url
        else:
            split = 50 if cfg.strategy == "ab" else cfg.canary_traffic
            url = route(rt, [(champ, 100 - split), (chall, split)]).predictions_url
    http = requests.Session()
    by_predictor: dict[str, list[tuple[int, str]]] = {}
    stamp = time.time_ns()
    for i, instance in enumerate(instances):
        body = graph_request([instance], {"request_key": f"canary-{report.challenger}"},
                             puid=f"canary-{report.challenger}-{stamp}-{i}")
        response = http.post(url, json=body, timeout=10)
        predictor, reason = _who_and_why(response)
        by_predictor.setdefault(predictor, []).append((response.status_code, reason))
    served = by_predictor.get(CHALLENGER, [])
    if cfg.strategy == "shadow":
        served = [(200, "")] * len(instances)  # the mirror's answers are discarded by design
    champ_answers = by_predictor.get(CHAMPION, [])
    report.checks.append(error_rate_check(
        cfg.strategy, served, len(instances), cfg,
        (sum(1 for s, _ in champ_answers if s != 200), len(champ_answers))))


def _who_and_why(response: requests.Response) -> tuple[str, str]:
    """The predictor that answered (the executor tags every answer, errors too) and, for
    an error, its reason and message."""
    try:
        body = response.json()
    except ValueError:
        return "unknown", "" if response.ok else "no JSON"
    def part(d: dict, key: str) -> dict:
        value = d.get(key)
        return value if isinstance(value, dict) else {}

    body = body if isinstance(body, dict) else {}
    tags, status = part(part(body, "meta"), "tags"), part(body, "status")
    reason = "" if response.status_code == 200 else \
        f"{status.get('reason', '')} {status.get('info', '')}".strip()[:200]
    return str(tags.get("predictor", "unknown")), reason
