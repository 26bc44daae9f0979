"""The whole graph in one materialisation over generated days, timed per asset.

    python -m tests.support.graph_run --days 30 --rows-per-day 300 --json run.json

Runs against whatever environment the settings describe: the embedded defaults, or the
production shape (``LAKELOOP_ENV=k8s`` with PostgreSQL, Redis, S3 and an MLflow server;
see tests.support.services). The production-shape test and ``bench/production_shape.py`` use it
to run the same graph on the same data in both and compare them asset by asset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def run(days: int, rows_per_day: int, drift_day: int, seed: int,
        keep_serving: bool = False) -> dict:
    import dagster as dg
    import psutil

    from lakeloop.definitions import build_definitions
    from lakeloop.instance import prepare_environment
    from lakeloop.partitions import RANGE_END, RANGE_START
    from lakeloop.profiling import PeakMemory, step_seconds
    from lakeloop.settings import Settings
    from lakeloop.usecase import load_use_cases
    from tests.support.demo_data import DemoSpec, generate

    settings = Settings.from_env()
    prepare_environment(settings)
    use_case = load_use_cases(settings.use_case_dirs)[0]
    spec = DemoSpec(start=use_case.start_date, days=days, rows_per_day=rows_per_day,
                    drift_day=drift_day, seed=seed)
    generate(settings.data_root / "landing", spec, use_case.name)
    day_keys = [(spec.start + dt.timedelta(d)).isoformat() for d in range(days)]
    started = time.perf_counter()
    with PeakMemory() as memory:
        defs = build_definitions(settings)
        instance = dg.DagsterInstance.get()
        try:
            result = dg.materialize(
                [*defs.assets, *defs.asset_checks], resources=defs.resources,
                instance=instance, run_config=QUIET, raise_on_error=False,
                tags={RANGE_START: day_keys[0], RANGE_END: day_keys[-1]})
        finally:
            if not keep_serving:
                defs.resources["serving"].stop_all()
                defs.resources["feast"].stop_feature_server()
    failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    # A JVM under this process is a local Spark driver: none when Spark is a Connect endpoint.
    jvms = [p.pid for p in psutil.Process().children(recursive=True)
            if p.name().startswith("java")]
    return {
        "env": settings.env.value,
        "table_root": settings.table_root or str(settings.data_root),
        "success": result.success,
        "run_id": result.run_id,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_memory_gib": round(memory.peak_bytes / 2**30, 2),
        "steps": step_seconds(instance, [result.run_id]),
        "failures": failures,
        "spark": "connect" if settings.spark_remote else "local",
        "local_jvms": jvms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.graph_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="days of generated data")
    parser.add_argument("--rows-per-day", type=int, default=300, help="applications per day")
    parser.add_argument("--drift-day", type=int, default=21, help="first drifted day")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    parser.add_argument("--keep-serving", action="store_true",
                        help="leave the endpoint and the feature server running")
    args = parser.parse_args(argv)
    out = run(args.days, args.rows_per_day, args.drift_day, args.seed, args.keep_serving)
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0 if out["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
