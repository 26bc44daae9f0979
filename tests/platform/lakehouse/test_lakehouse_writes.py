"""Delta writes under real concurrency and failure: separate writer processes (their own
JVMs) replace days of one table at the same time, or get killed in the middle of a write;
the faults are injected at a known point of the write (see delta_writer)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakeloop.lakehouse.tables import last_commit, replace_window
from lakeloop.spark import session_conf
from tests.platform.lakehouse.delta_writer import frame

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
ROWS = 2000


def _writer(path, day, value, *fault: str):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.platform.lakehouse.delta_writer", str(path), day, value,
         str(ROWS), *fault], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)


def _values(spark, path, day):
    rows = (spark.read.format("delta").load(str(path)).where(f"ds = DATE'{day}'")
            .groupBy("value").count().collect())
    return {r["value"]: r["count"] for r in rows}


def _ids(spark, path, day):
    rows = spark.read.format("delta").load(str(path)).where(f"ds = DATE'{day}'").select("id")
    return sorted(r["id"] for r in rows.collect())


def _write_here(spark, path, day, value) -> int:
    """A write by this process (the test's own Spark session), with no fault."""
    return replace_window(frame(spark, day, value, ROWS), path, day, day,
                          run_id=f"test-{value}").version


def _seed(spark, path):
    return _write_here(spark, path, "2026-09-01", "seed")


def _overlapping(path, tmp_path, first: tuple[str, str], second: tuple[str, str]):
    """Two writers whose last tasks wait for each other: both transactions are open and
    both have written data files before either commits."""
    a, b = tmp_path / "a.ready", tmp_path / "b.ready"
    return (_writer(path, *first, "--barrier", str(a), str(b)),
            _writer(path, *second, "--barrier", str(b), str(a)))


def _wait_for(condition, proc, what: str, limit_s: float = 600) -> None:
    """Wait for an event of the writer (a file it creates), not for an amount of time; the
    limit only ends the wait on a writer that hangs before it."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"the writer never {what}"
        time.sleep(0.1)


def test_overlapping_writers_of_different_days_both_land(tmp_path, spark):
    path = tmp_path / "t"
    seeded = _seed(spark, path)
    a, b = _overlapping(path, tmp_path, ("2026-09-02", "a"), ("2026-09-03", "b"))
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    assert _values(spark, path, "2026-09-02") == {"a": ROWS}
    assert _values(spark, path, "2026-09-03") == {"b": ROWS}
    assert _values(spark, path, "2026-09-01") == {"seed": ROWS}
    for day in ("2026-09-02", "2026-09-03"):  # no row lost, none twice
        assert _ids(spark, path, day) == list(range(ROWS))
    assert last_commit(spark, path).version == seeded + 2


def test_overlapping_writers_of_the_same_day_conflict_and_never_leave_a_mix(tmp_path, spark):
    path = tmp_path / "t"
    seeded = _seed(spark, path)
    a, b = _overlapping(path, tmp_path, ("2026-09-02", "a"), ("2026-09-02", "b"))
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    codes = [a.returncode, b.returncode]
    # The conflict branch runs every time: one commits, the other sees Delta's conflict.
    assert sorted(codes) != [0, 0] and 0 in codes, outs
    winner, loser = ("a", outs[1]) if codes[0] == 0 else ("b", outs[0])
    assert "Concurrent" in loser, loser
    assert _values(spark, path, "2026-09-02") == {winner: ROWS}
    assert _ids(spark, path, "2026-09-02") == list(range(ROWS))
    assert last_commit(spark, path).version == seeded + 1


def test_a_writer_killed_between_its_data_files_and_its_commit_leaves_the_table_as_it_was(
        tmp_path, spark):
    path = tmp_path / "t"
    seeded = _seed(spark, path)
    day_dir = path / "ds=2026-09-02"
    marker = tmp_path / "held"
    proc = _writer(path, "2026-09-02", "doomed", "--hold", str(marker))
    _wait_for(marker.exists, proc, "reached its last task")
    # Seven of the eight tasks have written their data files; the commit waits for the 8th.
    _wait_for(lambda: len(list(day_dir.glob("*.parquet"))) >= 7, proc,
              "wrote the other tasks' data files")
    os.killpg(proc.pid, signal.SIGKILL)  # the writer and its JVM, mid-write
    proc.wait(timeout=30)
    assert len(list(day_dir.glob("*.parquet"))) >= 7  # data files were written...
    assert last_commit(spark, path).version == seeded  # ...but never committed
    assert _values(spark, path, "2026-09-02") == {}
    assert _values(spark, path, "2026-09-01") == {"seed": ROWS}

    assert _write_here(spark, path, "2026-09-02", "again") == seeded + 1  # the rerun
    assert _values(spark, path, "2026-09-02") == {"again": ROWS}  # lands exactly once
    assert _ids(spark, path, "2026-09-02") == list(range(ROWS))


def test_a_column_of_many_values_gives_up_its_dictionary_early(tmp_path, spark):
    """A column with few values keeps its dictionary; one whose dictionary outgrows
    DICTIONARY_PAGE_BYTES writes plain values instead of hashing every value into it."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from lakeloop.lakehouse.tables import DICTIONARY_PAGE_BYTES

    many = 8000  # 8,000 texts of 10 characters: a 112 kB dictionary, inside Parquet's 1 MiB
    rows = (spark.range(40_000).repartition(1)
            .select((F.col("id") % 3).cast("string").alias("few"),
                    F.format_string("%010d", F.col("id") % many).alias("many"),
                    F.lit("2026-09-01").cast("date").alias("ds")))
    replace_window(rows, tmp_path / "t", "2026-09-01", "2026-09-01", run_id="test")
    (data,) = (tmp_path / "t").glob("ds=*/*.parquet")
    group = pq.ParquetFile(data).metadata.row_group(0)
    few, plain = group.column(0), group.column(1)
    assert many * 14 > DICTIONARY_PAGE_BYTES  # each value: 10 bytes and a 4-byte length
    assert few.has_dictionary_page and "PLAIN" not in few.encodings
    assert not plain.has_dictionary_page and "PLAIN" in plain.encodings


def test_a_days_file_is_split_into_row_groups_so_a_one_day_read_is_parallel(
        tmp_path, spark, monkeypatch):
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from lakeloop.lakehouse import tables

    monkeypatch.setattr(tables, "ROW_GROUP_BYTES", 64 << 10)
    rows = (spark.range(40_000).repartition(1)
            .select(F.sha2(F.col("id").cast("string"), 256).alias("text"),
                    F.lit("2026-09-01").cast("date").alias("ds")))
    replace_window(rows, tmp_path / "t", "2026-09-01", "2026-09-01", run_id="test")
    (data,) = (tmp_path / "t").glob("ds=*/*.parquet")
    # 40k hashes of 64 characters are 2.6 MB: one group at Parquet's default size.
    assert pq.ParquetFile(data).metadata.num_row_groups >= 8
    # Read in splits smaller than the file: every split that holds a group reads rows.
    with session_conf(spark, {"spark.sql.files.maxPartitionBytes": str(256 << 10),
                              "spark.sql.files.openCostInBytes": "0"}):
        sizes = (spark.read.format("delta").load(str(tmp_path / "t")).rdd
                 .glom().map(len).collect())
    assert sum(sizes) == 40_000
    assert sum(1 for n in sizes if n) >= 4
