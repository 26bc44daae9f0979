"""Promotion of a sensitive use case: the challenger waits for a person; a rejection is final;
an approval (CLI or Dagster job) is recorded with who, when and why; the approval sensor
promotes it; rollback is one action and the local endpoint follows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from jobs.use_case_jobs import promote_job_name, retrain_job_name, retrain_selection
from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.deployment import approvals
from lakeloop.deployment.promotion import HISTORY
from lakeloop.tracking import CHALLENGER, CHAMPION
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET, settings_for, write_use_case

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def sensitive(materialized, tmp_path_factory):
    """The shipped (sensitive) use case over the shared materialised data root."""
    base = load_use_cases(materialized.settings.use_case_dirs)[0]
    path = write_use_case(tmp_path_factory.mktemp("sensitive"), base.serving.port, **{
        r"^  approvers: .*$": '  approvers: ["alice (model risk)", "bob (model risk)", "carol"]'})
    settings = settings_for(materialized.root, path.parent)
    use_case = load_use_cases(settings.use_case_dirs)[0]
    assert use_case.sensitive
    return settings, build_definitions(settings), use_case


def run_job(materialized, defs, name, run_config=None, selection=None):
    return defs.resolve_job_def(name).execute_in_process(
        instance=materialized.instance, run_config={**QUIET, **(run_config or {})},
        asset_selection=selection, raise_on_error=False)


def retrain_candidate(materialized, defs, uc):
    """The retrain job from the candidate on (the shared training set is already built)."""
    selection = retrain_selection(uc).resolve(defs.resolve_asset_graph()) - {
        keys.key(uc, keys.TRAINING, "training_set")}
    result = run_job(materialized, defs, retrain_job_name(uc), selection=sorted(selection))
    assert result.success
    return result


def mats(result) -> dict[str, dg.AssetMaterialization]:
    return {e.event_specific_data.materialization.asset_key.path[-1]:
            e.event_specific_data.materialization
            for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}


def failure(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events
                     if e.event_type_value == "STEP_FAILURE")


def cli(settings, *args):
    env = {**os.environ, "LAKELOOP_DATA_ROOT": str(settings.data_root),
           "LAKELOOP_USE_CASES": os.pathsep.join(map(str, settings.use_case_dirs))}
    return subprocess.run([sys.executable, "-m", "lakeloop.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180)


def alias(mlflow, uc, name):
    found = mlflow.version_by_alias(uc.name, name)
    return None if found is None else str(found.version)


def test_sensitive_promotion_needs_an_approval_and_rolls_back_in_one_action(materialized,
                                                                            sensitive):
    settings, defs, uc = sensitive
    mlflow = materialized.resources["mlflow"]
    first_champion = alias(mlflow, uc, CHAMPION)

    # 1. A passing candidate becomes challenger and stops there, approval pending.
    result = retrain_candidate(materialized, defs, uc)
    done = mats(result)
    assert {"candidate_model", "challenger"} <= set(done)
    assert not {"champion", "seldon_deployment"} & set(done)
    rejected = str(done["challenger"].metadata["model_version"].value)
    assert done["challenger"].metadata["approval_required"].value is True
    assert "**pending**" in done["challenger"].metadata["model_card"].value
    assert alias(mlflow, uc, CHALLENGER) == rejected
    assert alias(mlflow, uc, CHAMPION) == first_champion

    # 2. Promotion without an approval stops, with the reason and what to do.
    promote = run_job(materialized, defs, promote_job_name(uc))
    assert not promote.success and "seldon_deployment" not in mats(promote)
    assert f"challenger v{rejected} awaits a person's approval" in failure(promote)
    assert f"lakeloop approve {uc.name} {rejected}" in failure(promote)
    assert alias(mlflow, uc, CHAMPION) == first_champion

    # 3. A rejection from the Dagster UI's approval job is final.
    reject = {"ops": {f"{uc.name}__record_approval": {"config": {
        "version": int(rejected), "decision": "rejected", "by": "bob (model risk)",
        "reason": "TPR gap on age bands needs a second look"}}}}
    assert run_job(materialized, defs, f"{uc.name}_approval", reject).success
    promote = run_job(materialized, defs, promote_job_name(uc))
    assert not promote.success
    assert f"v{rejected} was rejected by bob (model risk)" in failure(promote)
    again = cli(settings, "approve", uc.name, rejected, "--by", "carol", "--reason", "override")
    assert again.returncode == 1 and "was rejected" in again.stderr, again.stderr
    assert alias(mlflow, uc, CHAMPION) == first_champion

    # 4. Bad decisions are refused with a clear message, not a stack trace.
    missing = cli(settings, "approve", uc.name, rejected, "--by", "carol")
    assert missing.returncode == 2 and "--reason" in missing.stderr
    not_challenger = cli(settings, "approve", uc.name, first_champion, "--by", "carol",
                         "--reason", "looks fine")
    assert not_challenger.returncode == 1
    assert "is not the challenger" in not_challenger.stderr
    assert "Traceback" not in not_challenger.stderr + missing.stderr

    # 5. The next candidate is approved from the CLI: recorded in MLflow and in Dagster.
    done = mats(retrain_candidate(materialized, defs, uc))
    approved = str(done["challenger"].metadata["model_version"].value)
    assert approved != rejected and alias(mlflow, uc, CHALLENGER) == approved
    ok = cli(settings, "approve", uc.name, approved, "--by", "alice (model risk)", "--reason",
             "gates passed; model card reviewed")
    assert ok.returncode == 0, ok.stderr
    decision = approvals.read(mlflow.client(), uc.name, approved)
    assert (decision.status, decision.by) == ("approved", "alice (model risk)")
    assert decision.reason == "gates passed; model card reviewed" and decision.at
    tags = mlflow.client().get_model_version(uc.name, approved).tags
    assert tags[approvals.TRAINED_BY] == approvals.trainer({})  # who launched the retrain
    [signed] = approvals.records(tags)
    assert (signed.by, signed.decision) == ("alice (model risk)", "approved")

    # The decision reached the Dagster instance, where the approval sensor promotes it.
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    approval_key = keys.key(uc, keys.DEPLOYMENT, "approval")
    event = instance.get_latest_materialization_event(approval_key).asset_materialization
    assert event.metadata["by"].value == "alice (model risk)"
    sensor = defs.get_sensor_def(f"{uc.name}_approval_sensor")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert [r.run_key for r in tick.run_requests] == [f"{uc.name}-approved-{approved}"]
    # seen once: the asset sensor's cursor moved past the approval
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance,
                                                         cursor=tick.cursor))
    assert not again.run_requests

    # 6. The promote job (what the sensor launches) moves champion and deploys it.
    promote = run_job(materialized, defs, promote_job_name(uc))
    assert promote.success, failure(promote)
    done = mats(promote)
    assert done["champion"].metadata["approved_by"].value == "alice (model risk)"
    assert "**approved** by alice (model risk)" in done["champion"].metadata["model_card"].value
    assert done["seldon_deployment"].metadata["model_version"].value == int(approved)
    assert alias(mlflow, uc, CHAMPION) == approved
    serving = materialized.resources["serving"]
    assert serving.endpoint(uc.name).model_version == approved
    assert done["champion"].metadata["decision"].value.startswith("promoted after validation")
    assert "shadow_agreement" in done["champion"].metadata["rollout"].value
    rollout_tag = json.loads(mlflow.client().get_model_version(uc.name, approved)
                             .tags["rollout"])
    assert rollout_tag["passed"] and {c["name"] for c in rollout_tag["checks"]} >= {
        "smoke", "latency_p99_ms", "shadow_agreement", "canary_error_rate"}
    run_id = mlflow.client().get_model_version(uc.name, approved).run_id
    card = mlflow.setup().artifacts.load_text(f"runs:/{run_id}/model_card.md")
    assert "**approved** by alice (model risk)" in card and "## Gates" in card

    # 7. Rollback, from the Dagster UI's rollback job: registry and endpoint, one action.
    back = run_job(materialized, defs, f"{uc.name}_rollback", {"ops": {
        f"{uc.name}__rollback": {"config": {"by": "dave (on call)",
                                            "reason": "complaints from branch staff"}}}})
    assert back.success, failure(back)
    assert alias(mlflow, uc, CHAMPION) == first_champion
    assert serving.endpoint(uc.name).model_version == first_champion
    history = json.loads(mlflow.client().get_registered_model(uc.name).tags[HISTORY])
    assert history[-1]["version"] == first_champion
    assert "rollback by dave (on call)" in history[-1]["reason"]
    rolled = json.loads(mlflow.client().get_model_version(uc.name, approved)
                        .tags["rolled_back"])
    assert rolled["by"] == "dave (on call)"
