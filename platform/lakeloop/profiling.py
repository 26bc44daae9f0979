"""Peak memory of a process tree (this process, the Spark JVM, serving workers), and how
many JVMs it started."""

from __future__ import annotations

import threading

import psutil


def is_spark_driver(proc: psutil.Process) -> bool:
    """A Spark driver JVM; spark-submit's short-lived launcher JVM does not count."""
    if proc.name() != "java":
        return False
    cmdline = proc.cmdline()
    return ("org.apache.spark.deploy.SparkSubmit" in cmdline
            and "org.apache.spark.launcher.Main" not in cmdline)


class PeakMemory:
    """Samples the resident memory of this process and all its descendants until stopped."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.peak_bytes = 0
        self.jvm_pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
                if is_spark_driver(proc):
                    self.jvm_pids.add(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._sample())

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / 2**30


def step_seconds(instance, run_ids: list[str]) -> dict[str, float]:
    """Wall time per step (asset) summed over runs, from Dagster's event log, slowest
    first."""
    started: dict[tuple[str, str], float] = {}
    total: dict[str, float] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                started[(run_id, event.step_key)] = entry.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                t0 = started.get((run_id, event.step_key))
                if t0 is not None:
                    total[event.step_key] = round(total.get(event.step_key, 0.0)
                                                  + entry.timestamp - t0, 2)
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))
