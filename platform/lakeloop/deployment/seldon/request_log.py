"""The request log, written through: a request's record is in the file before its answer
leaves the server, so a killed server loses nothing it answered.

Each record is one ``write`` of one JSON line to a file opened for appending (one file per
process and day, ``ds=<day>/<prefix>-<pid>-<start ms>-<n>.jsonl``). The kernel keeps what
was written when the process dies, so SIGKILL, an OOM kill or a crash after an answer
still leaves its record; only a crash of the machine itself can lose the page cache. A
write is a few microseconds: logging never waits on the disk's flush.

Readers may meet a file while a record is being appended: ``complete_lines`` reads only
lines that end in a newline (the tail is read again next time).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

MAX_FILE_BYTES = 64 << 20  # then a new file: readers and compaction work in pieces
OPEN_DAYS = 4  # files kept open at once (records arrive for today and late events)


class RequestLog:
    def __init__(self, directory: str, prefix: str, max_file_bytes: int = MAX_FILE_BYTES):
        self.directory = Path(directory)
        self.prefix = prefix
        self.max_file_bytes = max_file_bytes
        self._started = int(time.time() * 1000)
        self._files: dict[str, tuple[int, int]] = {}  # ds -> (fd, bytes written)
        self._seq = 0
        self._lock = threading.Lock()
        atexit.register(self.close)

    def append(self, *records: dict) -> None:
        """Write ``records`` (one request's rows): one write per day they fall on."""
        by_day: dict[str, bytearray] = {}
        for record in records:
            line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
            by_day.setdefault(record["ds"], bytearray()).extend(line.encode())
        with self._lock:  # one writer at a time: lines never interleave
            for ds, data in by_day.items():
                fd, size = self._file(ds, len(data))
                os.write(fd, data)
                self._files[ds] = (fd, size + len(data))

    def _file(self, ds: str, incoming: int) -> tuple[int, int]:
        current = self._files.get(ds)
        if current is not None and current[1] + incoming <= self.max_file_bytes:
            return current
        if current is not None:
            os.close(current[0])
            del self._files[ds]
        while len(self._files) >= OPEN_DAYS:  # the oldest day's file is done with
            oldest = min(self._files)
            os.close(self._files.pop(oldest)[0])
        day_dir = self.directory / f"ds={ds}"
        day_dir.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{self.prefix}-{os.getpid()}-{self._started}-{self._seq:06d}.jsonl"
        fd = os.open(day_dir / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._files[ds] = (fd, 0)
        return self._files[ds]

    def close(self) -> None:
        with self._lock:
            for fd, _ in self._files.values():
                os.close(fd)
            self._files.clear()


def complete_lines(path: Path) -> Iterator[str]:
    """The file's complete lines (a record still being appended is left for next time)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.endswith("\n") and line.strip():
                yield line
