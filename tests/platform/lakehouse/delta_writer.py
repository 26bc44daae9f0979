"""A separate writer process for the concurrency tests: replaces one day of a Delta table.

python -m tests.platform.lakehouse.delta_writer <table path> <day> <value> <rows>
    [--hold MARKER] [--barrier MINE OTHER]

Faults are injected at a known point of the write, in the task that writes the last of the
8 partitions (the other seven have written their data files by then; nothing is committed
until every task is done):
  --hold MARKER         create MARKER, then never finish (the test kills the process);
  --barrier MINE OTHER  create MINE, then wait until OTHER exists: two writers meet with
                        both transactions open, so their commits always overlap.
"""

import argparse
import sys
import time
from pathlib import Path

from lakeloop.lakehouse.tables import replace_window
from lakeloop.settings import Settings
from lakeloop.spark import SparkResource

PARTITIONS = 8
WAIT_LIMIT_S = 600  # only a hung peer ends a wait this way


def _at_the_last_partition(rows: int, hold: str | None, barrier: list[str] | None):
    first_of_last = rows * (PARTITIONS - 1) // PARTITIONS

    def fault(batches):
        for batch in batches:
            if len(batch) and int(batch["id"].min()) >= first_of_last:
                if hold:
                    Path(hold).touch()
                    time.sleep(WAIT_LIMIT_S)
                if barrier:
                    mine, other = map(Path, barrier)
                    mine.touch()
                    deadline = time.monotonic() + WAIT_LIMIT_S
                    while not other.exists():
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"{other} never appeared")
                        time.sleep(0.05)
            yield batch
    return fault


def frame(spark, day: str, value: str, rows: int):
    """``rows`` rows (ids 0..rows-1) of ``day``, all carrying ``value``, in 8 partitions."""
    from pyspark.sql import functions as F

    return (spark.range(rows, numPartitions=PARTITIONS)
            .withColumn("value", F.lit(value))
            .withColumn("ds", F.lit(day).cast("date")))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("day")
    parser.add_argument("value")
    parser.add_argument("rows", type=int)
    parser.add_argument("--hold")
    parser.add_argument("--barrier", nargs=2)
    args = parser.parse_args(argv)
    settings = Settings.from_env()  # the test's environment: its JIT setting, not its roots
    spark = SparkResource(jars_dir=str(settings.jars_dir), driver_memory="768m",
                          java_options=settings.spark_java_options,
                          conf=settings.spark_conf_map).session()
    df = frame(spark, args.day, args.value, args.rows)
    if args.hold or args.barrier:
        df = df.mapInPandas(_at_the_last_partition(args.rows, args.hold, args.barrier),
                            df.schema)
    commit = replace_window(df, args.path, args.day, args.day, run_id=f"writer-{args.value}")
    sys.stdout.write(f"committed version {commit.version} rows {commit.rows_written}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
