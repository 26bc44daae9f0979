"""bench/gpu_check.py on either kind of machine: with a GPU it trains on CUDA and reports the
speed-up against all of the host's cores; without one it reads back that XGBoost did not use
CUDA and says so (exit status 2) instead of reporting a fake speed-up."""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.gpu import gpu_present

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_reports_what_the_machine_has():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--rows",
                           "30000", "--rounds", "20"], capture_output=True, text=True,
                          timeout=300)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["cpu_seconds"] > 0 and report["cpu_rounds"] > 0
    if gpu_present():
        # a speed-up below target is exit 1, still a measured CUDA run
        assert proc.returncode in (0, 1) and report["cuda"] is True, proc.stdout + proc.stderr
        assert report["cuda_rounds"] == report["cpu_rounds"] and report["speedup"] > 0
    else:
        assert proc.returncode == 2 and report["cuda"] is False, proc.stdout + proc.stderr
        assert report["reason"]
