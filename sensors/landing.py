"""The landing sensor: a snapshot file that is new or changed (late data, a correction)
requests the ingest of exactly its day; the same bytes again request nothing."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import dagster as dg

from lakeloop.partitions import RANGE_END, RANGE_START
from lakeloop.raw.snapshots import current, file_sha256
from lakeloop.settings import Settings
from lakeloop.usecase import UseCase


def sensor_name(use_case: UseCase) -> str:
    return f"{use_case.name}_landing_sensor"


def pending_days(use_case: UseCase, data_root: Path, seen: dict) -> tuple[dict[str, list], dict]:
    """Days whose landed file differs from the raw snapshot loaded for that day.

    ``seen`` caches (size, mtime) -> sha256 per file, so a tick only hashes new files.
    """
    start = use_case.start_date
    pending: dict[str, list] = {}
    new_seen = {}
    for name, source in use_case.sources.items():
        landing = data_root / "landing" / use_case.name / name
        raw_dir = data_root / use_case.name / "raw" / name
        for path in sorted(landing.glob(f"*.{source.format}")):
            try:
                day = dt.date.fromisoformat(path.stem)
            except ValueError:
                continue  # not a snapshot file name
            if day < start:
                continue
            stat = path.stat()
            stamp = [stat.st_size, stat.st_mtime_ns]
            cached = seen.get(str(path))
            sha = cached[2] if cached and cached[:2] == stamp else file_sha256(path)
            new_seen[str(path)] = [*stamp, sha]
            loaded = current(raw_dir, day.isoformat())
            if loaded is None or loaded.sha256 != sha:
                pending.setdefault(day.isoformat(), []).append(f"{name}:{sha[:12]}")
    return pending, new_seen


def build(use_case: UseCase, ingest_job, settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name=sensor_name(use_case),
        job=ingest_job,
        minimum_interval_seconds=60,
        description=f"Ingests {use_case.name} snapshot files that are new or changed in the "
        "landing folder, one run per contiguous range of days.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        from sensors.labels import contiguous

        cursor = json.loads(context.cursor) if context.cursor else {}
        pending, seen = pending_days(use_case, settings.data_root, cursor.get("seen", {}))
        requests = []
        for first, last in contiguous(sorted(pending)):
            day = dt.date.fromisoformat(first)
            files = []
            while day <= dt.date.fromisoformat(last):
                files += pending[day.isoformat()]
                day += dt.timedelta(days=1)
            digest = hashlib.sha256(",".join(files).encode()).hexdigest()[:16]
            requests.append(dg.RunRequest(
                run_key=f"{use_case.name}-landing-{first}-{last}-{digest}",
                tags={RANGE_START: first, RANGE_END: last, "lakeloop/trigger": "landing",
                      "use_case": use_case.name}))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps({"seen": seen}),
                               skip_reason=None if requests else "no new or changed snapshots")

    return landing_sensor
