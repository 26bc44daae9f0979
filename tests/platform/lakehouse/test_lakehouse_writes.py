"""Delta writes under real concurrency and failure: separate writer processes (their own
JVMs) replace days of one table at the same time, or get killed in the middle of a write."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakeloop.lakehouse.tables import last_commit

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ROWS = 2000


def _writer(path, day, value, slow=0.0):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.platform.lakehouse.delta_writer", str(path), day, value,
         str(ROWS), str(slow)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)


def _values(spark, path, day):
    rows = (spark.read.format("delta").load(str(path)).where(f"ds = DATE'{day}'")
            .groupBy("value").count().collect())
    return {r["value"]: r["count"] for r in rows}


def _seed(spark, path):
    proc = _writer(path, "2026-09-01", "seed")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return last_commit(spark, path).version


def test_writers_of_different_days_both_succeed(tmp_path, spark):
    path = tmp_path / "t"
    seeded = _seed(spark, path)
    a, b = _writer(path, "2026-09-02", "a"), _writer(path, "2026-09-03", "b")
    outs = [p.communicate(timeout=300)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    assert _values(spark, path, "2026-09-02") == {"a": ROWS}
    assert _values(spark, path, "2026-09-03") == {"b": ROWS}
    assert _values(spark, path, "2026-09-01") == {"seed": ROWS}
    assert last_commit(spark, path).version == seeded + 2


def test_writers_of_the_same_day_never_leave_a_mix(tmp_path, spark):
    path = tmp_path / "t"
    _seed(spark, path)
    a, b = _writer(path, "2026-09-02", "a"), _writer(path, "2026-09-02", "b")
    outs = [p.communicate(timeout=300)[0] for p in (a, b)]
    codes = (a.returncode, b.returncode)
    assert 0 in codes, outs
    values = _values(spark, path, "2026-09-02")
    assert len(values) == 1 and sum(values.values()) == ROWS, values
    winner = next(iter(values))
    if codes != (0, 0):  # the loser saw Delta's conflict and committed nothing
        loser = outs[codes.index(next(c for c in codes if c != 0))]
        assert "Concurrent" in loser, loser
        assert winner == ("a" if codes[0] == 0 else "b")


def test_a_writer_killed_mid_write_leaves_the_table_as_it_was(tmp_path, spark):
    path = tmp_path / "t"
    seeded = _seed(spark, path)
    day_dir = path / "ds=2026-09-02"
    proc = _writer(path, "2026-09-02", "doomed", slow=2.0)
    deadline = time.monotonic() + 240
    while not (day_dir.exists() and any(day_dir.iterdir())):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the writer never started writing"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the writer and its JVM, mid-write
    proc.wait(timeout=30)
    assert any(day_dir.iterdir())  # data files were written...
    assert last_commit(spark, path).version == seeded  # ...but never committed
    assert _values(spark, path, "2026-09-02") == {}
    assert _values(spark, path, "2026-09-01") == {"seed": ROWS}

    rerun = _writer(path, "2026-09-02", "again")
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    assert last_commit(spark, path).version == seeded + 1
    assert _values(spark, path, "2026-09-02") == {"again": ROWS}  # lands exactly once
