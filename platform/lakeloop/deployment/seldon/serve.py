"""Start a seldon-core microservice bound to one address (127.0.0.1 by default).

seldon-core 1.17 binds 0.0.0.0 unconditionally and turns every Flask HTTP error (404, 405,
413) into a 500. This launcher keeps its CLI and fixes both: the bind address comes from
SELDON_BIND_HOST, and HTTP errors keep their status with a JSON message.

It also skips seldon-core's metrics update when a request reported no custom metrics (ours
never do). That update reads and writes the worker's entry in a ``multiprocessing.Manager``
dict under the Manager's lock, four round trips to the Manager's process on every request,
to store the entry unchanged; /metrics reads the same (absent or empty) entry either way.
Usage: python -m lakeloop.deployment.seldon.serve <module.Class> [seldon-core-microservice flags]
"""

from __future__ import annotations

import os
import sys

from seldon_core import gunicorn_utils, wrapper
from seldon_core.metrics import SeldonMetrics
from seldon_core.microservice import main

HOST = os.environ.get("SELDON_BIND_HOST", "127.0.0.1")
MAX_BODY_BYTES = int(os.environ.get("LAKELOOP_MAX_BODY_BYTES", str(1 << 20)))

_load_config = gunicorn_utils.StandaloneApplication.load_config


def _bind_host(self):
    bind = self.options.get("bind")
    if bind and bind.startswith("0.0.0.0:"):
        self.options["bind"] = f"{HOST}:{bind.split(':', 1)[1]}"
    _load_config(self)


_get_rest_microservice = wrapper.get_rest_microservice


def _rest_microservice(*args, **kwargs):
    from flask import jsonify
    from werkzeug.exceptions import HTTPException

    app = _get_rest_microservice(*args, **kwargs)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body larger than {MAX_BODY_BYTES} bytes"
        body = {"status": {"code": -1, "info": message, "reason": exc.name.upper()
                           .replace(" ", "_"), "status": 1}}
        return jsonify(body), exc.code

    return app


_update_metrics = SeldonMetrics.update


def _update_reported_metrics(self, custom_metrics, method):
    if custom_metrics:
        _update_metrics(self, custom_metrics, method)


gunicorn_utils.StandaloneApplication.load_config = _bind_host
SeldonMetrics.update = _update_reported_metrics
wrapper.get_rest_microservice = _rest_microservice

if __name__ == "__main__":
    sys.exit(main())
