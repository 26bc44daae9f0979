"""The built images (make images), started with buildah as their deployments start them:
each test runs a working container of an image on this machine's loopback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

TAG = os.environ.get("LAKELOOP_IMAGE_TAG", "0.1.0")
# buildah (1.28, Debian's) re-executes itself from a sealed in-memory copy of its binary
# before it starts a container; now and then the kernel refuses the seal (EBUSY) and buildah
# exits before the container's command ever ran. That start, and only that, is tried again.
RUNTIME_FAILED_TO_START = "sealing memfd copy: Device or resource busy"
START_ATTEMPTS = 3
SERVING = f"lakeloop/serving:{TAG}"
USER_CODE = f"lakeloop/user-code:{TAG}"


def _buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["buildah", *args], capture_output=True, text=True, check=check)


def entrypoint(image: str) -> list[str]:
    """The image's own ENTRYPOINT and CMD: what a pod of it runs."""
    found = _buildah("inspect", "--type", "image", image, check=False)
    if found.returncode != 0:
        pytest.fail(f"{image} is not built (run `make images`): {found.stderr.strip()}")
    config = json.loads(found.stdout)["OCIv1"]["config"]
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def run(image: str, command: list[str], env: dict[str, str] | None = None,
        volumes: dict[Path, str] | None = None, timeout: float = 600
        ) -> subprocess.CompletedProcess:
    """``command`` in a fresh container of ``image`` (its user, its environment), to the end."""
    for attempt in range(1, START_ATTEMPTS + 1):
        with container(image) as name:
            done = subprocess.run(_run_args(name, command, env, volumes), capture_output=True,
                                  text=True, timeout=timeout)
        if (done.returncode == 0 or RUNTIME_FAILED_TO_START not in done.stderr
                or attempt == START_ATTEMPTS):
            return done
    raise AssertionError("unreachable: the last attempt returns")


@contextlib.contextmanager
def serving(image: str, command: list[str], url: str, env: dict[str, str] | None = None,
            volumes: dict[Path, str] | None = None, ready_s: float = 180) -> Iterator[Path]:
    """``command`` started in a container of ``image``; yields once ``url`` answers (any
    HTTP status), then stops it. Its output is kept in a file the failure shows."""
    for attempt in range(1, START_ATTEMPTS + 1):
        with container(image) as name, open(Path(os.environ.get("TMPDIR", "/tmp"))
                                            / f"{name}.log", "w+") as out:
            process = subprocess.Popen(_run_args(name, command, env, volumes), stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                output = _until_answering(process, out, url, ready_s)
                if output is None:
                    yield Path(out.name)
                    return
                if RUNTIME_FAILED_TO_START not in output or attempt == START_ATTEMPTS:
                    pytest.fail(f"{command} did not answer on {url}:\n{output[-4000:]}")
            finally:
                _stop(process)


def _until_answering(process: subprocess.Popen, out, url: str, ready_s: float) -> str | None:
    """None once ``url`` answers; the process's output if it ended or the time ran out."""
    deadline = time.monotonic() + ready_s
    while True:
        try:
            requests.get(url, timeout=2)
            return None
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            out.seek(0)
            return out.read()
        time.sleep(0.5)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:  # it ended by itself (the failure above says how)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def container(image: str) -> Iterator[str]:
    made = _buildah("from", "--pull=never", image, check=False)
    if made.returncode != 0:
        pytest.fail(f"{image} is not built (run `make images`): {made.stderr.strip()}")
    name = made.stdout.strip()
    try:
        yield name
    finally:
        _buildah("rm", name, check=False)


def _run_args(name: str, command: list[str], env: dict[str, str] | None,
              volumes: dict[Path, str] | None) -> list[str]:
    args = ["buildah", "run", "--isolation", "chroot"]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    for host, inside in (volumes or {}).items():
        args += ["--volume", f"{host}:{inside}"]
    return [*args, name, "--", *command]
