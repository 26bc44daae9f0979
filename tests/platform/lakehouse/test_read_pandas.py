"""Reading a Delta version into pandas through its Parquet files gives what Spark gives:
same rows, same values, naive UTC timestamps, and the version asked for (time travel)."""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from lakeloop.lakehouse.tables import (
    _log_commit,
    commit_metadata,
    last_commit,
    overwrite_table,
    read_columns,
    read_pandas,
    read_table,
    version_files,
)

pytestmark = [pytest.mark.integration]


def test_read_pandas_equals_spark_at_each_version(spark, tmp_path):
    path = tmp_path / "t"
    base = dt.datetime(2026, 10, 1, 12, 30)
    first = pd.DataFrame({"k": ["a", "b", "c"], "x": [1.5, None, 3.0],
                          "ts": [base, base + dt.timedelta(hours=1), base]})
    overwrite_table(spark.createDataFrame(first), path)
    second = first.assign(x=[9.0, 8.0, 7.0])
    overwrite_table(spark.createDataFrame(second), path)
    for version, expected in ((0, first), (1, second)):
        ours = read_pandas(spark, path, version, ["k", "x", "ts"]).sort_values("k")
        theirs = (spark.read.format("delta").option("versionAsOf", version).load(str(path))
                  .select("k", "x", "ts").toPandas().sort_values("k"))
        pd.testing.assert_frame_equal(ours.reset_index(drop=True),
                                      theirs.reset_index(drop=True), check_dtype=False)
        assert ours["ts"].dt.tz is None
        assert list(ours["x"].fillna(-1)) == list(expected["x"].fillna(-1))


def test_distinct_values_come_from_the_same_read_and_equal_sparks(spark, tmp_path):
    """A column asked for only its distinct values (the raw snapshots a training set came
    from) stays out of the frame; its values are Spark's distinct non-null ones, sorted, at
    the version asked for, through the files or through Spark alike."""
    path = tmp_path / "t"
    hashes = ["h3", None, "h1", "h3", "h2", "h1"]
    first = pd.DataFrame({"k": list("abcdef"), "x": [1.0] * 6, "h": hashes})
    overwrite_table(spark.createDataFrame(first), path)
    overwrite_table(spark.createDataFrame(first.assign(h=["h9"] * 6)), path)
    for version, expected in ((0, ["h1", "h2", "h3"]), (1, ["h9"])):
        frame, values = read_columns(spark, path, version, ["k", "x"], ("h",))
        spark_values = sorted(r[0] for r in spark.read.format("delta")
                              .option("versionAsOf", version).load(str(path))
                              .select("h").distinct().collect() if r[0] is not None)
        assert values == {"h": expected} == {"h": spark_values}
        assert list(frame.columns) == ["k", "x"] and len(frame) == 6
    # A wanted column that lives only in partition paths: read through Spark, same answer.
    parted = tmp_path / "p"
    spark.createDataFrame(first).write.format("delta").partitionBy("h").save(str(parted))
    frame, values = read_columns(spark, parted, 0, ["k", "x"], ("h",))
    assert values == {"h": ["h1", "h2", "h3"]} and sorted(frame["k"]) == list("abcdef")


def _spark_files(spark, path, version):
    return sorted(f.removeprefix("file:") for f in read_table(spark, path, version)
                  .inputFiles())


def test_a_local_versions_files_come_from_its_delta_log_as_spark_lists_them(spark, tmp_path):
    """Without Spark (none is passed): each version's files after an overwrite, an append
    and an overwrite that drops them, and a partitioned table's (values that need escaping
    in a folder name), are exactly the files Spark's reader lists for that version."""
    path = tmp_path / "t"
    frame = pd.DataFrame({"k": list("abcd"), "x": [1.0, 2.0, 3.0, 4.0],
                          "h": ["p:1", "q 2", "p:1", "r%3"]})
    overwrite_table(spark.createDataFrame(frame), path)
    spark.createDataFrame(frame).write.format("delta").mode("append").save(str(path))
    overwrite_table(spark.createDataFrame(frame.head(2)), path)
    for version in (0, 1, 2):
        assert version_files(None, path, version, ["k"]) == _spark_files(spark, path, version)
    assert len(version_files(None, path, 1, ["k"])) > len(version_files(None, path, 0, ["k"]))
    parted = tmp_path / "p"
    spark.createDataFrame(frame).write.format("delta").partitionBy("h").save(str(parted))
    files = version_files(None, parted, 0, ["k", "x"])
    assert files == _spark_files(spark, parted, 0) and len(files) >= 3
    assert all(Path(f).is_file() for f in files)
    # a wanted column only in the folder names: Spark reads it
    assert version_files(None, parted, 0, ["k", "h"]) == []


def test_deletion_vectors_are_read_through_spark(spark, tmp_path):
    """A table whose deletes are deletion vectors: its files still hold deleted rows, so
    pyarrow must not read them alone; read_columns gives Spark's rows."""
    path = tmp_path / "dv"
    frame = pd.DataFrame({"k": list("abcdef"), "x": [float(i) for i in range(6)]})
    spark.createDataFrame(frame).write.format("delta").option(
        "delta.enableDeletionVectors", "true").save(str(path))
    spark.sql(f"DELETE FROM delta.`{path}` WHERE k IN ('b', 'e')")
    assert version_files(None, path, 1, ["k", "x"]) == []
    ours, _ = read_columns(spark, path, 1, ["k", "x"])
    assert sorted(ours["k"]) == ["a", "c", "d", "f"]


def _spark_history(spark, path):
    return {r["version"]: r for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()}


def test_commits_read_from_the_delta_log_equal_sparks_history(spark, tmp_path, monkeypatch):
    """The latest version, its rows written and each commit's lineage, read from the log
    without a Spark job, are what DESCRIBE HISTORY says: after overwrites carrying lineage,
    an append, a delete that writes a deletion vector, and a commit with no metrics; for a
    plain path and a ``file:`` URI alike."""
    from lakeloop.lakehouse import tables

    path = tmp_path / "t"
    frame = pd.DataFrame({"k": list("abcdef"), "x": [float(i) for i in range(6)]})
    writer = spark.createDataFrame(frame).write.format("delta").option(
        "delta.enableDeletionVectors", "true")
    writer.save(str(path))
    overwrite_table(spark.createDataFrame(frame.head(4)), path, run_id="r1",
                    lineage={"source_versions": {"gold": 3}})
    spark.createDataFrame(frame.tail(2)).write.format("delta").mode("append").save(str(path))
    spark.sql(f"DELETE FROM delta.`{path}` WHERE k = 'b'")
    spark.conf.set("spark.databricks.delta.history.metricsEnabled", "false")
    try:
        spark.createDataFrame(frame).write.format("delta").mode("append").save(str(path))
    finally:
        spark.conf.unset("spark.databricks.delta.history.metricsEnabled")
    history = _spark_history(spark, path)
    assert sorted(history) == [0, 1, 2, 3, 4] and not history[4]["operationMetrics"]

    def spark_asked(*args, **kwargs):
        raise AssertionError("a local table's commits are read from its log, not by Spark")

    monkeypatch.setattr(tables, "_history", spark_asked)
    for where in (path, f"file:{path}"):
        for version, row in history.items():
            logged = _log_commit(where, version)
            assert logged is not None and logged["version"] == version
            assert (logged.get("operationMetrics") or {}) == (row["operationMetrics"] or {})
            assert commit_metadata(spark, where, version) == json.loads(
                row["userMetadata"] or "{}")
        assert last_commit(spark, where) == (4, 0)  # no metrics: no rows counted
    assert commit_metadata(spark, path, 1) == {"dagster_run_id": "r1",
                                               "source_versions": {"gold": 3}}
    monkeypatch.undo()
    assert _log_commit(path, 5) is None  # not committed: Spark is asked, and finds none
    assert commit_metadata(spark, path, 5) == {}
    overwrite_table(spark.createDataFrame(frame), path)
    assert last_commit(spark, path) == (5, 6)


def test_a_path_that_is_no_table_still_gets_sparks_error(spark, tmp_path):
    from pyspark.errors import AnalysisException

    assert _log_commit(tmp_path / "missing") is None
    with pytest.raises(AnalysisException):
        last_commit(spark, tmp_path / "missing")
