"""Raw snapshot to gold at 1M, 10M and 50M rows: the Spark assets (bronze, silver + quarantine
+ checks, gold, in Delta) against a pyarrow and a polars implementation of the same transform
(the single-node floor), in one run; plus the cost of re-running one day of the 10M window.

Every window must complete within the machine's memory: a failed window fails the benchmark
(with Spark's error), it is never skipped. The 50M window (5M rows a day) is Spark's alone:
it is there to prove a day ten times larger than the last one does not fail, and the peers
would hold it all in memory at once."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg
import psutil
from common import Result
from lakehouse_data import write_days
from lakehouse_peers import polars_transform, pyarrow_transform

from lakeloop.definitions import build_definitions
from lakeloop.settings import Settings
from lakeloop.usecase import load_use_cases

EXTRA: dict = {}
START = dt.date(2026, 9, 1)
DAYS = 10
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SPARK_STEPS = ("bronze_applications", "silver_applications", "gold_applicant_features")


class Peak:
    def __init__(self, tree: bool):
        self.tree, self.peak, self._stop = tree, 0, threading.Event()

    def _rss(self) -> int:
        me = psutil.Process()
        procs = [me, *me.children(recursive=True)] if self.tree else [me]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def __enter__(self):
        def loop():
            while not self._stop.wait(0.2):
                self.peak = max(self.peak, self._rss())
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def gib(self) -> float:
        return self.peak / 2**30


def _days(first: int, count: int) -> list[str]:
    return [(START + dt.timedelta(first + i)).isoformat() for i in range(count)]


def _materialize(defs, instance, days, raw_only=False):
    uc = "credit_risk"
    keys = [dg.AssetKey([uc, "raw", "applications"])]
    if not raw_only:
        keys += [dg.AssetKey([uc, "lakehouse", n]) for n in
                 ("bronze_applications", "silver_applications", "quarantine_applications",
                  "gold_applicant_features")]
    result = dg.materialize(list(defs.assets), selection=keys, resources=defs.resources,
                            instance=instance, run_config=QUIET, raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": days[0],
                                  "dagster/asset_partition_range_end": days[-1]})
    if not result.success:
        errors = [e.event_specific_data.error.message for e in result.all_events
                  if e.is_step_failure and e.event_specific_data.error]
        raise RuntimeError("the Spark run failed:\n" + "\n".join(errors)[:4000])
    steps, started = {}, {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS":
            steps[event.step_key] = entry.timestamp - started[event.step_key]
    return {k: v for k, v in steps.items() if any(k.endswith(s) for s in SPARK_STEPS)}


def run() -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="lakeloop-lakehouse-"))
    results: list[Result] = []
    try:
        root = work / "lake"
        landing = root / "landing" / "credit_risk" / "applications"
        settings = Settings.from_env({}).with_data_root(root)
        defs = build_definitions(settings)
        instance = dg.DagsterInstance.ephemeral()
        use_case = load_use_cases(settings.use_case_dirs)[0]
        raw_dir = root / "credit_risk" / "raw" / "applications"
        # Warm the JVM on a separate 2-day window: the figures are steady state.
        write_days(landing, START + dt.timedelta(100), 2, 100_000, seed=99)
        _materialize(defs, instance, _days(100, 2))
        timings = {}
        for label, rows, offset in (("1M", 1_000_000, 0), ("10M", 10_000_000, 20),
                                    ("50M", 50_000_000, 40)):
            days = _days(offset, DAYS)
            write_days(landing, START + dt.timedelta(offset), DAYS, rows // DAYS, seed=offset)
            _materialize(defs, instance, days, raw_only=True)  # the same raw step for all
            with Peak(tree=True) as spark_peak:
                t0 = time.perf_counter()
                steps = _materialize(defs, instance, days)  # raises when a window fails
                spark_s = time.perf_counter() - t0
            EXTRA[f"spark_{label}"] = {"seconds": round(spark_s, 1),
                                       "rows_per_s": round(rows / spark_s),
                                       "peak_gib": round(spark_peak.gib, 2)}
            if label == "50M":
                results.append(Result("lakehouse", "raw->gold 50M rows completes (Spark), rows/s",
                                      "rows/s", rows / spark_s, target="completes within "
                                      "the machine's memory", met=True))
                results.append(Result("lakehouse", "peak memory 50M (Spark: JVM + driver)",
                                      "GiB", spark_peak.gib))
                for path in landing.glob("*.csv"):  # 7 GB of CSV: not kept longer than needed
                    if path.stem in days:
                        path.unlink()
                continue
            peers = {}
            for name, fn in (("pyarrow", pyarrow_transform), ("polars", polars_transform)):
                out = work / f"{name}-{label}"
                for sub in ("bronze", "silver", "quarantine", "gold"):
                    (out / sub).mkdir(parents=True, exist_ok=True)
                with Peak(tree=False) as peak:
                    t0 = time.perf_counter()
                    fn(raw_dir, days, out, use_case)
                    peers[name] = (time.perf_counter() - t0, peak.gib)
                shutil.rmtree(out)
            timings[label] = (rows, spark_s, steps, peers, spark_peak.gib)
            EXTRA[f"spark_steps_{label}"] = {k: round(v, 2) for k, v in steps.items()}
            for name, (seconds, _) in peers.items():
                results.append(Result(
                    "lakehouse", f"raw->gold {label} rows, rows/s", "rows/s",
                    rows / spark_s, f"{name} (same transform)", rows / seconds,
                    target="Spark >= 1/2.5 of pyarrow at 10M" if name == "pyarrow" else "",
                    met=(rows / spark_s >= rows / seconds / 2.5) if (name == "pyarrow" and
                                                                      label == "10M") else None))
            results.append(Result("lakehouse", f"peak memory {label} (Spark: JVM + driver)",
                                  "GiB", spark_peak.gib, "pyarrow / polars",
                                  max(g for _, g in peers.values())))
        one_m, ten_m = timings["1M"][1], timings["10M"][1]
        results.append(Result("lakehouse", "cost growth 1M -> 10M rows (x)", "x",
                              ten_m / one_m, "linear", 10.0, target="<= 11x",
                              met=ten_m / one_m <= 11))
        # One late day of the 10M window re-delivered: only that day reprocesses.
        day = _days(20, 1)
        path = landing / f"{day[0]}.csv"
        path.write_text(path.read_text() + path.read_text().splitlines()[1].replace(
            "-0,", "-late,", 1) + "\n")
        t0 = time.perf_counter()
        _materialize(defs, instance, day)
        rerun = time.perf_counter() - t0
        results.append(Result("lakehouse", "one-day rerun vs the 10-day backfill", "s", rerun,
                              "full 10M backfill", ten_m, target="a small fraction",
                              met=rerun < ten_m / 4))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
