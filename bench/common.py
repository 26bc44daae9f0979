"""What every benchmark shares: the result record, the machine, timing helpers."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from provenance import ROOT, results_dir, write_result

from lakeloop.profiling import is_spark_driver

PYTHON = sys.executable
QUICK_ENV = "LAKELOOP_BENCH_QUICK"


def quick() -> bool:
    """A smoke run at the smallest sizes (`bench/run.py --quick`): proves the benchmark runs,
    its figures mean nothing, and it never writes into bench/results."""
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


def machine() -> str:
    return (f"{platform.machine()} {psutil.cpu_count(logical=True)} cpu, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")


@dataclass
class Result:
    name: str
    metric: str
    unit: str
    value: float
    peer: str | None = None
    peer_value: float | None = None
    target: str = ""
    met: bool | None = None
    machine: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer_value in (None, 0) or self.value is None:
            return None
        return self.value / self.peer_value

    def record(self) -> dict:
        out = asdict(self)
        out["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        out["machine"] = self.machine or machine()
        return out


def write(name: str, results: list[Result], extra: dict | None = None) -> Path:
    """bench/results/<name>.json: the figures, the commit and the machine they ran on."""
    directory = results_dir()
    if quick() and not os.environ.get("LAKELOOP_BENCH_RESULTS"):
        directory = Path(tempfile.gettempdir()) / "lakeloop-bench-quick"
    return write_result(name, {"quick": quick(), "results": [r.record() for r in results],
                               **(extra or {})}, directory)


def run_tracked(cmd: list[str], env: dict[str, str], cwd: Path = ROOT,
                interval: float = 0.2) -> tuple[float, float, int, subprocess.CompletedProcess]:
    """Run a command; return wall seconds, peak RSS (GiB) of its process tree, JVM starts."""
    started = time.perf_counter()
    # Output goes to a file, not a pipe: a chatty child would fill the pipe and block.
    log = tempfile.TemporaryFile(mode="w+")
    proc = psutil.Popen(cmd, env={**os.environ, **env}, cwd=cwd, stdout=log,
                        stderr=subprocess.STDOUT, text=True)
    peak, jvms = 0, set()
    while proc.poll() is None:
        total = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                    if is_spark_driver(p):
                        jvms.add(p.pid)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
        except psutil.NoSuchProcess:
            break
        peak = max(peak, total)
        time.sleep(interval)
    log.seek(0)
    out = log.read()
    log.close()
    seconds = time.perf_counter() - started
    completed = subprocess.CompletedProcess(cmd, proc.returncode, out, "")
    return seconds, peak / 2**30, len(jvms), completed
