"""`lakeloop trace`: from a logged prediction of the session's graph back to its data, with
each link resolved independently here (the MLflow run, the Delta versions read by Spark, the
raw snapshots' hashes); a link that does not resolve is a failure, not a silent gap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lakeloop import keys
from lakeloop.cli import main
from lakeloop.deployment.seldon.request_log import complete_lines
from lakeloop.lakehouse.tables import LakehouseResource, read_table, replace_window
from lakeloop.raw.snapshots import file_sha256
from lakeloop.trace import Check, delta_commit, snapshots
from lakeloop.usecase import load_use_cases

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture()
def cli_env(materialized, monkeypatch):
    settings = materialized.settings
    monkeypatch.setenv("LAKELOOP_DATA_ROOT", str(settings.data_root))
    monkeypatch.setenv("LAKELOOP_USE_CASES", str(settings.use_case_dirs[0]))
    monkeypatch.delenv("LAKELOOP_ENV", raising=False)
    return load_use_cases(settings.use_case_dirs)[0]


def _trace(capsys, *argv) -> tuple[int, dict | str, str]:
    code = main(["trace", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, (json.loads(out) if "--json" in argv and out else out), err


def _a_logged_answer(materialized, uc) -> dict:
    log_dir = materialized.resources["lakehouse"].path(keys.key(uc, keys.MONITORING,
                                                                "requests"))
    for path in sorted(log_dir.glob("ds=*/*.jsonl")):
        for line in complete_lines(path):
            record = json.loads(line)
            if record["status"] == 200 and record["request_key"]:
                return record
    raise AssertionError("the replay logged no answers")


def test_a_prediction_traces_back_to_the_data_it_was_trained_on(materialized, cli_env,
                                                                 spark, capsys):
    uc = cli_env
    record = _a_logged_answer(materialized, uc)
    code, chain, err = _trace(capsys, record["request_key"], "--json")
    assert code == 0, err
    p = chain["prediction"]
    assert (p["event_key"], p["request_id"]) == (record["request_key"], record["request_id"])
    assert p["probability"] == record["probability"] and p["inputs"] == record["features"]
    assert chain["model"]["version"] == record["model_version"]
    assert chain["whole"] and all(c["ok"] for c in chain["checks"]), chain["checks"]

    # Each id resolves, checked here by other means than the trace's own.
    client = materialized.resources["mlflow"].client()
    run = client.get_run(chain["model"]["run_id"])
    assert run.data.tags["lakeloop.use_case"] == uc.name
    training = chain["training_set"]
    rows = read_table(spark, training["path"], training["version"])
    assert rows.count() > 0
    assert chain["feature_service"] == run.data.tags["lakeloop.feature_service"]
    tables = {s["table"]: s for s in chain["sources"]}
    assert set(tables) == {uc.gold_table, uc.labeled_table}
    for source in tables.values():
        assert read_table(spark, source["path"], source["version"]).count() > 0
        assert source["upstream"], f"{source['table']} recorded no versions it read"
        for up in source["upstream"]:
            assert up["table"].startswith("silver_")
            assert read_table(spark, up["path"], up["version"]).count() > 0
    hashes = {r["_snapshot_hash"] for r in rows.select("_snapshot_hash").distinct().collect()}
    assert {s["sha256"] for s in chain["snapshots"]} == hashes
    for s in chain["snapshots"]:
        assert file_sha256(Path(s["file"])) == s["sha256"]
    assert chain["champion_moves"], "the champion's promotion is part of the chain"

    # the same chain from the model version, and as text for people
    code, by_model, _ = _trace(capsys, "--model", record["model_version"], uc.name, "--json")
    assert code == 0
    assert by_model["training_set"] == chain["training_set"]
    code, text, _ = _trace(capsys, record["request_id"])
    assert code == 0 and f"v{record['model_version']}" in text and "FAILED" not in text


def test_an_unknown_id_is_a_message_not_a_traceback(cli_env, capsys):
    code, _, err = _trace(capsys, "no-such-request")
    assert code == 1 and "no logged request or event key 'no-such-request'" in err
    code, _, err = _trace(capsys, "--model", "999", cli_env.name)
    assert code == 1 and "no model version 999" in err


def test_an_altered_or_missing_snapshot_breaks_the_chain(materialized, cli_env, tmp_path):
    """On a copy of the raw folder: the hash recorded at training must match the bytes."""
    uc = cli_env
    lakehouse = materialized.resources["lakehouse"]
    copy = LakehouseResource(data_root=str(tmp_path))
    for source in uc.sources:
        key = keys.key(uc, keys.RAW, source)
        shutil.copytree(lakehouse.path(key), copy.path(key))
    stored = sorted(p for p in copy.path(keys.key(uc, keys.RAW, next(iter(uc.sources))))
                    .glob("ds=*/*") if not p.name.startswith("_"))
    digests = [p.name.split(".")[0] for p in stored[:3]]
    checks: list[Check] = []
    assert all(s["matches"] for s in snapshots(copy, uc, digests, checks))
    assert checks[-1].ok
    stored[0].write_bytes(stored[0].read_bytes() + b"\n")  # the fault: one byte appended
    stored[1].unlink()
    snapshots(copy, uc, digests, checks)
    assert not checks[-1].ok and "1 of 3 snapshots not stored" in checks[-1].detail
    snapshots(copy, uc, [digests[0], digests[2]], checks)
    assert not checks[-1].ok and str(stored[0]) in checks[-1].detail


def test_a_delta_version_is_read_from_the_log_with_what_its_commit_read(tmp_path, spark):
    path = tmp_path / "t"
    df = spark.createDataFrame([(1, "2026-09-01")], "id int, ds string").selectExpr(
        "id", "to_date(ds) as ds")
    replace_window(df, path, "2026-09-01", "2026-09-01", run_id="r1",
                   lineage={"source_versions": {"silver_x": 4}})
    assert delta_commit(str(path), 0)["recorded"] == {"dagster_run_id": "r1",
                                                      "source_versions": {"silver_x": 4}}
    assert delta_commit(str(path), 1) is None
