"""A buffered request log: records go to memory, a background thread writes them to JSONL
files every second (and on clean shutdown), so logging never waits on the disk."""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path


class RequestLog:
    def __init__(self, directory: str, prefix: str, flush_seconds: float = 1.0,
                 max_buffer: int = 500):
        self.directory = Path(directory)
        self.prefix = prefix
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._buffer: list[dict] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="request-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def append(self, record: dict) -> None:
        with self._lock:
            self._buffer.append(record)
            full = len(self._buffer) >= self.max_buffer
        if full:
            self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        with self._lock:
            records, self._buffer = self._buffer, []
        if not records:
            return 0
        by_day: dict[str, list[dict]] = {}
        for record in records:
            by_day.setdefault(record["ds"], []).append(record)
        for ds, rows in by_day.items():
            day_dir = self.directory / f"ds={ds}"
            day_dir.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._seq += 1
                seq = self._seq
            name = f"{self.prefix}-{os.getpid()}-{int(time.time() * 1000)}-{seq:06d}.jsonl"
            tmp = day_dir / f".{name}.tmp"
            with tmp.open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n")
            os.replace(tmp, day_dir / name)  # readers never see half a file
        return len(records)

    def close(self) -> None:
        self._stop.set()
        self.flush()
