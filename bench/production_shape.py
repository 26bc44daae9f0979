"""The production shape against the embedded defaults, asset by asset, on the same data.

The whole graph in one materialisation (``python -m tests.support.graph_run``), twice on the same
generated days: once on the embedded defaults (Delta on local disk, SQLite for Dagster,
MLflow and Feast's online store) and once on the production-shaped services started here
(PostgreSQL, Redis with a password, SeaweedFS's S3 gateway for the Delta tables and MLflow's
artifacts, an MLflow tracking server; see tests.support.services). Each run is its own process.
The peer is the embedded run: the ratio says what the network services cost on one machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, Result

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "platform"))

EXTRA: dict = {}
DAYS, ROWS = 30, 300


def _use_cases(directory: Path, port: int) -> Path:
    text = (ROOT / "platform" / "lakeloop" / "usecases" / "credit_risk.yaml").read_text()
    text = re.sub(r"(?m)^sensitive: true$", "sensitive: false", text)
    text = re.sub(r"(?m)^  port: \d+$", f"  port: {port}", text)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "credit_risk.yaml").write_text(text)
    return directory


def _graph_run(env: dict, out: Path) -> dict:
    proc = subprocess.run([PYTHON, "-m", "tests.support.graph_run", "--days", str(DAYS),
                           "--rows-per-day", str(ROWS), "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"graph run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def run() -> list[Result]:
    from tests.support.services import ProductionShape, free_port

    base = {k: v for k, v in os.environ.items() if not k.startswith(("LAKELOOP_", "MLFLOW_"))}
    with tempfile.TemporaryDirectory(prefix="lakeloop-prod-bench-") as tmp:
        tmp = Path(tmp)
        embedded_env = {**base, "LAKELOOP_DATA_ROOT": str(tmp / "embedded"),
                        "LAKELOOP_USE_CASES": str(_use_cases(tmp / "uc-embedded", 9700)),
                        "LAKELOOP_FEATURE_SERVER_PORT": str(free_port())}
        embedded = _graph_run(embedded_env, tmp / "embedded.json")
        with ProductionShape(tmp / "services", tmp / "production") as shape:
            production_env = {**base, **shape.env,
                              "LAKELOOP_USE_CASES": str(_use_cases(tmp / "uc-prod", 9800)),
                              "LAKELOOP_FEATURE_SERVER_PORT": str(free_port())}
            production = _graph_run(production_env, tmp / "production.json")
    steps = sorted(set(embedded["steps"]) | set(production["steps"]),
                   key=lambda s: -production["steps"].get(s, 0))
    EXTRA["per_asset_s"] = {s: {"production": production["steps"].get(s),
                                "embedded": embedded["steps"].get(s)} for s in steps}
    EXTRA["runs"] = {"embedded": {k: embedded[k] for k in ("seconds", "peak_memory_gib")},
                     "production": {k: production[k] for k in ("seconds", "peak_memory_gib")}}
    print(f"  {'asset (step)':<58} {'production':>10} {'embedded':>9}")
    for s in steps:
        p, e = production["steps"].get(s), embedded["steps"].get(s)
        print(f"  {s:<58} {p if p is not None else '—':>10} {e if e is not None else '—':>9}")
    return [Result("production_shape", f"whole graph, {DAYS} days x {ROWS} rows (one run)",
                   "s", production["seconds"], "embedded defaults, same data",
                   embedded["seconds"], "reported (no target)", None)]


if __name__ == "__main__":
    for r in run():
        print(r.record())
