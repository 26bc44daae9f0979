"""A candidate that misses a gate is registered but never deployed, and the champion stays."""

import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.tracking import CHALLENGER, CHAMPION
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET, settings_for, write_use_case

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.parametrize("override, failed_check", [
    ({r"^  auc_min: .*$": "  auc_min: 0.9999"}, "performance_gate"),
    ({r"^  fairness_ratio_min: .*$": "  fairness_ratio_min: 0.9999"}, "fairness_gate"),
])
def test_candidate_missing_a_gate_is_not_deployed(materialized, tmp_path, override,
                                                  failed_check):
    use_case = load_use_cases(materialized.settings.use_case_dirs)[0]
    mlflow = materialized.resources["mlflow"]
    champion_before = mlflow.version_by_alias(use_case.name, CHAMPION).version
    challenger_before = mlflow.version_by_alias(use_case.name, CHALLENGER).version

    strict = write_use_case(tmp_path / "use_cases", use_case.serving.port, **override)
    defs = build_definitions(settings_for(materialized.root, strict.parent))
    model_key = keys.key(use_case, keys.TRAINING, "candidate_model")
    deploy_key = keys.key(use_case, keys.DEPLOYMENT, "seldon_deployment")
    result = dg.materialize(list(defs.assets), selection=[model_key, deploy_key],
                            resources=defs.resources, instance=materialized.instance,
                            run_config=QUIET, raise_on_error=False)

    assert not result.success
    checks = {e.event_specific_data.check_name: e.event_specific_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks[failed_check] is False
    materialized_keys = {e.event_specific_data.materialization.asset_key
                         for e in result.all_events
                         if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert model_key in materialized_keys and deploy_key not in materialized_keys
    assert mlflow.version_by_alias(use_case.name, CHAMPION).version == champion_before
    assert mlflow.version_by_alias(use_case.name, CHALLENGER).version == challenger_before
    newest = max(mlflow.client().search_model_versions(f"name='{use_case.name}'"),
                 key=lambda v: int(v.version))
    assert newest.tags["gates"] == "failed"
    assert int(newest.version) > int(champion_before)
