"""The running inference graph (executor -> feature transformer -> model, each a process on
127.0.0.1) answers every bad request with a 4xx that names the problem, never a 500, and
keeps serving; good and rejected requests alike land in the request log."""

from __future__ import annotations

import json
import time

import pytest
import requests

from lakeloop import keys
from lakeloop.usecase import load_use_cases
from tests.services import logged_records

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _deployment(materialized):
    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    key = keys.key(uc, keys.DEPLOYMENT, "seldon_deployment")
    mat = next(e.event_specific_data.materialization
               for e in reversed(materialized.result.all_events)
               if e.event_type_value == "ASSET_MATERIALIZATION"
               and e.event_specific_data.materialization.asset_key == key)
    return mat.metadata, uc


@pytest.fixture(scope="module")
def graph(materialized):
    meta, uc = _deployment(materialized)
    return meta["endpoint"].value, meta["sample_request"].value, uc


def post(url, body=None, raw: str | bytes | None = None):
    if raw is not None:
        return requests.post(url, data=raw, timeout=10,
                             headers={"Content-Type": "application/json"})
    return requests.post(url, json=body, timeout=10)


def with_(sample, **changes):
    return {"jsonData": {**sample, **changes}}


CASES = [
    # (name, body builder, raw text, status, words the message must hold)
    ("malformed JSON", None, "{not json", 400, ["not valid JSON"]),
    ("a JSON array", None, "[1, 2]", 400, ["JSON object"]),
    ("wrong shape", lambda s, k: {"rows": [s]}, None, 400, ["expected", "jsonData"]),
    ("missing field", lambda s, k: {"jsonData": {k: s[k]}}, None, 400,
     ["missing field", "loan_amount"]),
    ("unknown field", lambda s, k: with_(s, promo_code="SPRING"), None, 400,
     ["unexpected field", "promo_code", "feature store"]),
    ("no event key", lambda s, k: {"jsonData": {f: v for f, v in s.items()
                                                if f != "application_id"}}, None, 400,
     ["missing field(s): application_id", "joined"]),
    ("out of contract", lambda s, k: with_(s, loan_amount=200), None, 422,
     ["loan_amount: below the minimum 500"]),
    ("not an allowed value", lambda s, k: with_(s, loan_term_months=18), None, 422,
     ["loan_term_months: not one of the allowed values (12, 24, 36, 48, 60)"]),
    ("bad event time", lambda s, k: with_(s, application_ts="yesterday"), None, 400,
     ["application_ts", "ISO-8601"]),
    ("wrong type", lambda s, k: with_(s, loan_amount="lots"), None, 400,
     ["loan_amount", "expected a number", '"lots"']),
    ("id of the wrong type", lambda s, k: with_(s, **{k: 42}), None, 400,
     ["applicant_id", "non-empty string"]),
    ("boolean as a number", lambda s, k: with_(s, loan_term_months=True), None, 400,
     ["loan_term_months", "expected a number"]),
    ("NaN", None, "NAN", 400, ["NaN"]),
    ("infinite value", None, "INF", 400, ["loan_amount", "not a finite number"]),
    ("unknown applicant", lambda s, k: with_(s, **{k: "nobody-at-all"}), None, 404,
     ["unknown applicant_id nobody-at-all", "send its missing features", "income",
      "debt_to_income"]),
    ("too many instances", lambda s, k: {"jsonData": {"instances": [s] * 101}}, None, 413,
     ["101 instances", "at most 100"]),
    ("oversized payload", None, "BIG", 413, ["larger than"]),
]


@pytest.mark.parametrize("name, build, raw, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_requests_get_a_4xx_that_names_the_problem(graph, name, build, raw, status,
                                                       words):
    url, sample, uc = graph
    key = uc.entity.join_key
    if raw == "NAN":
        raw = json.dumps(with_(sample, loan_amount=float("nan")))  # Python writes NaN
    elif raw == "INF":
        raw = json.dumps(with_(sample, loan_amount=1e999))  # JSON's 1e999 is infinite
        raw = raw.replace("Infinity", "1e999")
    elif raw == "BIG":
        raw = json.dumps({"jsonData": {**sample, "padding": "x" * (2 << 20)}})
    response = post(url, build(sample, key) if build else None, raw)
    assert response.status_code == status, response.text
    info = response.json()["status"]["info"]
    for word in words:
        assert word in info, info


def test_server_still_answers_after_every_bad_request(graph):
    url, sample, _ = graph
    for _ in range(3):
        response = post(url, {"jsonData": sample})
        assert response.status_code == 200, response.text
        probability, prediction = response.json()["data"]["ndarray"][0]
        assert 0 <= probability <= 1 and prediction in (0, 1)


def _stored_features(materialized, uc, applicant: str) -> dict:
    store = materialized.resources["feast"].store()
    from lakeloop.features.store import feature_service_name

    online = store.get_online_features(
        features=store.get_feature_service(feature_service_name(uc)),
        entity_rows=[{uc.entity.join_key: applicant}]).to_dict()
    return {f: online[f][0] for f in uc.entity_features}


def test_a_first_time_applicant_is_scored_from_the_request_alone(materialized, graph):
    """Features sent with the request are used; an entity the online store does not know
    is scored when the request carries all of them (and refused, naming the missing ones,
    when it does not)."""
    url, sample, uc = graph
    key = uc.entity.join_key
    known = _stored_features(materialized, uc, sample[key])
    answer = post(url, {"jsonData": sample}).json()["data"]["ndarray"][0]
    newcomer = {**sample, key: f"new-{time.time_ns()}", **known}
    response = post(url, {"jsonData": newcomer})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["ndarray"][0][0] == pytest.approx(answer[0], abs=1e-7)
    partial = dict(newcomer)
    del partial["income"], partial["debt_to_income"]
    refused = post(url, {"jsonData": partial})
    assert refused.status_code == 404
    assert refused.json()["status"]["info"].endswith("send its missing features with the "
                                                     "request: income, debt_to_income")
    # A known applicant's features from the request win over the store's.
    richer = post(url, {"jsonData": {**sample, "income": known["income"] * 10}})
    assert richer.status_code == 200
    assert richer.json()["data"]["ndarray"][0][0] != pytest.approx(answer[0], abs=1e-7)


def test_several_applicants_in_one_request(graph):
    url, sample, _ = graph
    response = post(url, {"jsonData": {"instances": [sample, sample]}})
    assert response.status_code == 200, response.text
    rows = response.json()["data"]["ndarray"]
    assert len(rows) == 2 and rows[0] == rows[1]


def test_the_model_alone_validates_feature_rows_too(materialized):
    meta, uc = _deployment(materialized)
    url = meta["model_endpoint"].value
    names = list(uc.feature_names)
    cases = [
        ({"data": {"names": ["income"], "ndarray": [[1.0]]}}, 400, "missing feature"),
        ({"data": {"names": [*names, "x"], "ndarray": [[1.0] * (len(names) + 1)]}}, 400,
         "unexpected feature"),
        ({"data": {"names": names, "ndarray": [[1.0] * (len(names) - 1)]}}, 400,
         "values for"),
        ({"data": {"names": names, "ndarray": [["a"] * len(names)]}}, 400,
         "expected a number"),
        ({"data": {"names": names, "ndarray": [[1.0] * len(names)] * 1001}}, 413,
         "at most 1000"),
    ]
    for body, status, words in cases:
        response = post(url, body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["status"]["info"]
    row = ["online" if n == "channel" else 1.0 for n in names]
    ok = post(url, {"data": {"names": names, "ndarray": [row]}})
    assert ok.status_code == 200, ok.text
    unknown = post(url, {"data": {"names": names, "ndarray": [
        ["fax" if n == "channel" else 1.0 for n in names]]}})
    assert unknown.status_code == 400
    assert "channel: 'fax' is not one of the categories (branch, online, partner)" in \
        unknown.json()["status"]["info"]
    missing = post(url, {"data": {"names": names, "ndarray": [
        [None if n == "employment_years" else v for n, v in zip(names, row, strict=True)]]}})
    assert missing.status_code == 200  # a missing number is XGBoost's to handle


def test_requests_and_rejections_land_in_the_request_log(materialized, graph):
    url, sample, _ = graph
    meta, uc = _deployment(materialized)
    stamp = f"log-test-{time.time_ns()}"
    event = {**sample, uc.events.key: stamp}  # the event's key, as a client sends it
    good = post(url, {"jsonData": event, "meta": {"puid": f"{stamp}-ok"}})
    bad = post(url, {"jsonData": {**event, uc.entity.join_key: "nobody"},
                     "meta": {"puid": f"{stamp}-unknown"}})
    assert (good.status_code, bad.status_code) == (200, 404)
    log_dir = materialized.resources["lakehouse"].path(keys.key(uc, keys.MONITORING,
                                                                "requests"))
    found = logged_records(log_dir, stamp)
    ok, unknown = found[f"{stamp}-ok"], found[f"{stamp}-unknown"]
    assert ok["status"] == 200 and ok["predictor"] == "champion"
    assert ok["model_version"] == str(meta["model_version"].value)
    assert set(ok["features"]) == set(uc.feature_names) and ok["latency_ms"] > 0
    assert unknown["status"] == 404 and "unknown applicant_id" in unknown["error"]
