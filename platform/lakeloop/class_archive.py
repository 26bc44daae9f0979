"""The local Spark driver's class archive (HotSpot class-data sharing).

A local Spark session spends most of its start, and much of its first queries, loading and
verifying tens of thousands of classes from Spark's and Delta's jars. Class-data sharing maps
them from an archive instead: `make setup` records one (a JVM that runs a session and Delta
writes with -XX:ArchiveClassesAtExit) and every later local session maps it
(-XX:SharedArchiveFile; lakeloop.spark). Measured on this 2-core machine: a cold session
started in 6 s instead of 12 s, and a session with two Delta writes and a read took 25 s
instead of 33 s (51 s to 21 s with the quick JIT of LAKELOOP_SPARK_JAVA_OPTIONS). An archive
only matches the JDK and the exact classpath it was recorded with, so its name is a digest of
both; a changed jar or JDK means no archive (a plain start) until set-up records a new one.

``python -m lakeloop.class_archive record JARS_DIR`` is what set-up runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ARCHIVE_FOLDER = "class-archive"


def _java() -> Path | None:
    import shutil

    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found else None


def class_archive(jars_dir: Path, classpath: Sequence[Path]) -> Path | None:
    """Where the class archive for this JDK and ``classpath`` (plus Spark's own jars) lives;
    None when no JDK is found."""
    import hashlib

    import pyspark

    java = _java()
    if java is None:
        return None
    digest = hashlib.sha256()
    spark_jars = sorted((Path(pyspark.__file__).resolve().parent / "jars").glob("*.jar"))
    for item in (java, *(Path(p).resolve() for p in classpath), *spark_jars):
        try:
            stat = item.stat()
        except OSError:
            return None
        digest.update(f"{item}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return Path(jars_dir).resolve() / ARCHIVE_FOLDER / f"spark-{digest.hexdigest()[:16]}.jsa"


def record_class_archive(jars_dir: Path, workdir: Path) -> Path:
    """Record the class archive for the local session's classpath (set-up calls this once):
    a session in this process does what the lakehouse does (Delta writes by day, reads, a
    join, a history, Arrow transfers), then its JVM exits and writes the archive."""
    from pyspark import SparkContext

    from lakeloop.spark import JarsMissingError, SparkResource, delta_jars

    jars_dir = Path(jars_dir).resolve()
    jars = delta_jars(jars_dir)
    target = class_archive(jars_dir, jars)
    if target is None:
        raise JarsMissingError("no java found (JAVA_HOME or PATH)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    resource = SparkResource(jars_dir=str(jars_dir), driver_memory="1g",
                             warehouse_dir=str(workdir / "warehouse"))
    session = resource._get_or_create(record_archive=partial)
    _archive_workload(session, workdir / "table")
    session.stop()
    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    if gateway is not None:
        gateway.shutdown()
    if process is not None:  # the JVM exits when its stdin closes, writing the archive
        process.stdin.close()
        process.wait(timeout=600)
    if not partial.exists():
        raise RuntimeError(f"the JVM exited without writing its class archive {partial}")
    for old in target.parent.glob("spark-*.jsa"):
        old.unlink()
    partial.rename(target)
    return target


def _archive_workload(spark: SparkSession, path: Path) -> None:
    from pyspark.sql import functions as F

    from lakeloop.lakehouse.tables import latest_version, read_table, replace_window

    for day in ("2026-01-01", "2026-01-02", "2026-01-02"):
        frame = (spark.range(2000, numPartitions=2)
                 .withColumn("key", F.concat(F.lit("k"), (F.col("id") % 97).cast("string")))
                 .withColumn("amount", F.rand(seed=1) * 100)
                 .withColumn("ds", F.lit(day).cast("date")))
        replace_window(frame, path, day, day, run_id="class-archive", merge_schema=True)
    table = read_table(spark, path, latest_version(spark, path))
    by_key = table.groupBy("key", "ds").agg(F.count("*").alias("n"), F.avg("amount"))
    joined = table.join(by_key, ["key", "ds"], "left").dropDuplicates(["key", "ds"])
    joined.orderBy("key").limit(100).toPandas()
    spark.createDataFrame(joined.limit(10).toPandas()).count()


def _main(argv: list[str]) -> None:
    import tempfile
    import time

    from lakeloop.spark import delta_jars

    if len(argv) != 2 or argv[0] != "record":
        raise SystemExit("usage: python -m lakeloop.class_archive record JARS_DIR")
    jars_dir = Path(argv[1]).resolve()
    existing = class_archive(jars_dir, delta_jars(jars_dir))
    if existing is not None and existing.exists():
        sys.stdout.write(f"class archive up to date: {existing}\n")
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakeloop-class-archive-") as work:
        done = record_class_archive(jars_dir, Path(work))
    sys.stdout.write(f"class archive recorded in {time.perf_counter() - started:.0f}s: "
                     f"{done} ({done.stat().st_size >> 20} MiB)\n")


if __name__ == "__main__":
    _main(sys.argv[1:])
