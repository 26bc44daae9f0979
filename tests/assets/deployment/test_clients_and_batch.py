"""Real clients feed the loop, and batch scoring answers as the endpoint does.

On a copy of the suite's materialised lake, with traffic replay off (as for a real use case)
and batch scoring on: a new day of applications lands, a client calls the endpoint exactly
as the README shows (the event's key and time in the request), the outcomes land, and the
daily job (no replay) logs the answers and judges live performance on those outcomes. The
day's batch scores, in-process and in Spark, equal the endpoint's answers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import socket

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import requests

from jobs.use_case_jobs import daily_job_name
from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.deployment.runtime import endpoint_name
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET, free_port_pair, settings_for, write_use_case
from tests.services import logged_records
from tests.support.demo_data import default_probability

pytestmark = [pytest.mark.slow, pytest.mark.integration]
OVERRIDES = {r"^sensitive: true$": "sensitive: false",
             r"^  replay: true$": "  replay: false",
             r"^  mode: online$": "  mode: both",
             # the test's outcomes land the same day: mature at once
             r"^  maturity_days: \d+$": "  maturity_days: 0"}


@dataclasses.dataclass
class ClientDay:
    root: object
    defs: dg.Definitions
    instance: dg.DagsterInstance
    use_case: object
    day: str
    events: pd.DataFrame
    answers: dict[str, float]
    daily: dg.ExecuteInProcessResult

    def run(self, selection, **tags) -> dg.ExecuteInProcessResult:
        result = dg.materialize(list(self.defs.assets), selection=selection,
                                resources=self.defs.resources, instance=self.instance,
                                run_config=QUIET, raise_on_error=False,
                                tags={"dagster/asset_partition_range_start": self.day,
                                      "dagster/asset_partition_range_end": self.day, **tags})
        assert result.success, [e.message for e in result.all_events if e.is_step_failure]
        return result


def _metadata(result, noun: str) -> dict:
    for event in reversed(result.all_events):
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            if mat.asset_key.path[-1] == noun:
                return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"{noun} was not materialised")


@pytest.fixture(scope="module")
def client_day(materialized, tmp_path_factory) -> ClientDay:
    root = tmp_path_factory.mktemp("clients") / "lake"
    # Everything but the Dagster instance and the running services' state (the copy starts
    # its own endpoint and feature server).
    shutil.copytree(materialized.root, root, ignore=shutil.ignore_patterns(
        "dagster", "use_cases", "serving", "server"))
    use_cases = write_use_case(root.parent / "use_cases", free_port_pair(), **OVERRIDES).parent
    defs = build_definitions(settings_for(root, use_cases))
    uc = load_use_cases([use_cases])[0]
    instance = dg.DagsterInstance.ephemeral()

    # A new day: the last landed day's applicants apply again (new ids), and their outcomes
    # land the same day.
    last = materialized.days[-1]
    day = (dt.date.fromisoformat(last) + dt.timedelta(days=1)).isoformat()
    landing = root / "landing" / uc.name
    events = pd.read_csv(landing / uc.events_name / f"{last}.csv")
    events["application_id"] = "client-" + events["application_id"]
    events["application_ts"] = (pd.to_datetime(events["application_ts"])
                                + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%S")
    events.to_csv(landing / uc.events_name / f"{day}.csv", index=False)
    rng = np.random.default_rng(31)
    defaulted = (rng.random(len(events))
                 < default_probability(events, np.zeros(len(events), bool))).astype(int)
    pd.DataFrame({"application_id": events["application_id"],
                  "outcome_ts": f"{day}T23:00:00", "defaulted": defaulted}).to_csv(
        landing / uc.labels_name / f"{day}.csv", index=False)
    state = ClientDay(root, defs, instance, uc, day, events, {}, None)
    # The registry is applied again: the copy's feature views read the copy's gold table.
    state.run(dg.AssetSelection.groups(keys.group(uc, keys.RAW),
                                       keys.group(uc, keys.LAKEHOUSE),
                                       keys.group(uc, keys.FEATURES)))

    # The client: the README's request, one application at a time.
    from lakeloop.deployment.runtime import Runtime, ensure_champion

    r = defs.resources
    endpoint, _ = ensure_champion(Runtime(uc, r["serving"], r["mlflow"], r["lakehouse"],
                                          r["feast"]))
    http = requests.Session()
    for row in events.itertuples(index=False):
        body = {"jsonData": {"application_id": row.application_id,
                             "application_ts": row.application_ts + "Z",
                             "applicant_id": row.applicant_id,
                             "loan_amount": float(row.loan_amount),
                             "loan_term_months": int(row.loan_term_months),
                             "channel": row.channel}}
        response = http.post(endpoint.predictions_url, json=body, timeout=10)
        assert response.status_code == 200, response.text
        state.answers[row.application_id] = response.json()["data"]["ndarray"][0][0]
    log_dir = r["lakehouse"].path(keys.key(uc, keys.MONITORING, "requests"))
    assert logged_records(log_dir, events["application_id"].iloc[-1]), \
        "the client's answers were never logged"
    state.daily = defs.resolve_job_def(daily_job_name(uc)).execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": day,
              "dagster/asset_partition_range_end": day})
    yield state
    r["serving"].stop_all()
    r["feast"].stop_feature_server()


def test_the_daily_job_runs_without_replay(client_day):
    uc = client_day.use_case
    assert client_day.daily.success
    graph = client_day.defs.resolve_asset_graph()
    assert keys.key(uc, keys.DEPLOYMENT, "traffic_replay") not in graph.get_all_asset_keys()
    done = {e.event_specific_data.materialization.asset_key.path[-1]
            for e in client_day.daily.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert {"inference_log", "batch_scores", "drift_report", "performance_report"} <= done


def test_a_clients_requests_are_joined_to_their_outcomes(client_day, spark):
    uc = client_day.use_case
    log = spark.read.format("delta").load(str(client_day.root.joinpath(
        *keys.key(uc, keys.MONITORING, "inference_log").path))).where(
        f"ds = DATE'{client_day.day}'").toPandas()
    assert set(client_day.events["application_id"]) <= set(log["request_key"])
    report = _metadata(client_day.daily, "performance_report")
    outcomes = pd.read_csv(client_day.root / "landing" / uc.name / uc.labels_name
                           / f"{client_day.day}.csv")
    assert report["labeled_rows"] == len(client_day.events)
    assert report["positives"] == int(outcomes["defaulted"].sum())
    assert report["mature"] and report["judged"], report["verdict"]
    threshold = float(client_day.defs.resources["mlflow"].client().get_model_version(
        uc.name, str(report["model_version"])).tags["threshold"])
    caught = sum(client_day.answers[k] >= threshold
                 for k in outcomes.loc[outcomes["defaulted"] == 1, "application_id"])
    assert report["recall"] == pytest.approx(caught / report["positives"], abs=1e-4)


@pytest.mark.parametrize("engine_rows", ["in-process", "spark"])
def test_batch_scores_equal_the_endpoints_answers(client_day, spark, engine_rows, tmp_path):
    uc = client_day.use_case
    defs = client_day.defs
    if engine_rows == "spark":  # the same asset, made to take the Spark path
        use_cases = write_use_case(tmp_path / "use_cases", uc.serving.port, **{
            **OVERRIDES, r"^  mode: both$": "  mode: both\n  batch_spark_min_rows: 1"})
        defs = build_definitions(settings_for(client_day.root, use_cases.parent))
    state = dataclasses.replace(client_day, defs=defs)
    result = state.run([keys.key(uc, keys.DEPLOYMENT, "batch_scores")])
    meta = _metadata(result, "batch_scores")
    assert meta["engine"] == engine_rows and meta["rows"] == len(client_day.events)
    scores = spark.read.format("delta").load(str(client_day.root.joinpath(
        *keys.key(uc, keys.DEPLOYMENT, "batch_scores").path))).where(
        f"ds = DATE'{client_day.day}'").toPandas().set_index("application_id")
    assert set(scores["model_version"]) == {str(meta["model_version"])}
    # The endpoint reads an entity's latest features: for an applicant who applied twice
    # that day, the client's requests came after both had landed, so the earlier one was
    # scored on the later application's features (batch scores, point in time, are not).
    # Every other application was scored online on exactly its own features.
    events = client_day.events
    once = events.groupby("applicant_id")["application_id"].transform("count") == 1
    online = pd.Series(client_day.answers)[events.loc[once, "application_id"]]
    assert len(online) > 0.9 * len(events)
    np.testing.assert_allclose(scores.loc[online.index, "probability"], online, atol=1e-6)


def test_a_predictor_that_cannot_start_whole_leaves_nothing_running(client_day):
    """The challenger's transformer port is taken by another program (the fault, at a known
    point: after its model has started): the start fails with the reason, the model that
    did start is stopped again, and the champion keeps answering."""
    from lakeloop.deployment.runtime import (
        OFFSETS,
        Runtime,
        component_name,
        running_predictor,
        start_predictor,
    )
    from lakeloop.deployment.serving import ServingError
    from lakeloop.tracking import CHALLENGER, CHAMPION

    uc = client_day.use_case
    r = client_day.defs.resources
    rt = Runtime(uc, r["serving"], r["mlflow"], r["lakehouse"], r["feast"])
    champion = running_predictor(rt, CHAMPION)
    assert champion is not None
    model_port = uc.serving.port + OFFSETS[CHALLENGER]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", model_port + 2))
        squatter.listen()
        with pytest.raises(ServingError, match=f"port {model_port + 2} on 127.0.0.1 is already"):
            start_predictor(rt, champion.model_version, CHALLENGER)
    assert r["serving"].endpoint(component_name(uc, CHALLENGER, "model")) is None
    assert r["serving"].endpoint(component_name(uc, CHALLENGER, "transformer")) is None
    with socket.socket() as probe:  # the model's port is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", model_port))
    row = client_day.events.iloc[0]
    body = {"jsonData": {"application_id": row.application_id + "-again",
                         "application_ts": row.application_ts + "Z",
                         "applicant_id": row.applicant_id,
                         "loan_amount": float(row.loan_amount),
                         "loan_term_months": int(row.loan_term_months),
                         "channel": row.channel}}
    endpoint = r["serving"].endpoint(endpoint_name(uc))
    assert requests.post(endpoint.predictions_url, json=body, timeout=10).status_code == 200
