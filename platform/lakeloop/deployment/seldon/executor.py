"""The local executor: what Seldon's orchestrator (and the mesh's traffic split) do on
Kubernetes, for the same components running as microservices on 127.0.0.1.

It answers ``POST /api/v1.0/predictions`` by walking one predictor's graph (the transformer's
``/transform-input``, then the model's ``/predict``), choosing the predictor by the traffic
weights of the rollout (canary or A/B), and mirroring each request to a shadow predictor
whose answers are discarded. The choice is a hash of the request id, so a replayed request
always meets the same predictor. Usage: python -m lakeloop.deployment.seldon.executor <config.json>
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import socket
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lakeloop.deployment.seldon.upstream import Unavailable, Upstream

PREDICT_PATHS = ("/api/v1.0/predictions", "/predict")
# Seldon's ingress route, /seldon/<namespace>/<deployment>/api/v1.0/predictions: the executor
# stands in for the gateway as well, so a client's cluster URL works against it unchanged.
INGRESS_PATH = re.compile(r"/seldon/[a-z0-9][-a-z0-9]*/[a-z0-9][-a-z0-9.]*/api/v1\.0/predictions")
HEALTH_PATHS = ("/health/ping", "/health/status", "/api/v1.0/health/status")


def error_body(message: str, reason: str, code: int = -1) -> dict:
    return {"status": {"code": code, "info": message, "reason": reason, "status": "FAILURE"}}


def pick(predictors: list[dict], request_id: str) -> dict:
    """The predictor for this request: weighted by ``traffic`` (percent), stable per id."""
    bucket = int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16) % 100
    edge = 0
    for predictor in predictors:
        edge += int(predictor["traffic"])
        if bucket < edge:
            return predictor
    return predictors[0]


class Executor:
    def __init__(self, config: dict):
        self.config = config
        self.predictors = [p for p in config["predictors"] if int(p["traffic"]) > 0]
        if sum(int(p["traffic"]) for p in self.predictors) != 100:
            raise ValueError("traffic of the predictors must add up to 100")
        self.shadow: dict | None = config.get("shadow")
        self.max_body = int(config.get("max_body_bytes", 1 << 20))
        self.timeout = float(config.get("timeout_s", 5.0))
        self.upstream = Upstream(self.timeout)
        self.mirror: queue.Queue = queue.Queue(maxsize=10_000)
        if self.shadow:
            threading.Thread(target=self._mirror_loop, daemon=True, name="shadow").start()

    def walk(self, predictor: dict, msg: dict) -> tuple[int, dict]:
        """Send ``msg`` through the predictor's graph; the first non-200 answer is final."""
        body = msg
        for step in predictor["graph"]:
            try:
                # json.dumps allows NaN: a non-finite number travels on to the component
                # that names the field, instead of failing here.
                status, answer = self.upstream.post(step, json.dumps(body).encode())
            except Unavailable as exc:
                return 503, error_body(f"{predictor['name']}: {step} did not answer "
                                       f"({exc.kind})", "UPSTREAM_UNAVAILABLE")
            try:
                body = json.loads(answer)
            except ValueError:
                return 502, error_body(f"{predictor['name']}: {step} answered {status} "
                                       "without JSON", "BAD_UPSTREAM")
            if status != 200:
                return status, body
        return 200, body

    def predict(self, msg: dict) -> tuple[int, dict, str]:
        meta = msg.get("meta")
        if not isinstance(meta, dict):
            meta = msg["meta"] = {}
        tags = meta.get("tags")
        if not isinstance(tags, dict):
            tags = meta["tags"] = {}
        request_id = str(meta.get("puid") or uuid.uuid4().hex)
        meta["puid"] = request_id
        predictor = pick(self.predictors, request_id)
        tags["predictor"] = predictor["name"]
        status, body = self.walk(predictor, msg)
        if self.shadow and status == 200:
            shadow_msg = json.loads(json.dumps(msg))
            shadow_msg["meta"]["tags"]["predictor"] = self.shadow["name"]
            shadow_msg["meta"]["puid"] = f"{request_id}-shadow"
            try:
                self.mirror.put_nowait(shadow_msg)
            except queue.Full:
                pass  # a shadow never slows or fails the live request
        if isinstance(body, dict):  # the answer says which predictor gave it, errors too
            meta_out = body.get("meta")
            meta_out = meta_out if isinstance(meta_out, dict) else {}
            body["meta"] = meta_out
            meta_out.setdefault("tags", {})["predictor"] = predictor["name"]
        return status, body, predictor["name"]

    def _mirror_loop(self) -> None:
        shadow = self.shadow
        assert shadow is not None, "the mirror loop runs only with a shadow predictor"
        while True:
            msg = self.mirror.get()
            try:
                self.walk(shadow, msg)
            except Exception:  # noqa: BLE001 - a shadow's failure is only its own
                pass
            finally:
                self.mirror.task_done()


def handler_for(executor: Executor, instance_id: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # the inference log records requests, not stderr
            return

        def setup(self):
            super().setup()
            # Headers and body go out as one segment, at once: without this, Nagle's
            # algorithm and the client's delayed ACK add ~40 ms to every answer.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            # one write with end_headers(); typeshed does not declare this http.server internal
            self._headers_buffer.append(b"\r\n" + data)  # type: ignore[attr-defined]
            self.flush_headers()

        def do_GET(self):  # noqa: N802
            if self.path in HEALTH_PATHS:
                self._send(200, {"status": "ok", "instance_id": instance_id,
                                 "predictors": [p["name"] for p in executor.predictors],
                                 "shadow": (executor.shadow or {}).get("name"),
                                 "shadow_pending": executor.mirror.unfinished_tasks})
            else:
                self._send(404, error_body(f"no route {self.path}", "NOT_FOUND"))

        def do_POST(self):  # noqa: N802
            if self.path not in PREDICT_PATHS and not INGRESS_PATH.fullmatch(self.path):
                self._send(404, error_body(f"no route {self.path}", "NOT_FOUND"))
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > executor.max_body:
                self.close_connection = True
                self._send(413, error_body(f"request body larger than {executor.max_body} "
                                           "bytes", "PAYLOAD_TOO_LARGE"))
                return
            raw = self.rfile.read(length)
            try:
                msg = json.loads(raw or b"null", parse_constant=_reject_constant)
            except ValueError as exc:
                self._send(400, error_body(f"the body is not valid JSON: {exc}",
                                           "BAD_JSON"))
                return
            if not isinstance(msg, dict):
                self._send(400, error_body("the body must be a JSON object", "BAD_SHAPE"))
                return
            try:
                status, body, _ = executor.predict(msg)
            except Exception as exc:  # noqa: BLE001 - answer, never crash the server
                status, body = 500, error_body(f"executor error: {type(exc).__name__}",
                                               "INTERNAL")
            self._send(status, body)

    return Handler


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def main(argv: list[str]) -> int:
    config = json.loads(open(argv[0], encoding="utf-8").read())
    executor = Executor(config)
    host = os.environ.get("SELDON_BIND_HOST", "127.0.0.1")
    server = ThreadingHTTPServer((host, int(config["port"])),
                                 handler_for(executor, config.get("instance_id", "")))
    server.daemon_threads = True
    sys.stderr.write(f"executor {config.get('name')} on {host}:{config['port']}: "
                     f"{len(executor.predictors)} predictor(s), shadow: "
                     f"{bool(executor.shadow)}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
