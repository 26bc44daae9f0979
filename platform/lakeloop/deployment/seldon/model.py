"""The model microservice: an XGBoost model (UBJ) behind seldon-core's REST protocol, scored
by XGBoost (``XGBoostModel``) or by ONNX Runtime on the version's ONNX export (``OnnxModel``,
the artifact the parity gate proved equal to the booster).

Request: ``{"data": {"names": [...], "ndarray": [[...], ...]}, "meta": {"tags": {...}}}`` or
``{"jsonData": {"features": {name: value}}}``. Response: ``probability`` and ``prediction``
(1 when the probability reaches the decision threshold) per row. Every request, good or bad,
is logged with the model version and its latency.

A request that asks for reasons (``meta.tags.explain``: true for the top three, or a number)
gets, per row, the features that moved its score most towards the adverse decision (the
positive class), from XGBoost's own SHAP contributions (``pred_contribs``) summed over each
feature's columns, with the use case's reason texts; they add up with the base value to the
row's margin. They are in the answer's ``meta.tags.reasons`` and in the request log.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
import uuid
from typing import TYPE_CHECKING

from lakeloop.deployment.seldon.errors import RequestError

if TYPE_CHECKING:
    import xgboost as xgb

    from lakeloop.deployment.seldon.native import NativeBooster
    from lakeloop.deployment.seldon.request_log import RequestLog

MAX_ROWS = 1000
OUTPUT_NAMES = ["probability", "prediction"]
DEFAULT_REASONS = 3


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_rows(msg, features: list[str], max_rows: int = MAX_ROWS,
               categorical: frozenset[str] = frozenset()) -> list[list]:
    """Validate a Seldon message and return its rows' values in ``features`` order: numbers
    (or null, a missing value) for numeric features, text or numbers for categorical ones."""
    if not isinstance(msg, dict):
        raise RequestError("the body must be a JSON object", "BAD_SHAPE")
    if "jsonData" in msg:
        body = msg["jsonData"]
        if not isinstance(body, dict) or not isinstance(body.get("features"), dict):
            raise RequestError('jsonData must be {"features": {"<name>": <number>, ...}}',
                               "BAD_SHAPE")
        names, rows = list(body["features"]), [list(body["features"].values())]
    elif isinstance(msg.get("data"), dict):
        names, rows = msg["data"].get("names"), msg["data"].get("ndarray")
        if names is None or rows is None:
            raise RequestError('data must hold "names" (a list of feature names) and '
                               '"ndarray" (a list of rows)', "BAD_SHAPE")
    else:
        raise RequestError('expected {"data": {"names": [...], "ndarray": [[...]]}} or '
                           '{"jsonData": {"features": {...}}}', "BAD_SHAPE")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RequestError("data.names must be a list of strings", "BAD_SHAPE")
    if len(set(names)) != len(names):
        raise RequestError("data.names repeats a feature name", "BAD_SHAPE")
    missing = [f for f in features if f not in names]
    if missing:
        raise RequestError(f"missing feature(s): {', '.join(missing)}", "MISSING_FEATURE")
    extra = [n for n in names if n not in features]
    if extra:
        raise RequestError(f"unexpected feature(s): {', '.join(extra)}; the model takes "
                           f"{', '.join(features)}", "EXTRA_FEATURE")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise RequestError("data.ndarray must be a non-empty list of rows (lists)", "BAD_SHAPE")
    if len(rows) > max_rows:
        raise RequestError(f"{len(rows)} rows in one request; at most {max_rows}",
                           "TOO_MANY_ROWS", status_code=413)
    order = [names.index(f) for f in features]
    out = []
    for i, row in enumerate(rows):
        if len(row) != len(names):
            raise RequestError(f"row {i} has {len(row)} values for {len(names)} names",
                               "BAD_SHAPE")
        values = []
        for j, k in enumerate(order):
            value = row[k]
            if features[j] in categorical:
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, str | int | float)):
                    raise RequestError(f"row {i}, feature {features[j]}: expected a category, "
                                       f"got {json.dumps(value)}", "BAD_TYPE")
            elif value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise RequestError(f"row {i}, feature {features[j]}: expected a number, "
                                       f"got {json.dumps(value)}", "BAD_TYPE")
                if not math.isfinite(value):
                    raise RequestError(f"row {i}, feature {features[j]}: {value} is not a "
                                       "finite number", "NOT_FINITE")
            values.append(value)
        out.append(values)
    return out


def reasons_wanted(tags: dict, features: int) -> int:
    """How many reasons a request asks for (0: none), from ``meta.tags.explain``."""
    wanted = tags.get("explain")
    if wanted is None or wanted is False:
        return 0
    if wanted is True:
        return min(DEFAULT_REASONS, features)
    if isinstance(wanted, int) and not isinstance(wanted, bool) and 1 <= wanted <= features:
        return wanted
    raise RequestError(f"meta.tags.explain must be true or a whole number from 1 to {features}"
                       f", not {json.dumps(wanted)}", "BAD_EXPLAIN")


class Explainer:
    """Reasons for a model's answers: per row, the base value (the margin before any
    feature) and the ``wanted`` features that raised the margin most (towards the positive
    class, the adverse decision), with every feature's contribution (the SHAP values of its
    columns, summed) and the use case's text for it. What depends only on the model (the
    column-to-feature sums, the texts) is prepared once, at load."""

    def __init__(self, native, encoding, texts: dict):
        import numpy as np

        self.native = native
        owners = encoding.feature_of_columns()
        self.names = list(dict.fromkeys(owners))
        # columns x features, 1 where the column encodes the feature: a product sums them.
        self.sums = np.zeros((len(owners), len(self.names)))
        self.sums[np.arange(len(owners)), [self.names.index(o) for o in owners]] = 1.0
        self.texts = {(n, d): (texts.get(n) or {}).get(d) or n
                      for n in self.names for d in ("up", "down")}

    def __call__(self, matrix, wanted: int) -> list[dict]:
        import numpy as np

        contribs = self.native.contributions(matrix)
        per_feature = contribs[:, :-1].astype(np.float64) @ self.sums
        out = []
        names = self.names
        for row, base in zip(per_feature.tolist(), contribs[:, -1].tolist(), strict=True):
            top = sorted(range(len(row)), key=lambda j: -row[j])[:wanted]  # stable: ties keep order
            out.append({
                "base_value": base,
                "contributions": dict(zip(names, row, strict=True)),
                "top": [{"feature": names[j], "contribution": row[j],
                         "direction": "up" if row[j] > 0 else "down",
                         "text": self.texts[names[j], "up" if row[j] > 0 else "down"]}
                        for j in top],
            })
        return out


def _row_tag(tags: dict, plural: str, singular: str, i: int) -> str:
    """A row's value of a per-row tag (the transformer sends lists), or the request's."""
    values = tags.get(plural)
    if isinstance(values, list) and i < len(values):
        return str(values[i])
    return str(tags.get(singular, ""))


class XGBoostModel:
    """seldon-core MODEL component. ``__init__`` only stores parameters: gunicorn forks after
    it, and XGBoost's OpenMP pool deadlocks in a forked child, so the model loads in load()."""

    platform = "xgboost"

    def __init__(self, model_path: str, features: str, threshold: float, model_name: str,
                 model_version: str, log_dir: str = "", nthread: int = 1,
                 instance_id: str = "", predictor: str = "", encoding: str = "",
                 reason_codes: str = ""):
        from lakeloop.training.encoding import Encoding

        self.model_path = model_path
        self.features = json.loads(features)
        # How the features become the model's columns; without one, every feature is a number.
        self.encoding = Encoding.from_json(encoding or None, self.features)
        self.threshold = float(threshold)
        self.model_name = model_name
        self.model_version = str(model_version)
        self.log_dir = log_dir
        self.nthread = int(nthread)
        self.instance_id = instance_id
        # Set in a SeldonDeployment's graph (no Lakeloop executor in front to tag requests):
        # answers and log records say which predictor of the rollout served them.
        self.predictor = predictor
        # The use case's words for a reason, per feature and direction ({"up", "down"}).
        self.reason_codes = json.loads(reason_codes) if reason_codes else {}
        self.booster: xgb.Booster | None = None
        self.native: NativeBooster | None = None
        self.explainer: Explainer | None = None
        self.log: RequestLog | None = None

    def load(self):
        import xgboost as xgb

        from lakeloop.deployment.seldon.request_log import RequestLog

        booster = xgb.Booster()
        booster.load_model(self.model_path)
        booster.set_param({"nthread": self.nthread})
        if booster.num_features() != len(self.encoding.columns):
            raise ValueError(f"{self.model_path} takes {booster.num_features()} columns, "
                             f"the encoding makes {len(self.encoding.columns)}")
        from lakeloop.deployment.seldon.native import NativeBooster

        self.native = NativeBooster(booster, nthread=self.nthread)
        self.explainer = Explainer(self.native, self.encoding, self.reason_codes)
        self.booster = booster
        if self.log_dir:
            self.log = RequestLog(self.log_dir, f"{self.model_name}-v{self.model_version}")

    def probabilities(self, matrix):
        """The positive class's probability of each encoded row."""
        assert self.native is not None, "load() runs before any request"
        return self.native.predict(matrix)

    def health_status(self):
        if self.booster is None:
            raise RequestError("model not loaded yet", "NOT_READY", status_code=503)
        return {"model": self.model_name, "version": self.model_version, "pid": os.getpid(),
                "instance_id": self.instance_id}

    def tags(self):
        """Tags seldon-core adds to every answer's meta (cluster predictors only)."""
        if not self.predictor:
            return {}
        return {"predictor": self.predictor, "model_version": self.model_version}

    def init_metadata(self):
        return {
            "name": self.model_name,
            "versions": [self.model_version],
            "platform": self.platform,
            "inputs": [{"messagetype": "ndarray", "schema": {"names": self.features}}],
            "outputs": [{"messagetype": "ndarray", "schema": {"names": OUTPUT_NAMES}}],
        }

    def predict_raw(self, msg):
        started = time.perf_counter()
        meta = msg.get("meta") if isinstance(msg, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        tags = meta.get("tags")
        tags = tags if isinstance(tags, dict) else {}
        puid = str(meta.get("puid") or uuid.uuid4().hex)
        from lakeloop.training.encoding import UnknownCategory

        try:
            x = parse_rows(msg, self.features, categorical=frozenset(self.encoding.categorical))
            try:
                matrix = self.encoding.encode_rows(x)
            except UnknownCategory as exc:
                raise RequestError(str(exc), "UNKNOWN_CATEGORY") from None
            if self.native is None or self.explainer is None:
                raise RequestError("model not loaded yet", "NOT_READY", status_code=503)
            wanted = reasons_wanted(tags, len(self.features))
            p = self.probabilities(matrix)
            explained = self.explainer(matrix, wanted) if wanted else None
        except RequestError as exc:
            self._record(puid, tags, None, None, exc.status_code, exc.message, started)
            raise
        flagged = (p >= self.threshold).astype(int)
        self._record(puid, tags, x, p, 200, "", started, explained)
        out_tags: dict = {"model_name": self.model_name, "model_version": self.model_version}
        if explained is not None:
            out_tags["reasons"] = explained
        return {
            "data": {"names": OUTPUT_NAMES,
                     "ndarray": [[float(pi), int(fi)] for pi, fi in zip(p, flagged, strict=True)]},
            "meta": {"puid": puid, "tags": out_tags},
        }

    def _record(self, puid, tags, x, p, status, error, started, explained=None):
        if self.log is None:
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        rows = len(p) if p is not None else 1
        for i in range(rows):
            event_time = _row_tag(tags, "event_times", "event_time", i)
            try:
                when = dt.datetime.fromisoformat(event_time) if event_time else _utc_now()
            except ValueError:
                when = _utc_now()
            self.log.append({
                "request_id": puid,
                "row": i,
                "request_key": _row_tag(tags, "request_keys", "request_key", i),
                "entity_key": _row_tag(tags, "entity_keys", "entity_key", i),
                "event_time": when.isoformat(),
                "ds": when.date().isoformat(),
                "logged_at": _utc_now().isoformat(),
                "model_name": self.model_name,
                "model_version": self.model_version,
                "predictor": str(tags.get("predictor", "") or self.predictor),
                "features": (dict(zip(self.features, x[i], strict=True))
                             if x is not None else None),
                "probability": float(p[i]) if p is not None else None,
                "prediction": int(p[i] >= self.threshold) if p is not None else None,
                "status": int(status),
                "error": error,
                "latency_ms": round(latency_ms, 3),
                # The reasons the answer carried (their top features), as JSON text.
                "reasons": (json.dumps(explained[i]["top"]) if explained is not None
                            else None),
            })


class OnnxModel(XGBoostModel):
    """The same component scoring with ONNX Runtime on ``onnx_path``, the version's ONNX
    export (logged only once the parity gate proved it equal to the booster). Requests are
    checked, answered and logged exactly as XGBoostModel does; reasons, when a request asks
    for them, still come from the booster's SHAP contributions (an ONNX tree ensemble has
    no such output), so the booster is loaded too."""

    platform = "onnx"

    def __init__(self, model_path: str, onnx_path: str, *args, **kwargs):
        super().__init__(model_path, *args, **kwargs)
        self.onnx_path = onnx_path
        self.session = None
        self.input = self.output = ""

    def load(self):
        import onnxruntime as ort

        super().load()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.nthread
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(self.onnx_path, options,
                                       providers=["CPUExecutionProvider"])
        [inputs] = session.get_inputs()
        columns = len(self.encoding.columns)
        if inputs.shape[-1] != columns:
            raise ValueError(f"{self.onnx_path} takes {inputs.shape[-1]} columns, the "
                             f"encoding makes {columns}")
        self.input = inputs.name
        # the exporter's outputs: the label, then each class's probability
        self.output = session.get_outputs()[1].name
        self.session = session

    def health_status(self):
        if self.session is None:
            raise RequestError("model not loaded yet", "NOT_READY", status_code=503)
        return super().health_status()

    def probabilities(self, matrix):
        import numpy as np

        if self.session is None:
            raise RequestError("model not loaded yet", "NOT_READY", status_code=503)
        [out] = self.session.run([self.output], {self.input: matrix.astype(np.float32, copy=False)})
        return np.asarray(out)[:, 1]
