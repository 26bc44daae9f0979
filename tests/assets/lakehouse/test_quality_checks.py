"""The table-level checks seen failing, on data made to break them: a stale day, a day five
times its usual size, keys delivered again, and rows lost by a (injected) bug. A failed
check of severity ``error`` blocks everything downstream; a ``warn`` shows and lets the run
go on."""

from statistics import mean

import pandas as pd
import pytest

from lakeloop import keys
from lakeloop.lakehouse import silver as silver_lib
from tests.assets.lakehouse.conftest import DAYS, checks_of, failure_text, make_lake

pytestmark = pytest.mark.integration
STALE_DAYS = 3
RESENT = 5  # keys of the first day delivered again on the last
SEVERITY = r"^(    description: Loan applications with the bureau profile pulled when each was " \
    r"filed\.)$"


def _odd_day(lake) -> pd.DataFrame:
    """The last day, broken three ways: five times its rows, every event three days old,
    and a few keys that arrived on the first day already."""
    frame = lake.frame(DAYS[-1])
    copies = []
    for k in range(5):
        copy = frame.copy()
        copy["application_id"] = copy["application_id"] + f"-{k}"
        copies.append(copy)
    odd = pd.concat(copies, ignore_index=True)
    stamps = pd.to_datetime(odd["application_ts"]) - pd.Timedelta(days=STALE_DAYS)
    odd["application_ts"] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S")
    odd.loc[:RESENT - 1, "application_id"] = lake.frame(DAYS[0])["application_id"][:RESENT]
    return odd


def _downstream_materialised(lake, result) -> set:
    """Assets downstream of silver (in the run's selection) that were materialised."""
    graph = lake.defs.resolve_asset_graph()
    below = graph.get(lake.key(keys.LAKEHOUSE, "silver_applications")).child_keys
    done = {e.event_specific_data.materialization.asset_key for e in result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"}
    return {k for k in done if k in below}


@pytest.mark.parametrize("severity", ["warn", "error"])
def test_stale_oversized_and_repeated_deliveries_fail_their_checks(tmp_path, spark, severity):
    checks = ", ".join(f"{name}_severity: {severity}"
                       for name in ("freshness", "row_count", "unique_across_days"))
    lake = make_lake(tmp_path, spark, **{SEVERITY: rf"\1\n    checks: {{{checks}}}"})
    first = lake.ingest(DAYS[0], DAYS[-2])
    assert first.success, failure_text(first)
    odd = _odd_day(lake)
    trailing = mean(len(lake.frame(d)) for d in DAYS[:-1])  # as the check computes it
    lake.land(DAYS[-1], odd)
    result = lake.ingest(DAYS[-1], extra=("gold_applicant_features",))

    checks = checks_of(result)
    for name in ("freshness", "row_count_anomaly", "key_unique_across_days"):
        assert not checks[name].passed, name
        assert checks[name].severity.value == severity.upper(), name
    rows = len(odd)
    assert (f"{DAYS[-1]}: {rows} rows vs {round(trailing, 1)} expected "
            f"({round(rows / trailing, 2)}x)") in checks["row_count_anomaly"].description
    assert f"{RESENT} key(s) of this window also arrived on another day" in \
        checks["key_unique_across_days"].description
    assert "events_outside_their_day" in checks["freshness"].metadata
    assert checks["freshness"].metadata["events_outside_their_day"].value == rows
    # every row is accounted for and accepted: these are table-level problems, not rows'
    assert checks["rows_reconcile"].passed and checks["quarantine_rate"].passed

    gold = lake.key(keys.LAKEHOUSE, "gold_applicant_features")
    if severity == "warn":
        assert result.success, failure_text(result)
        assert _downstream_materialised(lake, result) == {gold}
        # The first day rerun: its keys came again on the last day, but the lookback looks
        # back only (the last day's run reported them), never at every later day.
        rerun = checks_of(lake.ingest(DAYS[0]))["key_unique_across_days"]
        assert rerun.passed, rerun.description
    else:
        assert not result.success
        assert _downstream_materialised(lake, result) == set()


def test_rows_lost_by_a_bug_fail_reconciliation_and_block_downstream(tmp_path, spark,
                                                                       monkeypatch):
    """A fault injected into the split (one accepted row dropped before the write) is the
    bug reconciliation exists to catch: rows in != accepted + quarantined."""
    lake = make_lake(tmp_path, spark)
    real_split = silver_lib.split
    lost = lake.frame(DAYS[0])["application_id"].iloc[7]

    def lossy_split(bronze, source, repeats, *observed):
        accepted, quarantined = real_split(bronze, source, repeats, *observed)
        return accepted.where(accepted["application_id"] != lost), quarantined

    monkeypatch.setattr(silver_lib, "split", lossy_split)
    result = lake.ingest(DAYS[0], extra=("gold_applicant_features",))
    check = checks_of(result)["rows_reconcile"]
    assert not check.passed and check.severity.value == "ERROR"
    rows = len(lake.frame(DAYS[0]))
    assert f"{DAYS[0]}: {rows} in, {rows - 1} accepted, 0 quarantined" in check.description
    assert not result.success
    assert _downstream_materialised(lake, result) == set()
