"""The local executor's routing: traffic weights honoured, stable per request id, shadows
mirrored without touching the answer, and any message shape routed or refused cleanly."""

import pytest

from lakeloop.deployment.seldon.executor import Executor, pick
from tests.support.flaky_server import drops_first_connection

CANARY = [{"name": "champion", "traffic": 90, "graph": []},
          {"name": "challenger", "traffic": 10, "graph": []}]


def test_traffic_split_follows_the_weights_and_is_stable_per_request():
    chosen = [pick(CANARY, f"req-{i}")["name"] for i in range(20_000)]
    share = chosen.count("challenger") / len(chosen)
    assert 0.09 < share < 0.11
    assert all(pick(CANARY, f"req-{i}")["name"] == chosen[i] for i in range(200))


def test_weights_must_add_up_to_100():
    with pytest.raises(ValueError, match="add up to 100"):
        Executor({"predictors": [{**CANARY[0], "traffic": 80}, CANARY[1]]})


@pytest.mark.parametrize("msg", [{"jsonData": {}}, {"jsonData": {}, "meta": None},
                                 {"jsonData": {}, "meta": {"tags": "x"}},
                                 {"jsonData": {}, "meta": {"puid": "p1", "tags": {"a": "b"}}}])
def test_shadow_gets_a_copy_and_the_client_gets_the_live_answer(msg):
    executor = Executor({"predictors": [{**CANARY[0], "traffic": 100}],
                         "shadow": {"name": "challenger", "graph": []}})
    walked = []
    executor.walk = lambda predictor, m: (walked.append((predictor["name"], m)) or
                                          (200, {"data": predictor["name"]}))
    status, body, name = executor.predict(msg)
    assert (status, body["data"], name) == (200, "champion", "champion")
    assert body["meta"]["tags"]["predictor"] == "champion"
    mirrored = executor.mirror.get_nowait()
    assert mirrored["meta"]["tags"]["predictor"] == "challenger"
    assert mirrored["meta"]["puid"].endswith("-shadow")


def test_a_connection_closed_before_any_answer_is_tried_once_more():
    """A component that drops the first connection without answering (as a server does with
    an idle keep-alive connection it just closed) costs the client nothing."""
    with drops_first_connection({"data": "answered"}) as port:
        executor = Executor({"predictors": [{"name": "champion", "traffic": 100,
                                             "graph": [f"http://127.0.0.1:{port}/predict"]}]})
        status, body, _ = executor.predict({"jsonData": {}})
    assert (status, body["data"]) == (200, "answered")
