"""The transformer's online lookup: a connection the feature server closes before answering
(as it does with an idle keep-alive connection) is tried once more; a feature server that
does not answer at all is a 503 FEATURE_STORE_UNAVAILABLE, within the lookup timeout."""

import json
import socket
import time

import pytest

from lakeloop.deployment.seldon.errors import RequestError
from lakeloop.deployment.seldon.transformer import FeatureTransformer
from tests.support.flaky_server import drops_first_connection

SCHEMA = {"event_key": "application_id", "event_time": "application_ts",
          "entity_key": "applicant_id", "request_features": [], "entity_features": ["income"],
          "contract": {}}
ANSWER = {"metadata": {"feature_names": ["applicant_id", "income"]},
          "results": [{"values": ["a1"]}, {"values": [52_000.0]}]}


def _transformer(port: int) -> FeatureTransformer:
    transformer = FeatureTransformer(f"http://127.0.0.1:{port}", "fs", json.dumps(["income"]),
                                     schema=json.dumps(SCHEMA), timeout_s=2.0)
    transformer.load()
    return transformer


def test_a_connection_dropped_before_the_answer_is_tried_once_more():
    with drops_first_connection(ANSWER) as port:
        assert _transformer(port)._online(["a1"])["income"] == [52_000.0]


def test_no_feature_server_is_a_503_with_the_reason_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    started = time.perf_counter()
    with pytest.raises(RequestError) as down:
        _transformer(port)._online(["a1"])
    assert (down.value.status_code, down.value.reason) == (503, "FEATURE_STORE_UNAVAILABLE")
    assert time.perf_counter() - started < 2.0
