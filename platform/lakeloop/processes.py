"""Local service processes (endpoints, the feature server): start, find, stop.

Each runs in its own process group, bound to 127.0.0.1 by default, with a state file under
the data root so any later run (or `lakeloop serve --stop`) can find and stop it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


class ProcessError(RuntimeError):
    pass


@dataclass(frozen=True)
class Running:
    name: str
    url: str
    pid: int
    port: int
    log: str
    info: dict = field(default_factory=dict)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM the process group (workers flush and exit), SIGKILL after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
            if not alive(pid):
                return True
        if waited == pid:
            return True
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


class Registry:
    """State files of the services started under one directory."""

    def __init__(self, state_dir: Path | str):
        self.state_dir = Path(state_dir)

    def _state(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def get(self, name: str, answers: Callable[[str], bool]) -> Running | None:
        state = self._state(name)
        if not state.exists():
            return None
        running = Running(**json.loads(state.read_text()))
        return running if alive(running.pid) and answers(running.url) else None

    def start(self, name: str, cmd: list[str], env: dict[str, str], host: str, ports: list[int],
              ready: Callable[[str], bool], timeout: float, info: dict | None = None,
              cwd: Path | None = None) -> Running:
        self.stop(name)
        for taken in ports:
            if not port_free(host, taken):
                raise ProcessError(
                    f"port {taken} on {host} is already in use, so {name} cannot start; stop "
                    "whatever holds it (`lakeloop serve --stop` stops Lakeloop's services) or "
                    "configure another port")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(cwd or self.state_dir), start_new_session=True)
        url = f"http://{host}:{ports[0]}"
        running = Running(name, url, proc.pid, ports[0], str(log_path), info or {})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise ProcessError(f"{name} exited with {proc.returncode}:\n{tail}")
            if ready(url):
                self._state(name).write_text(json.dumps(asdict(running)))
                return running
            time.sleep(0.2)
        terminate(proc.pid)
        raise ProcessError(f"{name} did not become ready within {timeout:.0f}s; see {log_path}")

    def stop(self, name: str) -> bool:
        state = self._state(name)
        if not state.exists():
            return False
        running = Running(**json.loads(state.read_text()))
        stopped = terminate(running.pid)
        state.unlink(missing_ok=True)
        return stopped

    def stop_all(self) -> list[str]:
        return [s.stem for s in sorted(self.state_dir.glob("*.json")) if self.stop(s.stem)]
