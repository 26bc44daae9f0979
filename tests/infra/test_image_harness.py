"""The image smoke tests' harness (tests/images/conftest.py) tries a container start again
only when buildah itself failed to start it (its sealed re-exec copy refused with EBUSY),
never when the container's command failed. A stand-in ``buildah`` on PATH fails the first
start that way; the real buildah and images are what `make images` runs."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.images import conftest as harness

FAKE = """#!{python}
import os, subprocess, sys
state = {state!r}
verb = sys.argv[1]
if verb == "from":
    print("working-container"); sys.exit(0)
if verb == "rm":
    sys.exit(0)
if verb == "run":
    command = sys.argv[sys.argv.index("--") + 1:]
    starts = int(open(state).read()) if os.path.exists(state) else 0
    open(state, "w").write(str(starts + 1))
    if starts < {failures}:
        sys.stderr.write("Close_Fd {message}\\nsubprocess exited with status 1\\n")
        sys.exit(1)
    os.execvp(command[0], command)
sys.exit(2)
"""


def _fake_buildah(tmp_path: Path, monkeypatch, failures: int) -> Path:
    state = tmp_path / "starts"
    script = tmp_path / "bin" / "buildah"
    script.parent.mkdir()
    script.write_text(FAKE.format(python=sys.executable, state=str(state), failures=failures,
                                  message=harness.RUNTIME_FAILED_TO_START))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return state


def test_a_start_buildah_failed_is_tried_again_and_the_command_runs_once(tmp_path,
                                                                          monkeypatch):
    state = _fake_buildah(tmp_path, monkeypatch, failures=1)
    done = harness.run("image", [sys.executable, "-c", "print('ran')"])
    assert (done.returncode, done.stdout.strip()) == (0, "ran")
    assert state.read_text() == "2"


def test_a_failing_command_is_not_tried_again(tmp_path, monkeypatch):
    state = _fake_buildah(tmp_path, monkeypatch, failures=0)
    done = harness.run("image", [sys.executable, "-c", "import sys; sys.exit(3)"])
    assert done.returncode == 3 and state.read_text() == "1"


def test_buildah_failing_every_time_is_reported_after_the_last_attempt(tmp_path, monkeypatch):
    state = _fake_buildah(tmp_path, monkeypatch, failures=10)
    done = harness.run("image", [sys.executable, "-c", "print('ran')"])
    assert done.returncode == 1 and harness.RUNTIME_FAILED_TO_START in done.stderr
    assert state.read_text() == str(harness.START_ATTEMPTS)


def test_a_served_container_whose_start_buildah_failed_is_started_again(tmp_path,
                                                                        monkeypatch):
    state = _fake_buildah(tmp_path, monkeypatch, failures=1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
               "--directory", str(tmp_path)]
    with harness.serving("image", command, f"http://127.0.0.1:{port}/", ready_s=60):
        assert state.read_text() == "2"


def test_a_served_command_that_dies_fails_the_test_at_once(tmp_path, monkeypatch):
    _fake_buildah(tmp_path, monkeypatch, failures=0)
    with pytest.raises(pytest.fail.Exception, match="did not answer"):
        with harness.serving("image", [sys.executable, "-c", "raise SystemExit(4)"],
                             "http://127.0.0.1:9/", ready_s=60):
            pass
