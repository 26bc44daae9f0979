"""`make bench`: run every benchmark under bench/ and print one table.

Each benchmark module has ``run() -> list[Result]`` and measures us and a peer in the same
run; figures also land in bench/results/<name>.json with the commit and the machine they ran
on (`bench/report.py` renders them). Usage: bench/run.py [--quick] [name ...]; --quick runs
the benchmarks that support it at their smallest sizes, to prove they run, and writes their
files to a temporary folder instead.

Several benchmarks run one after the other, each in a process of its own: what one leaves
behind is never measured in the next. In one process, the lakehouse's Spark driver (a JVM
holding 9 GiB, idle) outlived it through the training benchmark, which then read 1.44x bare
XGBoost against 1.32x run alone (one run each, same commit; the asset's fit alone 1.12x
against 1.04x). This host's own noise is about 10%, so the two runs do not prove the cause;
the isolation is what a benchmark should have either way.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import QUICK_ENV, Result, write  # noqa: E402

# Where a benchmark run in a process of its own (see ``_isolated``) leaves its rows.
ROWS_ENV = "LAKELOOP_BENCH_ROWS"
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
    if len(names) == 1:
        rows = _in_this_process(names[0], quick)
        if os.environ.get(ROWS_ENV):  # run by _isolated: the parent prints the table
            Path(os.environ[ROWS_ENV]).write_text(json.dumps([r.record() for r in rows]))
            return 0
        failed: list[str] = []
    else:
        rows, failed = [], []
        for name in names:
            isolated = _isolated(name, quick)
            if isolated is None:
                failed.append(name)
            rows += isolated or []
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
    if failed:
        print(f"failed (their output is above): {', '.join(failed)}")
        return 1
    return 0


def _in_this_process(name: str, quick: bool) -> list[Result]:
    print(f"▶ {name} ...", flush=True)
    module = importlib.import_module(name)
    if quick and not getattr(module, "QUICK", False):
        print(f"  {name} has no quick size: skipped")
        return []
    results = module.run()
    path = write(name, results, getattr(module, "EXTRA", None))
    print(f"  wrote {path}")
    return results


def _isolated(name: str, quick: bool) -> list[Result] | None:
    """One benchmark in a fresh process (this script, given that one name): its rows, or
    None when it failed. The others still run."""
    keep = {f.name for f in fields(Result)}
    with tempfile.TemporaryDirectory(prefix="lakeloop-bench-") as tmp:
        rows_file = Path(tmp) / "rows.json"
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()),
                               *(["--quick"] if quick else []), name],
                              env={**os.environ, ROWS_ENV: str(rows_file)}, check=False)
        if done.returncode != 0 or not rows_file.exists():
            return None
        return [Result(**{k: v for k, v in row.items() if k in keep})
                for row in json.loads(rows_file.read_text())]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
