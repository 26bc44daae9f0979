"""Where a figure came from: the commit, the machine, and the result file it lands in.

The standard library only (psutil when it is there), so the standalone ``gpu_check.py`` can
stamp its result on a GPU machine that has nothing but numpy and xgboost installed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def results_dir() -> Path:
    """bench/results, or LAKELOOP_BENCH_RESULTS (smoke runs keep their files out of it)."""
    return Path(os.environ.get("LAKELOOP_BENCH_RESULTS") or ROOT / "bench" / "results")


def git_commit() -> dict:
    """HEAD, and whether the working tree differed from it when the figures were taken."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    # The figures of earlier benchmarks are outputs, not the code that produced these.
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":(exclude)bench/results")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None
            else None}


def _cpuinfo() -> tuple[str, int | None]:
    """The CPU's model name and its physical core count, from /proc/cpuinfo."""
    model, cores = platform.processor() or platform.machine(), set()
    physical = core = None
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return model, None
    for line in [*lines, ""]:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
        elif not key:  # a blank line ends one logical CPU's block
            if core is not None:
                cores.add((physical, core))
            physical = core = None
    return model, len(cores) or None


def _memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return None


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine_info() -> dict:
    model, physical = _cpuinfo()
    memory = _memory_bytes()
    return {"cpu_model": model, "cores_logical": os.cpu_count(), "cores_physical": physical,
            "cores_usable": usable_cores(),
            "memory_gib": None if memory is None else round(memory / 2**30, 1),
            "gpus": _gpus(), "os": f"{platform.system()} {platform.release()}",
            "arch": platform.machine(), "python": platform.python_version()}


def describe(info: dict) -> str:
    """One line a reader can compare machines by."""
    cores = f"{info.get('cores_logical')} logical cores"
    if info.get("cores_physical"):
        cores += f" ({info['cores_physical']} physical)"
    memory = f"{info['memory_gib']:g} GiB" if info.get("memory_gib") is not None else "? GiB"
    gpus = f", {'; '.join(info['gpus'])}" if info.get("gpus") else ""
    return f"{info.get('cpu_model', '?')}, {cores}, {memory}{gpus}"


def stamp() -> dict:
    """What every result file carries besides its figures."""
    return {**git_commit(), "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_info()}


def write_result(name: str, payload: dict, directory: Path | None = None) -> Path:
    directory = directory or results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, **stamp(), **payload}, indent=2,
                               default=str))
    return path
