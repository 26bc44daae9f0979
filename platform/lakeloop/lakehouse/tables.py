"""Delta Lake on local disk or object storage: paths, partition-exact writes and versions."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import dagster as dg

from lakeloop.spark import session_conf

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

PARTITION_COLUMN = "ds"
# Parquet row groups of a day's file (Parquet's default is 128 MiB). A read splits a file
# only between row groups, so one day in one 128 MiB group was one task: a day's rerun ran
# its silver pass on one core (1M rows: 6.8 s, 4.2 s in 8 MiB groups on 2 cores).
ROW_GROUP_BYTES = 8 << 20
# The largest dictionary a column keeps within a row group (Parquet's default is 1 MiB).
# A column of many values (ids, amounts) hashed every value into its dictionary until it
# held 1 MiB, then fell back to plain values anyway: dictionaries were 43% of the Parquet
# writers' time in a 10M-row backfill. Columns of few values (a snapshot hash, categories)
# keep theirs. The cost: a column whose dictionary needs 64 KiB to 1 MiB (5k to 75k distinct
# 10-character texts in a row group) is written plain; the benchmark's files grew 0.6-1.6%.
DICTIONARY_PAGE_BYTES = 64 << 10


class LakehouseResource(dg.ConfigurableResource):
    """Where every asset of every use case lives: ``<root>/<asset key path>``.

    Two roots: Delta tables under ``table_root`` (local disk, or object storage such as
    ``s3a://lakeloop/tables``), and working files (raw snapshots, request logs, reports,
    manifests) under ``data_root``, a local folder or a volume every pod mounts.
    """

    data_root: str
    table_root: str = ""
    # Where ``lakeloop reports`` serves the monitoring reports (one click from the UI).
    reports_url: str = "http://127.0.0.1:8765"
    # The Dagster UI: alerts and the audit trail link to runs there.
    ui_url: str = "http://127.0.0.1:3000"

    def root(self) -> Path:
        return Path(self.data_root)

    def path(self, key: dg.AssetKey | Sequence[str]) -> Path:
        """A working-file folder of an asset (always a filesystem path)."""
        return self.root().joinpath(*_parts(key))

    def table(self, key: dg.AssetKey | Sequence[str]) -> str:
        """Where an asset's Delta table lives: a local path or an object-storage URI."""
        root = self.table_root or self.data_root
        if "://" in root:
            return "/".join([root.rstrip("/"), *_parts(key)])
        return str(Path(root).joinpath(*_parts(key)))

    def report_link(self, path: Path | str) -> dg.MetadataValue:
        """A report's metadata: an http link the UI opens, else its path."""
        from lakeloop.monitoring.server import report_url

        url = report_url(self.reports_url, self.data_root, path)
        return dg.MetadataValue.url(url) if url else dg.MetadataValue.path(str(path))

    def report_href(self, path: Path | str) -> str:
        """A report's address for a message: its http link, else its path."""
        from lakeloop.monitoring.server import report_url

        return report_url(self.reports_url, self.data_root, path) or str(path)

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def launchpad_url(self, job: str, location: str = "lakeloop") -> str:
        """The Dagster UI's Launchpad of ``job`` (in the code location ``location``)."""
        return f"{self.ui_url.rstrip('/')}/locations/{location}/jobs/{job}/playground"

    def uri(self, key: dg.AssetKey | Sequence[str]) -> str:
        return self.table(key)

    def landing(self, use_case: str, source: str) -> Path:
        return self.root() / "landing" / use_case / source


def _parts(key: dg.AssetKey | Sequence[str]) -> list[str]:
    parts = list(key.path if isinstance(key, dg.AssetKey) else key)
    for part in parts:  # asset keys are names, never paths: no way out of the root
        if not part or part in (".", "..") or "/" in part or "\\" in part:
            raise ValueError(f"{part!r} is not a valid asset key part")
    return parts


def window_predicate(start: str, end: str, column: str = PARTITION_COLUMN) -> str:
    """SQL predicate for the inclusive day window [start, end] (validated ISO dates)."""
    start_d, end_d = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return f"{column} >= DATE'{start_d.isoformat()}' AND {column} <= DATE'{end_d.isoformat()}'"


def days_predicate(days: list[str], column: str = PARTITION_COLUMN) -> str:
    """SQL predicate for exactly these days (validated ISO dates), as ranges where contiguous."""
    parsed = sorted({dt.date.fromisoformat(d) for d in days})
    if not parsed:
        raise ValueError("no days given")
    ranges, start = [], parsed[0]
    for prev, cur in zip(parsed, parsed[1:], strict=False):
        if (cur - prev).days != 1:
            ranges.append((start, prev))
            start = cur
    ranges.append((start, parsed[-1]))
    return " OR ".join(
        f"({column} = DATE'{a.isoformat()}')" if a == b else
        f"({column} >= DATE'{a.isoformat()}' AND {column} <= DATE'{b.isoformat()}')"
        for a, b in ranges)


# Delta's metadata is read with SQL on delta.`<path>` rather than the DeltaTable API: SQL
# needs only Delta's session extension, so it works the same on a classic session and on
# a Spark Connect endpoint (where the DeltaTable API needs Delta's Connect plugin).
_NOT_A_TABLE = ("DELTA_MISSING_DELTA_TABLE", "PATH_NOT_FOUND", "DELTA_PATH_DOES_NOT_EXIST",
                "DELTA_TABLE_NOT_FOUND")


def _ident(path: Path | str) -> str:
    return "delta.`" + str(path).replace("`", "``") + "`"


def _history(spark: SparkSession, path: Path | str, limit: int | None = None) -> DataFrame:
    return spark.sql(f"DESCRIBE HISTORY {_ident(path)}"
                     + (f" LIMIT {int(limit)}" if limit else ""))


def _detail(spark: SparkSession, path: Path | str):
    return spark.sql(f"DESCRIBE DETAIL {_ident(path)}").first()


def is_delta_table(path: Path | str) -> bool:
    text = str(path)
    if "://" in text and not text.startswith("file:"):
        from pyspark.errors import AnalysisException
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
        try:
            _detail(session, text)
        except AnalysisException as exc:
            if exc.getCondition() in _NOT_A_TABLE:
                return False
            raise
        return True
    return (Path(text.removeprefix("file:")) / "_delta_log").is_dir()


class Commit(NamedTuple):
    version: int
    rows_written: int


def replace_window(
    df: DataFrame,
    path: Path | str,
    start: str,
    end: str,
    *,
    run_id: str | None = None,
    merge_schema: bool = False,
    lineage: dict | None = None,
    stats_columns: list[str] | None = None,
) -> Commit:
    """Replace exactly the partitions of [start, end] in one atomic Delta commit.

    Rows outside the window are rejected by Delta (replaceWhere constraint check), so a bug
    cannot overwrite a neighbour's partitions. Returns the committed version and row count.
    """
    return replace_days(df, path, window_predicate(start, end), run_id=run_id,
                        merge_schema=merge_schema, lineage=lineage, stats_columns=stats_columns)


def replace_days(
    df: DataFrame,
    path: Path | str,
    predicate: str,
    *,
    run_id: str | None = None,
    merge_schema: bool = False,
    lineage: dict | None = None,
    stats_columns: list[str] | None = None,
) -> Commit:
    """Replace the partitions matching ``predicate`` (see days_predicate) in one commit.

    ``stats_columns`` names the columns Delta keeps min/max statistics for when it creates
    the table (an empty list: none). Statistics cost time on every write; a table that is
    only ever read by day (bronze) does not need them.
    """
    if stats_columns is not None and not is_delta_table(path):
        prefix = "spark.databricks.delta.properties.defaults."
        conf = ({prefix + "dataSkippingStatsColumns": ",".join(stats_columns)} if stats_columns
                else {prefix + "dataSkippingNumIndexedCols": "0"})
        with session_conf(df.sparkSession, conf):
            return replace_days(df, path, predicate, run_id=run_id, merge_schema=merge_schema,
                                lineage=lineage)
    writer = (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .partitionBy(PARTITION_COLUMN)
    )
    if merge_schema:
        writer = writer.option("mergeSchema", "true")
    writer = writer.option("userMetadata", _user_metadata(run_id, lineage))
    with session_conf(df.sparkSession, {"parquet.block.size": str(ROW_GROUP_BYTES),
                                        "parquet.dictionary.page.size":
                                        str(DICTIONARY_PAGE_BYTES)}):
        writer.save(str(path))
    return last_commit(df.sparkSession, path)


def overwrite_table(df: DataFrame, path: Path | str, *, run_id: str | None = None,
                    lineage: dict | None = None) -> Commit:
    """Replace the whole table in one commit; ``lineage`` is stored in the commit itself."""
    writer = (df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
              .option("userMetadata", _user_metadata(run_id, lineage)))
    writer.save(str(path))
    return last_commit(df.sparkSession, path)


def _user_metadata(run_id: str | None, lineage: dict | None) -> str:
    return json.dumps({"dagster_run_id": run_id, **(lineage or {})}, sort_keys=True)


def commit_metadata(spark: SparkSession, path: Path | str, version: int) -> dict:
    """The lineage a commit recorded (run id, the versions it read), from the Delta log."""
    logged = _log_commit(path, int(version))
    if logged is not None:
        return json.loads(logged.get("userMetadata") or "{}")
    row = (_history(spark, path).where(f"version = {int(version)}")
           .select("userMetadata").first())
    return json.loads(row["userMetadata"] or "{}") if row else {}


def _local(path: Path | str) -> str | None:
    """The filesystem path of a local table (plain or ``file:``), None for any other."""
    text = str(path)
    if "://" not in text or text.startswith("file:"):
        return text.removeprefix("file://").removeprefix("file:")
    return None


def _log_commit(path: Path | str, version: int | None = None) -> dict | None:
    """A local table's commit as its Delta log records it (the latest when ``version`` is
    None): its ``version``, and its ``operationMetrics`` and ``userMetadata`` when the
    commit has them. DESCRIBE HISTORY ran a Spark job for this, about 0.4 s a call: twice
    before a training run and once after every write. delta-rs finds the latest version;
    the commit's own file gives its record (delta-rs's history() numbers entries by their
    position, which another writer's commit in between would shift). None when Spark must
    answer: not a local table, a log delta-rs cannot read, or a commit file no longer
    there."""
    from deltalake import DeltaTable

    local = _local(path)
    if local is None:
        return None
    try:
        latest = DeltaTable(local).version()
        wanted = latest if version is None else version
        if not 0 <= wanted <= latest:
            return None
        info: dict = {}
        with (Path(local) / "_delta_log" / f"{wanted:020d}.json").open(encoding="utf-8") as log:
            for line in log:
                action = json.loads(line) if line.strip() else {}
                if "commitInfo" in action:
                    info = action["commitInfo"]
                    break
    except Exception:  # any failure of this shortcut: Spark, the reference, answers
        return None
    return {**info, "version": wanted}


def read_table(spark: SparkSession, path: Path | str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(str(path))


def read_pandas(spark: SparkSession, path: Path | str, version: int, columns: list[str]):
    """Columns of a table version as pandas (see ``read_columns``)."""
    return read_columns(spark, path, version, columns)[0]


def read_columns(spark: SparkSession, path: Path | str, version: int, columns: list[str],
                 distinct: tuple[str, ...] = ()):
    """Columns of a table version as pandas, read by pyarrow from exactly the Parquet files
    Delta lists for that version (no JVM-to-Python transfer), and the sorted distinct
    non-null values of the ``distinct`` columns from the same read (a column only there
    never becomes a pandas column). Falls back to Spark when the version cannot be read
    file by file: deletion vectors, column mapping, or a wanted column that lives only in
    partition paths."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    wanted = [*columns, *(c for c in distinct if c not in columns)]
    files = version_files(spark, path, version, wanted)
    if not files:  # through Spark: a version pyarrow cannot read, or no data files
        table = read_table(spark, path, version)
        values = {c: sorted(r[0] for r in table.select(c).distinct().collect()
                            if r[0] is not None) for c in distinct}
        return table.select(*columns).toPandas(), values
    arrow = ds.dataset(files, format="parquet").to_table(columns=wanted)
    values = {c: sorted(v for v in pc.unique(arrow[c]).to_pylist() if v is not None)
              for c in distinct}
    frame = arrow.select(columns).to_pandas()
    for column in frame.columns:  # as Spark hands them over: naive UTC timestamps
        if getattr(frame[column].dtype, "tz", None) is not None:
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame, values


_SPARK_ONLY = {"deletionVectors", "columnMapping"}  # files pyarrow alone would misread


def version_files(spark: SparkSession | None, path: Path | str, version: int,
                  wanted: Sequence[str]) -> list[str]:
    """The local Parquet files that hold ``version`` of the table, sorted, when pyarrow can
    read ``wanted`` from them file by file; [] when only Spark reads that version right:
    deletion vectors, column mapping, a wanted column that lives only in partition paths,
    object storage, or no data files.

    A local table's answer comes from its Delta log through delta-rs, without Spark: asking
    Spark (DESCRIBE DETAIL, then the version's file index) ran a Spark job and took 2.4 s
    of the training asset's 4.2 s read at 1M rows. Spark still answers for a log delta-rs
    cannot read (a protocol feature it does not know)."""
    from deltalake.exceptions import DeltaError

    local = _local(path)
    if local is not None:
        try:
            return _log_files(local, version, wanted)
        except DeltaError:
            pass
    if spark is None:
        raise ValueError(f"{path}: only Spark can list this table's files")
    detail = _detail(spark, path)
    if detail is None:
        raise ValueError(f"{path}: Delta returned no table detail")
    if not _by_file(detail["tableFeatures"], detail["partitionColumns"], wanted):
        return []
    files = read_table(spark, path, version).inputFiles()
    if any("://" in f and not f.startswith("file:") for f in files):
        return []  # object storage
    return sorted(f.removeprefix("file://").removeprefix("file:") for f in files)


def _log_files(path: str, version: int, wanted: Sequence[str]) -> list[str]:
    from deltalake import DeltaTable

    table = DeltaTable(path, version=version)
    protocol, meta = table.protocol(), table.metadata()
    features = [*(protocol.reader_features or []), *(protocol.writer_features or [])]
    # Reader version 2 turns column mapping on by a table property, with no feature list.
    if meta.configuration.get("delta.columnMapping.mode", "none") != "none":
        features.append("columnMapping")
    if not _by_file(features, meta.partition_columns, wanted):
        return []
    return sorted(table.file_uris())


def _by_file(features, partition_columns, wanted: Sequence[str]) -> bool:
    """Whether pyarrow reads ``wanted`` right from the version's files alone."""
    return not (set(features or []) & _SPARK_ONLY or set(partition_columns or []) & set(wanted))


def read_window(spark: SparkSession, path: Path | str, start: str, end: str) -> DataFrame:
    return read_table(spark, path).where(window_predicate(start, end))


def read_pinned(spark: SparkSession, path: Path | str) -> tuple[DataFrame, int]:
    """The table at its latest version, and that version: what a derived table records as
    read (its lineage), exactly, even when a writer commits a newer version meanwhile."""
    version = latest_version(spark, path)
    return read_table(spark, path, version), version


def last_commit(spark: SparkSession, path: Path | str) -> Commit:
    """The table's latest version and the rows its commit wrote (from Delta's own metrics)."""
    row = _log_commit(path)
    if row is None:
        first = _history(spark, path, 1).select("version", "operationMetrics").first()
        row = first.asDict() if first is not None else None
    if row is None:
        raise ValueError(f"{path}: the Delta table has no commit history")
    metrics = row.get("operationMetrics") or {}
    return Commit(int(row["version"]), int(metrics.get("numOutputRows", 0)))


def latest_version(spark: SparkSession, path: Path | str) -> int:
    return last_commit(spark, path).version
