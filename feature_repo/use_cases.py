"""Feast objects generated from every use-case file (no side effects: definitions only)."""

import os
from pathlib import Path

from lakeloop.features.store import use_case_objects
from lakeloop.settings import Settings
from lakeloop.usecase import load_use_cases

_settings = Settings.from_env({**os.environ})
_root = Path(os.environ.get("LAKELOOP_DATA_ROOT", _settings.data_root))

for _use_case in load_use_cases(_settings.use_case_dirs):
    for _obj in use_case_objects(
        _use_case, str(_root / _use_case.name / "lakehouse" / _use_case.gold_table)
    ):
        globals()[f"{_use_case.name}__{_obj.name}"] = _obj
