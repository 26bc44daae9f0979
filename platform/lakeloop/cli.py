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


def cmd_serve(args) -> int:
    """Start the champion endpoint of each use case (or stop every endpoint)."""
    from lakeloop.deployment import ensure_champion

    settings, resources, use_cases = _context()
    serving = resources["serving"]
    if args.stop:
        stopped = serving.stop_all()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    for use_case in use_cases:
        if args.use_case and use_case.name != args.use_case:
            continue
        if resources["mlflow"].version_by_alias(use_case.name, "champion") is None:
            print(f"{use_case.name}: no champion yet (run `make demo` or materialize "
                  f"{use_case.name}/deployment/seldon_deployment)")
            continue
        endpoint, _ = ensure_champion(use_case, serving, resources["mlflow"],
                                      resources["lakehouse"])
        print(f"{use_case.name}: champion v{endpoint.model_version} at "
              f"{endpoint.predictions_url}")
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
