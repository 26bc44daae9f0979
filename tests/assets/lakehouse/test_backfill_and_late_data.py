"""Backfills equal day-by-day runs; late data reprocesses only its day; arriving outcomes
re-materialise only the event days they label."""

import json

import dagster as dg
import pytest

from lakeloop import keys
from sensors.labels import evaluate as label_evaluate
from sensors.landing import pending_days
from tests.assets.lakehouse.conftest import DAYS, checks_of, failure_text, make_lake

pytestmark = pytest.mark.integration
BOTH = ("applications", "outcomes")
TABLES = ("bronze_applications", "silver_applications", "quarantine_applications",
          "bronze_outcomes", "silver_outcomes", "gold_applicant_features")
# Columns that record *when* a row was processed, not what it holds.
PROCESSING_TIME = {"_ingested_at", "created_timestamp", "quarantined_at"}


def _comparable(lake, table):
    df = lake.spark.read.format("delta").load(str(lake.path(table)))
    return df.select(*[c for c in df.columns if c not in PROCESSING_TIME])


def test_backfill_equals_day_by_day_runs(tmp_path, spark):
    backfill = make_lake(tmp_path / "a", spark)
    daily = make_lake(tmp_path / "b", spark)
    days = DAYS[:3]  # three days: a dirty one between two clean ones
    for lake in (backfill, daily):  # the same dirty row on the middle day in both
        frame = lake.frame(days[1])
        frame.loc[0, "income"] = "n/a"
        lake.land(days[1], frame)
    result = backfill.ingest(days[0], days[-1], sources=BOTH,
                             extra=("gold_applicant_features",))
    assert result.success, failure_text(result)
    for day in days:
        result = daily.ingest(day, sources=BOTH, extra=("gold_applicant_features",))
        assert result.success, failure_text(result)
    for table in TABLES:
        a, b = _comparable(backfill, table), _comparable(daily, table)
        b = b.select(*a.columns)
        assert a.count() == b.count(), table
        if "applications" in table or table.startswith("gold"):
            assert a.count() > 0, table
        assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0, table
    assert _comparable(backfill, "quarantine_applications").count() == 1


def test_late_data_reprocesses_only_its_day(lake):
    result = lake.ingest(DAYS[0], DAYS[-1], sources=BOTH, extra=("gold_applicant_features",))
    assert result.success, failure_text(result)
    before = {t: lake.table(t) for t in ("silver_applications", "gold_applicant_features")}

    # A corrected snapshot for an old day lands.
    late = lake.frame(DAYS[1])
    late.loc[:, "loan_amount"] = "1234.0"
    lake.land(DAYS[1], late)
    pending, _ = pending_days(lake.use_case, lake.root, {})
    assert list(pending) == [DAYS[1]]

    sensor = lake.defs.resolve_sensor_def("credit_risk_landing_sensor")
    tick = sensor(dg.build_sensor_context(instance=lake.instance, definitions=lake.defs))
    [request] = tick.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == DAYS[1]
    assert request.tags["dagster/asset_partition_range_end"] == DAYS[1]
    result = lake.ingest(DAYS[1], sources=BOTH, extra=("gold_applicant_features",))
    assert result.success, failure_text(result)

    for table, old in before.items():
        new = lake.table(table)
        for day in DAYS:
            o = old[old["ds"].astype(str) == day].drop(columns=[c for c in PROCESSING_TIME
                                                               if c in old])
            n = new[new["ds"].astype(str) == day].drop(columns=[c for c in PROCESSING_TIME
                                                               if c in new])
            if day == DAYS[1] and "loan_amount" in n:
                assert set(n["loan_amount"]) == {1234.0}
            elif day != DAYS[1]:
                key = "application_id"
                pd_equal = (o.sort_values(key).reset_index(drop=True)
                            .equals(n.sort_values(key).reset_index(drop=True)))
                assert pd_equal, (table, day)
    # The next tick sees nothing new: the same bytes are never requested twice.
    again = sensor(dg.build_sensor_context(instance=lake.instance, definitions=lake.defs,
                                           cursor=tick.cursor))
    assert not again.run_requests


def test_arriving_outcomes_relabel_only_their_event_days(tmp_path, spark):
    lake = make_lake(tmp_path, spark)
    events = lake.frame(DAYS[0])["application_id"].tolist() + \
        lake.frame(DAYS[2])["application_id"].tolist()
    # outcomes for day 0 and day 2 applications arrive on day 3 (none for days 1 and 3)
    for day in DAYS:
        lake.land(day, lake.frame(day, source="outcomes").iloc[0:0], source="outcomes")
    outcomes = lake.frame(DAYS[3], source="outcomes").iloc[0:0]
    rows = [{"application_id": k, "outcome_ts": f"{DAYS[3]}T10:00:00", "defaulted": i % 2}
            for i, k in enumerate(events)]
    import pandas as pd
    lake.land(DAYS[3], pd.DataFrame(rows, columns=outcomes.columns), source="outcomes")

    result = lake.ingest(DAYS[0], DAYS[-1], sources=BOTH, extra=(lake.use_case.labeled_table,))
    assert result.success, failure_text(result)
    labels_key = lake.key(keys.LAKEHOUSE, "silver_outcomes")
    records = lake.instance.fetch_materializations(labels_key, limit=100, ascending=True).records
    requests, cursor = label_evaluate(records, {}, lake.use_case)
    ranges = sorted((r.tags["dagster/asset_partition_range_start"],
                     r.tags["dagster/asset_partition_range_end"]) for r in requests)
    assert ranges == [(DAYS[0], DAYS[0]), (DAYS[2], DAYS[2])]
    assert all(r.asset_selection == [lake.key(keys.LAKEHOUSE, lake.use_case.labeled_table),
                                     lake.key(keys.MONITORING, "performance_report"),
                                     lake.key(keys.MONITORING, "fairness_report")]
               for r in requests)
    labeled = lake.table(lake.use_case.labeled_table)
    by_day = labeled.groupby(labeled["ds"].astype(str))["label"].count().to_dict()
    assert by_day[DAYS[0]] == len(lake.frame(DAYS[0]))
    assert by_day.get(DAYS[1], 0) == 0 and by_day[DAYS[2]] == len(lake.frame(DAYS[2]))
    assert checks_of(result)["rows_reconcile"].passed
    assert json.loads(json.dumps(cursor))["storage_id"] == records[-1].storage_id
