"""The spine end to end on tiny data: one materialisation from raw snapshots to drift reports,
asserting what was written (tables, features, registry, endpoint, reports)."""

import json
import math

import pytest
import requests

from lakeloop import keys
from lakeloop.features.store import feature_service_name
from lakeloop.lakehouse.tables import is_delta_table, last_commit
from lakeloop.usecase import load_use_cases

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _use_case(m):
    return load_use_cases(m.settings.use_case_dirs)[0]


def _mats(m):
    out = {}
    for event in m.result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            out.setdefault(mat.asset_key.to_user_string(), []).append(mat)
    return out


def test_one_materialisation_runs_raw_to_drift_report(materialized):
    assert materialized.result.success
    mats = _mats(materialized)
    graph = materialized.defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        assert key.to_user_string() in mats, f"{key.to_user_string()} was not materialized"
    # The approval is a person's decision, recorded by a job, never by a materialisation.
    assert not any(k.path[-1] == "approval" for k in graph.materializable_asset_keys)


def test_delta_tables_have_rows_and_versions(materialized, spark):
    uc = _use_case(materialized)
    lakehouse = materialized.resources["lakehouse"]
    for noun in ("bronze_applications", "silver_applications", "silver_outcomes",
                 uc.gold_table, uc.labeled_table):
        path = lakehouse.path(keys.key(uc, keys.LAKEHOUSE, noun))
        assert is_delta_table(path), noun
        assert last_commit(spark, path).version >= 0
        assert spark.read.format("delta").load(str(path)).count() > 1000, noun
    bronze = spark.read.format("delta").load(
        str(lakehouse.path(keys.key(uc, keys.LAKEHOUSE, "bronze_applications"))))
    assert bronze.select("ds").distinct().count() == len(materialized.days)
    assert bronze.where("length(_snapshot_hash) = 64").count() == bronze.count()


def test_every_replayed_event_is_one_logged_row(materialized, spark):
    """The replay sends ``serving.replay_batch_rows`` events per request; each event is
    answered and logged as its own row, once, under its own key."""
    uc = _use_case(materialized)
    assert uc.serving.replay_batch_rows > 1
    # One run replayed the whole window: each of its partitions carries the same figures.
    replayed = _mats(materialized)[keys.key(uc, keys.DEPLOYMENT, "traffic_replay")
                                   .to_user_string()][0]
    events, sent = (replayed.metadata[k].value for k in ("events", "requests"))
    assert replayed.metadata["errors"].value == 0
    assert sent == -(-events // uc.serving.replay_batch_rows)
    lakehouse = materialized.resources["lakehouse"]
    applications = spark.read.format("delta").load(str(lakehouse.path(
        keys.key(uc, keys.LAKEHOUSE, "silver_applications")))).select("application_id")
    log = spark.read.format("delta").load(str(lakehouse.path(
        keys.key(uc, keys.MONITORING, "inference_log")))).where("status = 200")
    keyed = log.groupBy("request_key").count()
    assert keyed.where("count > 1").count() == 0
    assert applications.count() == events
    assert applications.join(keyed, applications.application_id == keyed.request_key,
                             "left_anti").count() == 0


def test_online_features_equal_latest_gold_values(materialized, spark):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    uc = _use_case(materialized)
    gold = spark.read.format("delta").load(str(materialized.resources["lakehouse"].path(
        keys.key(uc, keys.LAKEHOUSE, uc.gold_table))))
    latest = (gold.withColumn("_n", F.row_number().over(
        Window.partitionBy(uc.entity.join_key).orderBy(F.col("event_timestamp").desc())))
        .where("_n = 1").orderBy(uc.entity.join_key).limit(25).toPandas())
    store = materialized.resources["feast"].store()
    online = store.get_online_features(
        features=store.get_feature_service(feature_service_name(uc)),
        entity_rows=[{uc.entity.join_key: k} for k in latest[uc.entity.join_key]],
    ).to_dict()
    for i, row in latest.iterrows():
        for feature in uc.entity_features:
            assert online[feature][i] == pytest.approx(row[feature], rel=1e-9), feature


def test_registered_model_version_has_metrics_and_data_versions(materialized):
    uc = _use_case(materialized)
    mlflow = materialized.resources["mlflow"]
    model = _mats(materialized)[keys.key(uc, keys.TRAINING, "candidate_model")
                                .to_user_string()][-1]
    champion = mlflow.client().get_model_version(uc.name, str(model.metadata["model_version"]
                                                             .value))
    deployed = _mats(materialized)[keys.key(uc, keys.DEPLOYMENT, "champion")
                                   .to_user_string()][-1]
    assert deployed.metadata["model_version"].value == int(champion.version)
    run = mlflow.client().get_run(champion.run_id)
    assert run.data.metrics["test_recall"] >= uc.gates.recall_min
    assert 0.5 < run.data.metrics["test_auc"] <= 1.0
    versions = json.loads(run.data.tags["lakeloop.source_versions"])
    assert set(versions) == {uc.labeled_table, uc.gold_table}
    assert all(isinstance(v, int) for v in versions.values())
    assert run.data.tags["lakeloop.feature_service"] == feature_service_name(uc)
    assert champion.tags["gates"] == "passed"
    assert champion.tags["dagster_run_id"] == materialized.result.run_id


def _deployment(materialized):
    mats = _mats(materialized)
    uc = _use_case(materialized)
    return mats[keys.key(uc, keys.DEPLOYMENT, "seldon_deployment").to_user_string()][-1], uc


def test_endpoint_scores_an_applicant_through_the_feature_transformer(materialized):
    deployment, uc = _deployment(materialized)
    sample = deployment.metadata["sample_request"].value
    assert set(sample) == {uc.events.key, uc.entity.join_key, *uc.features.request}
    response = requests.post(deployment.metadata["endpoint"].value,
                             json={"jsonData": sample}, timeout=10)
    assert response.status_code == 200, response.text
    probability, prediction = response.json()["data"]["ndarray"][0]
    assert 0.0 <= probability <= 1.0 and prediction in (0, 1)
    assert probability == pytest.approx(deployment.metadata["sample_probability"].value,
                                        abs=1e-6)


def test_a_client_asking_for_reasons_gets_them_in_the_use_cases_words(materialized):
    """Through the whole graph (executor, transformer, model): the top contributions and
    the use case's reason texts, adding up with the base value to the answer's margin."""
    deployment, uc = _deployment(materialized)
    sample = deployment.metadata["sample_request"].value
    response = requests.post(deployment.metadata["endpoint"].value, timeout=10,
                             json={"jsonData": sample, "meta": {"tags": {"explain": 3}}})
    assert response.status_code == 200, response.text
    body = response.json()
    probability = body["data"]["ndarray"][0][0]
    [reason] = body["meta"]["tags"]["reasons"]
    assert set(reason["contributions"]) == set(uc.feature_names)
    margin = reason["base_value"] + sum(reason["contributions"].values())
    assert 1 / (1 + math.exp(-margin)) == pytest.approx(probability, abs=1e-5)
    assert len(reason["top"]) == 3
    for top in reason["top"]:
        words = uc.reason_codes[top["feature"]]
        assert top["text"] == (words.up if top["contribution"] > 0 else words.down)


def test_drift_reports_exist_per_day_with_html_and_json(materialized):
    uc = _use_case(materialized)
    mats = _mats(materialized)[keys.key(uc, keys.MONITORING, "drift_report").to_user_string()]
    by_day = {m.partition: m for m in mats}
    assert set(by_day) == set(materialized.days)
    for mat in by_day.values():
        assert mat.metadata["report_path"].value.endswith("report.html")
        summary = json.loads(open(mat.metadata["report_json"].value).read())
        assert "metrics" in summary
    _assert_report_opens(materialized, next(iter(by_day.values())))
    drifted = {d for d, m in by_day.items() if m.metadata["drifted"].value}
    assert drifted and min(drifted) >= materialized.drift_date
    assert any(d < materialized.drift_date for d in set(by_day) - drifted)


def test_no_verdict_or_report_prints_nan(materialized):
    """Every check's explanation and every figure a person reads says "not judged" (and
    why) where there was too little to judge: never nan."""
    import math
    import re

    for event in materialized.result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            assert not re.search(r"\bnan\b", data.description or "", re.I), data.description
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            for name, entry in mat.metadata.items():
                value = entry.value
                assert not (isinstance(value, float) and math.isnan(value)), name
                if isinstance(value, str):
                    assert not re.search(r"\bnan\b", value, re.I), (name, value)


def _assert_report_opens(materialized, mat):
    """The report's metadata is an http link (one click in the UI) that the reports server
    answers with the HTML report; nothing outside the monitoring reports is served."""
    from urllib.parse import urlsplit

    from lakeloop.monitoring.server import serve_in_background

    link = mat.metadata["report"].value
    assert link.startswith("http://127.0.0.1:") and link.endswith("report.html"), link
    server = serve_in_background(materialized.root)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        page = requests.get(base + urlsplit(link).path, timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()[:2000]
        assert page.headers["Content-Type"].startswith("text/html")
        for forbidden in ("/credit_risk/monitoring/../../mlflow/mlflow.db",
                          "/mlflow/mlflow.db", "/credit_risk/lakehouse/silver_applications/"
                          "_delta_log/00000000000000000000.json"):
            assert requests.get(base + forbidden, timeout=5).status_code == 404, forbidden
    finally:
        server.shutdown()


@pytest.mark.parametrize("report", ["performance_report", "fairness_report"])
def test_quality_reports_per_day_with_metrics_and_html(materialized, report):
    uc = _use_case(materialized)
    mats = _mats(materialized)[keys.key(uc, keys.MONITORING, report).to_user_string()]
    by_day = {m.partition: m for m in mats}
    assert len(by_day) == len(materialized.days)
    _assert_report_opens(materialized, next(iter(by_day.values())))
    for mat in by_day.values():
        assert mat.metadata["report_path"].value.endswith("report.html")
        summary = json.loads(open(mat.metadata["report_path"].value.replace(
            "report.html", "summary.json")).read())
        assert summary["rows"] == mat.metadata["rows"].value > 0
    if report == "performance_report":
        judged = [m for m in by_day.values() if m.metadata["judged"].value]
        assert judged, "some days should have enough outcomes to be judged"
        # Outcomes mature 10 days after the event: the last 10 days are never judged on the
        # outcomes that happened to arrive early, only estimated from the scores.
        last_mature = materialized.days[-1 - uc.label.maturity_days]
        for day, mat in by_day.items():
            assert mat.metadata["mature"].value is (day <= last_mature), day
            if day > last_mature:
                assert not mat.metadata["judged"].value and "recall" not in mat.metadata
                assert "outcomes mature on" in mat.metadata["verdict"].value
            assert "estimated_recall" in mat.metadata
        early = [m for d, m in by_day.items() if d < materialized.drift_date and
                 m.metadata["judged"].value]
        assert all(0.0 <= m.metadata["recall"].value <= 1.0 for m in judged)
        assert all(m.metadata["auc"].value > 0.7 for m in early)
    else:
        assert all("gender_approval_ratio" in m.metadata for m in by_day.values())
