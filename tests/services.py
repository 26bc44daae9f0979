"""Real services for tests, started from the binaries set-up installs (never mocks)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support import services

# The same launchers the production-shape services use (tests.support.services).
free_port = services.free_port


def RedisServer(directory: Path) -> services.Redis:  # noqa: N802 - kept for the tests' name
    """redis-server on 127.0.0.1, on a free port, in its own directory, no password."""
    return services.Redis(directory, password=False)


def logged_records(log_dir, request_key: str, expected: int, timeout: float = 15.0) -> dict:
    """The request-log records tagged ``request_key``, by request id, once ``expected`` of
    them have been flushed (the log buffers for about a second) or the timeout passes."""
    import json

    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        for path in log_dir.glob("ds=*/*.jsonl"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["request_key"] == request_key:
                    found[record["request_id"]] = record
        time.sleep(0.3)
    return found
