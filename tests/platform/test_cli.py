"""The `lakeloop` command line: complete help, use-case files checked with line numbers, the
status of a use case from an empty data root and from a real registry, demo data with
progress, and user errors as messages with exit codes (never tracebacks)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import click
import dagster as dg
import pytest

from lakeloop import keys
from lakeloop.cli import cli, main
from lakeloop.deployment import approvals, promotion
from lakeloop.resources import build_resources
from lakeloop.settings import Settings
from lakeloop.tracking import muted_stderr
from lakeloop.usecase import load_use_case
from tests.conftest import write_use_case

LAKELOOP = Path(sys.executable).with_name("lakeloop")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# --- help -----------------------------------------------------------------------------------
COMMANDS = {"status", "validate", "serve", "reports", "approve", "reject", "rollback", "trace",
            "audit"}


def test_every_command_has_a_description_an_example_and_help_for_every_option(capsys):
    assert set(cli.commands) == COMMANDS
    for name, command in cli.commands.items():
        assert command.help and len(command.help) > 40, name
        assert command.epilog and f"lakeloop {name}" in command.epilog, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (name, param.name)
            else:  # arguments are explained in the description
                assert param.human_readable_name.rstrip(".") in command.help, (name, param.name)
        code, out, _ = run(capsys, name, "--help")
        first_words = " ".join(command.help.split()[:5])
        assert code == 0 and "example:" in out and first_words in " ".join(out.split())


def test_the_installed_command_answers_help():
    proc = subprocess.run([str(LAKELOOP), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in COMMANDS:
        assert command in proc.stdout
    assert "examples:" in proc.stdout and proc.stderr == ""


def test_usage_errors_exit_2_and_say_what_to_do(env, capsys):
    code, _, err = run(capsys, "approve", "credit_risk", "3", "--by", "Ada")
    assert code == 2 and "--reason" in err and "lakeloop approve --help" in err
    code, _, err = run(capsys, "launch-rockets")
    assert code == 2 and "No such command 'launch-rockets'" in err
    code, _, err = run(capsys, "status", "fraud")
    assert code == 2 and "no use case named 'fraud' (known: credit_risk)" in err
    code, _, err = run(capsys, "approve", "credit_risk", "zero", "--by", "a", "--reason", "b")
    assert code == 2 and "'zero' is not a whole number" in err


def test_a_broken_use_case_folder_is_a_message_that_points_at_validate(env, capsys):
    _, use_case = env
    use_case.write_text(use_case.read_text().replace("owner: team:credit-risk\n", ""))
    code, _, err = run(capsys, "status")
    assert code == 1 and "owner: required key is missing" in err
    assert f"lakeloop validate {use_case.parent}" in err


# --- validate -------------------------------------------------------------------------------
def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _reported(out: str, prefix: str) -> bool:
    return any(line.startswith(prefix) for line in out.splitlines())


def test_validate_accepts_the_shipped_use_case(env, capsys):
    _, use_case = env
    code, out, _ = run(capsys, "validate", str(use_case))
    assert code == 0 and out.strip() == f"{use_case}: ok"


@pytest.mark.parametrize("edit, needle, expected", [
    # wrong type: a threshold that is not a number
    ({r"^  recall_min: 0\.90": "  recall_min: high"}, "recall_min: high",
     "gates.recall_min: Input should be a valid number"),
    # a request feature that is not a column of the events source
    ({r"^  request: \[loan_amount, loan_term_months, channel\]$":
      "  request: [loan_amount, amount]"},
     "request: [loan_amount, amount]",
     "features.request[1]: request feature 'amount' is not a column of 'applications'"),
    # a required key left out: reported on the mapping that should hold it
    ({r"^  join_key: applicant_id\n": ""}, "entity:",
     "entity.join_key: required key is missing"),
    # not YAML at all
    ({r"^  join_key: applicant_id$": "  join_key: applicant_id: oops"}, "applicant_id: oops",
     "not valid YAML (mapping values are not allowed here)"),
])
def test_validate_reports_each_mistake_with_its_line(tmp_path, capsys, edit, needle, expected):
    path = write_use_case(tmp_path / "bad", 9100, **edit)
    code, out, err = run(capsys, "validate", str(path))
    assert code == 1
    assert _reported(out, f"{path}:{_line(path, needle)}: {expected}"), out
    assert "1 of 1 use-case files invalid" in err


def test_validate_checks_every_file_and_folder_and_lists_all_errors(tmp_path, capsys):
    good = write_use_case(tmp_path / "good", 9100)
    bad = write_use_case(tmp_path / "bad", 9200, **{
        r"^  recall_min: 0\.90": "  recall_min: 1.5",
        r"^      income: \{type: double": "      income: {type: float"})
    code, out, err = run(capsys, "validate", str(good.parent), str(bad),
                         str(tmp_path / "missing.yaml"))
    lines = out.splitlines()
    assert code == 1 and "2 of 3 use-case files invalid" in err
    assert f"{good.parent / 'credit_risk.yaml'}: ok" in lines
    assert _reported(out, f"{bad}:{_line(bad, 'recall_min: 1.5')}: gates.recall_min: Input "
                          "should be less than or equal to 1")
    assert _reported(out, f"{bad}:{_line(bad, 'income: {type: float')}: "
                          "sources.applications.columns.income.type: Input should be 'string'")
    assert _reported(out, f"{tmp_path / 'missing.yaml'}: cannot read it")


def test_validate_refuses_two_files_of_one_use_case(tmp_path, capsys):
    first = write_use_case(tmp_path / "a", 9100)
    second = write_use_case(tmp_path / "b", 9200)
    code, out, _ = run(capsys, "validate", str(first), str(second))
    assert code == 1
    assert f"{second}:{_line(second, 'name:')}: name: 'credit_risk' is also the name of " \
           f"{first}" in out


# --- status ---------------------------------------------------------------------------------
def test_status_on_an_empty_data_root_says_there_is_no_champion(env, capsys):
    root, _ = env
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "no champion yet: run `make demo`" in out
    assert "no Dagster instance yet" in out
    assert "not answering: `lakeloop serve`" in out
    assert not root.exists() or not any(root.rglob("*.db")), "status must not create state"


def test_status_json_parses(env, capsys):
    code, out, _ = run(capsys, "status", "credit_risk", "--json")
    assert code == 0
    report = json.loads(out)
    (entry,) = report["use_cases"]
    assert entry["name"] == "credit_risk" and entry["sensitive"] is True
    assert entry["champion"] is None and entry["challenger"] is None
    assert entry["drift"] is None and "no Dagster instance yet" in entry["notes"]["drift"]
    assert entry["open_approvals"] == [] and entry["endpoint"]["answers"] is False
    assert report["dagster_home"] is None


def _register(mlflow, name: str, recall: float, auc: float) -> str:
    """A tiny XGBoost model (UBJ, never a pickle) registered with its test metrics."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    booster = xgb.train({"max_depth": 2, "nthread": 1},
                        xgb.DMatrix(x, label=(x[:, 0] > 0.5).astype(int)), num_boost_round=2)
    ml = mlflow.setup()
    with muted_stderr(), ml.start_run(experiment_id=mlflow.experiment(name)):
        ml.log_metrics({"test_recall": recall, "test_auc": auc})
        info = ml.xgboost.log_model(booster, name="model", model_format="ubj",
                                    registered_model_name=name, pip_requirements=["xgboost"])
    version = str(info.registered_model_version)
    mlflow.client().set_model_version_tag(name, version, "threshold", "0.25")
    return version


def test_status_reports_champion_challenger_drift_and_the_open_approval(env, tmp_path,
                                                                        capsys, monkeypatch):
    root, path = env
    use_case = load_use_case(path)
    mlflow = build_resources(Settings.from_env())["mlflow"]
    client = mlflow.client()
    first = _register(mlflow, use_case.name, recall=0.93, auc=0.81)
    promotion.to_challenger(mlflow, use_case, first)
    approvals.record(client, use_case, first, approvals.APPROVED, "Ada (model risk)",
                     "card reviewed")
    promotion.to_champion(mlflow, use_case, first)
    second = _register(mlflow, use_case.name, recall=0.95, auc=0.84)
    promotion.to_challenger(mlflow, use_case, second)

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=keys.key(use_case, keys.MONITORING, "drift_report"),
            partition="2026-10-20",
            metadata={"drift_share": 0.33, "drifted": True, "judged": True,
                      "drifted_features": 3, "required_features": 2,
                      "model_version": int(first)}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    (entry,) = json.loads(out)["use_cases"]
    champion, challenger = entry["champion"], entry["challenger"]
    assert champion["version"] == first and challenger["version"] == second
    assert champion["metrics"] == {"recall": 0.93, "auc": 0.81}
    assert challenger["metrics"] == {"recall": 0.95, "auc": 0.84}
    assert champion["approval"]["status"] == "approved"
    assert champion["approval"]["by"] == "Ada (model risk)"
    assert challenger["approval"]["status"] == "pending" and challenger["gates"] == "passed"
    assert champion["threshold"] == 0.25
    assert [a["version"] for a in entry["open_approvals"]] == [second]
    assert entry["drift"]["partition"] == "2026-10-20" and entry["drift"]["drifted"] is True
    assert entry["drift"]["drift_share"] == 0.33

    code, out, _ = run(capsys, "status")
    assert code == 0
    assert f"champion    v{first}, recall 0.930, auc 0.810" in out
    assert f"challenger  v{second}, recall 0.950, auc 0.840" in out
    assert "2026-10-20: DRIFTED, 3 features drifted (needs 2)" in out
    assert f"v{second} awaits a decision: `lakeloop approve credit_risk {second}" in out

    # A version that does not exist is a message, not an MLflow traceback.
    code, _, err = run(capsys, "approve", "credit_risk", "99", "--by", "Ada (model risk)",
                       "--reason", "ok")
    assert code == 1 and "credit_risk v99" in err and "lakeloop status credit_risk" in err


# --- demo-data (python -m tests.support.demo_data) -----------------------------------------
def demo_data(capsys, *argv: str) -> tuple[int, str, str]:
    from tests.support.demo_data import main as demo_data_main

    code = demo_data_main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_demo_data_writes_the_days_and_summarises(env, capsys):
    root, _ = env
    code, out, err = demo_data(capsys, "--days", "3", "--rows-per-day", "20",
                         "--drift-day", "2")
    assert code == 0 and err == ""  # no progress line in a pipe
    written = sorted(p.name for p in (root / "landing" / "credit_risk" / "applications")
                     .iterdir())
    assert written == ["2026-09-01.csv", "2026-09-02.csv", "2026-09-03.csv"]
    assert out.startswith("wrote 3 days (2026-09-01 to 2026-09-03, drift from day 2")
    code, out, _ = demo_data(capsys, "--days", "2", "--rows-per-day", "5", "--json")
    assert code == 0 and json.loads(out)["days"] == 2
    code, out, _ = demo_data(capsys, "--days", "2", "--rows-per-day", "5")
    assert code == 0 and ", no drift)" in out  # the default drift day lies past the data


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_demo_data_shows_progress_on_a_terminal(env, capsys, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    from tests.support.demo_data import main as demo_data_main

    assert demo_data_main(["--days", "3", "--rows-per-day", "5", "--no-drift"]) == 0
    shown = terminal.getvalue()
    assert "\rdemo-data: day 1/3" in shown and shown.endswith("day 3/3\n")


def test_demo_data_refuses_a_drift_day_after_the_last_day(env, capsys):
    code, _, err = demo_data(capsys, "--days", "3", "--drift-day", "9")
    assert code == 2 and "--no-drift" in err
