"""The online store on SQLite (embedded) and Redis (production, a real redis-server): each
day's materialisation is checked against the offline store, and materialising an older
window after a newer one never rolls values back."""


import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.features.store import feature_service_name
from lakeloop.usecase import load_use_cases
from tests.assets.lakehouse.conftest import DAYS, checks_of, failure_text, make_lake
from tests.conftest import QUIET, settings_for
from tests.services import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "redis"])
def lake(request, tmp_path, spark):
    lake = make_lake(tmp_path, spark)
    if request.param == "redis":
        redis = RedisServer(tmp_path / "redis")
        request.addfinalizer(redis.stop)
        base = settings_for(lake.root, next(iter(lake.root.parent.glob("use_cases"))))
        settings = base.replace(online_store="redis", redis_url=redis.url)
        lake.defs = build_definitions(settings)
        lake.use_case = load_use_cases(settings.use_case_dirs)[0]
    lake.backend = request.param
    return lake


def _materialize(lake, first, last, nouns, succeed=True):
    selection = [lake.key(keys.RAW, "applications"),
                 lake.key(keys.LAKEHOUSE, "bronze_applications"),
                 lake.key(keys.LAKEHOUSE, "silver_applications"),
                 lake.key(keys.LAKEHOUSE, "quarantine_applications"),
                 lake.key(keys.LAKEHOUSE, lake.use_case.gold_table),
                 *[lake.key(keys.FEATURES, n) for n in nouns]]
    result = dg.materialize(list(lake.defs.assets), selection=selection,
                            resources=lake.defs.resources, instance=lake.instance,
                            run_config=QUIET, raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": first,
                                  "dagster/asset_partition_range_end": last})
    assert result.success == succeed, failure_text(result)
    return result


def _online(lake, entities):
    store = lake.defs.resources["feast"].store()
    uc = lake.use_case
    return store.get_online_features(
        features=store.get_feature_service(feature_service_name(uc)),
        entity_rows=[{uc.entity.join_key: e} for e in entities]).to_dict()


def test_an_older_window_never_rolls_online_values_back(lake):
    uc = lake.use_case
    # The same applicant applies on day 0 and again on day 3 with another income.
    early, late = lake.frame(DAYS[0]), lake.frame(DAYS[3])
    late.loc[0, "applicant_id"] = early.loc[0, "applicant_id"]
    late.loc[0, "income"] = "77777.0"
    lake.land(DAYS[3], late)
    applicant = early.loc[0, "applicant_id"]

    first = _materialize(lake, DAYS[0], DAYS[-1], ["feast_registry", "online_features"])
    assert checks_of(first)["online_matches_offline"].passed
    assert _online(lake, [applicant])["income"] == [77777.0]

    again = _materialize(lake, DAYS[0], DAYS[0], ["online_features"])  # an older window
    check = checks_of(again)["online_matches_offline"]
    assert check.passed, check.description
    assert _online(lake, [applicant])["income"] == [77777.0], lake.backend
    assert uc.entity.join_key in _online(lake, [applicant])


def test_the_consistency_check_fails_when_online_values_differ(lake):
    _materialize(lake, DAYS[0], DAYS[1], ["feast_registry", "online_features"])
    uc = lake.use_case
    applicant = lake.frame(DAYS[1]).loc[0, "applicant_id"]
    # Someone writes a wrong value straight into the online store.
    store = lake.defs.resources["feast"].store()
    import pandas as pd
    wrong = pd.DataFrame({uc.entity.join_key: [applicant],
                          "event_timestamp": [pd.Timestamp("2030-01-01", tz="UTC")],
                          "created_timestamp": [pd.Timestamp("2030-01-01", tz="UTC")],
                          **{f: [-1.0] for f in uc.entity_features}})
    store.write_to_online_store(f"{uc.name}_{uc.entity.name}_fv", wrong)
    result = _materialize(lake, DAYS[1], DAYS[1], ["online_features"], succeed=False)
    check = checks_of(result)["online_matches_offline"]
    assert not check.passed
    assert f"{applicant}." in check.description
