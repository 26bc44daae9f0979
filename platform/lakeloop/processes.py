"""Local service processes (endpoints, the feature server): start, find, stop.

Starting is mirakuru's: the command runs in its own session, the start waits until the
service answers (or fails with its exit code, or times out and is killed). These services
outlive the run that started them (a Dagster run deploys an endpoint that later runs and
`lakeloop serve` use), so each leaves a state file under its directory, and any later process
finds and stops it by that file (psutil waits for it to go).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from mirakuru import Executor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired


class ProcessError(RuntimeError):
    pass


@dataclass(frozen=True)
class Running:
    name: str
    url: str
    pid: int
    port: int
    log: str
    info: dict[str, Any] = field(default_factory=dict)


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
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def terminate(pid: int, timeout: float = 15.0) -> bool:
    """Stop a service cleanly: SIGTERM its leader first (gunicorn's master then lets its
    workers finish the requests in flight before it stops them and its helper processes,
    such as seldon-core's metrics manager, which would otherwise die first and fail those
    requests), then the rest of the group; SIGKILL what is left after ``timeout``. False
    when nothing was running."""
    try:
        leader = psutil.Process(pid)
        group = [leader, *leader.children(recursive=True)]
        leader.terminate()
    except psutil.NoSuchProcess:
        return False
    deadline = time.monotonic() + timeout
    psutil.wait_procs([leader], timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    _, left = psutil.wait_procs(group, timeout=max(1.0, deadline - time.monotonic()))
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        psutil.wait_procs(left, timeout=5)
    return True


class _Service(Executor):
    """A mirakuru executor for a service that outlives the process that starts it."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], host: str, ports: list[int],
                 ready: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(cmd, envvars=env, **kwargs)
        self._host, self._ports, self._ready = host, ports, ready

    @property
    def envvars(self) -> dict[str, str]:
        # Exactly the caller's environment: without mirakuru's marker its at-exit cleanup
        # leaves the service running when the starting run ends.
        return dict(self._envvars)

    def pre_start_check(self) -> bool:
        return any(not port_free(self._host, port) for port in self._ports)

    def after_start_check(self) -> bool:
        return self._ready()

    def detach(self) -> int:
        """Hand the running process over to its state file (mirakuru would stop it when
        this object is collected)."""
        if self.process is None:
            raise RuntimeError(f"cannot detach {self.command!r}: it is not running")
        pid = int(self.process.pid)
        self.process = None
        return pid


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
              ready: Callable[[str], bool], timeout: float, info: dict[str, Any] | None = None,
              cwd: Path | None = None) -> Running:
        self.stop(name)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / f"{name}.log"
        url = f"http://{host}:{ports[0]}"
        with log_path.open("ab") as log:
            service = _Service(cmd, env=env, host=host, ports=ports, ready=lambda: ready(url),
                               cwd=str(cwd or self.state_dir), timeout=timeout, sleep=0.2,
                               stdin=None, stdout=log, stderr=log)
            try:
                service.start()
            except AlreadyRunning:
                taken = next(p for p in ports if not port_free(host, p))
                raise ProcessError(
                    f"port {taken} on {host} is already in use, so {name} cannot start; stop "
                    "whatever holds it (`lakeloop serve --stop` stops Lakeloop's services) or "
                    "configure another port") from None
            except ProcessExitedWithError as exc:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise ProcessError(f"{name} exited with {exc.exit_code}:\n{tail}") from None
            except TimeoutExpired:
                raise ProcessError(f"{name} did not become ready within {timeout:.0f}s; "
                                   f"see {log_path}") from None
        running = Running(name, url, service.detach(), ports[0], str(log_path), info or {})
        self._state(name).write_text(json.dumps(asdict(running)))
        return running

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
