"""The files real systems write: a spreadsheet's "CSV UTF-8" (byte-order mark, CRLF), quoted
line breaks, a day with a header and no rows, ints written as 3.0, null markers, timestamps
with offsets. Each loads the rows and types it means; a file that cannot load is refused
whole, with its name, the problem and the fix in the run's log, and no table moves."""

import logging

import pytest

from tests.assets.lakehouse.conftest import DAYS, checks_of, failure_text, make_lake, metadata_of

pytestmark = pytest.mark.integration
NULL_MARKERS = {r"^    format: csv\n    key: application_id":
                '    format: csv\n    null_values: ["", "NULL", "NA"]\n'
                "    key: application_id"}


def _csv(frame, line_end="\n") -> str:
    return frame.to_csv(index=False, lineterminator=line_end)


def _rows(table, day):
    return table[table["ds"].astype(str) == day]


def test_files_real_systems_write_are_read_as_meant(tmp_path, spark):
    lake = make_lake(tmp_path, spark, **NULL_MARKERS)
    spreadsheet, quoted, header_only = DAYS[1], DAYS[2], DAYS[3]

    # Saved by a spreadsheet as "CSV UTF-8": BOM, CRLF; ints as pandas writes them when a
    # value is missing (3.0), one fractional; null markers in a nullable and a required column.
    frame = lake.frame(spreadsheet)
    frame["delinquencies_2y"] = frame["delinquencies_2y"].astype(float).map("{:.1f}".format)
    frame.loc[0, "delinquencies_2y"] = "2.5"
    frame.loc[1, "employment_years"] = "NA"
    frame.loc[2, "income"] = "NULL"
    (lake.landing() / f"{spreadsheet}.csv").write_bytes(
        b"\xef\xbb\xbf" + _csv(frame, "\r\n").encode("utf-8"))

    # An export with a free-text column whose values span lines, and event times with offsets.
    other = lake.frame(quoted)
    other["note"] = "first line\nsecond line, with a comma"
    other.loc[0, "application_ts"] = f"{quoted}T01:30:00+02:00"  # 23:30 UTC the day before
    other.loc[1, "application_ts"] = f"{quoted}T12:00:00-05:00"  # 17:00 UTC, same day
    lake.land(quoted, other)

    empty = lake.frame(header_only).iloc[0:0]
    lake.land(header_only, empty)

    result = lake.ingest(DAYS[0], DAYS[-1])
    assert result.success, failure_text(result)
    silver, quarantine = lake.table("silver_applications"), lake.table(
        "quarantine_applications")

    day = _rows(silver, spreadsheet)
    assert len(day) == len(frame) - 2  # 2.5 and the NULL income are quarantined
    assert day["delinquencies_2y"].dtype.kind == "i"
    assert set(day["delinquencies_2y"]) <= set(range(0, 41))
    assert day["employment_years"].isna().sum() == 1  # "NA" is a missing value
    reasons = {r for rs in _rows(quarantine, spreadsheet)["reasons"] for r in rs}
    assert reasons == {"delinquencies_2y: not a whole number",
                       "income: null in a non-nullable column"}
    assert day["application_id"].str.startswith("2026").all()  # the BOM is not in a value

    day = _rows(silver, quoted)
    assert len(day) == len(other)
    assert set(day["note"]) == {"first line\nsecond line, with a comma"}
    times = day.set_index("application_id")["application_ts"]
    first, second = other["application_id"][0], other["application_id"][1]
    assert str(times[first]) == f"{DAYS[1]} 23:30:00"
    assert str(times[second]) == f"{quoted} 17:00:00"

    assert len(_rows(silver, header_only)) == 0
    raw = metadata_of(result, "applications")
    assert "| 2026-09-04 | 0 |" in raw["snapshot_table"]
    counts = metadata_of(result, "silver_applications")
    assert counts["rows_in"] == sum(len(lake.frame(d)) for d in DAYS[:1]) + len(frame) \
        + len(other)
    checks = checks_of(result)
    assert checks["rows_reconcile"].passed
    freshness = checks["freshness"]
    assert not freshness.passed and freshness.severity.value == "WARN"
    assert f"1 event(s) dated outside their file's day (UTC): {quoted}: 1" \
        in freshness.description
    assert f"day(s) without rows: {header_only}" in freshness.description


def _refused(lake, day, payload: bytes, *needles: str):
    first = lake.ingest(DAYS[0])
    assert first.success
    before = {t: lake.version(t) for t in ("bronze_applications", "silver_applications")}
    (lake.landing() / f"{day}.csv").write_bytes(payload)
    result = lake.ingest(day)
    assert not result.success
    text = failure_text(result)
    logged = [e.user_message for e in lake.instance.all_logs(result.run_id)
              if e.level >= logging.ERROR]
    for needle in (f"{day}.csv", *needles):
        assert needle in text, text
        assert any(needle in line for line in logged), logged  # the run's own log says it
    assert {t: lake.version(t) for t in before} == before
    assert not (lake.root / "credit_risk" / "raw" / "applications" / f"ds={day}").exists()


def test_a_header_naming_a_column_twice_is_refused_with_the_fix(lake):
    frame = lake.frame(DAYS[1])
    header = ",".join([*frame.columns[:-1], "income"])
    body = _csv(frame).split("\n", 1)[1]
    _refused(lake, DAYS[1], f"{header}\n{body}".encode(),
             "names column(s) income more than once", "rename them in the export")


def test_a_latin1_file_is_refused_with_the_byte_and_the_fix(lake):
    text = _csv(lake.frame(DAYS[1])).replace("online", "onlìne", 1)
    _refused(lake, DAYS[1], text.encode("latin-1"), "is not UTF-8 text (byte",
             're-export it as UTF-8 ("CSV UTF-8" in a spreadsheet)')
