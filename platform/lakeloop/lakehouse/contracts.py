"""Data contracts from the use-case file, as Spark expressions.

Every row-level rule yields a reason string when broken; a row with any reason goes to
quarantine with all of them, so a person sees every problem of a row at once. The messages
are built for quarantined rows only: the other rows pay for one boolean.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakeloop.lakehouse import rules
from lakeloop.spark import fold
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

BAD = "_bad"
ROW = "_row"


def _literal(value):
    from pyspark.sql import functions as F

    return F.lit(value)


# Integers are read through a double, so 3.0 (how pandas writes an int column that has a
# missing value) is 3, and 3.5 is refused as not whole; 2**53 bounds exact doubles.
MAX_EXACT_INT = 2**53 - 1


def typed_value(raw: SparkColumn, type_: str) -> SparkColumn:
    """The contract type's value of a trimmed text, or null when it does not parse."""
    from pyspark.sql import functions as F

    if type_ == "int":
        # Plain digits are read as an integer directly; only the rest (3.0, 1e3, too large)
        # goes through a double, which costs a Java string and a float parse a value. The
        # 10M-row window's silver pass (4 integer columns): 53.1 -> 49.5 s. Same values:
        # tests/platform/lakehouse/test_contracts.py.
        whole = raw.try_cast("bigint")
        number = raw.try_cast("double")
        return F.coalesce(
            F.when((whole >= -MAX_EXACT_INT) & (whole <= MAX_EXACT_INT), whole),
            F.when((number == F.floor(number)) & (F.abs(number) <= MAX_EXACT_INT),
                   number.cast("bigint")))
    return raw.try_cast(SPARK_TYPES[type_])


def _rules(name: str, column: Column, raw: SparkColumn, typed: SparkColumn):
    """(broken, message) per rule; the messages are lakeloop.rules', which serving uses."""
    from pyspark.sql import functions as F

    if column.type == "int":
        number = raw.try_cast("double")
        yield (raw.isNotNull() & typed.isNull() & number.isNull(),
               rules.not_valid(name, column.type))
        yield (raw.isNotNull() & typed.isNull() & number.isNotNull(), rules.not_whole(name))
    else:
        yield (raw.isNotNull() & typed.isNull(), rules.not_valid(name, column.type))
    if not column.nullable:
        yield (raw.isNull(), rules.null_in_required(name))
    if column.min is not None:
        yield (typed < F.lit(column.min), rules.below_minimum(name, column.min))
    if column.max is not None:
        yield (typed > F.lit(column.max), rules.above_maximum(name, column.max))
    if column.allowed is not None and column.other is None:  # with other: it goes there
        allowed = [_literal(v) for v in column.allowed]
        yield (~typed.isin(*allowed), rules.not_allowed(name, column.allowed))


@dataclass
class KeyRepeats:
    """Rows of a unique column whose key appears more than once in the window."""

    later_rows: DataFrame | None  # (key, ds, _row) of the rows to quarantine, or None
    keys_on_several_days: list[str]


def repeated_keys(bronze: DataFrame, column: str, collect_limit: int = 200_000,
                  buckets: int | None = None) -> KeyRepeats:
    """Find repeated keys with one aggregation over a 64-bit hash of the key column, then
    look only at the (few) rows whose hash repeats, comparing their keys exactly: the full
    rows are never shuffled, and a hash shared by two different keys costs a look, never a
    wrong answer. (``buckets`` folds the hash into that many values: tests use it to make
    every key share a hash with others.)

    Within a day's snapshot the first row of a key wins and later ones are quarantined;
    keys seen on several days of the window are reported (a table-level check).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = bronze.sparkSession
    trimmed = F.nullif(F.trim(F.col(f"`{column}`")), F.lit(""))
    keys = bronze.select(trimmed.alias("_k"), "ds", ROW).where(F.col("_k").isNotNull())
    hashed = F.xxhash64("_k")
    if buckets is not None:
        hashed = F.pmod(hashed, F.lit(buckets))
    multi = keys.groupBy(hashed.alias("_h")).count().where("count > 1").select("_h")
    found = multi.limit(collect_limit + 1).collect()
    if not found:
        return KeyRepeats(None, [])
    if len(found) > collect_limit:  # pathological feed: do it all in Spark
        first = F.min(ROW).over(Window.partitionBy("_k", "ds"))
        later = (keys.withColumn("_first", first).where(F.col(ROW) != F.col("_first"))
                 .select(F.col("_k").alias(column), "ds", ROW))
        several = (keys.groupBy("_k").agg(F.countDistinct("ds").alias("_d")).where("_d > 1")
                   .limit(1000).collect())
        return KeyRepeats(later, [r["_k"] for r in several])
    wanted = spark.createDataFrame([(r["_h"],) for r in found], "_h long")
    rows = (keys.withColumn("_h", hashed).join(F.broadcast(wanted), "_h", "left_semi")
            .select("_k", "ds", ROW).collect())
    by_key: dict[str, list] = {}
    for r in rows:
        by_key.setdefault(r["_k"], []).append((r["ds"], r[ROW]))
    later_rows: list[tuple[str, dt.date, int]] = []
    several_keys: list[str] = []
    for key, seen in by_key.items():
        days: dict[dt.date, int] = {}
        for ds, row in sorted(seen):
            if ds in days:
                later_rows.append((key, ds, row))
            else:
                days[ds] = row
        if len(days) > 1:
            several_keys.append(key)
    later_df = (F.broadcast(spark.createDataFrame(later_rows,
                                                  f"{column} string, ds date, {ROW} long"))
                if later_rows else None)
    return KeyRepeats(later_df, sorted(several_keys))


def reasons(source: Source) -> SparkColumn:
    """Every broken rule of a row, as an array of messages (evaluate on bad rows only)."""
    from pyspark.sql import functions as F

    checks = []
    for i, (name, column) in enumerate(source.columns.items()):
        for broken, reason in _rules(name, column, F.col(f"__raw_{i}"), F.col(f"__typed_{i}")):
            checks.append(F.when(F.coalesce(broken, F.lit(False)), F.lit(reason)))
    for name, column in source.columns.items():
        if column.unique:
            checks.append(F.when(F.col(f"__dup_{name}"),
                                 F.lit(f"{name}: duplicate key in the same snapshot")))
    return F.filter(F.array(*checks), lambda x: x.isNotNull())


def apply_contract(bronze: DataFrame, source: Source,
                   repeats: dict[str, KeyRepeats] | None = None) -> DataFrame:
    """Typed columns for the contract plus ``_bad`` (a rule is broken); ``reasons(source)``
    says which, evaluated only where it is needed (the quarantined rows).

    ``bronze`` holds every contract column as a string, plus ``_row`` (the row's position in
    its snapshot) and ``ds``. A unique key is unique within each day's snapshot: its first
    row wins and later rows with the same key are quarantined. (Uniqueness across days is a
    table-level check, so a backfill and day-by-day runs quarantine the same rows.)
    """
    from pyspark.sql import functions as F

    names = list(source.columns)
    passthrough = [c for c in bronze.columns if c not in source.columns]
    # Stage 1: the raw text, trimmed (empty -> null), and its typed value, each computed once;
    # the rules must see the raw text (a value that does not parse is a type error).
    markers = [F.lit(m.strip()) for m in source.null_values] or [F.lit("")]

    def raw_text(column: str) -> SparkColumn:
        trimmed = F.trim(F.col(f"`{column}`"))
        return F.when(trimmed.isin(*markers) | (trimmed == ""), F.lit(None)).otherwise(trimmed)

    staged = bronze.select(
        *[F.col(f"`{c}`") for c in passthrough],
        *[raw_text(n).alias(f"__raw_{i}") for i, n in enumerate(names)])
    staged = staged.select(
        "*", *[typed_value(F.col(f"__raw_{i}"), source.columns[n].type)
               .alias(f"__typed_{i}") for i, n in enumerate(names)])
    repeats = repeats if repeats is not None else {
        n: repeated_keys(bronze, n) for n, c in source.columns.items() if c.unique}
    for name, found in repeats.items():
        if found.later_rows is None:
            staged = staged.withColumn(f"__dup_{name}", F.lit(False))
            continue
        index = names.index(name)
        marks = found.later_rows.select(F.col(name).alias(f"__raw_{index}"), "ds", ROW,
                                        F.lit(True).alias(f"__dup_{name}"))
        staged = (staged.join(marks, on=[f"__raw_{index}", "ds", ROW], how="left")
                  .fillna(False, subset=[f"__dup_{name}"]))
    # Stage 2: one boolean per row; the messages are built for the bad rows only.
    broken = [F.coalesce(b, F.lit(False))
              for i, (n, c) in enumerate(source.columns.items())
              for b, _ in _rules(n, c, F.col(f"__raw_{i}"), F.col(f"__typed_{i}"))]
    broken += [F.col(f"__dup_{n}") for n in repeats]
    bad = fold(broken, operator.or_)
    return staged.select(
        *[F.col(f"__typed_{i}").alias(n) for i, n in enumerate(names)],
        *[F.col(f"`{c}`") for c in passthrough],
        *[F.col(f"__raw_{i}") for i in range(len(names))],
        *[F.col(f"__typed_{i}") for i in range(len(names))],
        *[F.col(f"__dup_{n}") for n in repeats],
        bad.alias(BAD))
