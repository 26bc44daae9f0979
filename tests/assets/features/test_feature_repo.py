"""The Feast repository comes from the use-case file: versioned feature services, and
hand-written feature views in feature_repo/ applied beside the generated ones."""

import textwrap

import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.usecase import load_use_cases
from tests.assets.lakehouse.conftest import DAYS, failure_text, make_lake
from tests.conftest import QUIET, settings_for, write_use_case

pytestmark = pytest.mark.integration


def _apply(lake, settings, succeed=True):
    defs = build_definitions(settings)
    uc = load_use_cases(settings.use_case_dirs)[0]
    selection = [keys.key(uc, keys.LAKEHOUSE, uc.gold_table),
                 keys.key(uc, keys.FEATURES, "feast_registry")]
    result = dg.materialize(list(defs.assets), selection=selection, resources=defs.resources,
                            instance=lake.instance, run_config=QUIET, raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": DAYS[0],
                                  "dagster/asset_partition_range_end": DAYS[0]})
    assert result.success == succeed, failure_text(result)
    return result, defs.resources["feast"].store()


def test_feature_sets_are_versioned(tmp_path, spark):
    lake = make_lake(tmp_path, spark)
    assert lake.ingest(DAYS[0]).success
    port = lake.use_case.serving.port
    base = settings_for(lake.root, tmp_path / "use_cases")
    _, store = _apply(lake, base)
    assert [s.name for s in store.list_feature_services()] == ["credit_risk_v1"]

    # one feature fewer (and so its reason texts)
    fewer, its_reasons = r"^      - employment_years\n", r"^  employment_years: \{up: .*\n"
    same_version = write_use_case(tmp_path / "v1b", port, **{fewer: "", its_reasons: ""}).parent
    result, _ = _apply(lake, base.replace(use_case_dirs=(same_version,)),
                       succeed=False)
    assert "bump features.version in credit_risk.yaml" in failure_text(result)

    bumped = write_use_case(tmp_path / "v2", port, **{
        fewer: "", its_reasons: "", r"^features:\n": "features:\n  version: 2\n"}).parent
    _, store = _apply(lake, base.replace(use_case_dirs=(bumped,)))
    services = {s.name: s for s in store.list_feature_services()}
    assert set(services) == {"credit_risk_v1", "credit_risk_v2"}
    v2 = [f.name for p in services["credit_risk_v2"].feature_view_projections for f in p.features]
    assert "employment_years" not in v2 and "income" in v2


def test_hand_written_views_are_applied_beside_generated_ones(tmp_path, spark):
    lake = make_lake(tmp_path, spark)
    assert lake.ingest(DAYS[0]).success
    repo = tmp_path / "feature_repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text("project: lakeloop\nprovider: local\n"
                                             "registry: registry.db\n")
    (repo / "affordability.py").write_text(textwrap.dedent(f'''
        from datetime import timedelta

        from feast import Entity, FeatureView, Field
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
            SparkSource,
        )
        from feast.table_format import DeltaFormat
        from feast.types import Float64

        applicant = Entity(name="applicant", join_keys=["applicant_id"])
        source = SparkSource(name="affordability_source",
                             path="{lake.path(lake.use_case.gold_table)}",
                             table_format=DeltaFormat(), timestamp_field="event_timestamp")
        affordability_fv = FeatureView(
            name="affordability_fv", entities=[applicant], ttl=timedelta(days=90),
            schema=[Field(name="debt_to_income", dtype=Float64)], source=source,
            tags={{"use_case": "credit_risk"}})
    '''))
    settings = settings_for(lake.root, tmp_path / "use_cases").replace(
                                   feature_repo=repo)
    result, store = _apply(lake, settings)
    views = {v.name for v in store.list_feature_views()}
    assert {"affordability_fv", "credit_risk_applicant_fv"} <= views
    meta = {k: v.value for e in result.all_events if e.event_type_value ==
            "ASSET_MATERIALIZATION" for k, v in
            e.event_specific_data.materialization.metadata.items()}
    assert meta["hand_written_objects"] == 1  # the tagged view (its source comes with it)
