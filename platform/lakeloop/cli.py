"""The `lakeloop` command line: what people do by hand, without reading code."""

from __future__ import annotations

import argparse
import json
import sys


def _context():
    from lakeloop.resources import build_resources
    from lakeloop.settings import Settings
    from lakeloop.usecase import load_use_cases

    settings = Settings.from_env()
    return settings, build_resources(settings), load_use_cases(settings.use_case_dirs)


def runtime(use_case, resources):
    from lakeloop.deployment import Runtime

    return Runtime(use_case, resources["serving"], resources["mlflow"], resources["lakehouse"],
                   resources["feast"])


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
        return 0
    for use_case in use_cases:
        if args.use_case and use_case.name != args.use_case:
            continue
        if resources["mlflow"].version_by_alias(use_case.name, "champion") is None:
            print(f"{use_case.name}: no champion yet (run `make demo` or materialize "
                  f"{use_case.name}/deployment/seldon_deployment)")
            continue
        try:
            endpoint, _ = ensure_champion(runtime(use_case, resources))
        except (ProcessError, ServingError) as exc:
            raise SystemExit(f"lakeloop: {exc}") from None
        print(f"{use_case.name}: champion v{endpoint.model_version} at "
              f"{endpoint.predictions_url}")
    return 0


def _use_case(use_cases, name: str):
    for use_case in use_cases:
        if use_case.name == name:
            return use_case
    known = ", ".join(u.name for u in use_cases)
    raise SystemExit(f"lakeloop: no use case named {name!r} (known: {known})")


def cmd_decide(args) -> int:
    """Approve or reject a challenger (recorded on the model version with who, when, why)."""
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
        raise SystemExit(f"lakeloop: {exc}") from None
    dagster_instance(settings).report_runless_asset_event(event)
    print(f"{use_case.name} v{args.version}: {event.description}")
    if decision == approvals.APPROVED:
        print(f"next: the {use_case.name}_approval_sensor promotes and deploys it while the "
              f"Dagster daemon runs (make dev), or launch the {use_case.name}_promote job")
    return 0


def cmd_rollback(args) -> int:
    """Put the previous champion back (and on its local endpoint, if one runs)."""
    from assets.deployment.promotion import rollback
    from lakeloop import keys, promotion
    from lakeloop.instance import dagster_instance

    settings, resources, use_cases = _context()
    use_case = _use_case(use_cases, args.use_case)
    try:
        move, endpoint = rollback(runtime(use_case, resources), by=args.by,
                                  reason=args.reason)
    except promotion.PromotionError as exc:
        raise SystemExit(f"lakeloop: {exc}") from None
    import dagster as dg

    dagster_instance(settings).report_runless_asset_event(dg.AssetMaterialization(
        asset_key=keys.key(use_case, keys.DEPLOYMENT, "champion"),
        description=f"rolled back by {args.by}: {args.reason}",
        metadata={"model_version": int(move.version), "rolled_back_from": move.previous or "",
                  "by": args.by, "reason": args.reason}))
    print(f"{use_case.name}: champion is v{move.version} again (was v{move.previous})")
    if endpoint is not None:
        print(f"{endpoint.predictions_url} now serves v{endpoint.model_version}")
    return 0


def cmd_demo_data(args) -> int:
    """Write demo snapshot files into the landing folder."""
    from lakeloop.demo_data import DemoSpec, generate
    from lakeloop.settings import Settings

    settings = Settings.from_env()
    spec = DemoSpec(days=args.days, rows_per_day=args.rows_per_day,
                    drift_day=args.drift_day, seed=args.seed)
    counts = generate(settings.data_root / "landing", spec)
    print(json.dumps(counts))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakeloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help=cmd_serve.__doc__)
    serve.add_argument("--use-case", help="only this use case")
    serve.add_argument("--stop", action="store_true", help="stop every running endpoint")
    serve.set_defaults(func=cmd_serve)
    for verb in ("approve", "reject"):
        decide = sub.add_parser(verb, help=cmd_decide.__doc__)
        decide.add_argument("use_case", help="the use case, e.g. credit_risk")
        decide.add_argument("version", type=int, help="the model version (the challenger)")
        decide.add_argument("--by", required=True, help="who decides (goes in the audit trail)")
        decide.add_argument("--reason", required=True, help="why (goes in the audit trail)")
        decide.set_defaults(func=cmd_decide)
    back = sub.add_parser("rollback", help=cmd_rollback.__doc__)
    back.add_argument("use_case")
    back.add_argument("--by", required=True)
    back.add_argument("--reason", required=True)
    back.set_defaults(func=cmd_rollback)
    data = sub.add_parser("demo-data", help=cmd_demo_data.__doc__)
    data.add_argument("--days", type=int, default=60)
    data.add_argument("--rows-per-day", type=int, default=500)
    data.add_argument("--drift-day", type=int, default=45)
    data.add_argument("--seed", type=int, default=7)
    data.set_defaults(func=cmd_demo_data)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
