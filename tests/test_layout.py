"""The tree itself: platform/ is a source root, never a package."""

import ast
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
    code = ("import sys, lakeloop.deployment.seldon.request_log; "
            "print(any(m in sys.modules for m in ('pyspark', 'dagster', 'feast', 'mlflow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "False"


def test_fixed_layout():
    for entry in ("pyproject.toml", "platform", "assets", "feature_repo", "jobs", "sensors",
                  "infra", "tests", "bench"):
        assert (ROOT / entry).exists(), entry
    assert importlib.import_module("lakeloop.definitions")


# --- the architecture's rules (docs/architecture.md) ---------------------------------------
LIBRARY = ROOT / "platform" / "lakeloop"
STAGES = ("raw", "lakehouse", "features", "training", "deployment", "monitoring")
WIRING = ("assets", "jobs", "sensors", "tests", "bench")
MAX_MODULE_LINES = 400
MAX_ASSET_BODY_LINES = 40


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_only_the_composition_root_imports_the_wiring():
    offenders = {}
    for path in LIBRARY.rglob("*.py"):
        wiring = {m for m in _imports(path) if m.split(".")[0] in WIRING}
        if wiring and path != LIBRARY / "definitions.py":
            offenders[str(path.relative_to(ROOT))] = sorted(wiring)
    assert offenders == {}


def test_no_library_module_is_longer_than_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in LIBRARY.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def _decorated_as_dagster(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("asset", "multi_asset", "asset_check", "multi_asset_check"):
            return True
    return False


def test_asset_bodies_are_thin_adapters():
    bodies = {}
    for path in (ROOT / "assets").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and _decorated_as_dagster(node):
                bodies[f"{path.relative_to(ROOT)}:{node.name}"] = (
                    node.end_lineno - node.body[0].lineno + 1)
    assert len(bodies) >= 15  # the walk found the assets
    assert {k: n for k, n in bodies.items() if n > MAX_ASSET_BODY_LINES} == {}


def test_a_stage_has_one_name_across_assets_the_library_and_tests():
    for stage in STAGES:
        assert (ROOT / "assets" / stage).is_dir(), stage
        assert (LIBRARY / stage / "__init__.py").exists(), stage
        assert (ROOT / "tests" / "platform" / stage / "__init__.py").exists(), stage
    for tree in ("assets", "platform"):
        named = {p.name for p in (ROOT / "tests" / tree).iterdir()
                 if p.is_dir() and not p.name.startswith("__")}
        assert named <= set(STAGES), (tree, named - set(STAGES))


def test_what_is_not_the_platform_is_not_in_the_library():
    for module in ("demo", "demo_data", "graph_run", "services"):
        assert not (LIBRARY / f"{module}.py").exists(), module
