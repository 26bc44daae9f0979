"""Outcomes that arrive late: days without an outcomes file are days without outcomes (not a
failed backfill), and the training set uses only events whose outcomes had time to mature."""

import datetime as dt

import dagster as dg
import pytest

from lakeloop import keys
from tests.assets.lakehouse.conftest import failure_text, make_lake, metadata_of
from tests.conftest import QUIET
from tests.support.demo_data import DemoSpec, generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAYS, MATURITY = 40, 30
NO_FILE = 6  # outcomes files never delivered for the first days (nothing was due yet)


def test_days_without_outcome_files_and_immature_events(tmp_path, spark):
    lake = make_lake(tmp_path, spark, **{r"^  maturity_days: \d+$":
                                         f"  maturity_days: {MATURITY}"})
    generate(lake.root / "landing", DemoSpec(days=DAYS, rows_per_day=40, drift_day=None,
                                            seed=5))
    days = sorted(p.stem for p in lake.landing().glob("*.csv"))
    missing = days[:NO_FILE] + [days[20]]
    for day in missing:
        (lake.landing("outcomes") / f"{day}.csv").unlink()
    uc = lake.use_case

    ingest = dg.materialize(
        list(lake.defs.assets),
        selection=dg.AssetSelection.groups(keys.group(uc, keys.RAW),
                                           keys.group(uc, keys.LAKEHOUSE)),
        resources=lake.defs.resources, instance=lake.instance, run_config=QUIET,
        raise_on_error=False, tags={"dagster/asset_partition_range_start": days[0],
                                    "dagster/asset_partition_range_end": days[-1]})
    assert ingest.success, failure_text(ingest)
    raw = metadata_of(ingest, "outcomes")
    assert raw["days_without_file"] == len(missing)
    assert raw["no_file"] == "no outcomes arrived: " + ", ".join(missing)
    assert metadata_of(ingest, "bronze_outcomes")["days_without_file"] == len(missing)

    # A malformed outcomes file still fails the day, with its reason.
    (lake.landing("outcomes") / f"{days[20]}.csv").write_text("application_id\n1\n")
    bad = lake.ingest(days[20], sources=("outcomes",))
    assert not bad.success
    assert "lacks contract column(s) outcome_ts, defaulted" in failure_text(bad)
    (lake.landing("outcomes") / f"{days[20]}.csv").unlink()

    ts_key = lake.key(keys.TRAINING, "training_set")
    built = dg.materialize(list(lake.defs.assets),
                           selection=[lake.key(keys.FEATURES, "feast_registry"), ts_key],
                           resources=lake.defs.resources, instance=lake.instance,
                           run_config=QUIET, raise_on_error=False)
    assert built.success, failure_text(built)
    meta = metadata_of(built, "training_set")
    as_of = days[-1]
    last_mature = (dt.date.fromisoformat(as_of) - dt.timedelta(days=MATURITY)).isoformat()
    assert meta["labels_as_of"] == as_of and meta["mature_until"] == last_mature

    labeled = lake.table(uc.labeled_table)
    known = labeled[labeled["label"].notna()]
    event_day = known[uc.events.event_time].dt.date.astype(str)
    mature, immature = known[event_day <= last_mature], known[event_day > last_mature]
    recent = known[event_day > days[-11]]  # outcomes of the last 10 days' events
    assert len(recent) > 0 and len(immature) > len(recent)
    training = spark.read.format("delta").load(str(lake.root.joinpath(*ts_key.path)))
    assert training.count() == len(mature)
    assert meta["immature_excluded"] == len(immature)
    newest = training.agg({"event_timestamp": "max"}).first()[0]
    assert newest.date().isoformat() <= last_mature
