"""Data contracts from the use-case file, as Spark expressions.

Every row-level rule yields a reason string when broken; a row with any reason goes to
quarantine with all of them, so a person sees every problem of a row at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakeloop.usecase import Column, Source

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame

SPARK_TYPES = {
    "string": "string",
    "int": "bigint",
    "double": "double",
    "boolean": "boolean",
    "timestamp": "timestamp",
    "date": "date",
}

VIOLATIONS = "_violations"
ROW = "_row"


def _literal(value):
    from pyspark.sql import functions as F

    return F.lit(value)


def _rules(name: str, column: Column, raw: SparkColumn, typed: SparkColumn):
    from pyspark.sql import functions as F

    yield (raw.isNotNull() & typed.isNull(), f"{name}: not a valid {column.type}")
    if not column.nullable:
        yield (raw.isNull(), f"{name}: null in a non-nullable column")
    if column.min is not None:
        yield (typed < F.lit(column.min), f"{name}: below the minimum {column.min:g}")
    if column.max is not None:
        yield (typed > F.lit(column.max), f"{name}: above the maximum {column.max:g}")
    if column.allowed is not None:
        allowed = [_literal(v) for v in column.allowed]
        shown = ", ".join(str(v) for v in column.allowed)
        yield (~typed.isin(*allowed), f"{name}: not one of the allowed values ({shown})")


def apply_contract(bronze: DataFrame, source: Source) -> DataFrame:
    """Typed columns for the contract, plus ``_violations`` (array of reasons, maybe empty).

    ``bronze`` holds every contract column as a string, plus ``_row`` (the row's position in
    its snapshot) and ``ds``. A unique key is unique within each day's snapshot: its first
    row wins and later rows with the same key are quarantined. (Uniqueness across days is a
    table-level check, so a backfill and day-by-day runs quarantine the same rows.)
    """
    from pyspark.sql import functions as F

    checks = []
    typed_cols = []
    for name, column in source.columns.items():
        raw = F.nullif(F.trim(F.col(f"`{name}`")), F.lit(""))
        typed = raw.try_cast(SPARK_TYPES[column.type])
        typed_cols.append(typed.alias(name))
        for broken, reason in _rules(name, column, raw, typed):
            checks.append(F.when(F.coalesce(broken, F.lit(False)), F.lit(reason)))
    passthrough = [c for c in bronze.columns if c not in source.columns]
    # One projection over bronze: the rules must see the raw text, not the typed values.
    violations = F.filter(F.array(*checks), lambda x: x.isNotNull()).alias(VIOLATIONS)
    df = bronze.select(*typed_cols, *[F.col(f"`{c}`") for c in passthrough], violations)
    for name, column in source.columns.items():
        if not column.unique:
            continue
        # Duplicates are rare: find the repeated keys with a small aggregate, then rank only
        # the rows of those keys (a window over every row would shuffle the whole table).
        repeated = (df.where(F.col(name).isNotNull()).groupBy(name, "ds")
                    .agg(F.count("*").alias("_n"), F.min(ROW).alias("_first_row"))
                    .where("_n > 1").drop("_n"))
        df = (df.join(repeated, on=[name, "ds"], how="left")
              .withColumn(
                  VIOLATIONS,
                  F.when(F.col("_first_row").isNotNull() & (F.col(ROW) != F.col("_first_row")),
                         F.array_append(F.col(VIOLATIONS),
                                        F.lit(f"{name}: duplicate key in the same snapshot")))
                  .otherwise(F.col(VIOLATIONS)))
              .drop("_first_row"))
    return df
