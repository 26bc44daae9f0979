"""Data contracts as a library, on Spark with no Dagster: a bronze window split into typed
silver rows and quarantined rows that say every rule they break; nothing dropped silently."""

from __future__ import annotations

import json

import pandas as pd

from lakeloop.lakehouse import silver
from lakeloop.lakehouse.contracts import repeated_keys
from lakeloop.settings import BUILTIN_USE_CASES
from lakeloop.usecase import load_use_case

UC = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
SOURCE = UC.events


def _row(i: int, **changes: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "application_id": f"app-{i}", "applicant_id": f"A{i}",
        "application_ts": "2026-10-15T10:00:00", "income": "52000", "employment_years": "4",
        "credit_history_months": "120", "open_credit_lines": "3", "delinquencies_2y": "0",
        "credit_utilization": "0.4", "existing_debt": "9000", "loan_amount": "12000",
        "loan_term_months": "36", "channel": "online", "gender": "female", "age_band": "26-35"}
    row.update(changes)
    return row


def _bronze(spark, rows: list[dict]):
    frame = pd.DataFrame(rows)
    frame["_row"] = range(len(frame))
    return spark.createDataFrame(frame.astype({c: object for c in SOURCE.columns})).selectExpr(
        "*", "DATE'2026-10-15' AS ds", "'sha-1' AS _snapshot_hash",
        "'2026-10-15.csv' AS _source_file", "current_timestamp() AS _ingested_at")


def _split(spark, rows):
    bronze = _bronze(spark, rows)
    repeats = {n: repeated_keys(bronze, n) for n, c in SOURCE.columns.items() if c.unique}
    good, bad = silver.split(bronze, SOURCE, repeats)
    return good.toPandas(), bad.toPandas()


def test_good_rows_are_typed_and_bad_rows_say_every_rule_they_break(spark):
    rows = [_row(0), _row(1, loan_amount="200", channel="fax"),
            _row(2, credit_history_months="12.5"), _row(3, income=None),
            _row(4, application_ts="not a time"), _row(5, employment_years=" 7 ")]
    good, bad = _split(spark, rows)
    assert len(good) + len(bad) == len(rows)  # nothing dropped
    assert sorted(good["application_id"]) == ["app-0", "app-5"]
    assert good.set_index("application_id").loc["app-5", "employment_years"] == 7.0
    assert good["credit_history_months"].dtype.kind == "i"
    why = {json.loads(r)["application_id"]: list(reasons)
           for r, reasons in zip(bad["record"], bad["reasons"], strict=True)}
    assert why["app-1"] == ["loan_amount: below the minimum 500",
                            "channel: not one of the allowed values (branch, online, partner)"]
    assert why["app-2"] == ["credit_history_months: not a whole number"]
    assert why["app-3"] == ["income: null in a non-nullable column"]
    assert len(why["app-4"]) == 1 and why["app-4"][0].startswith("application_ts:")
    # the quarantined row is kept as delivered, with where it came from
    assert set(bad["row_in_snapshot"]) == {1, 2, 3, 4}
    assert json.loads(bad.set_index("row_in_snapshot").loc[1, "record"])["loan_amount"] == "200"


def test_a_repeated_key_keeps_its_first_row_and_quarantines_the_later_ones(spark):
    good, bad = _split(spark, [_row(0), _row(1), _row(0, loan_amount="15000"), _row(0)])
    assert sorted(good["application_id"]) == ["app-0", "app-1"]
    assert good.set_index("application_id").loc["app-0", "loan_amount"] == 12000.0
    assert sorted(bad["row_in_snapshot"]) == [2, 3]
    assert all(list(r) == ["application_id: duplicate key in the same snapshot"]
               for r in bad["reasons"])


def test_the_sources_null_markers_are_nulls(spark):
    source = SOURCE.model_copy(update={"null_values": ["NA", "?"]})
    bronze = _bronze(spark, [_row(0, employment_years="NA"), _row(1, income="?")])
    repeats = {n: repeated_keys(bronze, n) for n, c in source.columns.items() if c.unique}
    good, bad = (df.toPandas() for df in silver.split(bronze, source, repeats))
    assert list(good["application_id"]) == ["app-0"] and pd.isna(good["employment_years"][0])
    assert list(bad["reasons"][0]) == ["income: null in a non-nullable column"]


def test_keys_that_share_a_hash_are_told_apart_exactly(spark):
    """Repeats are found by a hash of the key; folding it into one or two values makes every
    key share a hash, and the answer must still be the exact one."""
    import datetime as dt

    from pyspark.sql import functions as F

    first = _bronze(spark, [_row(0), _row(1), _row(0, loan_amount="15000"), _row(2)])
    second = _bronze(spark, [_row(3), _row(2), _row(4)]).withColumn(
        "ds", F.lit(dt.date(2026, 10, 16)))
    window = first.unionByName(second)
    for buckets in (None, 1, 2):
        found = repeated_keys(window, "application_id", buckets=buckets)
        assert found.later_rows is not None
        assert [tuple(r) for r in found.later_rows.collect()] == [
            ("app-0", dt.date(2026, 10, 15), 2)]
        assert found.keys_on_several_days == ["app-2"]
    distinct = _bronze(spark, [_row(i) for i in range(5)])
    for buckets in (None, 1):
        found = repeated_keys(distinct, "application_id", buckets=buckets)
        assert found.later_rows is None and found.keys_on_several_days == []


def test_an_integer_reads_as_it_did_through_a_double(spark):
    """Plain digits skip the float parse; every text still gets the value (or null) that
    reading it as a double gave: 36.0 is 36, 36.5 and anything past 2**53 are not whole."""
    from pyspark.sql import functions as F

    from lakeloop.lakehouse.contracts import MAX_EXACT_INT, typed_value

    texts = ["36", "+36", "-36", "007", "-0", "0.0", "-0.0", "36.0", "36.5", "3e1", "1e3",
             "36d", "0x10", "NaN", "Infinity", "-Infinity", "abc", "", "1_000", "\u0663\u0666",
             "\t36", "9007199254740991", "-9007199254740991", "9007199254740992",
             "-9007199254740992", "9223372036854775807", "-9223372036854775808",
             "9223372036854775808", "99999999999999999999", None]
    raw = F.col("raw")
    number = raw.try_cast("double")
    through_double = F.when((number == F.floor(number)) & (F.abs(number) <= MAX_EXACT_INT),
                            number.cast("bigint"))
    rows = (spark.createDataFrame([(t,) for t in texts], "raw string")
            .select("raw", typed_value(raw, "int").alias("fast"),
                    through_double.alias("reference")).collect())
    assert [(r["raw"], r["fast"]) for r in rows] == [(r["raw"], r["reference"]) for r in rows]
    assert {r["raw"]: r["fast"] for r in rows}["36.0"] == 36
