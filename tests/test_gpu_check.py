"""bench/gpu_check.py runs here too: without a GPU it trains on the CPU, reads back that
XGBoost did not use CUDA, and says so (exit status 2) instead of reporting a fake speed-up."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_reports_no_cuda_honestly_on_a_cpu_machine():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--rows",
                           "30000", "--rounds", "20"], capture_output=True, text=True,
                          timeout=300)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["cpu_seconds"] > 0 and report["cpu_rounds"] > 0
    assert proc.returncode == 2 and report["cuda"] is False, proc.stdout + proc.stderr
    assert report["reason"]
