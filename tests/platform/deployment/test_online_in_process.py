"""The transformer's in-process read of Feast's SQLite online store answers what Feast's
feature server answers, value for value, for every scalar type a feature may have: nulls,
non-finite numbers, bytes, text beyond ASCII, an entity asked twice and one never written.
The feature server is Feast's own (`feast serve`), over the same registry and file."""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3

import numpy as np
import pandas as pd
import pytest

from lakeloop.deployment.seldon.errors import RequestError
from lakeloop.deployment.seldon.online import SqliteOnline, decode_value, entity_key
from lakeloop.deployment.seldon.transformer import FeatureTransformer
from lakeloop.features.online import serving_spec
from lakeloop.features.store import FeastResource, online_features_http
from tests.conftest import free_port

pytestmark = [pytest.mark.integration]

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
TYPES = {"f_double": "Float64", "f_float": "Float32", "f_int64": "Int64", "f_int32": "Int32",
         "f_text": "String", "f_flag": "Bool", "f_blob": "Bytes", "f_seen": "UnixTimestamp"}
ROWS = [  # (key, event time, values): e1 written twice, the newer write wins
    ("e1", T0, [1.5, 0.25, -5, -7, "ä €", True, b"\x00\xff", T0]),
    ("e1", T0 + dt.timedelta(hours=1), [-2.75, 0.1, 2**40, 7, "", False, b"", T0]),
    ("e2", T0, [None, None, None, None, "n", None, None, None]),
    ("e3", T0, [math.inf, -math.inf, 0, 0, "x", True, b"a", T0 - dt.timedelta(days=900)]),
    ("e4", T0, [math.nan, np.float32(3.3), -(2**63), -(2**31), "y\n\"q\"", False, b"\x01",
                T0]),
    ("k\u00e9y \"q\"", T0, [0.0, 0.0, 1, 1, "z", False, b"z", T0]),
]
ASKED = ["e1", "e2", "e3", "e4", "nobody", "k\u00e9y \"q\"", "e1"]


def _objects():
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast import types as feast_types

    entity = Entity(name="thing", join_keys=["thing_id"], value_type=ValueType.STRING)
    source = FileSource(name="things_source", path="/nonexistent/things.parquet",
                        timestamp_field="event_timestamp")
    view = FeatureView(name="things_fv", entities=[entity], ttl=dt.timedelta(days=1),
                       schema=[Field(name=n, dtype=getattr(feast_types, t))
                               for n, t in TYPES.items()], source=source, online=True)
    return [entity, source, view, FeatureService(name="things_v1", features=[view])]


@pytest.fixture(scope="module")
def feast(tmp_path_factory):
    root = tmp_path_factory.mktemp("online_in_process") / "a store #1 ?x"  # URI characters
    resource = FeastResource(registry_path=str(root / "registry.db"),
                             sqlite_path=str(root / "online.db"), server_port=free_port(),
                             state_dir=str(root / "server"))
    store = resource.store()
    store.apply(_objects())
    for key, ts, values in ROWS:  # one write each, in order, as materialisations are
        frame = pd.DataFrame([{"thing_id": key, "event_timestamp": ts,
                               **dict(zip(TYPES, values, strict=True))}])
        for name, kind in (("f_int64", "Int64"), ("f_int32", "Int32")):
            frame[name] = frame[name].astype(kind)
        store.write_to_online_store("things_fv", frame)
    server = resource.ensure_feature_server()
    yield resource, server.url
    resource.stop_feature_server()


def test_the_in_process_read_answers_what_the_feature_server_answers(feast):
    resource, url = feast
    spec = serving_spec(resource, "things_v1")
    assert spec is not None and spec["join_key"] == "thing_id"
    served = online_features_http(url, "things_v1", "thing_id", ASKED)
    read = SqliteOnline(json.loads(json.dumps(spec)), timeout_s=2.0).read(ASKED)
    assert set(read) == set(TYPES)
    for name in TYPES:
        assert json.dumps(read[name]) == json.dumps(served[name]), name
    # what was written is what is read (the answer is not merely empty on both sides)
    assert read["f_int64"][0] == 2**40 and read["f_int64"][-1] == 2**40
    assert read["f_text"][0] == "" and read["f_text"][5] == "z"
    assert read["f_int64"][3] == -(2**63) and read["f_double"][2] == "Infinity"
    assert [v[4] for v in read.values()] == [None] * len(TYPES)  # never written


def test_the_transformer_reads_in_process_and_a_locked_store_is_a_503(feast):
    resource, _ = feast
    spec = serving_spec(resource, "things_v1")
    schema = {"event_key": "request_id", "event_time": "ts", "entity_key": "thing_id",
              "request_features": [], "entity_features": ["f_double"],
              "contract": {"request_id": {"type": "string"}, "thing_id": {"type": "string"}}}
    # the feature server's address leads nowhere: only the in-process read can answer
    transformer = FeatureTransformer("http://127.0.0.1:9", "things_v1",
                                     json.dumps(["f_double", "f_int64"]),
                                     schema=json.dumps(schema), timeout_s=0.5,
                                     online_store=json.dumps(spec))
    transformer.load()
    assert transformer.health_status()["online"] == "in-process"
    out = transformer._transform({"jsonData": {"request_id": "r1", "thing_id": "e1"}})
    assert out["data"]["ndarray"] == [[-2.75, 2**40]]
    writer = sqlite3.connect(resource.sqlite_path, timeout=0.1)
    writer.execute("BEGIN EXCLUSIVE")  # a writer holding the file past the lookup timeout
    try:
        with pytest.raises(RequestError) as locked:
            transformer._transform({"jsonData": {"request_id": "r2", "thing_id": "e1"}})
    finally:
        writer.rollback()
        writer.close()
    assert (locked.value.status_code, locked.value.reason) == (503, "FEATURE_STORE_UNAVAILABLE")
    again = transformer._transform({"jsonData": {"request_id": "r3", "thing_id": "e1"}})
    assert again["data"]["ndarray"] == [[-2.75, 2**40]]


def test_stores_and_types_the_reader_does_not_know_keep_the_feature_server(tmp_path):
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast import types as feast_types

    redis = FeastResource(registry_path=str(tmp_path / "r.db"), online_store="redis",
                          redis_connection_string="127.0.0.1:1")
    assert serving_spec(redis, "any") is None
    resource = FeastResource(registry_path=str(tmp_path / "registry.db"),
                             sqlite_path=str(tmp_path / "online.db"))
    source = FileSource(name="s", path="/nonexistent.parquet", timestamp_field="ts")
    keyed = {"str": Entity(name="a", join_keys=["a"], value_type=ValueType.STRING),
             "int": Entity(name="b", join_keys=["b"], value_type=ValueType.INT64)}
    lists = FeatureView(name="lists", entities=[keyed["str"]], source=source, schema=[
        Field(name="xs", dtype=feast_types.Array(feast_types.Int64))])
    by_int = FeatureView(name="by_int", entities=[keyed["int"]], source=source,
                         schema=[Field(name="y", dtype=feast_types.Float64)])
    scalar = FeatureView(name="scalar", entities=[keyed["str"]], source=source,
                         schema=[Field(name="z", dtype=feast_types.Float64)])
    resource.store().apply([*keyed.values(), source, lists, by_int, scalar,
                            FeatureService(name="lists_v1", features=[lists]),
                            FeatureService(name="by_int_v1", features=[by_int]),
                            FeatureService(name="scalar_v1", features=[scalar])])
    assert serving_spec(resource, "lists_v1") is None
    assert serving_spec(resource, "by_int_v1") is None
    assert serving_spec(resource, "scalar_v1")["views"] == [
        {"table": "lakeloop_scalar", "features": [["z", "z"]]}]


def test_feasts_key_encoding_and_value_fields():
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    for key in ("A17", "", "k\u00e9y \"q\"", "x" * 300):
        proto = EntityKey(join_keys=["applicant_id"], entity_values=[Value(string_val=key)])
        assert entity_key("applicant_id", key) == serialize_entity_key(proto, 3)
    assert decode_value(Value().SerializeToString()) is None
    assert decode_value(Value(int32_val=-1).SerializeToString()) == -1
    assert decode_value(Value(unix_timestamp_val=-5).SerializeToString()) == -5
    with pytest.raises(ValueError, match="feature server"):
        decode_value(Value(double_list_val={"val": [1.0]}).SerializeToString())
