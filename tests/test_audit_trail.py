"""The session's graph leaves its decisions in the audit trail and tells people what its use
case routes: every gate verdict of the model, its promotion and the drift day's alarm are
rows of the append-only Delta table, each link resolves (the Dagster run exists, the report
is on disk, the model version is registered), the drift alarm reached the webhook once,
`lakeloop audit` prints it and the model card points at it."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest

from lakeloop import governance
from lakeloop.cli import main
from lakeloop.training.checks import ONNX_GATE, REPRODUCIBILITY_GATE
from lakeloop.training.gates import FAIRNESS_GATE, PERFORMANCE_GATE, REGRESSION_GATE
from lakeloop.usecase import load_use_cases

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _trail(materialized):
    uc = load_use_cases(materialized.settings.use_case_dirs)[0]
    return uc, governance.trail(materialized.resources["lakehouse"], uc).read()


def test_the_graph_records_its_gates_promotion_and_drift_alarm_with_links_that_resolve(
        materialized):
    uc, trail = _trail(materialized)
    by_kind: dict[str, list] = {}
    for entry in trail:
        by_kind.setdefault(entry.kind, []).append(entry)
    gates = {e.details["gate"] for e in by_kind["gate_passed"] if e.model_version == "1"}
    assert gates == {PERFORMANCE_GATE, FAIRNESS_GATE, REGRESSION_GATE, REPRODUCIBILITY_GATE,
                     ONNX_GATE}
    # (other tests train later versions on this graph; version 1 is the graph's own)
    assert not [e for e in by_kind.get("gate_failed", []) if e.model_version == "1"]
    [promoted] = [e for e in by_kind["promoted"] if e.model_version == "1"]
    assert "first model" in promoted.summary
    drifted = [e for e in by_kind["drift_detected"] if e.event_key.endswith(
        materialized.drift_date)]
    assert drifted, f"no drift alarm for {materialized.drift_date}: {sorted(by_kind)}"

    mlflow = materialized.resources["mlflow"].client()
    for entry in trail:
        if entry.run_id:  # the run that decided it is in the instance, and linked
            assert materialized.instance.get_run_by_id(entry.run_id) is not None
            assert entry.links["dagster run"].endswith(f"/runs/{entry.run_id}")
        if entry.model_version:
            assert mlflow.get_model_version(uc.name, entry.model_version)
        report = entry.links.get("report")
        if report:
            assert report.startswith("http://127.0.0.1:8765/")
            assert (Path(materialized.settings.data_root)
                    / unquote(report.removeprefix("http://127.0.0.1:8765/"))).is_file()

    # ml_oncall routes drift_detected: the webhook got the alarm once, with its links;
    # model_risk hears nothing of a non-sensitive graph whose rollout never failed
    alarm = drifted[0]
    hooks = [h for h in materialized.webhook.bodies if alarm.event_key in h["message"]]
    assert len(hooks) == 1
    assert alarm.links["report"] in hooks[0]["message"]
    assert alarm.links["dagster run"] in hooks[0]["message"]
    assert "ml_oncall" in alarm.alerted.split(",")
    assert not any("gate passed" in h["title"] for h in materialized.webhook.bodies)


def test_lakeloop_audit_prints_the_graphs_trail_and_the_card_points_at_it(
        materialized, monkeypatch, capsys):
    settings = materialized.settings
    monkeypatch.setenv("LAKELOOP_DATA_ROOT", str(settings.data_root))
    monkeypatch.setenv("LAKELOOP_USE_CASES", str(settings.use_case_dirs[0]))
    monkeypatch.delenv("LAKELOOP_ENV", raising=False)
    uc, trail = _trail(materialized)
    assert main(["audit", uc.name, "--json", "--kind", "promoted"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["model_version"] for e in doc["events"]][:1] == ["1"]
    assert main(["audit", uc.name]) == 0
    out = capsys.readouterr().out
    assert f"{len(trail)} event(s)" in out and "drift_detected" in out
    card = materialized.resources["mlflow"].setup().artifacts.load_text(
        f"runs:/{materialized.resources['mlflow'].client().get_model_version(uc.name, '1').run_id}"
        "/model_card.md")
    assert "## Audit trail" in card and f"lakeloop audit {uc.name}" in card
