"""Whether this machine has a GPU XGBoost can use, asked of the driver, not of the code
under test: the GPU-path tests assert what each kind of machine must do."""

from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def gpu_present() -> bool:
    """An NVIDIA driver that lists a device, and an XGBoost built with CUDA."""
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA") or shutil.which("nvidia-smi") is None:
        return False
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout
