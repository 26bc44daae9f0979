"""The feature transformer: the client's request in, a complete feature row out.

A request describes one event (or several, as ``instances``) in the use case's own words:
its key (``application_id``: outcomes are joined to the answer on it), optionally its time
(ISO-8601, any offset; now when absent), the entity's key, the request-time features, and
optionally any of the entity's features (the bureau profile pulled at application time):

    {"jsonData": {"application_id": "A-1", "application_ts": "2026-10-15T10:31:00+02:00",
                  "applicant_id": "A17", "loan_amount": 12000, "loan_term_months": 36}}

Entity features the request does not carry come from Feast's online store, through the
feature service the model was trained on: read in this process where the store is SQLite
(``online_store``, see ``lakeloop.deployment.seldon.online``), else from Feast's feature
server. An entity the online store does not know is scored
when the request carries all of its features, and otherwise refused (404) with the features
it would need. Every value is checked against the use case's contract with the lakehouse's
own rules and words (``lakeloop.lakehouse.rules``): what the lakehouse would quarantine, the
endpoint refuses (422). Every other problem is a 4xx whose message names it.

Output: the model's input message, ``{"data": {"names": [...], "ndarray": [[...]]}}``, with
each event's key and time in ``meta.tags`` for the request log.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from lakeloop.deployment.seldon.errors import RequestError
from lakeloop.lakehouse import rules

if TYPE_CHECKING:
    from lakeloop.deployment.seldon.online import SqliteOnline
    from lakeloop.deployment.seldon.request_log import RequestLog
    from lakeloop.deployment.seldon.upstream import Upstream

MAX_INSTANCES = 100


class Schema:
    """What a request holds, from the use case (see
    ``lakeloop.deployment.manifests.request_schema``)."""

    def __init__(self, data: dict):
        self.event_key: str = data["event_key"]
        self.event_time: str = data["event_time"]
        self.entity_key: str = data["entity_key"]
        self.request_features: list[str] = list(data["request_features"])
        self.entity_features: list[str] = list(data["entity_features"])
        self.contract: dict[str, dict] = data["contract"]

    @property
    def required(self) -> list[str]:
        return [self.event_key, self.entity_key, *self.request_features]

    @property
    def accepted(self) -> list[str]:
        return [*self.required, self.event_time, *self.entity_features]

    def example(self) -> dict:
        return {self.event_key: "<event id>", self.entity_key: "<id>",
                **{f: 0 for f in self.request_features}}


def _type_problem(name: str, spec: dict, value: Any) -> str | None:
    """A JSON value of the wrong kind, said as the API sees it."""
    kind = spec.get("type", "double")
    if kind in ("int", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name}: expected a number, got {json.dumps(value)}"
        if not math.isfinite(value):
            return f"{name}: {value} is not a finite number"
    elif kind == "string" and not isinstance(value, str):
        return f"{name}: expected a string, got {json.dumps(value)}"
    elif kind == "boolean" and not isinstance(value, bool):
        return f"{name}: expected true or false, got {json.dumps(value)}"
    elif kind == "timestamp" and rules.parse_timestamp(value) is None:
        return (f"{name}: expected an ISO-8601 time such as 2026-10-15T10:31:00+02:00, got "
                f"{json.dumps(value)}")
    return None


def parse_instances(msg, schema: Schema, max_instances: int = MAX_INSTANCES) -> list[dict]:
    """Validated instances: the required fields present, nothing unknown, every value of the
    right kind (400) and within the contract (422)."""
    if not isinstance(msg, dict):
        raise RequestError("the body must be a JSON object", "BAD_SHAPE")
    body = msg.get("jsonData")
    if not isinstance(body, dict):
        raise RequestError(f"expected {json.dumps({'jsonData': schema.example()})}",
                           "BAD_SHAPE")
    instances = body["instances"] if "instances" in body else [body]
    if not isinstance(instances, list) or not instances:
        raise RequestError("jsonData.instances must be a non-empty list of objects",
                           "BAD_SHAPE")
    if len(instances) > max_instances:
        raise RequestError(f"{len(instances)} instances in one request; at most "
                           f"{max_instances}", "TOO_MANY_ROWS", status_code=413)
    out = []
    for i, instance in enumerate(instances):
        where = f"instance {i}: " if len(instances) > 1 else ""
        if not isinstance(instance, dict):
            raise RequestError(f"{where}expected an object with {', '.join(schema.required)}",
                               "BAD_SHAPE")
        missing = [f for f in schema.required if f not in instance]
        if missing:
            why = (f" ({schema.event_key} is the event's key: its outcome is joined to the "
                   "answer on it)" if schema.event_key in missing else "")
            raise RequestError(f"{where}missing field(s): {', '.join(missing)}{why}",
                               "MISSING_FEATURE")
        extra = [f for f in instance if f not in schema.accepted]
        if extra:
            raise RequestError(f"{where}unexpected field(s): {', '.join(map(str, extra))}; "
                               f"send {', '.join(schema.required)}, optionally "
                               f"{schema.event_time} and any of the entity's features "
                               f"({', '.join(schema.entity_features)}; the rest come from "
                               "the feature store)", "EXTRA_FEATURE")
        for key in (schema.event_key, schema.entity_key):
            if not isinstance(instance[key], str) or not instance[key].strip():
                raise RequestError(f"{where}{key}: expected a non-empty string, got "
                                   f"{json.dumps(instance[key])}", "BAD_TYPE")
        broken: list[str] = []
        for name, value in instance.items():
            spec = schema.contract.get(name, {"type": "double", "nullable": True})
            if value is None:
                broken += rules.check(name, spec, None)
                continue
            problem = _type_problem(name, spec, value)
            if problem is not None:
                raise RequestError(f"{where}{problem}", "NOT_FINITE" if "finite" in problem
                                   else "BAD_TYPE")
            broken += rules.check(name, spec, value)
        if broken:
            raise RequestError(f"{where}outside the use case's contract: {'; '.join(broken)}",
                               "OUT_OF_CONTRACT", status_code=422)
        out.append(instance)
    return out


def event_time_of(instance: dict, schema: Schema) -> str:
    """The event's time as ISO-8601 UTC: the request's, else now."""
    value = instance.get(schema.event_time)
    parsed = rules.parse_timestamp(value) if value is not None else None
    when = parsed if parsed is not None else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return when.isoformat() + "+00:00"


class FeatureTransformer:
    """seldon-core TRANSFORMER component (``transform_input``). Parameters come from the
    SeldonDeployment graph; the feature server's client is made in load(), after gunicorn's
    fork."""

    def __init__(self, feature_server_url: str, feature_service: str, features: str,
                 schema: str = "", entity_key: str = "", request_features: str = "[]",
                 timeout_s: float = 2.0, instance_id: str = "", model_name: str = "",
                 model_version: str = "", log_dir: str = "", online_store: str = "",
                 **_ignored):
        self.feature_server_url = feature_server_url.rstrip("/")
        self.feature_service = feature_service
        self.features = json.loads(features)
        request = json.loads(request_features)
        # A graph rendered before the request schema existed names only the entity key and
        # the request features; the event key is then optional and the rest is numeric.
        self.schema = Schema(json.loads(schema) if schema else {
            "event_key": "request_key", "event_time": "event_time", "entity_key": entity_key,
            "request_features": request,
            "entity_features": [f for f in self.features if f not in request],
            "contract": {}})
        self.timeout_s = float(timeout_s)
        self.instance_id = instance_id
        self.model_name = model_name
        self.model_version = str(model_version)
        self.log_dir = log_dir
        self.online_store: dict | None = json.loads(online_store) if online_store else None
        self.http: Upstream | None = None
        self.store: SqliteOnline | None = None
        self.log: RequestLog | None = None

    def load(self):
        from lakeloop.deployment.seldon.upstream import Upstream

        self.http = Upstream(self.timeout_s)
        if self.online_store is not None:
            from lakeloop.deployment.seldon.online import SqliteOnline

            self.store = SqliteOnline(self.online_store, self.timeout_s)
        if self.log_dir:
            from lakeloop.deployment.seldon.request_log import RequestLog

            self.log = RequestLog(self.log_dir, f"{self.model_name}-transformer")

    def health_status(self):
        if self.http is None:
            raise RequestError("transformer not loaded yet", "NOT_READY", status_code=503)
        return {"component": "transformer", "feature_service": self.feature_service,
                "online": "in-process" if self.store is not None else self.feature_server_url,
                "instance_id": self.instance_id}

    def _online(self, keys: list[str]) -> dict[str, list]:
        from lakeloop.deployment.seldon.upstream import Unavailable

        if self.http is None:
            raise RequestError("transformer not loaded yet", "NOT_READY", status_code=503)
        if self.store is not None:
            from lakeloop.deployment.seldon.online import StoreUnavailable

            try:
                return self.store.read(keys)
            except StoreUnavailable as exc:
                raise RequestError(f"the online store could not be read: {exc}",
                                   "FEATURE_STORE_UNAVAILABLE", status_code=503) from None
        url = f"{self.feature_server_url}/get-online-features"
        request = {"feature_service": self.feature_service,
                   "entities": {self.schema.entity_key: keys}}
        try:
            # A connection that fails before any answer (a pooled keep-alive connection the
            # feature server had just closed as idle) is tried once more, on a new one.
            status, answer = self.http.post(url, json.dumps(request).encode())
        except Unavailable as exc:
            raise RequestError(f"the feature store did not answer: {exc.kind}",
                               "FEATURE_STORE_UNAVAILABLE", status_code=503) from None
        if status != 200:
            raise RequestError(f"the feature store answered {status}",
                               "FEATURE_STORE_UNAVAILABLE", status_code=503)
        body = json.loads(answer)
        names = body["metadata"]["feature_names"]
        return {name: result["values"] for name, result in zip(names, body["results"],
                                                                 strict=True)}

    def transform_input_raw(self, msg):
        started = time.perf_counter()
        try:
            return self._transform(msg)
        except RequestError as exc:
            self._record_rejection(msg, exc, started)
            raise

    def _record_rejection(self, msg, exc: RequestError, started: float) -> None:
        """A request the model never saw still lands in the inference log, with why."""
        if self.log is None:
            return
        meta = msg.get("meta") if isinstance(msg, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        tags = meta.get("tags")
        tags = tags if isinstance(tags, dict) else {}
        body = msg.get("jsonData") if isinstance(msg, dict) else None
        first = body if isinstance(body, dict) and "instances" not in body else {}
        now = dt.datetime.now(dt.UTC)
        self.log.append({
            "request_id": str(meta.get("puid") or uuid.uuid4().hex), "row": 0,
            "request_key": str(first.get(self.schema.event_key, "")
                               or tags.get("request_key", "")),
            "entity_key": str(first.get(self.schema.entity_key, "")),
            "event_time": now.isoformat(), "ds": now.date().isoformat(),
            "logged_at": now.isoformat(), "model_name": self.model_name,
            "model_version": self.model_version, "predictor": str(tags.get("predictor", "")),
            "features": None, "probability": None, "prediction": None,
            "status": int(exc.status_code), "error": exc.message,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        })

    def _transform(self, msg):
        schema = self.schema
        instances = parse_instances(msg, schema)
        keys = [i[schema.entity_key] for i in instances]
        stored = [f for f in self.features if f not in schema.request_features]
        lookup = [n for n, i in enumerate(instances) if any(f not in i for f in stored)]
        online = self._online([keys[n] for n in lookup]) if lookup else {}
        position = {n: k for k, n in enumerate(lookup)}
        rows = []
        for n, instance in enumerate(instances):
            looked_up = {f: online[f][position[n]] for f in stored} if n in position else {}
            if n in position and all(v is None for v in looked_up.values()):
                needed = [f for f in stored if f not in instance]
                raise RequestError(
                    f"unknown {schema.entity_key} {keys[n]}: not in the online store; send "
                    f"its missing features with the request: {', '.join(needed)}",
                    "UNKNOWN_ENTITY", status_code=404)
            rows.append([instance[f] if f in instance else looked_up[f]
                         for f in self.features])
        meta = msg.get("meta") if isinstance(msg.get("meta"), dict) else {}
        tags = dict(meta.get("tags") or {}) if isinstance(meta.get("tags"), dict) else {}
        tags.update({
            "request_keys": [i[schema.event_key] for i in instances],
            "event_times": [event_time_of(i, schema) for i in instances],
            "entity_keys": keys,
        })
        return {"data": {"names": self.features, "ndarray": rows},
                "meta": {**meta, "tags": tags}}
