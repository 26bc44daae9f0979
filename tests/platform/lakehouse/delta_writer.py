"""A separate writer process for the concurrency tests: replaces one day of a Delta table.

python -m tests.platform.lakehouse.delta_writer <table path> <day> <value> <rows> [seconds per task]
"""

import sys
import time

from lakeloop.lakehouse.tables import replace_window
from lakeloop.settings import Settings
from lakeloop.spark import SparkResource


def main(path: str, day: str, value: str, rows: int, slow: float = 0.0) -> None:
    from pyspark.sql import functions as F

    spark = SparkResource(jars_dir=str(Settings.from_env({}).jars_dir),
                          driver_memory="768m").session()
    df = (spark.range(rows, numPartitions=8)
          .withColumn("value", F.lit(value))
          .withColumn("ds", F.lit(day).cast("date")))
    if slow:
        def pace(batches):
            for batch in batches:
                time.sleep(slow)
                yield batch
        df = df.mapInPandas(pace, df.schema)
    commit = replace_window(df, path, day, day, run_id=f"writer-{value}")
    sys.stdout.write(f"committed version {commit.version} rows {commit.rows_written}\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]),
         float(sys.argv[5]) if len(sys.argv) > 5 else 0.0)
