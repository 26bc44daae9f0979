"""A second, real dataset through the whole loop: the UCI Adult census records (income, not
credit), with categorical answers, missing values written as "?", files saved by a
spreadsheet, days without an incomes file, and a shift in who is surveyed near the end.
Its use-case file (tests/support/use_cases/adult_income.yaml) was written from the README
alone. One materialisation: ingest, features, training with categorical features, gates,
batch scores and an endpoint, monitoring from the batch scores.

A system test (marker ``system``, run by ``make chaos`` beside the production shape): one
materialisation of a second whole graph takes about three minutes, a seventh of the suite."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pytest
import requests

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET, free_port_pair, settings_for
from tests.support import adult

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.system]
USE_CASE = adult.PROJECT_ROOT / "tests" / "support" / "use_cases" / "adult_income.yaml"
DELIVERY = adult.Delivery()


@dataclasses.dataclass
class Loop:
    root: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult
    uc: object
    days: list[str]
    landed: dict[str, int]

    def mats(self, noun: str) -> list[dg.AssetMaterialization]:
        return [e.event_specific_data.materialization for e in self.result.all_events
                if e.event_type_value == "ASSET_MATERIALIZATION"
                and e.event_specific_data.materialization.asset_key.path[-1] == noun]

    def checks(self) -> dict:
        return {e.event_specific_data.check_name: e.event_specific_data
                for e in self.result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"}


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("adult") / "lake"
    use_cases = root.parent / "use_cases"
    use_cases.mkdir()
    text = re.sub(r"(?m)^  port: \d+$", f"  port: {free_port_pair()}", USE_CASE.read_text())
    (use_cases / USE_CASE.name).write_text(text)
    landed = adult.land(root / "landing", DELIVERY)
    settings = settings_for(root, use_cases)
    defs = build_definitions(settings)
    days = [(DELIVERY.start + dt.timedelta(d)).isoformat() for d in range(DELIVERY.days)]
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources,
                            instance=instance, run_config=QUIET, raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": days[0],
                                  "dagster/asset_partition_range_end": days[-1]})
    uc = load_use_cases([use_cases])[0]
    yield Loop(root, defs, instance, result, uc, days, landed)
    defs.resources["serving"].stop_all()
    defs.resources["feast"].stop_feature_server()
    shutil.rmtree(root, ignore_errors=True)


def test_the_whole_loop_runs_on_real_census_data(loop):
    failures = [e.message for e in loop.result.all_events if e.is_step_failure]
    assert loop.result.success, failures
    graph = loop.defs.resolve_asset_graph()
    done = {m.asset_key for e in loop.result.all_events
            if e.event_type_value == "ASSET_MATERIALIZATION"
            for m in [e.event_specific_data.materialization]}
    assert graph.materializable_asset_keys <= done
    raw = {k: v.value for k, v in loop.mats("incomes")[-1].metadata.items()}
    assert raw.get("no_file", "").startswith("no outcomes arrived: 2026-09-01")
    census = loop.mats("silver_census")[-1].metadata
    assert census["rows_quarantined"].value == 0  # "?" is a missing value, not a bad one
    assert census["rows_in"].value == loop.landed["records"]


def test_categorical_features_train_pass_onnx_parity_and_explain(loop):
    uc = loop.uc
    model = {k: v.value for k, v in loop.mats("candidate_model")[-1].metadata.items()}
    checks = loop.checks()
    for gate in ("performance_gate", "fairness_gate", "no_regression_gate",
                 "reproducibility_gate", "onnx_parity_gate"):
        assert checks[gate].passed, (gate, checks[gate].description)
    assert checks["onnx_parity_gate"].metadata["max_abs_diff"].value <= 1e-5
    assert "TPR gap" in checks["fairness_gate"].description
    mlflow = loop.defs.resources["mlflow"]
    version = mlflow.client().get_model_version(uc.name, str(model["model_version"]))
    encoding = json.loads(version.tags["encoding"])
    assert set(encoding["categorical"]) == {"workclass", "education", "marital_status",
                                            "occupation", "relationship", "native_country"}
    assert "other" in encoding["categorical"]["native_country"]["levels"]
    shap = mlflow.setup().artifacts.load_dict(f"runs:/{version.run_id}/shap_importance.json")
    assert set(shap["mean_abs_shap"]) == set(uc.feature_names)  # by feature, not by column
    assert model["test_auc"] >= uc.gates.auc_min


def test_batch_scores_carry_the_model_version_and_feed_monitoring(loop, spark):
    uc = loop.uc
    scores = spark.read.format("delta").load(str(loop.root.joinpath(
        *keys.key(uc, keys.DEPLOYMENT, "batch_scores").path)))
    assert scores.count() == loop.landed["records"]
    champion = loop.mats("champion")[-1].metadata["model_version"].value
    assert {r[0] for r in scores.select("model_version").distinct().collect()} == \
        {str(champion)}
    performance = {m.partition: m for m in loop.mats("performance_report")}
    judged = [d for d, m in performance.items() if m.metadata["judged"].value]
    assert judged and all(performance[d].metadata["recall"].value > 0.5 for d in judged)
    assert all("estimated_recall" in m.metadata for m in performance.values())
    fairness = loop.mats("fairness_report")[-1].metadata
    assert "sex_groups_judged" in fairness


def test_a_shift_in_who_is_surveyed_shows_as_categorical_drift(loop):
    reports = {m.partition: {k: v.value for k, v in m.metadata.items()}
               for m in loop.mats("drift_report")}
    shift = loop.days[DELIVERY.shift_day - 1]
    before = [d for d, r in reports.items() if d < shift and r["drifted"]]
    after = [d for d, r in reports.items() if d >= shift and r["drifted"]]
    assert len(before) <= 1, before
    assert len(after) >= 3, {d: r["verdict"] for d, r in reports.items() if d >= shift}
    table = reports[after[0]]["columns"]
    assert re.search(r"\| education \| chi-square test of homogeneity \|[^|]+\|[^|]+\|"
                     r"[^|]+\| \*\*yes\*\* \|", table), table


def test_the_endpoint_validates_categories(loop):
    uc = loop.uc
    deployment = loop.mats("seldon_deployment")[-1].metadata
    url, sample = deployment["endpoint"].value, deployment["sample_request"].value
    assert requests.post(url, json={"jsonData": sample}, timeout=10).status_code == 200
    unknown = requests.post(url, json={"jsonData": {**sample, "workclass": "Astronaut"}},
                            timeout=10)
    assert unknown.status_code == 422
    assert "workclass: not one of the allowed values (Federal-gov" in \
        unknown.json()["status"]["info"]
    rare = requests.post(url, json={"jsonData": {**sample, "native_country": "Atlantis"}},
                         timeout=10)
    assert rare.status_code == 200, rare.text  # learnt categories send the rest to "other"
    model_url = deployment["model_endpoint"].value
    names = list(uc.feature_names)
    row = [30, "Astronaut", "Bachelors", 13, "Never-married", "Sales", "Unmarried", 0, 0,
           "United-States", 40]
    direct = requests.post(model_url, json={"data": {"names": names, "ndarray": [row]}},
                           timeout=10)
    assert direct.status_code == 400
    assert "workclass: 'Astronaut' is not one of the categories" in \
        direct.json()["status"]["info"]


def test_the_onnx_runtime_answers_census_rows_as_the_booster_does(loop):
    """The use case serves with ONNX Runtime: its categorical features one-hot encoded as in
    training, the export scores real census rows as the registered booster does."""
    import numpy as np

    from lakeloop.deployment.runtime import load_booster

    uc = loop.uc
    assert uc.serving.runtime == "onnx"
    deployment = loop.mats("seldon_deployment")[-1].metadata
    model_url = deployment["model_endpoint"].value
    metadata = requests.get(model_url.replace("/predictions", "/metadata"), timeout=10)
    assert metadata.json()["platform"] == "onnx"
    names = list(uc.feature_names)
    rows = [[39, "State-gov", "Bachelors", 13, "Never-married", "Adm-clerical",
             "Not-in-family", 2174, 0, "United-States", 40],
            [50, "Self-emp-not-inc", "Bachelors", 13, "Married-civ-spouse", "Exec-managerial",
             "Husband", 0, 0, "United-States", 13],
            [38, None, "HS-grad", 9, "Divorced", None, "Not-in-family", 0, 0, None, 40]]
    answer = requests.post(model_url, json={"data": {"names": names, "ndarray": rows}},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    got = np.array([p for p, _ in answer.json()["data"]["ndarray"]])
    version = str(deployment["model_version"].value)
    booster, config = load_booster(loop.defs.resources["mlflow"], uc.name, version)
    want = booster.inplace_predict(config["encoding"].encode_rows(rows))
    assert np.max(np.abs(got - want)) <= uc.gates.onnx_max_abs_diff, (got, want)


def test_reasons_and_the_trace_work_on_census_data(loop):
    """A use case without reason texts gets its feature names as reasons (a categorical
    feature's columns summed into one), and a census prediction traces back to its data."""
    from lakeloop.trace import trace_request

    uc = loop.uc
    deployment = loop.mats("seldon_deployment")[-1].metadata
    url, sample = deployment["endpoint"].value, deployment["sample_request"].value
    answer = requests.post(url, json={"jsonData": sample, "meta": {"tags": {"explain": 2}}},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    [reason] = answer.json()["meta"]["tags"]["reasons"]
    assert set(reason["contributions"]) == set(uc.feature_names)
    assert [t["text"] for t in reason["top"]] == [t["feature"] for t in reason["top"]]
    chain = trace_request(loop.defs.resources, [uc], answer.json()["meta"]["puid"])
    assert chain["prediction"]["reasons"] == reason["top"]
    assert chain["whole"], [c for c in chain["checks"] if not c["ok"]]
    assert chain["snapshots"] and all(s["matches"] for s in chain["snapshots"])
    assert {s["table"] for s in chain["sources"]} == {uc.gold_table, uc.labeled_table}


def test_the_census_loop_leaves_its_decisions_in_its_own_audit_trail(loop):
    """The audit trail works for a use case that routes no alerts: every gate verdict of its
    model is a row of its own trail, once, saying that nobody was told (no route), and the
    credit-risk trail is not touched."""
    from lakeloop import governance
    from lakeloop.training.checks import ONNX_GATE, REPRODUCIBILITY_GATE
    from lakeloop.training.gates import FAIRNESS_GATE, PERFORMANCE_GATE, REGRESSION_GATE

    uc = loop.uc
    lakehouse = loop.defs.resources["lakehouse"]
    version = str(loop.mats("candidate_model")[-1].metadata["model_version"].value)
    entries = governance.trail(lakehouse, uc).read()
    gates = [e for e in entries if e.kind == "gate_passed" and e.model_version == version]
    assert sorted(e.details["gate"] for e in gates) == sorted(
        [PERFORMANCE_GATE, FAIRNESS_GATE, REGRESSION_GATE, REPRODUCIBILITY_GATE, ONNX_GATE])
    assert len({e.event_key for e in entries}) == len(entries)  # each decision once
    assert all(e.use_case == uc.name and not e.alerted for e in entries)
    assert all(loop.instance.get_run_by_id(e.run_id) for e in entries if e.run_id)
    assert governance.audit_path(lakehouse, uc).is_relative_to(Path(lakehouse.data_root)
                                                               / uc.name)
    assert not (Path(lakehouse.data_root) / "credit_risk").exists()
