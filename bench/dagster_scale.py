"""Dagster at scale: 3 use cases x 3 years of daily partitions.

1. Code-location load, in a fresh process, as a code server does it: import the module,
   build the Definitions and the repository snapshot the webserver reads. Peer: a plain
   Dagster module with the same number of assets, checks, jobs, schedules and sensors over
   the same daily partitions, each a trivial function (what Dagster itself costs).
   Target: under 5 s.
2. Sensor ticks: every sensor of every use case (drift, performance, labels, landing,
   approvals) evaluated against an instance holding three years of their inputs (daily
   drift and performance reports, label arrivals, landed snapshot files): the first tick
   with no cursor (the worst case, e.g. after a reset) and a steady tick with nothing new.
   Peer: a minimal sensor that reads the asset's latest materialization. Target: each tick
   under 2 s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, ROOT, Result

sys.path.insert(0, str(ROOT))

EXTRA: dict = {}
USE_CASES, YEARS = 3, 3
TODAY = dt.date(2026, 11, 27)
START = TODAY - dt.timedelta(days=365 * YEARS)
DAYS = (TODAY - START).days

LOAD_OURS = """
import json, sys, time
t0 = time.perf_counter()
from lakeloop.definitions import build_definitions
from lakeloop.settings import Settings
t1 = time.perf_counter()
defs = build_definitions(Settings.from_env())
repo = defs.get_repository_def()
repo.load_all_definitions()
from dagster._core.remote_representation.external_data import RepositorySnap
snap = RepositorySnap.from_def(repo)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "total_s": t2 - t0,
                  "assets": len(list(defs.resolve_asset_graph().get_all_asset_keys())),
                  "jobs": len(repo.get_all_jobs()), "sensors": len(repo.sensor_defs),
                  "schedules": len(repo.schedule_defs)}))
"""

LOAD_PEER = """
import json, sys, time
t0 = time.perf_counter()
import dagster as dg
t1 = time.perf_counter()
n_assets, n_jobs, n_sensors = {n_assets}, {n_jobs}, {n_sensors}
n_schedules, start = {n_sch}, "{start}"
parts = dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")
assets = []
for i in range(n_assets):
    @dg.asset(name=f"a{{i}}", partitions_def=parts, group_name=f"g{{i % 18}}",
              check_specs=[dg.AssetCheckSpec("c", asset=f"a{{i}}")])
    def _a(context):
        yield dg.Output(None)
        yield dg.AssetCheckResult(passed=True)
    assets.append(_a)
jobs = [dg.define_asset_job(f"j{{i}}", selection=[f"a{{i}}"]) for i in range(n_jobs)]
sensors = []
for i in range(n_sensors):
    @dg.sensor(name=f"s{{i}}", job=jobs[0])
    def _s(context):
        return None
    sensors.append(_s)
schedules = [dg.ScheduleDefinition(name=f"sch{{i}}", job=jobs[i], cron_schedule="0 6 * * *")
             for i in range(n_schedules)]
defs = dg.Definitions(assets=assets, jobs=jobs, sensors=sensors, schedules=schedules)
repo = defs.get_repository_def()
repo.load_all_definitions()
from dagster._core.remote_representation.external_data import RepositorySnap
snap = RepositorySnap.from_def(repo)
t2 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "build_s": t2 - t1, "total_s": t2 - t0}}))
"""


def write_use_cases(directory: Path) -> list[str]:
    base = (ROOT / "platform" / "lakeloop" / "usecases" / "credit_risk.yaml").read_text()
    names = []
    for i in range(USE_CASES):
        name = "credit_risk" if i == 0 else f"credit_risk_{i + 1}"
        text = re.sub(r"(?m)^name: credit_risk$", f"name: {name}", base)
        text = re.sub(r'(?m)^start_date: "[0-9-]+"$', f'start_date: "{START}"', text)
        text = re.sub(r"(?m)^  port: \d+$", f"  port: {9500 + 100 * i}", text)
        (directory / f"{name}.yaml").write_text(text)
        names.append(name)
    return names


def _load(script: str, env: dict) -> dict:
    out = subprocess.run([PYTHON, "-c", script], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def populate(instance, defs, names: list[str], data_root: Path) -> int:
    """Three years of what the sensors read: a drift and a performance report per day
    (some drifted, some below the recall floor), label arrivals naming the days they label,
    and landed snapshot files already loaded into raw."""
    import dagster as dg

    from lakeloop import keys
    from lakeloop.usecase import load_use_cases

    events = 0
    for uc in load_use_cases((data_root.parent / "use_cases",)):
        for d in range(DAYS):
            day = (START + dt.timedelta(d)).isoformat()
            drifted = d % 97 == 0
            for asset_key, metadata in (
                (keys.key(uc, keys.MONITORING, "drift_report"),
                 {"drifted": drifted, "drift_share": 0.5 if drifted else 0.05}),
                (keys.key(uc, keys.MONITORING, "performance_report"),
                 {"recall": 0.7 if d % 131 == 0 else 0.9, "labeled": 300}),
                (keys.key(uc, keys.LAKEHOUSE, f"silver_{uc.labels_name}"),
                 {"event_days": dg.MetadataValue.json([day])}),
            ):
                instance.report_runless_asset_event(dg.AssetMaterialization(
                    asset_key=asset_key, partition=day, metadata=metadata))
                events += 1
            for source in uc.sources:
                for folder in (data_root / "landing" / uc.name / source,
                               data_root / uc.name / "raw" / source):
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{day}.csv").write_text("x\n")
    return events


def _tick(sensor, instance, defs, cursor=None) -> float:
    import dagster as dg

    started = time.perf_counter()
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as ctx:
        result = sensor(ctx)
        if hasattr(result, "__iter__") and not isinstance(result, (dict, str)):
            list(result)
    return time.perf_counter() - started


def run() -> list[Result]:
    import dagster as dg

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="lakeloop-scale-") as tmp:
        tmp = Path(tmp)
        (tmp / "use_cases").mkdir()
        names = write_use_cases(tmp / "use_cases")
        data_root = tmp / "data"
        env = {**os.environ, "LAKELOOP_DATA_ROOT": str(data_root),
               "LAKELOOP_USE_CASES": str(tmp / "use_cases"), "DAGSTER_HOME": str(tmp / "dh")}
        (tmp / "dh").mkdir()
        loads = [_load(LOAD_OURS, env) for _ in range(3)]
        ours = min(loads, key=lambda r: r["total_s"])
        peer_script = LOAD_PEER.format(n_assets=ours["assets"], n_jobs=ours["jobs"],
                                       n_sensors=ours["sensors"], n_sch=ours["schedules"],
                                       start=START.isoformat())
        peers = [_load(peer_script, env) for _ in range(3)]
        peer = min(peers, key=lambda r: r["total_s"])
        EXTRA.update(load=ours, load_peer=peer, partitions_per_asset=DAYS,
                     use_cases=names)
        results.append(Result(
            "dagster_scale", f"code-location load ({USE_CASES} use cases x {DAYS} daily "
            f"partitions, {ours['assets']} assets)", "s", round(ours["total_s"], 2),
            "plain Dagster module, same counts", round(peer["total_s"], 2),
            "< 5 s", ours["total_s"] < 5.0))

        from lakeloop.definitions import build_definitions
        from lakeloop.settings import Settings

        settings = Settings.from_env({k: v for k, v in env.items()
                                      if k.startswith("LAKELOOP_")})
        defs = build_definitions(settings)
        (tmp / "instance").mkdir()
        instance = dg.DagsterInstance.local_temp(str(tmp / "instance"))
        started = time.perf_counter()
        events = populate(instance, defs, names, data_root)
        EXTRA["populate"] = {"events": events, "seconds": round(time.perf_counter() - started, 1)}

        sensors = defs.resolve_sensor_defs() if hasattr(defs, "resolve_sensor_defs") \
            else list(defs.sensors)
        first, steady, by_sensor = [], [], {}
        for sensor in sensors:
            t_first = _tick(sensor, instance, defs)
            with dg.build_sensor_context(instance=instance, definitions=defs) as ctx:
                result = sensor(ctx)
                list(result) if hasattr(result, "__iter__") else None
                cursor = ctx.cursor
            # Steady state: replay ticks until the cursor stops moving (batches drained).
            for _ in range(50):
                with dg.build_sensor_context(instance=instance, cursor=cursor,
                                             definitions=defs) as ctx:
                    result = sensor(ctx)
                    list(result) if hasattr(result, "__iter__") else None
                    if ctx.cursor == cursor:
                        break
                    cursor = ctx.cursor
            t_steady = _tick(sensor, instance, defs, cursor)
            first.append(t_first)
            steady.append(t_steady)
            by_sensor[sensor.name] = {"first_s": round(t_first, 3),
                                      "steady_s": round(t_steady, 3)}
        EXTRA["sensors"] = by_sensor

        key = dg.AssetKey([names[0], "monitoring", "drift_report"])
        peer_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            instance.get_latest_materialization_event(key)
            peer_times.append(time.perf_counter() - t0)
        peer_tick = min(peer_times)
        results.append(Result(
            "dagster_scale", f"slowest sensor tick, first (no cursor) over {len(sensors)} "
            "sensors", "s", round(max(first), 3), "latest-materialization read",
            round(peer_tick, 4), "< 2 s", max(first) < 2.0))
        results.append(Result(
            "dagster_scale", "slowest sensor tick, steady (nothing new)", "s",
            round(max(steady), 3), "latest-materialization read", round(peer_tick, 4),
            "< 2 s", max(steady) < 2.0))
    return results


if __name__ == "__main__":
    for r in run():
        print(r.record())
    print(json.dumps(EXTRA, indent=2, default=str))
