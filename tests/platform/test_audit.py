"""The audit trail: an append-only Delta table that Spark reads like any other, that Delta
itself refuses to rewrite, and that `lakeloop audit` prints (as text or JSON, from a day on,
of some kinds)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lakeloop import governance
from lakeloop.cli import main
from lakeloop.governance import events, notices
from lakeloop.lakehouse.tables import LakehouseResource


def _events(uc: str) -> list[events.Event]:
    early = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)
    late = dt.datetime(2026, 10, 20, 9, tzinfo=dt.UTC)
    gate = notices.gate(uc, "3", "performance_gate", True, "recall 0.9 >= 0.8",
                        run_url="http://127.0.0.1:3000/runs/r1")
    approved = notices.decision(uc, "3", "approved", "Ada", late.isoformat(), "card read",
                                "approved")
    return [events.Event(**{**gate.__dict__, "at": early}),
            events.Event(**{**approved.__dict__, "at": late})]


def test_spark_reads_the_trail_and_delta_refuses_to_rewrite_it(tmp_path, spark):
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError

    from lakeloop.settings import BUILTIN_USE_CASES
    from lakeloop.usecase import load_use_case

    uc = load_use_case(BUILTIN_USE_CASES / "credit_risk.yaml")
    lakehouse = LakehouseResource(data_root=str(tmp_path))
    for event in _events(uc.name):
        governance.record(lakehouse, uc, event)
    path = governance.audit_path(lakehouse, uc)
    assert path == tmp_path / "credit_risk" / "governance" / "audit"
    rows = spark.read.format("delta").load(str(path)).orderBy("at").collect()
    assert [r.kind for r in rows] == ["gate_passed", "approved"]
    assert rows[1].actor == "Ada" and json.loads(rows[0].links) == {
        "dagster run": "http://127.0.0.1:3000/runs/r1"}
    table = DeltaTable(str(path))
    assert table.metadata().configuration["delta.appendOnly"] == "true"
    with pytest.raises(CommitFailedError, match="append-only"):
        table.delete("kind = 'approved'")
    assert DeltaTable(str(path)).to_pyarrow_table().num_rows == 2


def _audit(capsys, *argv: str) -> tuple[int, str]:
    code = main(["audit", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


def test_lakeloop_audit_prints_the_trail_from_a_day_of_some_kinds_and_as_json(env, capsys):
    root, _ = env
    from lakeloop.settings import Settings
    from lakeloop.usecase import load_use_cases

    code, out = _audit(capsys, "credit_risk")
    assert code == 0 and "no events recorded" in out
    [uc] = load_use_cases(Settings.from_env().use_case_dirs)
    for event in _events(uc.name):
        governance.record(LakehouseResource(data_root=str(root)), uc, event)

    code, out = _audit(capsys, "credit_risk")
    assert code == 0 and "2 event(s)" in out
    assert out.index("gate_passed") < out.index("approved")  # in time order
    assert "http://127.0.0.1:3000/runs/r1" in out and "Ada" in out

    code, out = _audit(capsys, "credit_risk", "--since", "2026-10-10")
    assert code == 0 and "1 event(s)" in out and "gate_passed" not in out
    code, out = _audit(capsys, "credit_risk", "--kind", "gate_passed", "--json")
    doc = json.loads(out)
    assert [e["kind"] for e in doc["events"]] == ["gate_passed"]
    assert doc["events"][0]["event_key"] == "credit_risk/gate_passed/v3/performance_gate"
    assert doc["events"][0]["at"] == "2026-10-01T08:00:00+00:00"

    code, out = _audit(capsys, "credit_risk", "--since", "October")
    assert code == 2 and "not a date" in out
    code, out = _audit(capsys, "credit_risk", "--kind", "gate_exploded")
    assert code == 2 and "gate_failed" in out
    code, out = _audit(capsys, "no_such_case")
    assert code == 2 and "no use case named" in out


def test_the_trail_is_read_without_delta_rs_pyarrow_scanner(tmp_path, monkeypatch):
    """delta-rs's pyarrow dataset leaves scanner threads that abort the interpreter at exit
    now and then (3 exits in 20 here, delta-io/delta-rs#2184): a CLI command or a run would
    end with status 134 after its work was done. The trail reads its data files with
    Arrow's own reader; any use of the dataset path fails here."""
    from deltalake import DeltaTable

    from lakeloop.governance.audit import AuditTrail

    def refused(*args, **kwargs):
        raise AssertionError("the trail read through delta-rs's pyarrow dataset")

    for name in ("to_pyarrow_table", "to_pyarrow_dataset", "to_pandas"):
        monkeypatch.setattr(DeltaTable, name, refused)
    trail = AuditTrail(tmp_path / "audit")
    event = notices.retraining("credit_risk", "credit_risk-drift-2026-10-15", "drift", "why")
    trail.append(event)
    assert trail.seen(event.identity) and not trail.seen("credit_risk/x/y")
    assert [e.kind for e in trail.read(dt.date(2026, 1, 1), ["retraining_requested"])] == [
        "retraining_requested"]
