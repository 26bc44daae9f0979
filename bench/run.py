"""`make bench`: run every benchmark under bench/ and print one table.

Each benchmark module has ``run() -> list[Result]`` and measures us and a peer in the same
run; figures also land in bench/results/<name>.json with the commit and the machine they ran
on (`bench/report.py` renders them). Usage: bench/run.py [--quick] [name ...]; --quick runs
the benchmarks that support it at their smallest sizes, to prove they run, and writes their
files to a temporary folder instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import QUICK_ENV, Result, write  # noqa: E402

BENCHMARKS = ["demo_graph", "lakehouse", "features", "training", "serving", "batch_scoring",
              "drift_calibration", "fairness_calibration", "dagster_scale", "production_shape"]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if a != "--quick"] or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    if quick:
        os.environ[QUICK_ENV] = "1"
    rows: list[Result] = []
    for name in names:
        print(f"▶ {name} ...", flush=True)
        module = importlib.import_module(name)
        if quick and not getattr(module, "QUICK", False):
            print(f"  {name} has no quick size: skipped")
            continue
        results = module.run()
        path = write(name, results, getattr(module, "EXTRA", None))
        print(f"  wrote {path}")
        rows += results
    header = ("benchmark", "metric", "ours", "peer", "peer value", "ratio", "target", "met")
    table = [header] + [(
        r.name, r.metric, _fmt(r.value, r.unit), r.peer or "—", _fmt(r.peer_value, r.unit),
        "—" if r.ratio is None else f"{r.ratio:.2f}x", r.target,
        "—" if r.met is None else ("yes" if r.met else "NO")) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
