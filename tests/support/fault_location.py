"""A code location for the run-fault tests: Lakeloop's own definitions from the environment's
settings, with one fault point in the silver write (tests/chaos/test_run_faults.py).

With ``LAKELOOP_TEST_FAULT_DIR`` set and ``<dir>/arm`` present when a silver write starts,
the write's first Spark task creates ``<dir>/held`` once its batch is in hand and waits
until ``<dir>/release`` exists. Nothing is committed until every task is done, so the run
is then always inside a Delta write, before its commit: the point where a killed worker or
a lost database would leave a half-written table if the write were not atomic.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.lakehouse import silver
from lakeloop.settings import Settings
from lakeloop.usecase import load_use_cases

FAULT_DIR = "LAKELOOP_TEST_FAULT_DIR"
WAIT_LIMIT_S = 900  # only a test that never releases ends the wait this way


def _holding(directory: Path):
    def hold(batches):
        for batch in batches:
            if not (directory / "held").exists():
                (directory / "held").touch()
                deadline = time.monotonic() + WAIT_LIMIT_S
                while not (directory / "release").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            yield batch
    return hold


def _with_fault(replace_window, directory: Path):
    def replace(df, path, *args, **kwargs):
        if (directory / "arm").exists() and Path(str(path)).name.startswith("silver_"):
            df = df.mapInPandas(_holding(directory), df.schema)
        return replace_window(df, path, *args, **kwargs)
    return replace


if os.environ.get(FAULT_DIR):
    silver.replace_window = _with_fault(silver.replace_window, Path(os.environ[FAULT_DIR]))

LAKEHOUSE_JOB = "lakehouse_days"


def _with_lakehouse_job(defs: dg.Definitions) -> dg.Definitions:
    """Plus one job: raw snapshots through bronze, silver, quarantine and gold of the first
    use case (the ingest job without the online store, which needs the feature registry
    that a fresh root has not applied yet)."""
    use_case = load_use_cases(Settings.from_env().use_case_dirs)[0]
    job = dg.define_asset_job(LAKEHOUSE_JOB, selection=dg.AssetSelection.groups(
        keys.group(use_case, keys.RAW), keys.group(use_case, keys.LAKEHOUSE)))
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))


defs = _with_lakehouse_job(build_definitions(Settings.from_env()))
