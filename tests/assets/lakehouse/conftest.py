"""A small lake per test: the credit_risk contract, a few days of generated snapshots, and
helpers to land files and run the raw and lakehouse assets for chosen days."""

import dataclasses
import datetime as dt
import io
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from lakeloop import keys
from lakeloop.definitions import build_definitions
from lakeloop.lakehouse.tables import is_delta_table, last_commit
from lakeloop.usecase import load_use_cases
from tests.conftest import QUIET, free_port_pair, settings_for, write_use_case
from tests.support.demo_data import DemoSpec, generate

START = dt.date(2026, 9, 1)
DAYS = [(START + dt.timedelta(d)).isoformat() for d in range(4)]


@dataclasses.dataclass
class Lake:
    root: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    use_case: object
    spark: object

    def landing(self, source: str = "applications") -> Path:
        return self.root / "landing" / "credit_risk" / source

    def frame(self, day: str, source: str = "applications", typed: bool = False
              ) -> pd.DataFrame:
        path = self.landing(source) / f"{day}.csv"
        if typed:
            return pd.read_csv(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False)

    def land(self, day: str, frame: pd.DataFrame | bytes, source: str = "applications",
             fmt: str = "csv") -> Path:
        path = self.landing(source) / f"{day}.{fmt}"
        if isinstance(frame, bytes):
            path.write_bytes(frame)
        elif fmt == "csv":
            path.write_text(frame.to_csv(index=False))
        else:
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            path.write_bytes(buffer.getvalue())
        return path

    def key(self, layer: str, noun: str) -> dg.AssetKey:
        return keys.key(self.use_case, layer, noun)

    def path(self, noun: str, layer: str = keys.LAKEHOUSE) -> Path:
        return self.root.joinpath(*self.key(layer, noun).path)

    def version(self, noun: str) -> int | None:
        path = self.path(noun)
        return last_commit(self.spark, path).version if is_delta_table(path) else None

    def table(self, noun: str) -> pd.DataFrame:
        return self.spark.read.format("delta").load(str(self.path(noun))).toPandas()

    def ingest(self, first: str, last: str | None = None, sources=("applications",),
               extra: tuple[str, ...] = ()) -> dg.ExecuteInProcessResult:
        selection = []
        for source in sources:
            selection += [self.key(keys.RAW, source),
                          self.key(keys.LAKEHOUSE, f"bronze_{source}"),
                          self.key(keys.LAKEHOUSE, f"silver_{source}"),
                          self.key(keys.LAKEHOUSE, f"quarantine_{source}")]
        selection += [self.key(keys.LAKEHOUSE, noun) for noun in extra]
        return dg.materialize(
            list(self.defs.assets), selection=selection, resources=self.defs.resources,
            instance=self.instance, run_config=QUIET, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": first,
                  "dagster/asset_partition_range_end": last or first})


def checks_of(result) -> dict[str, object]:
    return {e.event_specific_data.check_name: e.event_specific_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def metadata_of(result, noun: str) -> dict:
    out = {}
    for e in result.all_events:
        if e.event_type_value == "ASSET_MATERIALIZATION":
            mat = e.event_specific_data.materialization
            if mat.asset_key.path[-1] == noun:
                out = {k: v.value for k, v in mat.metadata.items()}
    return out


def failure_text(result) -> str:
    texts = []
    for e in result.all_events:
        if e.is_step_failure:
            data = e.event_specific_data
            texts.append(str(getattr(data.error, "message", "")) if data.error else "")
            meta = getattr(data, "user_failure_data", None)
            if meta is not None:
                texts.append(meta.description or "")
                texts += [str(v.value) for v in meta.metadata.values()]
    return "\n".join(texts)


def make_lake(tmp_path, spark, **overrides) -> Lake:
    root = tmp_path / "lake"
    use_cases = write_use_case(tmp_path / "use_cases", free_port_pair(), **overrides).parent
    generate(root / "landing", DemoSpec(days=len(DAYS), rows_per_day=40, drift_day=None,
                                        seed=3))
    return _open_lake(root, use_cases, spark)


def _open_lake(root: Path, use_cases: Path, spark) -> Lake:
    settings = settings_for(root, use_cases)
    defs = build_definitions(settings)
    return Lake(root, defs, dg.DagsterInstance.ephemeral(),
                load_use_cases(settings.use_case_dirs)[0], spark)


@pytest.fixture
def lake(tmp_path, spark) -> Lake:
    return make_lake(tmp_path, spark)


@pytest.fixture(scope="module")
def day_zero(tmp_path_factory, spark) -> Path:
    """A lake whose first day is loaded cleanly, built once per module: the folder that
    holds its data root and its use-case file."""
    folder = tmp_path_factory.mktemp("day_zero")
    template = make_lake(folder, spark)
    result = template.ingest(DAYS[0])
    assert result.success, failure_text(result)
    return folder


@pytest.fixture
def loaded_lake(tmp_path, spark, day_zero) -> Lake:
    """A lake of this test's own with day 0 already loaded: a copy of ``day_zero`` (Delta
    tables are files with relative paths, so a copy is a complete, independent lake)."""
    shutil.copytree(day_zero, tmp_path, dirs_exist_ok=True)
    return _open_lake(tmp_path / "lake", tmp_path / "use_cases", spark)
