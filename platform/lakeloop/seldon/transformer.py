"""The feature transformer: an applicant id plus request-time fields in, a complete feature
row out, with the applicant's features fetched from Feast's HTTP feature server.

Request: ``{"jsonData": {"<entity key>": "<id>", "<request field>": <number>, ...}}`` for one
applicant, or ``{"jsonData": {"instances": [{...}, ...]}}`` for several. Output: the model's
input message, ``{"data": {"names": [...], "ndarray": [[...]]}}``, with the request's meta
(tags such as ``request_key`` and ``event_time``) passed on and ``entity_key`` set.
Every problem is a 4xx whose message names it; an unknown applicant is a 404.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import uuid

from lakeloop.seldon.model import RequestError

MAX_INSTANCES = 100


def parse_instances(msg, entity_key: str, request_fields: list[str],
                    max_instances: int = MAX_INSTANCES) -> list[dict]:
    """Validated instances: each has the entity key (a non-empty string) and every request
    field (a finite number), nothing else."""
    if not isinstance(msg, dict):
        raise RequestError("the body must be a JSON object", "BAD_SHAPE")
    body = msg.get("jsonData")
    if not isinstance(body, dict):
        example = {entity_key: "<id>", **{f: 0 for f in request_fields}}
        raise RequestError(f"expected {json.dumps({'jsonData': example})}", "BAD_SHAPE")
    instances = body["instances"] if "instances" in body else [body]
    if not isinstance(instances, list) or not instances:
        raise RequestError("jsonData.instances must be a non-empty list of objects",
                           "BAD_SHAPE")
    if len(instances) > max_instances:
        raise RequestError(f"{len(instances)} instances in one request; at most "
                           f"{max_instances}", "TOO_MANY_ROWS", status_code=413)
    expected = [entity_key, *request_fields]
    out = []
    for i, instance in enumerate(instances):
        where = f"instance {i}: " if len(instances) > 1 else ""
        if not isinstance(instance, dict):
            raise RequestError(f"{where}expected an object with {', '.join(expected)}",
                               "BAD_SHAPE")
        missing = [f for f in expected if f not in instance]
        if missing:
            raise RequestError(f"{where}missing field(s): {', '.join(missing)}",
                               "MISSING_FEATURE")
        extra = [f for f in instance if f not in expected]
        if extra:
            raise RequestError(f"{where}unexpected field(s): {', '.join(map(str, extra))}; "
                               f"send {', '.join(expected)} (the other features come from "
                               "the feature store)", "EXTRA_FEATURE")
        key = instance[entity_key]
        if not isinstance(key, str) or not key.strip():
            raise RequestError(f"{where}{entity_key}: expected a non-empty string, got "
                               f"{json.dumps(key)}", "BAD_TYPE")
        for name in request_fields:
            value = instance[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RequestError(f"{where}{name}: expected a number, got "
                                   f"{json.dumps(value)}", "BAD_TYPE")
            if not math.isfinite(value):
                raise RequestError(f"{where}{name}: {value} is not a finite number",
                                   "NOT_FINITE")
        out.append(instance)
    return out


class FeatureTransformer:
    """seldon-core TRANSFORMER component (``transform_input``). Parameters come from the
    SeldonDeployment graph; the HTTP session is made in load(), after gunicorn's fork."""

    def __init__(self, feature_server_url: str, feature_service: str, entity_key: str,
                 request_features: str, features: str, timeout_s: float = 2.0,
                 instance_id: str = "", model_name: str = "", model_version: str = "",
                 log_dir: str = "", **_ignored):
        self.feature_server_url = feature_server_url.rstrip("/")
        self.feature_service = feature_service
        self.entity_key = entity_key
        self.request_features = json.loads(request_features)
        self.features = json.loads(features)
        self.timeout_s = float(timeout_s)
        self.instance_id = instance_id
        self.model_name = model_name
        self.model_version = str(model_version)
        self.log_dir = log_dir
        self.http = None
        self.log = None

    def load(self):
        import requests

        self.http = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
        self.http.mount("http://", adapter)
        if self.log_dir:
            from lakeloop.seldon.request_log import RequestLog

            self.log = RequestLog(self.log_dir, f"{self.model_name}-transformer")

    def health_status(self):
        if self.http is None:
            raise RequestError("transformer not loaded yet", "NOT_READY", status_code=503)
        return {"component": "transformer", "feature_service": self.feature_service,
                "instance_id": self.instance_id}

    def _online(self, keys: list[str]) -> dict[str, list]:
        import requests

        try:
            response = self.http.post(
                f"{self.feature_server_url}/get-online-features", timeout=self.timeout_s,
                json={"feature_service": self.feature_service,
                      "entities": {self.entity_key: keys}})
        except requests.RequestException as exc:
            raise RequestError(f"the feature store did not answer: {type(exc).__name__}",
                               "FEATURE_STORE_UNAVAILABLE", status_code=503) from None
        if response.status_code != 200:
            raise RequestError(f"the feature store answered {response.status_code}",
                               "FEATURE_STORE_UNAVAILABLE", status_code=503)
        body = response.json()
        names = body["metadata"]["feature_names"]
        return {name: result for name, result in zip(names, body["results"], strict=True)}

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
        tags = meta.get("tags") if isinstance(meta.get("tags"), dict) else {}
        now = dt.datetime.now(dt.UTC)
        self.log.append({
            "request_id": str(meta.get("puid") or uuid.uuid4().hex), "row": 0,
            "request_key": str(tags.get("request_key", "")),
            "entity_key": str(tags.get("entity_key", "")),
            "event_time": now.isoformat(), "ds": now.date().isoformat(),
            "logged_at": now.isoformat(), "model_name": self.model_name,
            "model_version": self.model_version, "predictor": str(tags.get("predictor", "")),
            "features": None, "probability": None, "prediction": None,
            "status": int(exc.status_code), "error": exc.message,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        })

    def _transform(self, msg):
        instances = parse_instances(msg, self.entity_key, self.request_features)
        keys = [i[self.entity_key] for i in instances]
        online = self._online(keys)
        stored = [f for f in self.features if f not in self.request_features]
        unknown = sorted({k for n, k in enumerate(keys)
                          if all(online[f]["values"][n] is None for f in stored)})
        if unknown:
            raise RequestError(f"unknown {self.entity_key}: {', '.join(unknown)} (no features "
                               "in the online store)", "UNKNOWN_ENTITY", status_code=404)
        rows = []
        for n, instance in enumerate(instances):
            row = []
            for feature in self.features:
                value = (instance[feature] if feature in self.request_features
                         else online[feature]["values"][n])
                if value is None:
                    raise RequestError(f"{self.entity_key} {keys[n]}: feature {feature} is "
                                       "missing in the online store", "MISSING_FEATURE",
                                       status_code=422)
                row.append(float(value))
            rows.append(row)
        meta = msg.get("meta") if isinstance(msg.get("meta"), dict) else {}
        tags = dict(meta.get("tags") or {}) if isinstance(meta.get("tags"), dict) else {}
        tags.setdefault("entity_key", ",".join(keys))
        return {"data": {"names": self.features, "ndarray": rows},
                "meta": {**meta, "tags": tags}}
