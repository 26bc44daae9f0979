"""The `lakeloop` commands.

Every command reads the same settings as the code location (LAKELOOP_DATA_ROOT,
LAKELOOP_USE_CASES, ...). Exit status: 0 done, 1 failed (the message says what to do next),
2 the command line itself was wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from lakeloop.cli.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, UsageError
from lakeloop.cli.status import no_champion, print_status, status_report


def _context() -> tuple[Any, dict[str, Any], list[Any]]:
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


def runtime(use_case: Any, resources: dict[str, Any]) -> Any:
    from lakeloop.deployment.runtime import Runtime

    return Runtime(use_case, resources["serving"], resources["mlflow"], resources["lakehouse"],
                   resources["feast"])


def _use_case(use_cases: list[Any], name: str) -> Any:
    for use_case in use_cases:
        if use_case.name == name:
            return use_case
    known = ", ".join(u.name for u in use_cases) or "none"
    raise UsageError(f"no use case named {name!r} (known: {known}); LAKELOOP_USE_CASES "
                     "lists the folders use cases are loaded from")


def _registry_error(exc: Exception, use_case: Any, version: int | None = None) -> CliError:
    what = f"{use_case.name} v{version}" if version is not None else use_case.name
    return CliError(f"{what}: {getattr(exc, 'message', exc)}; `lakeloop status "
                    f"{use_case.name}` shows the registered versions")


class WholeNumber(click.ParamType):
    """A whole number of at least 1 (a model version, a count)."""

    name = "N"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number", param, ctx)
        if number < 1:
            self.fail(f"{number} must be at least 1", param, ctx)
        return number


def _example(*lines: str) -> str:
    # \b keeps click from re-wrapping the example block
    return "\b\nexample:\n" + "\n".join(f"  {line}" for line in lines)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 96},
    epilog="\b\nexamples:\n"
           "  lakeloop status                          where every use case stands\n"
           "  lakeloop validate my_use_cases/          check use-case files\n"
           "  lakeloop approve credit_risk 3 --by Ada --reason \"model card reviewed\"\n"
           "\n`lakeloop <command> --help` explains each command.")
@click.version_option(package_name="lakeloop", prog_name="lakeloop",
                      help="Print the installed version and exit.")
def cli() -> None:
    """What people do by hand with Lakeloop, without reading code.

    Every command reads the same settings as the code location (LAKELOOP_DATA_ROOT,
    LAKELOOP_USE_CASES, ...). Exit status: 0 done, 1 failed (the message says what to do
    next), 2 the command line itself was wrong.
    """


@cli.command(epilog=_example("lakeloop status credit_risk",
                             "lakeloop status --json | jq '.use_cases[].champion'"),
             short_help="Champion, challenger, drift, approvals and endpoint of each use case.")
@click.argument("use_case", required=False)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document for scripts instead of the table.")
def status(use_case: str | None, as_json: bool) -> None:
    """Where each use case (USE_CASE: only that one) stands: the registry's champion and
    challenger (with their test metrics, gates, approval and rollout), the last drift verdict
    (from the Dagster instance at DAGSTER_HOME, else <data root>/dagster), the versions
    awaiting a person's decision, and whether the endpoint answers. It starts nothing."""
    settings, resources, use_cases = _context()
    if use_case:
        use_cases = [_use_case(use_cases, use_case)]
    report = status_report(settings, resources, use_cases)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_status(report)


def _files(paths: tuple[str, ...]) -> list[tuple[str, Path]]:
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


@cli.command(epilog=_example("lakeloop validate platform/lakeloop/usecases/credit_risk.yaml",
                             "lakeloop validate my_use_cases/"),
             short_help="Check use-case files; report every mistake as file:line: key: problem.")
@click.argument("paths", nargs=-1, required=True, metavar="PATH")
def validate(paths: tuple[str, ...]) -> None:
    """Check use-case files (each PATH a file, or a folder whose *.yaml files are checked) the
    way the code location loads them, and report every mistake as FILE:LINE: KEY: PROBLEM.
    Prints `ok` for each valid file; exits 1 if any file is invalid."""
    from lakeloop.usecase import Problem, UseCaseError, load_use_case

    invalid = 0
    files = _files(paths)
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
            for message in exc.located(shown):
                click.echo(message)
            continue
        except OSError as exc:
            invalid += 1
            click.echo(f"{shown}: cannot read it ({exc.strerror or exc})")
            continue
        seen[use_case.name] = shown
        click.echo(f"{shown}: ok")
    if invalid:
        raise CliError(f"{invalid} of {len(files)} use-case files invalid: fix the lines "
                       "above and run `lakeloop validate` again")


@cli.command(epilog=_example("lakeloop serve --use-case credit_risk", "lakeloop serve --stop"),
             short_help="Start the champion endpoint of each use case (or stop them all).")
@click.option("--use-case", metavar="USE_CASE",
              help="Only this use case (default: every use case with a champion).")
@click.option("--stop", is_flag=True,
              help="Stop every running endpoint and the feature server.")
def serve(use_case: str | None, stop: bool) -> None:
    """Start (or restart) each use case's champion endpoint on this machine, with the
    feature server it reads; with --stop, stop every endpoint and the feature server."""
    from lakeloop.deployment.runtime import ensure_champion
    from lakeloop.deployment.serving import ServingError
    from lakeloop.processes import ProcessError

    _, resources, use_cases = _context()
    serving = resources["serving"]
    if stop:
        stopped = serving.stop_all()
        if resources["feast"].stop_feature_server():
            stopped.append("feature-server")
        click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return
    chosen = [_use_case(use_cases, use_case)] if use_case else use_cases
    for case in chosen:
        if resources["mlflow"].version_by_alias(case.name, "champion") is None:
            click.echo(f"{case.name}: {no_champion(case)}")
            continue
        try:
            endpoint, _ = ensure_champion(runtime(case, resources))
        except (ProcessError, ServingError) as exc:
            raise CliError(str(exc)) from None
        click.echo(f"{case.name}: champion v{endpoint.model_version} at "
                   f"{endpoint.predictions_url}")


def _port(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if not 1024 <= value <= 65535:
        raise click.BadParameter(f"{value} is not a port between 1024 and 65535")
    return value


@cli.command(epilog=_example("lakeloop reports", "lakeloop reports --port 8766"),
             short_help="Serve the monitoring reports over HTTP on 127.0.0.1.")
@click.option("--port", type=int, default=8765, show_default=True, callback=_port,
              help="Port on 127.0.0.1 (LAKELOOP_REPORTS_URL must match if you change it).")
def reports(port: int) -> None:
    """Serve the monitoring reports (drift, performance, fairness; HTML and JSON) of the data
    root over HTTP, read-only, so their links in the Dagster UI open in one click. Runs until
    interrupted; `make dev` starts it for you."""
    from lakeloop.monitoring.server import make_server
    from lakeloop.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    try:
        server = make_server(settings.data_root, "127.0.0.1", port)
    except OSError as exc:
        raise CliError(f"port {port} is busy ({exc.strerror}): stop what holds it, or pass "
                       "--port and set LAKELOOP_REPORTS_URL to match") from None
    click.echo(f"monitoring reports of {settings.data_root} at http://127.0.0.1:{port}/ "
               "(Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _audit_options(verb: str) -> list[Any]:
    return [click.option("--by", required=True, help=f"Who {verb} (goes in the audit trail)."),
            click.option("--reason", required=True, help="Why (goes in the audit trail).")]


def _decide(approve: bool, use_case: str, version: int, by: str, reason: str) -> None:
    from mlflow.exceptions import MlflowException

    from lakeloop.deployment import approvals
    from lakeloop.deployment.champion import decide
    from lakeloop.instance import dagster_instance

    decision = approvals.APPROVED if approve else approvals.REJECTED
    settings, resources, use_cases = _context()
    case = _use_case(use_cases, use_case)
    try:
        event = decide(resources["mlflow"], resources["lakehouse"], case, version, decision, by,
                       reason)
    except approvals.ApprovalError as exc:
        raise CliError(str(exc)) from None
    except MlflowException as exc:
        raise _registry_error(exc, case, version) from None
    dagster_instance(settings).report_runless_asset_event(event)
    click.echo(f"{case.name} v{version}: {event.description}")
    if event.metadata["status"].value == approvals.APPROVED:
        click.echo(f"next: the {case.name}_approval_sensor promotes and deploys it while the "
                   f"Dagster daemon runs (make dev), or launch the {case.name}_promote job")
    elif decision == approvals.APPROVED:
        policy = case.approvals
        click.echo(f"next: another approver decides ({policy.required} distinct approvals "
                   "needed, and whoever trained it is never enough alone"
                   + (f"; approvers: {', '.join(policy.approvers)}" if policy.approvers else "")
                   + ")")


def _decision_command(verb: str, example: str, consequence: str) -> click.Command:
    def command(use_case: str, version: int, by: str, reason: str) -> None:
        _decide(verb == "approve", use_case, version, by, reason)

    command.__doc__ = (f"{verb.capitalize()} the challenger VERSION of a sensitive USE_CASE "
                       "(`lakeloop status` shows it). Who, when and why are recorded on the "
                       f"model version in MLflow and in the Dagster instance; {consequence}")
    for decorate in reversed([
            click.argument("use_case"), click.argument("version", type=WholeNumber()),
            *_audit_options("decides")]):
        command = decorate(command)
    return click.command(
        verb, epilog=_example(f"lakeloop {verb} credit_risk 3 --by \"Ada (model risk)\" "
                              f"--reason \"{example}\""),
        short_help=f"{verb.capitalize()} a challenger (recorded with who, when and why).",
    )(command)


cli.add_command(_decision_command("approve", "gates passed; model card reviewed",
                                  "the approval sensor then promotes it."))
cli.add_command(_decision_command("reject", "TPR gap too wide on age bands",
                                  "a rejection is final: train a new candidate."))


@cli.command(epilog=_example("lakeloop rollback credit_risk --by \"Ada\" "
                             "--reason \"recall fell in production\""),
             short_help="Put the previous champion back (and on its running endpoint).")
@click.argument("use_case")
@_audit_options("rolls back")[0]
@_audit_options("rolls back")[1]
def rollback(use_case: str, by: str, reason: str) -> None:
    """Make the previous champion of USE_CASE the champion again, in the registry and on the
    running endpoint, and record who and why."""
    import dagster as dg
    from mlflow.exceptions import MlflowException

    from lakeloop import keys
    from lakeloop.deployment import promotion
    from lakeloop.deployment.champion import rollback as roll_back
    from lakeloop.instance import dagster_instance

    settings, resources, use_cases = _context()
    case = _use_case(use_cases, use_case)
    try:
        move, endpoint = roll_back(runtime(case, resources), by=by, reason=reason)
    except promotion.PromotionError as exc:
        raise CliError(str(exc)) from None
    except MlflowException as exc:
        raise _registry_error(exc, case) from None
    dagster_instance(settings).report_runless_asset_event(dg.AssetMaterialization(
        asset_key=keys.key(case, keys.DEPLOYMENT, "champion"),
        description=f"rolled back by {by}: {reason}",
        metadata={"model_version": int(move.version), "rolled_back_from": move.previous or "",
                  "by": by, "reason": reason}))
    click.echo(f"{case.name}: champion is v{move.version} again (was v{move.previous})")
    if endpoint is not None:
        click.echo(f"{endpoint.predictions_url} now serves v{endpoint.model_version}")


def run_command(command: click.Command, argv: list[str] | None, prog_name: str) -> int:
    """Run a click command with Lakeloop's exit statuses and one-line errors."""
    try:
        result = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        click.echo(f"{prog_name}: interrupted", err=True)
        return 130
    except CliError as exc:
        click.echo(f"{prog_name}: {exc}", err=True)
        return exc.code
    except click.ClickException as exc:
        exc.show()
        return EXIT_FAILED
    return result if isinstance(result, int) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run_command(cli, argv, "lakeloop")


if __name__ == "__main__":
    sys.exit(main())
