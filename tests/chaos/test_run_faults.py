"""Faults in the middle of a Dagster run: the run worker SIGKILLed inside a Delta write, and
PostgreSQL (Dagster's run and event storage, as in the production shape) restarted inside
one. Runs are launched as a data engineer launches them (`dagster job launch`, the default
run launcher, a real code server and its run-worker process); the fault is injected at a
known point, inside the silver write before its commit (tests/support/fault_location.py).

Two data roots run the same days of the same landing files: a clean one, and one that takes
the faults. After each fault the faulted root's tables must hold exactly what the clean
root's hold (every row, none twice), and never a half-written day in between. The Delta
tables are on local disk here (their object-storage path is the production-shape test's).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest

from lakeloop import keys
from lakeloop.lakehouse.tables import LakehouseResource, last_commit
from lakeloop.settings import PROJECT_ROOT
from lakeloop.usecase import UseCase, load_use_cases
from tests.conftest import free_port, free_port_pair, write_use_case
from tests.support.demo_data import DemoSpec, generate
from tests.support.fault_location import FAULT_DIR, LAKEHOUSE_JOB
from tests.support.services import DAGSTER_YAML as PRODUCTION_DAGSTER_YAML
from tests.support.services import CodeServer, Postgres

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SPEC = DemoSpec(days=3, rows_per_day=200, drift_day=None, seed=5)
DAYS = [(SPEC.start + pd.Timedelta(days=d).to_pytimedelta()).isoformat() for d in range(3)]
TABLES = ("bronze_applications", "silver_applications", "quarantine_applications",
          "gold_applicant_features")
WRITE_TIMES = ("_ingested_at", "created_timestamp")  # bronze's, and gold's for Feast
WAIT_S = 600  # only a run that hangs ends a wait this way
# The production shape's instance (storage on PostgreSQL), with runs going straight to the
# run launcher (no queue, so no daemon is needed to dequeue them).
DAGSTER_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
""" + PRODUCTION_DAGSTER_YAML


@dataclass
class Root:
    """One data root served by its own code server, runs launched through it."""
    name: str
    dir: Path
    env: dict[str, str]
    server: CodeServer
    faults: Path
    use_case: UseCase

    def launch(self, start: str, end: str) -> str:
        run_id = str(uuid.uuid4())
        tags = {"dagster/asset_partition_range_start": start,
                "dagster/asset_partition_range_end": end}
        done = subprocess.run(
            [sys.executable, "-m", "dagster", "job", "launch", "-w", str(self.server.workspace),
             "-j", LAKEHOUSE_JOB, "--run-id", run_id, "--tags", json.dumps(tags)],
            cwd=PROJECT_ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return run_id

    def table(self, name: str) -> str:
        return LakehouseResource(data_root=str(self.dir)).table(
            keys.key(self.use_case, keys.LAKEHOUSE, name))


def _instance_env(pg: Postgres, home: Path) -> dict[str, str]:
    return {"DAGSTER_HOME": str(home), "DAGSTER_PG_URL": pg.url("dagster")}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    base = tmp_path_factory.mktemp("run_faults")
    pg = Postgres(("dagster",))
    home = base / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    use_cases = write_use_case(base / "use_cases", free_port_pair(),
                               **{r"^sensitive: true$": "sensitive: false"}).parent
    use_case = load_use_cases([use_cases])[0]
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("LAKELOOP_", "MLFLOW_", "DAGSTER_"))}
    roots: dict[str, Root] = {}
    try:
        for name in ("clean", "faulted"):
            data = base / name
            faults = base / f"{name}-faults"
            faults.mkdir()
            generate(data / "landing", SPEC)
            env = {**inherited, **_instance_env(pg, home), "TZ": "UTC",
                   "LAKELOOP_DATA_ROOT": str(data), "LAKELOOP_USE_CASES": str(use_cases),
                   "LAKELOOP_FEATURE_SERVER_PORT": str(free_port()), FAULT_DIR: str(faults)}
            server = CodeServer(base / f"{name}-server", "tests.support.fault_location", env)
            roots[name] = Root(name, data, env, server, faults, use_case)
        with pytest.MonkeyPatch.context() as mp:
            for k, v in _instance_env(pg, home).items():
                mp.setenv(k, v)
            import dagster as dg

            with dg.DagsterInstance.get() as instance:
                clean, faulted = roots["clean"], roots["faulted"]
                runs = [clean.launch(DAYS[0], DAYS[-1]),
                        faulted.launch(DAYS[0], DAYS[0])]
                for run_id in runs:
                    assert _finished(instance, run_id).status.value == "SUCCESS", \
                        _failure(instance, run_id)
                yield pg, instance, clean, faulted
    finally:
        for root in roots.values():
            (root.faults / "release").touch()  # a holding task of a failed test lets go
            root.server.stop()
        pg.stop()


def _finished(instance, run_id: str):
    deadline = time.monotonic() + WAIT_S
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        assert time.monotonic() < deadline, f"run {run_id} never finished"
        time.sleep(0.5)


def _failure(instance, run_id: str) -> str:
    out = []
    for e in instance.all_logs(run_id):
        if e.dagster_event and e.dagster_event.is_failure:
            error = getattr(e.dagster_event.event_specific_data, "error", None)
            out.append(f"{e.message}\n{error.to_string() if error else ''}")
    return "\n".join(out)[-6000:]


def _wait_held(root: Root, run_id: str, instance) -> None:
    deadline = time.monotonic() + WAIT_S
    while not (root.faults / "held").exists():
        run = instance.get_run_by_id(run_id)
        assert not (run and run.is_finished), f"the run ended before the fault point: " \
                                              f"{_failure(instance, run_id)}"
        assert time.monotonic() < deadline, "the run never reached the fault point"
        time.sleep(0.2)


@contextlib.contextmanager
def _armed(root: Root):
    for marker in ("held", "release"):
        (root.faults / marker).unlink(missing_ok=True)
    (root.faults / "arm").touch()
    try:
        yield
    finally:
        (root.faults / "arm").unlink(missing_ok=True)
        (root.faults / "release").touch()


def _day(spark, path: str, day: str, root: Path | None = None) -> pd.DataFrame:
    """A day of a table, without the times it was written at and with its source files'
    paths relative to ``root``: what two roots that ran the same files share."""
    df = spark.read.format("delta").load(path).where(f"ds = DATE'{day}'")
    frame = df.drop(*[c for c in df.columns if c in WRITE_TIMES]).toPandas()
    if root is not None and "_source_file" in frame:
        frame["_source_file"] = frame["_source_file"].str.replace(str(root), "", regex=False)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _assert_same_day(spark, clean: Root, faulted: Root, day: str) -> None:
    for name in TABLES:
        expected, got = (_day(spark, r.table(name), day, r.dir) for r in (clean, faulted))
        assert len(expected) > 0 or name.startswith("quarantine"), f"{name} {day} is empty"
        pd.testing.assert_frame_equal(got, expected, obj=f"{name} on {day}")


def _run_worker(server: CodeServer) -> psutil.Process:
    """The run's worker: the one process the code server spawned for it (its other child is
    multiprocessing's resource tracker)."""
    children = psutil.Process(server.pid).children()
    workers = [p for p in children if any("spawn_main" in a for a in p.cmdline())]
    assert len(workers) == 1, [p.cmdline() for p in children]
    return workers[0]


def _reexecute_from_failure(instance, root: Root, parent_id: str) -> str:
    """What the UI's "Re-execute from failure" does: a child run of the failed steps."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    parent = instance.get_run_by_id(parent_id)
    origin = parent.remote_job_origin
    with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(root.server.workspace)])) \
            as process:
        context = process.create_request_context()
        location = context.get_code_location(origin.repository_origin.code_location_origin
                                             .location_name)
        job = location.get_job(JobSubsetSelector(
            location_name=location.name,
            repository_name=origin.repository_origin.repository_name,
            job_name=parent.job_name, op_selection=None,
            asset_selection=parent.asset_selection))
        run = instance.create_reexecuted_run(
            request_context=context, parent_run=parent, code_location=location,
            remote_job=job, strategy=ReexecutionStrategy.FROM_FAILURE,
            use_parent_run_tags=True)
        instance.submit_run(run.run_id, workspace=context)
        return run.run_id


def test_a_run_worker_killed_inside_a_delta_write_fails_and_its_reexecution_equals_a_clean_run(
        setting, spark):
    _, instance, clean, faulted = setting
    day = DAYS[1]
    silver = faulted.table("silver_applications")
    before = last_commit(spark, silver).version
    with _armed(faulted):
        run_id = faulted.launch(day, day)
        _wait_held(faulted, run_id, instance)
        worker = _run_worker(faulted.server)
        os.kill(worker.pid, signal.SIGKILL)
        run = _finished(instance, run_id)
    assert run.status.value == "FAILURE"
    told = [str(e.message) for e in instance.all_logs(run_id)]
    assert any(run_id in m and "terminated by signal 9 (SIGKILL)" in m for m in told), told[-3:]
    # The write never committed: the table is where it was, with no row of the day.
    assert last_commit(spark, silver).version == before
    assert _day(spark, silver, day).empty

    child = _reexecute_from_failure(instance, faulted, run_id)
    assert _finished(instance, child).status.value == "SUCCESS", _failure(instance, child)
    assert instance.get_run_by_id(child).parent_run_id == run_id
    _assert_same_day(spark, clean, faulted, day)


def test_postgres_restarted_inside_a_delta_write_leaves_no_half_written_day(setting, spark):
    pg, instance, clean, faulted = setting
    day = DAYS[2]
    silver = faulted.table("silver_applications")
    with _armed(faulted):
        run_id = faulted.launch(day, day)
        _wait_held(faulted, run_id, instance)
        pg.restart()  # every connection of the run, the code server and this test dropped
    run = _finished(instance, run_id)
    written = _day(spark, silver, day)
    expected = _day(spark, clean.table("silver_applications"), day)
    if run.status.value == "SUCCESS":
        # It carried on on new connections, and its events after the restart are recorded.
        done = {str(e.dagster_event.asset_key.to_user_string())
                for e in instance.all_logs(run_id)
                if e.dagster_event and e.dagster_event.event_type_value
                == "ASSET_MATERIALIZATION"}
        assert any(k.endswith("gold_applicant_features") for k in done), sorted(done)
    else:  # failed cleanly: the day is all there or not there at all, and a rerun completes
        assert written.empty or len(written) == len(expected), len(written)
        rerun = faulted.launch(day, day)
        assert _finished(instance, rerun).status.value == "SUCCESS", _failure(instance, rerun)
    _assert_same_day(spark, clean, faulted, day)
