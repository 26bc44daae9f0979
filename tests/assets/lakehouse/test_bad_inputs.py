"""Bad inputs, each with the message a user sees, the quarantine and reconciliation counts,
and the table versions before and after."""

import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakeloop.lakehouse import silver as silver_lib
from tests.assets.lakehouse.conftest import DAYS, checks_of, failure_text, make_lake, metadata_of

pytestmark = pytest.mark.integration
DAY = DAYS[1]


def _versions(lake):
    """The versions every case compares with (day 0 is loaded: see ``loaded_lake``)."""
    return {t: lake.version(t) for t in ("bronze_applications", "silver_applications",
                                           "quarantine_applications")}


def _baseline(lake):
    """Day 0 loaded cleanly, so a case has tables and versions to compare with."""
    result = lake.ingest(DAYS[0])
    assert result.success, failure_text(result)
    return _versions(lake)


def _row_level_case(lake, mutate, reason, bad_rows):
    before = _versions(lake)
    frame = mutate(lake.frame(DAY))
    rows_in = len(frame)
    lake.land(DAY, frame)
    result = lake.ingest(DAY)
    assert result.success, failure_text(result)
    silver = metadata_of(result, "silver_applications")
    assert silver["rows_in"] == rows_in
    assert silver["rows_quarantined"] == bad_rows
    assert silver["rows_accepted"] == rows_in - bad_rows
    checks = checks_of(result)
    assert checks["rows_reconcile"].passed
    quarantine = lake.table("quarantine_applications")
    day_rows = quarantine[quarantine["ds"].astype(str) == DAY]
    assert len(day_rows) == bad_rows
    assert all(any(reason in r for r in reasons) for reasons in day_rows["reasons"])
    assert reason in checks["quarantine_rate"].description
    after = {t: lake.version(t) for t in before}
    assert after["silver_applications"] == before["silver_applications"] + 1
    return result, checks


def test_wrong_type_is_quarantined_with_its_column_and_rule(loaded_lake):
    lake = loaded_lake
    def mutate(f):
        f.loc[[3, 7], "income"] = "forty thousand"
        return f
    _, checks = _row_level_case(lake, mutate, "income: not a valid double", 2)
    outcome = checks["quarantine_rate"]
    assert not outcome.passed and outcome.severity.value == "WARN"  # 5%: warn, not block


def test_null_key_is_quarantined(loaded_lake):
    lake = loaded_lake
    def mutate(f):
        f.loc[5, "application_id"] = ""
        return f
    _row_level_case(lake, mutate, "application_id: null in a non-nullable column", 1)


def test_duplicate_key_keeps_the_first_row(loaded_lake):
    lake = loaded_lake
    def mutate(f):
        dup = f.iloc[[2]].copy()
        dup["loan_amount"] = "999"
        return pd.concat([f, dup], ignore_index=True)
    _row_level_case(lake, mutate, "application_id: duplicate key in the same snapshot", 1)
    silver = lake.table("silver_applications")
    kept = silver[silver["application_id"] == lake.frame(DAY)["application_id"][2]]
    assert len(kept) == 1 and kept["loan_amount"].iloc[0] != 999.0


def test_out_of_range_is_quarantined(loaded_lake):
    lake = loaded_lake
    def mutate(f):
        f.loc[1, "credit_utilization"] = "5.0"
        return f
    _row_level_case(lake, mutate, "credit_utilization: above the maximum 1.5", 1)


def test_unknown_category_is_quarantined(loaded_lake):
    lake = loaded_lake
    def mutate(f):
        f.loc[4, "channel"] = "fax"
        return f
    _row_level_case(lake, mutate, "channel: not one of the allowed values", 1)


def test_extra_column_is_accepted_and_reported(loaded_lake):
    lake = loaded_lake
    before = _versions(lake)
    frame = lake.frame(DAY)
    frame["promo_code"] = "SPRING"
    lake.land(DAY, frame)
    result = lake.ingest(DAY)
    assert result.success, failure_text(result)
    assert metadata_of(result, "applications")["extra_columns"] == "promo_code"
    silver = lake.table("silver_applications")
    assert set(silver.loc[silver["ds"].astype(str) == DAY, "promo_code"]) == {"SPRING"}
    assert metadata_of(result, "silver_applications")["rows_quarantined"] == 0
    assert lake.version("silver_applications") == before["silver_applications"] + 1


def test_a_clean_redelivery_empties_its_days_quarantine_without_a_second_pass(loaded_lake,
                                                                              monkeypatch):
    """A day quarantined, then delivered again clean: its quarantined rows go, in a commit of
    their own, and the quarantine's write reads no bronze (the silver pass, which judged every
    row of the day, found none broken)."""
    lake = loaded_lake
    plans: list[tuple[str, str]] = []  # (table, optimised plan) of every silver-step write
    real = silver_lib.replace_window

    def recording(df, path, *args, **kwargs):
        plans.append((str(path), df._jdf.queryExecution().optimizedPlan().toString()))
        return real(df, path, *args, **kwargs)

    monkeypatch.setattr(silver_lib, "replace_window", recording)
    clean = lake.frame(DAY)

    def quarantine_plan() -> str:
        [plan] = [p for path, p in plans if path.endswith("quarantine_applications")]
        plans.clear()
        return plan

    dirty = clean.copy()
    dirty.loc[[3, 7], "income"] = "forty thousand"
    lake.land(DAY, dirty)
    result = lake.ingest(DAY)
    assert result.success, failure_text(result)
    assert metadata_of(result, "silver_applications")["rows_quarantined"] == 2
    # A file scan prints as "Relation [columns] parquet"; no rows as "LocalRelation <empty>".
    assert "Relation [" in quarantine_plan()  # a day with bad rows: they are read
    before = _versions(lake)

    lake.land(DAY, clean)
    result = lake.ingest(DAY)
    assert result.success, failure_text(result)
    silver = metadata_of(result, "silver_applications")
    assert (silver["rows_in"], silver["rows_quarantined"]) == (len(clean), 0)
    assert checks_of(result)["rows_reconcile"].passed
    quarantine = lake.table("quarantine_applications")
    assert (quarantine["ds"].astype(str) == DAY).sum() == 0
    assert lake.version("quarantine_applications") == before["quarantine_applications"] + 1
    plan = quarantine_plan()
    assert "Relation [" not in plan and "LocalRelation <empty>" in plan, plan[-300:]


def _whole_file_case(lake, payload, message, fmt="csv"):
    before = _versions(lake)
    (lake.landing() / f"{DAY}.csv").unlink()
    lake.land(DAY, payload, fmt=fmt)
    result = lake.ingest(DAY)
    assert not result.success
    assert re.search(message, failure_text(result)), failure_text(result)
    assert {t: lake.version(t) for t in before} == before  # every table untouched
    assert not (lake.root / "credit_risk" / "raw" / "applications" / f"ds={DAY}").exists()


def test_missing_column_fails_the_partition(loaded_lake):
    lake = loaded_lake
    frame = lake.frame(DAY).drop(columns=["income"])
    _whole_file_case(lake, frame.to_csv(index=False).encode(),
                     r"lacks contract column\(s\) income")


def test_empty_file_fails_the_partition(loaded_lake):
    lake = loaded_lake
    _whole_file_case(lake, b"", "empty file")


def test_non_utf8_csv_fails_the_partition(loaded_lake):
    lake = loaded_lake
    text = lake.frame(DAY).to_csv(index=False).replace("online", "onlìne", 1)
    _whole_file_case(lake, text.encode("latin-1"), "not UTF-8")


def test_truncated_parquet_fails_the_partition(tmp_path, spark):
    lake = make_lake(tmp_path, spark, **{r"^    format: csv\n    key: application_id":
                                          "    format: parquet\n    key: application_id"})
    for day in DAYS:  # this use case takes parquet snapshots
        frame = lake.frame(day, typed=True)
        (lake.landing() / f"{day}.csv").unlink()
        lake.land(day, frame, fmt="parquet")
    before = _baseline(lake)
    path = lake.landing() / f"{DAY}.parquet"
    path.write_bytes(path.read_bytes()[:-40])
    result = lake.ingest(DAY)
    assert not result.success
    assert "not a readable Parquet file" in failure_text(result)
    assert {t: lake.version(t) for t in before} == before


def test_retyped_parquet_column_fails_the_partition(tmp_path, spark):
    lake = make_lake(tmp_path, spark, **{r"^    format: csv\n    key: application_id":
                                          "    format: parquet\n    key: application_id"})
    frame = lake.frame(DAY, typed=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    (lake.landing() / f"{DAY}.csv").unlink()
    pq.write_table(table.set_column(table.schema.get_field_index("delinquencies_2y"),
                                    "delinquencies_2y",
                                    pa.array([True] * len(frame))), lake.landing() /
                   f"{DAY}.parquet")
    result = lake.ingest(DAY)
    assert not result.success
    assert "delinquencies_2y is bool, the contract says int" in failure_text(result)


def test_retyped_csv_column_blocks_downstream(loaded_lake):
    lake = loaded_lake
    before = _versions(lake)
    frame = lake.frame(DAY)
    frame["income"] = "high"  # the column now carries a category, not a number
    lake.land(DAY, frame)
    result = lake.ingest(DAY, extra=("gold_applicant_features",))
    assert not result.success
    checks = checks_of(result)
    assert not checks["quarantine_rate"].passed
    assert checks["quarantine_rate"].severity.value == "ERROR"
    assert "income: not a valid double" in checks["quarantine_rate"].description
    gold_ran = any(e.event_type_value == "ASSET_MATERIALIZATION"
                   and e.event_specific_data.materialization.asset_key.path[-1]
                   == "gold_applicant_features" for e in result.all_events)
    assert not gold_ran
    silver = lake.table("silver_applications")
    assert (silver["ds"].astype(str) == DAY).sum() == 0
    assert lake.version("quarantine_applications") == before["quarantine_applications"] + 1
    assert metadata_of(result, "quarantine_applications")["rows"] == len(frame)


def test_same_file_twice_is_not_loaded_twice(lake):
    first = lake.ingest(DAY)
    assert first.success
    version = lake.version("bronze_applications")
    again = lake.ingest(DAY)
    assert again.success
    assert metadata_of(again, "applications")["new_snapshots"] == 0
    assert metadata_of(again, "bronze_applications")["days_already_loaded"] == 1
    assert lake.version("bronze_applications") == version
    assert len(lake.table("silver_applications")) == len(lake.frame(DAY))
