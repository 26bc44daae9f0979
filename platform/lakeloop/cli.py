"""The `lakeloop` command line: what people do by hand, without reading code.

Every command reads the same settings as the code location (LAKELOOP_DATA_ROOT,
LAKELOOP_USE_CASES, ...). Exit status: 0 done, 1 failed (the message says what to do next),
2 the command line itself was wrong.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem the user can fix; printed as one message, never as a traceback."""

    code = EXIT_FAILED


class UsageError(CliError):
    code = EXIT_USAGE


def _context():
    from lakeloop.resources import build_resources
    from lakeloop.settings import Settings, SettingsError
    from lakeloop.usecase import UseCaseError, load_use_cases

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise CliError(f"{exc}; fix the variable and run the command again") from None
    try:
        use_cases = load_use_cases(settings.use_case_dirs)
    except UseCaseError as exc:
        dirs = " ".join(str(d) for d in settings.use_case_dirs)
        raise CliError(f"{exc}\nfix the file (check it with `lakeloop validate {dirs}`)"
                       ) from None
    return settings, build_resources(settings), use_cases


def runtime(use_case, resources):
    from lakeloop.deployment import Runtime

    return Runtime(use_case, resources["serving"], resources["mlflow"], resources["lakehouse"],
                   resources["feast"])


def _use_case(use_cases, name: str):
    for use_case in use_cases:
        if use_case.name == name:
            return use_case
    known = ", ".join(u.name for u in use_cases) or "none"
    raise UsageError(f"no use case named {name!r} (known: {known}); LAKELOOP_USE_CASES "
                     "lists the folders use cases are loaded from")


def _registry_error(exc, use_case, version=None) -> CliError:
    what = f"{use_case.name} v{version}" if version is not None else use_case.name
    return CliError(f"{what}: {getattr(exc, 'message', exc)}; `lakeloop status "
                    f"{use_case.name}` shows the registered versions")


# --- reports --------------------------------------------------------------------------------
def cmd_reports(args) -> int:
    """Serve the monitoring reports over HTTP on 127.0.0.1."""
    from lakeloop.reports import make_server
    from lakeloop.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"lakeloop: {exc}") from None
    try:
        server = make_server(settings.data_root, "127.0.0.1", args.port)
    except OSError as exc:
        raise SystemExit(f"lakeloop: port {args.port} is busy ({exc.strerror}): stop what "
                         "holds it, or pass --port and set LAKELOOP_REPORTS_URL to match") \
            from None
    print(f"monitoring reports of {settings.data_root} at http://127.0.0.1:{args.port}/ "
          "(Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# --- serve ----------------------------------------------------------------------------------
def cmd_serve(args) -> int:
    """Start the champion endpoint of each use case (or stop every endpoint)."""
    from lakeloop.deployment import ensure_champion
    from lakeloop.processes import ProcessError
    from lakeloop.serving import ServingError

    settings, resources, use_cases = _context()
    serving = resources["serving"]
    if args.stop:
        stopped = serving.stop_all()
        if resources["feast"].stop_feature_server():
            stopped.append("feature-server")
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return EXIT_OK
    chosen = [_use_case(use_cases, args.use_case)] if args.use_case else use_cases
    for use_case in chosen:
        if resources["mlflow"].version_by_alias(use_case.name, "champion") is None:
            print(f"{use_case.name}: {_no_champion(use_case)}")
            continue
        try:
            endpoint, _ = ensure_champion(runtime(use_case, resources))
        except (ProcessError, ServingError) as exc:
            raise CliError(str(exc)) from None
        print(f"{use_case.name}: champion v{endpoint.model_version} at "
              f"{endpoint.predictions_url}")
    return EXIT_OK


# --- approve / reject / rollback ------------------------------------------------------------
def cmd_decide(args) -> int:
    """Approve or reject a challenger (recorded on the model version with who, when, why)."""
    from mlflow.exceptions import MlflowException

    from assets.deployment.promotion import decide
    from lakeloop import approvals
    from lakeloop.instance import dagster_instance

    settings, resources, use_cases = _context()
    use_case = _use_case(use_cases, args.use_case)
    decision = approvals.APPROVED if args.command == "approve" else approvals.REJECTED
    try:
        event = decide(resources["mlflow"], use_case, args.version, decision, args.by,
                       args.reason)
    except approvals.ApprovalError as exc:
        raise CliError(str(exc)) from None
    except MlflowException as exc:
        raise _registry_error(exc, use_case, args.version) from None
    dagster_instance(settings).report_runless_asset_event(event)
    print(f"{use_case.name} v{args.version}: {event.description}")
    if decision == approvals.APPROVED:
        print(f"next: the {use_case.name}_approval_sensor promotes and deploys it while the "
              f"Dagster daemon runs (make dev), or launch the {use_case.name}_promote job")
    return EXIT_OK


def cmd_rollback(args) -> int:
    """Put the previous champion back (and on its local endpoint, if one runs)."""
    from mlflow.exceptions import MlflowException

    from assets.deployment.promotion import rollback
    from lakeloop import keys, promotion
    from lakeloop.instance import dagster_instance

    settings, resources, use_cases = _context()
    use_case = _use_case(use_cases, args.use_case)
    try:
        move, endpoint = rollback(runtime(use_case, resources), by=args.by,
                                  reason=args.reason)
    except promotion.PromotionError as exc:
        raise CliError(str(exc)) from None
    except MlflowException as exc:
        raise _registry_error(exc, use_case) from None
    import dagster as dg

    dagster_instance(settings).report_runless_asset_event(dg.AssetMaterialization(
        asset_key=keys.key(use_case, keys.DEPLOYMENT, "champion"),
        description=f"rolled back by {args.by}: {args.reason}",
        metadata={"model_version": int(move.version), "rolled_back_from": move.previous or "",
                  "by": args.by, "reason": args.reason}))
    print(f"{use_case.name}: champion is v{move.version} again (was v{move.previous})")
    if endpoint is not None:
        print(f"{endpoint.predictions_url} now serves v{endpoint.model_version}")
    return EXIT_OK


# --- status ---------------------------------------------------------------------------------
KEY_METRICS = ("recall", "auc", "precision", "f1")
NO_INSTANCE = "no Dagster instance yet"


def _no_champion(use_case) -> str:
    return (f"no champion yet: run `make demo`, or materialize "
            f"{use_case.name}/deployment/champion (the {use_case.name}_promote job)")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _iso(ms_or_s: float | None, millis: bool = False) -> str | None:
    import datetime as dt

    if ms_or_s is None:
        return None
    seconds = ms_or_s / 1000 if millis else ms_or_s
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def _version_info(mlflow, client, name: str, mv) -> dict[str, Any]:
    """What a person asks about a model version: how good, gated, approved, rolled out."""
    from mlflow.exceptions import MlflowException

    from lakeloop import approvals

    tags = dict(mv.tags or {})
    try:
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    except MlflowException:
        metrics = {}
    threshold = tags.get("threshold")
    return {
        "version": str(mv.version),
        "created": _iso(mv.creation_timestamp, millis=True),
        "metrics": {m: _finite(round(metrics[f"test_{m}"], 4)) for m in KEY_METRICS
                    if f"test_{m}" in metrics},
        "threshold": round(float(threshold), 4) if threshold else None,
        "gates": tags.get("gates", "unknown"),
        "approval": ({"status": tags[approvals.STATUS], "by": tags.get(approvals.BY, ""),
                      "at": tags.get(approvals.AT, ""),
                      "reason": tags.get(approvals.REASON, "")}
                     if approvals.STATUS in tags else None),
        "rollout": tags.get("rollout.decision"),
        "training_set_version": tags.get("training_set_version"),
        "url": mlflow.model_version_url(name, mv.version),
    }


def _registry_exists(mlflow) -> bool:
    """A local SQLite registry that was never written is reported, not created."""
    uri = mlflow.tracking_uri
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists()


def _registry_status(mlflow, use_case, notes: dict[str, str]) -> dict[str, Any]:
    from lakeloop import approvals
    from lakeloop.tracking import CHALLENGER, CHAMPION

    found: dict[str, Any] = {"champion": None, "challenger": None, "open_approvals": []}
    if not _registry_exists(mlflow):
        notes["champion"] = f"no MLflow registry yet; {_no_champion(use_case)}"
        return found
    client = mlflow.client()
    versions = {alias: mlflow.version_by_alias(use_case.name, alias)
                for alias in (CHAMPION, CHALLENGER)}
    for alias, mv in versions.items():
        if mv is not None:
            found[alias] = _version_info(mlflow, client, use_case.name, mv)
    champion, challenger = found["champion"], found["challenger"]
    if champion is None:
        notes["champion"] = _no_champion(use_case)
    if challenger is None:
        notes["challenger"] = (f"no challenger yet: the {use_case.name}_retrain job trains a "
                               "candidate; it becomes challenger once every gate passes")
        return found
    if champion is not None and challenger["version"] == champion["version"]:
        challenger["is_champion"] = True
        return found
    challenger["is_champion"] = False
    approval = challenger["approval"] or {}
    if use_case.sensitive and approval.get("status", approvals.PENDING) == approvals.PENDING:
        version = challenger["version"]
        found["open_approvals"].append({
            "version": version, "since": challenger["created"],
            "approve": f"lakeloop approve {use_case.name} {version} --by <you> --reason <why>",
            "reject": f"lakeloop reject {use_case.name} {version} --by <you> --reason <why>"})
    elif approval.get("status") == approvals.REJECTED:
        notes["challenger"] = (f"v{challenger['version']} was rejected: train a new candidate "
                               f"(the {use_case.name}_retrain job)")
    elif champion is not None:
        notes["challenger"] = (f"v{challenger['version']} waits for promotion: launch the "
                               f"{use_case.name}_promote job")
    return found


def _dagster_home(settings) -> Path | None:
    """DAGSTER_HOME, or the data root's instance (where `lakeloop approve` records), if it
    holds anything yet."""
    value = os.environ.get("DAGSTER_HOME", "").strip()
    home = Path(value).expanduser() if value else settings.dagster_home
    return home if home.is_dir() and any(home.iterdir()) else None


def _drift_status(instance, use_case, notes: dict[str, str]) -> dict[str, Any] | None:
    from lakeloop import keys

    key = keys.key(use_case, keys.MONITORING, "drift_report")
    if instance is None:
        notes["drift"] = (f"{NO_INSTANCE}: set DAGSTER_HOME (make dev uses "
                          "<data root>/dagster) or run `make demo`")
        return None
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        notes["drift"] = (f"no drift report yet: materialize {key.to_user_string()} for a "
                          "production day (the daily job runs it)")
        return None
    mat = event.asset_materialization
    meta = {k: v.value for k, v in mat.metadata.items()}
    return {
        "partition": mat.partition,
        "drifted": meta.get("drifted"),
        "judged": meta.get("judged", True),
        "drift_share": meta.get("drift_share"),
        "drifted_features": meta.get("drifted_features"),
        "required_features": meta.get("required_features"),
        "verdict": meta.get("verdict"),
        "model_version": meta.get("model_version"),
        "report": meta.get("report"),
        "at": _iso(event.timestamp),
    }


def _endpoint_status(resources, use_case, notes: dict[str, str]) -> dict[str, Any]:
    from lakeloop.deployment import endpoint_name

    endpoint = resources["serving"].endpoint(endpoint_name(use_case))
    if endpoint is None:
        notes["endpoint"] = "not answering: `lakeloop serve` starts the champion's endpoint"
        return {"answers": False, "url": None, "model_version": None}
    return {"answers": True, "url": endpoint.predictions_url,
            "model_version": endpoint.model_version or None}


def status_report(settings, resources, use_cases) -> dict[str, Any]:
    """Everything `lakeloop status` shows, as data."""
    import dagster as dg

    try:
        mlflow = resources["mlflow"].process_config_and_initialize()
    except dg.DagsterInvalidConfigError as exc:
        raise CliError(f"the MLflow settings are incomplete ({str(exc).splitlines()[-1]}); "
                       "set the variables your LAKELOOP_ENV needs") from None
    home = _dagster_home(settings)
    instance = dg.DagsterInstance.from_config(str(home)) if home else None
    try:
        report = []
        for use_case in use_cases:
            notes: dict[str, str] = {}
            entry: dict[str, Any] = {"name": use_case.name, "title": use_case.title,
                                     "owner": use_case.owner, "sensitive": use_case.sensitive}
            entry.update(_registry_status(mlflow, use_case, notes))
            entry["drift"] = _drift_status(instance, use_case, notes)
            entry["endpoint"] = _endpoint_status(resources, use_case, notes)
            entry["notes"] = notes
            report.append(entry)
    finally:
        if instance is not None:
            instance.dispose()
    return {"data_root": str(settings.data_root),
            "dagster_home": str(home) if home else None, "use_cases": report}


def _describe_version(info: dict[str, Any]) -> str:
    parts = [f"v{info['version']}"]
    parts += [f"{name} {value:.3f}" for name, value in info["metrics"].items()
              if value is not None]
    if info["threshold"] is not None:
        parts.append(f"threshold {info['threshold']:.4f}")
    parts.append(f"gates {info['gates']}")
    approval = info["approval"]
    if approval and approval["status"] == "pending":
        parts.append("awaits approval")
    elif approval:
        parts.append(approval["status"] + (f" by {approval['by']}" if approval["by"] else ""))
    if info["rollout"]:
        parts.append(f"rollout {info['rollout']}")
    return ", ".join(parts)


def _status_rows(entry: dict[str, Any]) -> list[tuple[str, str]]:
    notes = entry["notes"]
    rows: list[tuple[str, str]] = []
    for alias in ("champion", "challenger"):
        info = entry[alias]
        if info is None:
            rows.append((alias, notes.get(alias, "none")))
        elif info.get("is_champion"):
            rows.append((alias, f"v{info['version']} (promoted: it is the champion)"))
        else:
            text = _describe_version(info)
            rows.append((alias, text + (f"; {notes[alias]}" if alias in notes else "")))
    drift = entry["drift"]
    if drift is None:
        rows.append(("drift", notes["drift"]))
    else:
        verdict = ("DRIFTED" if drift["drifted"] else
                   "no drift" if drift["judged"] else "not judged (not enough data)")
        share = ("" if drift["drifted_features"] is None else
                 f", {drift['drifted_features']} features drifted"
                 + (f" (needs {drift['required_features']})"
                    if drift["required_features"] is not None else ""))
        rows.append(("drift", f"{drift['partition']}: {verdict}{share}, model "
                              f"v{drift['model_version']}, reported {drift['at']}"))
    if entry["open_approvals"]:
        for item in entry["open_approvals"]:
            rows.append(("approval", f"v{item['version']} awaits a decision: "
                                     f"`{item['approve']}` (or reject)"))
    else:
        rows.append(("approval", "nothing awaits a decision" if entry["sensitive"]
                     else "not needed (the use case is not sensitive)"))
    endpoint = entry["endpoint"]
    rows.append(("endpoint", f"{endpoint['url']} answers (v{endpoint['model_version']})"
                 if endpoint["answers"] else notes["endpoint"]))
    return rows


def print_status(report: dict[str, Any]) -> None:
    for i, entry in enumerate(report["use_cases"]):
        if i:
            print()
        sensitive = ", sensitive" if entry["sensitive"] else ""
        print(f"{entry['name']}  {entry['title']} ({entry['owner']}{sensitive})")
        rows = _status_rows(entry)
        width = max(len(label) for label, _ in rows)
        for label, text in rows:
            print(f"  {label:<{width}}  {text}")
    if not report["use_cases"]:
        print("no use cases: LAKELOOP_USE_CASES names folders without *.yaml files")


def cmd_status(args) -> int:
    """Champion, challenger, drift, open approvals and endpoint of each use case."""
    settings, resources, use_cases = _context()
    if args.use_case:
        use_cases = [_use_case(use_cases, args.use_case)]
    report = status_report(settings, resources, use_cases)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_status(report)
    return EXIT_OK


# --- validate -------------------------------------------------------------------------------
def _files(paths: list[str]) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for shown in paths:
        path = Path(shown)
        if path.is_dir():
            inside = sorted(path.glob("*.yaml"))
            if not inside:
                raise CliError(f"{shown}: no *.yaml use-case files in this folder")
            files += [(str(Path(shown) / p.name), p) for p in inside]
        else:
            files.append((shown, path))
    return files


def cmd_validate(args) -> int:
    """Check use-case files; report every mistake as file:line: key: problem."""
    from lakeloop.usecase import Problem, UseCaseError, load_use_case

    invalid = 0
    files = _files(args.paths)
    seen: dict[str, str] = {}
    for shown, path in files:
        try:
            use_case = load_use_case(path)
            if use_case.name in seen:
                line = next((i for i, text in enumerate(path.read_text().splitlines(), 1)
                             if text.startswith("name:")), 1)
                raise UseCaseError(path, [Problem(line, "name", f"{use_case.name!r} is also "
                                                  f"the name of {seen[use_case.name]}")])
        except UseCaseError as exc:
            invalid += 1
            for line in exc.located(shown):
                print(line)
            continue
        except OSError as exc:
            invalid += 1
            print(f"{shown}: cannot read it ({exc.strerror or exc})")
            continue
        seen[use_case.name] = shown
        print(f"{shown}: ok")
    if invalid:
        raise CliError(f"{invalid} of {len(files)} use-case files invalid: fix the lines "
                       "above and run `lakeloop validate` again")
    return EXIT_OK


# --- demo-data ------------------------------------------------------------------------------
def _progress(stream) -> Callable[[int, int], None] | None:
    """A per-day progress line on a terminal; nothing in a log or a pipe."""
    if not stream.isatty():
        return None

    def show(day: int, days: int) -> None:
        stream.write(f"\rdemo-data: day {day}/{days}")
        stream.flush()
        if day == days:
            stream.write("\n")

    return show


def cmd_demo_data(args) -> int:
    """Write demo snapshot files (loan applications and outcomes) into the landing folder."""
    from lakeloop.demo_data import DemoSpec, generate
    from lakeloop.settings import Settings, SettingsError

    if args.drift_day is not None and args.drift_day > args.days:
        raise UsageError(f"--drift-day {args.drift_day} is after the last day ({args.days}); "
                         "pass --no-drift for data without drift")
    drift_day = None if args.no_drift else args.drift_day or DemoSpec.drift_day
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise CliError(f"{exc}; fix the variable and run the command again") from None
    spec = DemoSpec(days=args.days, rows_per_day=args.rows_per_day,
                    drift_day=drift_day if drift_day and drift_day <= args.days else None,
                    seed=args.seed)
    landing = settings.data_root / "landing"
    started = time.perf_counter()
    try:
        counts = generate(landing, spec, progress=_progress(sys.stderr))
    except OSError as exc:
        raise CliError(f"cannot write under {landing} ({exc.strerror or exc}); set "
                       "LAKELOOP_DATA_ROOT to a folder you can write") from None
    if args.json:
        print(json.dumps(counts))
        return EXIT_OK
    drift = (f", drift from day {spec.drift_day} ({spec.drift_date})" if spec.drift_day
             else ", no drift")
    print(f"wrote {counts['days']} days ({spec.start} to {spec.end}{drift}) to "
          f"{landing / 'credit_risk'}: {counts['applications']} applications, "
          f"{counts['outcomes']} outcomes in {time.perf_counter() - started:.1f}s")
    print("next: materialize them from the Dagster UI (make dev), or run `make demo` for the "
          "whole lifecycle")
    return EXIT_OK


# --- the parser -----------------------------------------------------------------------------
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if not 1024 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port between 1024 and 65535")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n"
                              f"run `{self.prog} --help` for the options and an example\n")


def _command(sub, name: str, func, description: str, example: str, summary: str | None = None):
    parser = sub.add_parser(
        name, help=summary or func.__doc__.splitlines()[0],
        description=textwrap.fill(description, 88), epilog=f"example:\n{example}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("lakeloop")
    except PackageNotFoundError:
        installed = "unknown"
    parser = _Parser(
        prog="lakeloop", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  lakeloop status                          where every use case stands\n"
               "  lakeloop validate my_use_cases/          check use-case files\n"
               "  lakeloop approve credit_risk 3 --by Ada --reason \"model card reviewed\"\n"
               "\n`lakeloop <command> --help` explains each command.")
    parser.add_argument("--version", action="version", version=f"lakeloop {installed}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>",
                                parser_class=_Parser)

    status = _command(
        sub, "status", cmd_status,
        "Where each use case stands: the registry's champion and challenger (with their test "
        "metrics, gates, approval and rollout), the last drift verdict (from the Dagster "
        "instance at DAGSTER_HOME, else <data root>/dagster), the versions awaiting a "
        "person's decision, and whether the endpoint answers. It starts nothing.",
        "  lakeloop status credit_risk\n  lakeloop status --json | jq '.use_cases[].champion'")
    status.add_argument("use_case", nargs="?", metavar="USE_CASE",
                        help="only this use case (default: every use case)")
    status.add_argument("--json", action="store_true",
                        help="print one JSON document for scripts instead of the table")

    validate = _command(
        sub, "validate", cmd_validate,
        "Check use-case files the way the code location loads them, and report every "
        "mistake as FILE:LINE: KEY: PROBLEM. Prints `ok` for each valid file; exits 1 if "
        "any file is invalid.",
        "  lakeloop validate platform/lakeloop/usecases/credit_risk.yaml\n"
        "  lakeloop validate my_use_cases/")
    validate.add_argument("paths", nargs="+", metavar="PATH",
                          help="a use-case file, or a folder whose *.yaml files are checked")

    serve = _command(
        sub, "serve", cmd_serve,
        "Start (or restart) each use case's champion endpoint on this machine, with the "
        "feature server it reads; with --stop, stop every endpoint and the feature server.",
        "  lakeloop serve --use-case credit_risk\n  lakeloop serve --stop")
    serve.add_argument("--use-case", metavar="USE_CASE",
                       help="only this use case (default: every use case with a champion)")
    serve.add_argument("--stop", action="store_true",
                       help="stop every running endpoint and the feature server")

    reports = _command(
        sub, "reports", cmd_reports,
        "Serve the monitoring reports (drift, performance, fairness; HTML and JSON) of the "
        "data root over HTTP, read-only, so their links in the Dagster UI open in one click. "
        "Runs until interrupted; `make dev` starts it for you.",
        "  lakeloop reports\n  lakeloop reports --port 8766")
    reports.add_argument("--port", type=_port, default=8765,
                         help="port on 127.0.0.1 (default 8765; LAKELOOP_REPORTS_URL must "
                         "match if you change it)")

    for verb, example in (("approve", "gates passed; model card reviewed"),
                          ("reject", "TPR gap too wide on age bands")):
        decide = _command(
            sub, verb, cmd_decide,
            f"{verb.capitalize()} the challenger of a sensitive use case. Who, when and why "
            "are recorded on the model version in MLflow and in the Dagster instance; "
            + ("the approval sensor then promotes it." if verb == "approve" else
               "a rejection is final: train a new candidate."),
            f"  lakeloop {verb} credit_risk 3 --by \"Ada (model risk)\" --reason \"{example}\"",
            summary=f"{verb.capitalize()} a challenger (recorded with who, when and why).")
        decide.add_argument("use_case", metavar="USE_CASE", help="the use case, e.g. credit_risk")
        decide.add_argument("version", type=_positive, metavar="VERSION",
                            help="the challenger's model version (`lakeloop status` shows it)")
        decide.add_argument("--by", required=True,
                            help="who decides (goes in the audit trail)")
        decide.add_argument("--reason", required=True,
                            help="why (goes in the audit trail)")

    back = _command(
        sub, "rollback", cmd_rollback,
        "Make the previous champion the champion again, in the registry and on the running "
        "endpoint, and record who and why.",
        "  lakeloop rollback credit_risk --by \"Ada\" --reason \"recall fell in production\"")
    back.add_argument("use_case", metavar="USE_CASE", help="the use case, e.g. credit_risk")
    back.add_argument("--by", required=True, help="who rolls back (goes in the audit trail)")
    back.add_argument("--reason", required=True, help="why (goes in the audit trail)")

    data = _command(
        sub, "demo-data", cmd_demo_data,
        "Generate the credit-risk demo's daily snapshot files (applications, and the "
        "outcomes that became known each day) under <data root>/landing/credit_risk/. "
        "Seeded: the same options write the same files.",
        "  lakeloop demo-data --days 30 --rows-per-day 300 --drift-day 21")
    data.add_argument("--days", type=_positive, default=60,
                      help="how many daily snapshots, from 2026-09-01 (default: 60)")
    data.add_argument("--rows-per-day", type=_positive, default=500,
                      help="mean applications per day (default: 500)")
    data.add_argument("--drift-day", type=_positive,
                      help="the day (1-based) from which the population drifts (default: 45, "
                           "when there are that many days)")
    data.add_argument("--no-drift", action="store_true", help="generate no drift at all")
    data.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    data.add_argument("--json", action="store_true",
                      help="print the counts as JSON for scripts instead of a sentence")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already explained
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.func(args)
    except CliError as exc:
        print(f"lakeloop: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("lakeloop: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
