"""Dataset versions: the training set records the Delta versions it read and can be rebuilt
from them exactly (time travel), after newer data has landed."""

import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.lakehouse.tables import commit_metadata, last_commit
from tests.assets.lakehouse.conftest import failure_text, make_lake
from tests.conftest import QUIET
from tests.support.demo_data import DemoSpec, generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAYS = 24


def _run(lake, selection, first=None, last=None, config=None):
    tags = ({"dagster/asset_partition_range_start": first,
             "dagster/asset_partition_range_end": last} if first else {})
    result = dg.materialize(list(lake.defs.assets), selection=selection,
                            resources=lake.defs.resources, instance=lake.instance,
                            run_config={**QUIET, **(config or {})}, tags=tags,
                            raise_on_error=False)
    assert result.success, failure_text(result)
    return result


def test_training_set_rebuilds_exactly_from_its_recorded_versions(tmp_path, spark):
    lake = make_lake(tmp_path, spark)
    generate(lake.root / "landing", DemoSpec(days=DAYS, rows_per_day=60, drift_day=None,
                                            seed=5))
    days = sorted(p.stem for p in lake.landing().glob("*.csv"))
    uc = lake.use_case
    ingest = (dg.AssetSelection.groups(keys.group(uc, keys.RAW), keys.group(uc, keys.LAKEHOUSE)))
    _run(lake, ingest, days[0], days[-1])
    ts_key = lake.key(keys.TRAINING, "training_set")
    _run(lake, [lake.key(keys.FEATURES, "feast_registry"), ts_key])
    path = lake.root.joinpath(*ts_key.path)
    first = last_commit(spark, path).version
    recorded = commit_metadata(spark, path, first)["source_versions"]
    assert set(recorded) == {uc.labeled_table, uc.gold_table}
    original = spark.read.format("delta").option("versionAsOf", first).load(str(path))

    # Newer data lands: a corrected outcomes file flips labels, and gold changes.
    late_day = days[-2]
    outcomes = lake.frame(late_day, source="outcomes")
    assert len(outcomes) > 0
    outcomes["defaulted"] = outcomes["defaulted"].map({"0": "1", "1": "0"})
    lake.land(late_day, outcomes, source="outcomes")
    apps = lake.frame(days[-1])
    apps["income"] = "12345.0"
    lake.land(days[-1], apps)
    _run(lake, ingest, days[0], days[-1])
    _run(lake, [ts_key])
    newer = spark.read.format("delta").load(str(path))
    assert newer.exceptAll(original).count() > 0  # the latest data really differs

    _run(lake, [ts_key], config={"ops": {"credit_risk__training__training_set": {
        "config": {"rebuild_version": first}}}})
    rebuilt_version = last_commit(spark, path).version
    rebuilt = spark.read.format("delta").option("versionAsOf", rebuilt_version).load(str(path))
    assert rebuilt_version == first + 2
    assert commit_metadata(spark, path, rebuilt_version)["source_versions"] == recorded
    assert rebuilt.count() == original.count()
    assert rebuilt.exceptAll(original).count() == 0
    assert original.exceptAll(rebuilt).count() == 0
