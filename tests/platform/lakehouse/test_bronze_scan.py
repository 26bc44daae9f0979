"""Bronze reads a window's CSV snapshots in one scan per header, and every row keeps the
lineage of its own file: the same rows, hashes, paths, days and positions as reading each
snapshot on its own."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from lakeloop.lakehouse import bronze
from lakeloop.raw.snapshots import Snapshot
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case

SOURCE = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml").labels
COLUMNS = list(SOURCE.columns)


def _store(raw: Path, ds: str, text: str) -> Snapshot:
    """A snapshot as the raw store keeps it: <raw>/ds=<day>/<sha256>.csv."""
    sha = hashlib.sha256(text.encode()).hexdigest()
    path = raw / f"ds={ds}" / f"{sha}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Snapshot(ds, sha, str(path), f"{ds}.csv", len(text), text.count("\n") - 1, "")


def _window(raw: Path) -> list[Snapshot]:
    header = ",".join(COLUMNS)
    body = "\n".join(f"a-{i},2026-10-0{1 + i % 3}T10:00:00,{i % 2}" for i in range(7))
    same = f"{header}\n{body}\n"
    return [_store(raw, "2026-10-01", same),
            _store(raw, "2026-10-02", same),  # the same file again: same name, another day
            _store(raw, "2026-10-03", f"{header},note\n"
                   + "\n".join(f"b-{i},2026-10-03T11:00:00,1,\"x, {i}\"" for i in range(5))
                   + "\n"),  # a column added: a scan of its own
            _store(raw, "2026-10-04", f"{header}\nc-0,2026-10-04T09:00:00,0\n")]


def _rows(df) -> pd.DataFrame:
    frame = df.drop("_ingested_at").toPandas()
    return frame.sort_values(["ds", "_row"]).reset_index(drop=True)


def _scans(df) -> int:
    return str(df._jdf.queryExecution().optimizedPlan()).count("Relation [")


def test_a_window_is_read_in_one_scan_per_header_with_each_files_lineage(tmp_path, spark):
    snapshots = _window(tmp_path / "lake" / "raw" / "credit_risk" / "outcomes")
    grouped = bronze.frame(spark, snapshots, SOURCE)
    one_by_one = bronze.frame(spark, snapshots[:1], SOURCE)
    for snap in snapshots[1:]:
        one_by_one = one_by_one.unionByName(bronze.frame(spark, [snap], SOURCE),
                                            allowMissingColumns=True)
    assert _scans(grouped) == 2  # two headers
    assert _scans(one_by_one) == 4
    got, want = _rows(grouped), _rows(one_by_one)
    pd.testing.assert_frame_equal(got, want[got.columns])
    assert len(got) == 7 + 7 + 5 + 1
    day2 = got[got["ds"].astype(str) == "2026-10-02"]
    assert (day2["_source_file"] == "raw/credit_risk/outcomes/ds=2026-10-02/"
            f"{snapshots[1].sha256}.csv").all()
    assert list(day2["_row"]) == list(range(7))
    assert got.loc[got["ds"].astype(str) == "2026-10-03", "note"].tolist()[0] == "x, 0"


def test_a_long_window_is_read_in_scans_of_a_bounded_number_of_files(tmp_path, spark,
                                                                     monkeypatch):
    monkeypatch.setattr(bronze, "FILES_PER_SCAN", 2)
    snapshots = _window(tmp_path / "raw" / "credit_risk" / "outcomes")
    df = bronze.frame(spark, snapshots, SOURCE)
    assert _scans(df) == 3  # days 1, 2 and 4 share a header: two scans; day 3 its own
    assert len(_rows(df)) == 20
    assert _rows(df).groupby("ds")["_snapshot_hash"].nunique().eq(1).all()


def test_paths_spark_would_encode_are_read_file_by_file_with_the_same_lineage(tmp_path, spark):
    # A data root with a space and a quote: Spark reports its files percent-encoded, so
    # their lineage cannot be looked up by name; each is scanned on its own, literals intact.
    raw = tmp_path / "it's a lake" / "raw" / "credit_risk" / "outcomes"
    snapshots = _window(raw)
    renamed = raw / "ds=2026-10-04" / "c 0%.csv"
    Path(snapshots[3].path).rename(renamed)
    moved = Snapshot(**{**snapshots[3].__dict__, "path": str(renamed)})
    df = bronze.frame(spark, [*snapshots[:3], moved], SOURCE)
    assert _scans(df) == 4
    rows = _rows(df)
    last = rows[rows["ds"].astype(str) == "2026-10-04"]
    assert last["_source_file"].tolist() == [
        "raw/credit_risk/outcomes/ds=2026-10-04/c 0%.csv"]
    assert last["_snapshot_hash"].tolist() == [snapshots[3].sha256]


def test_text_in_the_lineage_map_is_quoted_for_sparks_parser(spark):
    tricky = ["it's", "back\\slash", "\\'", "new\nline", "tab\t", "unicode \u00e9 \\u0041"]
    got = spark.sql("SELECT " + ", ".join(f"{bronze._sql_text(t)} AS c{i}"
                                          for i, t in enumerate(tricky))).first()
    assert list(got) == tricky


def test_a_csv_rows_file_and_position_come_from_its_task_not_the_metadata_column(tmp_path,
                                                                                  spark):
    # A scan asked for its _metadata column copies every row once more to attach it: the
    # bronze write of 3M rows took 7% longer. input_file_name and input_file_block_start
    # give the same file and offset from the task itself (the lineage test above).
    snapshots = _window(tmp_path / "raw" / "credit_risk" / "outcomes")
    for df in (bronze.frame(spark, snapshots, SOURCE), bronze.frame(spark, snapshots[:1], SOURCE)):
        plan = str(df._jdf.queryExecution().executedPlan())
        assert "input_file_name" in plan or "input_file_block_start" in plan
        assert "_metadata" not in plan
