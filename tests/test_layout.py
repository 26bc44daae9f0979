"""The tree itself: platform/ is a source root, never a package."""

import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_has_no_init():
    assert (ROOT / "platform" / "lakeloop" / "__init__.py").exists()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_import_platform_is_the_standard_library_from_the_project_root():
    code = "import platform, sys; print(platform.__file__); print(platform.python_version())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert "site-packages" not in out[0] and str(ROOT) not in out[0]
    assert out[1].startswith("3.11")


def test_lakeloop_package_imports_without_heavy_dependencies():
    code = ("import sys, lakeloop.seldon.request_log; "
            "print(any(m in sys.modules for m in ('pyspark', 'dagster', 'feast', 'mlflow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "False"


def test_fixed_layout():
    for entry in ("pyproject.toml", "platform", "assets", "feature_repo", "jobs", "sensors",
                  "infra", "tests", "bench"):
        assert (ROOT / entry).exists(), entry
    assert importlib.import_module("lakeloop.definitions")
