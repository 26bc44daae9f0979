"""Raw snapshots: content-addressed, immutable, recognised when delivered twice, and
refused whole when they cannot be read."""

import re

import pytest

from lakeloop.raw.snapshots import SnapshotError, current, latest_loaded_day, load_snapshot

COLUMNS = {"id": "string", "amount": "double"}


@pytest.fixture
def dirs(tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    landing.mkdir()
    return landing, raw


def test_snapshot_is_copied_hashed_and_read_only(dirs):
    landing, raw = dirs
    (landing / "2026-09-01.csv").write_text("id,amount\na,1.5\nb,2\n")
    snap = load_snapshot(landing, raw, "2026-09-01", "csv", COLUMNS)
    assert snap.rows == 2 and len(snap.sha256) == 64
    copied = raw / "ds=2026-09-01" / f"{snap.sha256}.csv"
    assert copied.read_text() == "id,amount\na,1.5\nb,2\n"
    assert not copied.stat().st_mode & 0o222
    assert current(raw, "2026-09-01").sha256 == snap.sha256


def test_the_same_bytes_twice_are_recognised(dirs):
    landing, raw = dirs
    (landing / "2026-09-01.csv").write_text("id,amount\na,1\n")
    first = load_snapshot(landing, raw, "2026-09-01", "csv", COLUMNS)
    again = load_snapshot(landing, raw, "2026-09-01", "csv", COLUMNS)
    assert not first.duplicate_of_current and again.duplicate_of_current
    assert len(list((raw / "ds=2026-09-01").glob("*.csv"))) == 1


def test_a_corrected_delivery_keeps_the_old_one(dirs):
    landing, raw = dirs
    (landing / "2026-09-01.csv").write_text("id,amount\na,1\n")
    first = load_snapshot(landing, raw, "2026-09-01", "csv", COLUMNS)
    (landing / "2026-09-01.csv").write_text("id,amount\na,2\n")
    second = load_snapshot(landing, raw, "2026-09-01", "csv", COLUMNS)
    assert first.sha256 != second.sha256
    assert current(raw, "2026-09-01").sha256 == second.sha256
    assert (raw / "ds=2026-09-01" / f"{first.sha256}.csv").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    ("id,amount\nä,1\n".encode("latin-1"), "not UTF-8"),
    (b"id,other\na,1\n", "lacks contract column(s) amount"),
])
def test_unreadable_files_fail_with_a_clear_message(dirs, content, message):
    landing, raw = dirs
    (landing / "2026-09-01.csv").write_bytes(content)
    with pytest.raises(SnapshotError, match=re.escape(message)):
        load_snapshot(landing, raw, "2026-09-01", "csv", COLUMNS)
    assert not raw.exists()


def test_missing_snapshot_and_bad_partition_keys(dirs):
    landing, raw = dirs
    with pytest.raises(SnapshotError, match="no csv snapshot landed for 2026-09-02"):
        load_snapshot(landing, raw, "2026-09-02", "csv", COLUMNS)
    with pytest.raises(ValueError):
        load_snapshot(landing, raw, "../../etc", "csv", COLUMNS)


def test_truncated_parquet_is_refused(dirs):
    import pyarrow as pa
    import pyarrow.parquet as pq

    landing, raw = dirs
    path = landing / "2026-09-01.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "amount": [1.0, 2.0]}), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(SnapshotError, match="not a readable Parquet file"):
        load_snapshot(landing, raw, "2026-09-01", "parquet", COLUMNS)


def test_a_day_without_a_file_is_empty_only_where_the_source_says_so(tmp_path):
    landing, raw = tmp_path / "landing", tmp_path / "raw"
    landing.mkdir()
    with pytest.raises(SnapshotError, match="missing_file: empty"):
        load_snapshot(landing, raw, "2026-09-03", "csv", COLUMNS)
    snap = load_snapshot(landing, raw, "2026-09-03", "csv", COLUMNS, missing_means_empty=True)
    assert snap.absent and snap.rows == 0 and current(raw, "2026-09-03").absent
    # the file lands later: a new snapshot, loaded like any other
    (landing / "2026-09-03.csv").write_text("id,amount\nx,1\n")
    late = load_snapshot(landing, raw, "2026-09-03", "csv", COLUMNS, missing_means_empty=True)
    assert not late.absent and late.rows == 1 and not late.duplicate_of_current
    # and once loaded, a cleaned-up landing folder keeps what was loaded
    (landing / "2026-09-03.csv").unlink()
    kept = load_snapshot(landing, raw, "2026-09-03", "csv", COLUMNS)
    assert kept.duplicate_of_current and kept.sha256 == late.sha256
    assert latest_loaded_day(raw) == "2026-09-03"
