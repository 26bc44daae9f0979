"""Real services for tests, started from the binaries set-up installs (never mocks)."""

from __future__ import annotations

import time
from pathlib import Path

from lakeloop.deployment.seldon.request_log import complete_lines
from tests.support import services

# The same launchers the production-shape services use (tests.support.services).
free_port = services.free_port


def RedisServer(directory: Path) -> services.Redis:  # noqa: N802 - kept for the tests' name
    """redis-server on 127.0.0.1, on a free port, in its own directory, no password."""
    return services.Redis(directory, password=False)


def logged_records(log_dir, request_key: str) -> dict:
    """The request-log records tagged ``request_key``, by request id. The log is written
    before an answer leaves the server, so every answered request is already there."""
    import json

    found: dict[str, dict] = {}
    for path in Path(log_dir).glob("ds=*/*.jsonl"):
        for line in complete_lines(path):
            record = json.loads(line)
            if record["request_key"] == request_key:
                found[record["request_id"]] = record
    return found


def mirrored(health_url: str, timeout: float = 120.0) -> None:
    """Wait until the executor has sent every mirrored request to its shadow (it says how
    many are pending on its health route); the timeout only bounds a hung executor."""
    import requests

    deadline = time.monotonic() + timeout
    while requests.get(health_url, timeout=10).json().get("shadow_pending", 0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{health_url}: mirrored requests still pending")
        time.sleep(0.1)
