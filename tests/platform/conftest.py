"""Fixtures of the library's tests: the command line's environment."""

import pytest

from tests.conftest import free_port_pair, write_use_case


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A fresh data root, one use case (the shipped one on its own port), no Dagster home."""
    root = tmp_path / "root"
    use_case = write_use_case(tmp_path / "use_cases", free_port_pair())
    monkeypatch.setenv("LAKELOOP_DATA_ROOT", str(root))
    monkeypatch.setenv("LAKELOOP_USE_CASES", str(use_case.parent))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("LAKELOOP_ENV", raising=False)
    return root, use_case
