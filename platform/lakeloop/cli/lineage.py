"""`lakeloop trace`: a prediction (or a model version) back to the data it came from."""

from __future__ import annotations

import json

import click

from lakeloop.cli.commands import WholeNumber, _context, _example, _use_case, cli
from lakeloop.cli.errors import CliError


@cli.command(epilog=_example("lakeloop trace 7f3c2a9e-...           # a request id",
                             "lakeloop trace APP-2026-10-15-000042   # an event's key",
                             "lakeloop trace --model 3 credit_risk --json"),
             short_help="From a prediction (or a model version) back to its data.")
@click.argument("target")
@click.option("--model", "model_version", type=WholeNumber(),
              help="Trace model version N of the use case TARGET instead of a request.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--no-verify", is_flag=True,
              help="Do not hash the raw snapshots again (large data).")
def trace(target: str, model_version: int | None, as_json: bool, no_verify: bool) -> None:
    """The lineage of one prediction: TARGET is a request id (the answer's meta.puid) or an
    event's key. It prints the answer (time, inputs, probability, predictor), the model
    version and its MLflow run, the feature service, the training set's Delta version, the
    tables it was built from and the versions they read, the raw snapshot hashes (hashed again
    and compared), and the approvals and rollout that put the model in service. With
    --model N, TARGET is a use case and the chain starts at its model version N. Exit status
    1 when a link of the chain does not resolve."""
    from mlflow.exceptions import MlflowException

    from lakeloop.trace import TraceError, model_chain, render, trace_request

    _, resources, use_cases = _context()
    try:
        if model_version is not None:
            case = _use_case(use_cases, target)
            chain = {"use_case": case.name,
                     **model_chain(resources, case, str(model_version), not no_verify)}
        else:
            chain = trace_request(resources, use_cases, target, not no_verify)
    except TraceError as exc:
        raise CliError(str(exc)) from None
    except MlflowException as exc:
        raise CliError(f"the MLflow registry did not answer: {exc}") from None
    click.echo(json.dumps(chain, indent=2, sort_keys=True, default=str) if as_json
               else render(chain))
    if chain.get("whole") is False:
        raise CliError("a link of the chain does not resolve (see the FAILED lines)")


def _day(ctx: click.Context, param: click.Parameter, value: str | None):
    import datetime as dt

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@cli.command(epilog=_example("lakeloop audit credit_risk",
                             "lakeloop audit credit_risk --since 2026-10-01 --kind approved "
                             "--kind promoted",
                             "lakeloop audit credit_risk --json"),
             short_help="Every decision and alarm of a use case, in order.")
@click.argument("use_case")
@click.option("--since", callback=_day, help="Only from this UTC day on (YYYY-MM-DD).")
@click.option("--kind", "kinds", multiple=True,
              help="Only events of this kind (repeatable): gate_failed, approved, promoted, "
              "rolled_back, retraining_requested, ...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def audit(use_case: str, since, kinds: tuple[str, ...], as_json: bool) -> None:
    """The audit trail of USE_CASE: gate verdicts, approvals and rejections, promotions,
    rollouts and rollbacks, retraining requests, monitoring alarms and failed runs, each with
    when, which model version, who, why, its links and where its alert went. Read from the
    use case's append-only Delta table (<data root>/USE_CASE/governance/audit)."""
    from lakeloop import governance
    from lakeloop.governance.events import KINDS

    _, resources, use_cases = _context()
    case = _use_case(use_cases, use_case)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: kinds are {', '.join(KINDS)}",
                                 param_hint="--kind")
    trail = governance.trail(resources["lakehouse"], case)
    entries = trail.read(since, kinds)
    if as_json:
        click.echo(json.dumps({"use_case": case.name, "table": str(trail.path),
                               "events": [e.to_dict() for e in entries]},
                              indent=2, sort_keys=True, default=str))
        return
    if not entries:
        click.echo(f"{case.name}: no events recorded" + (f" since {since}" if since else "")
                   + f" ({trail.path})")
        return
    click.echo(f"{case.name}: {len(entries)} event(s) from {trail.path}")
    for e in entries:
        version = f"v{e.model_version}" if e.model_version else "-"
        click.echo(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.kind:<21} {version:<5} {e.actor:<18} "
                   f"{e.summary}")
        for name, url in e.links.items():
            click.echo(f"{'':>49}{name}: {url}")
        if e.alerted or e.alert_errors:
            click.echo(f"{'':>49}alerted: {e.alerted or 'none'}"
                       + (f"; not delivered: {e.alert_errors}" if e.alert_errors else ""))
