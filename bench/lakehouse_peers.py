"""The same raw-snapshot-to-gold transform as the Spark assets, on one node, twice: with
pyarrow and with polars. Same rules (types, nullability, ranges, allowed values, unique key
per snapshot, first row wins), same outputs (bronze, silver, quarantine, gold as Parquet).

Each peer runs in a process of its own, as ours runs in the benchmark's process:
``python bench/lakehouse_peers.py ENGINE RAW_DIR OUT USE_CASE DAY [DAY ...]`` imports
everything first, then times the transform alone and prints ``{"seconds": ..., "rows": ...}``;
the benchmark samples that process's memory the way it samples its own (``common.run_tracked``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lakeloop.settings import Settings
from lakeloop.usecase import UseCase, load_use_cases

NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
INTEGER = r"^[+-]?\d+$"


def _snapshots(raw_dir: Path, days: list[str]) -> list[tuple[str, Path]]:
    out = []
    for day in days:
        pointer = json.loads((raw_dir / f"ds={day}" / "_current.json").read_text())
        out.append((day, Path(pointer["path"])))
    return out


# ---------------------------------------------------------------------------------- pyarrow
def pyarrow_transform(raw_dir: Path, days: list[str], out: Path, use_case: UseCase) -> int:
    source = use_case.events
    rows = 0
    for day, path in _snapshots(raw_dir, days):
        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh))
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header}, strings_can_be_null=False))
        n = table.num_rows
        rows += n
        sha = path.stem
        now = pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC"))
        bronze = (table.append_column("_row", pa.array(np.arange(n, dtype=np.int64)))
                  .append_column("_snapshot_hash", pa.array([sha] * n))
                  .append_column("_ingested_at", pa.array([now.as_py()] * n,
                                                          pa.timestamp("us", tz="UTC"))))
        pq.write_table(bronze, out / "bronze" / f"ds={day}.parquet")

        typed, masks = {}, []
        reasons_by_rule = []
        for name, col in source.columns.items():
            raw = pc.utf8_trim_whitespace(table[name])
            raw = pc.if_else(pc.equal(raw, ""), pa.scalar(None, pa.string()), raw)
            present = pc.is_valid(raw)
            if col.type in ("double", "int"):
                ok = pc.match_substring_regex(raw, NUMBER if col.type == "double" else INTEGER)
                ok = pc.fill_null(ok, False)
                value = pc.cast(pc.if_else(ok, raw, pa.scalar(None, pa.string())),
                                pa.float64() if col.type == "double" else pa.int64())
            elif col.type == "timestamp":
                value = pc.strptime(raw, format="%Y-%m-%dT%H:%M:%S", unit="s",
                                    error_is_null=True)
            else:
                value = raw
            typed[name] = value
            bad_type = pc.and_(present, pc.is_null(value))
            reasons_by_rule.append((f"{name}: not a valid {col.type}", bad_type))
            if not col.nullable:
                reasons_by_rule.append((f"{name}: null in a non-nullable column",
                                        pc.invert(present)))
            if col.min is not None:
                reasons_by_rule.append((f"{name}: below the minimum {col.min:g}",
                                        pc.fill_null(pc.less(value, col.min), False)))
            if col.max is not None:
                reasons_by_rule.append((f"{name}: above the maximum {col.max:g}",
                                        pc.fill_null(pc.greater(value, col.max), False)))
            if col.allowed is not None:
                allowed = pa.array([str(a) for a in col.allowed]) if col.type == "string" \
                    else pa.array([float(a) for a in col.allowed])
                values = value if col.type == "string" else pc.cast(value, pa.float64())
                reasons_by_rule.append((f"{name}: not one of the allowed values",
                                        pc.and_(pc.is_valid(value),
                                                pc.invert(pc.is_in(values, allowed)))))
        key = typed[source.key]
        keys = pa.table({"k": key, "_row": pa.array(np.arange(n, dtype=np.int64))})
        first = keys.group_by("k").aggregate([("_row", "min")])
        joined = keys.join(first, "k").sort_by("_row")
        dup = pc.and_(pc.is_valid(joined["k"]),
                      pc.not_equal(joined["_row"], joined["_row_min"]))
        reasons_by_rule.append((f"{source.key}: duplicate key in the same snapshot", dup))
        any_bad = reasons_by_rule[0][1]
        for _, mask in reasons_by_rule[1:]:
            any_bad = pc.or_(any_bad, mask)
        good = pc.invert(any_bad)
        silver = pa.table({**typed, "_snapshot_hash": bronze["_snapshot_hash"]}).filter(good)
        pq.write_table(silver, out / "silver" / f"ds={day}.parquet")
        bad_idx = np.flatnonzero(any_bad.to_numpy(zero_copy_only=False))
        masks = {r: m.to_numpy(zero_copy_only=False) for r, m in reasons_by_rule}
        raw_rows = table.take(pa.array(bad_idx)).to_pylist()
        quarantine = pa.table({
            "reasons": [[r for r, m in masks.items() if m[i]] for i in bad_idx],
            "record": [json.dumps(r) for r in raw_rows],
            "row_in_snapshot": pa.array(bad_idx, pa.int64()),
        })
        pq.write_table(quarantine, out / "quarantine" / f"ds={day}.parquet")
        derived = use_case.features.entity.derived
        gold = {use_case.entity.join_key: silver[use_case.entity.join_key],
                source.key: silver[source.key], "event_timestamp": silver[source.event_time]}
        for f in use_case.entity_features:
            if f in derived:  # the benchmark's one derived feature: debt / max(income, 1)
                gold[f] = pc.divide(silver["existing_debt"],
                                    pc.max_element_wise(silver["income"], 1.0))
            else:
                gold[f] = silver[f]
        pq.write_table(pa.table(gold), out / "gold" / f"ds={day}.parquet")
    return rows


# ----------------------------------------------------------------------------------- polars
def polars_transform(raw_dir: Path, days: list[str], out: Path, use_case: UseCase) -> int:
    source = use_case.events
    kinds = {"double": pl.Float64, "int": pl.Int64, "boolean": pl.Boolean}
    rows = 0
    for day, path in _snapshots(raw_dir, days):
        table = pl.read_csv(path, infer_schema=False)
        n = table.height
        rows += n
        bronze = table.with_columns(
            pl.int_range(0, n, dtype=pl.Int64).alias("_row"),
            pl.lit(path.stem).alias("_snapshot_hash"),
            pl.lit(dt.datetime.now(dt.UTC)).alias("_ingested_at"))
        bronze.write_parquet(out / "bronze" / f"ds={day}.parquet")
        raw = {n_: pl.col(n_).str.strip_chars().replace("", None) for n_ in source.columns}
        typed, rules = {}, []
        for name, col in source.columns.items():
            if col.type == "timestamp":
                value = raw[name].str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
            elif col.type in kinds:
                value = raw[name].cast(kinds[col.type], strict=False)
            else:
                value = raw[name]
            typed[name] = value
            rules.append((f"{name}: not a valid {col.type}",
                          raw[name].is_not_null() & value.is_null()))
            if not col.nullable:
                rules.append((f"{name}: null in a non-nullable column", raw[name].is_null()))
            if col.min is not None:
                rules.append((f"{name}: below the minimum {col.min:g}",
                              (value < col.min).fill_null(False)))
            if col.max is not None:
                rules.append((f"{name}: above the maximum {col.max:g}",
                              (value > col.max).fill_null(False)))
            if col.allowed is not None:
                allowed = [str(a) if col.type == "string" else float(a) for a in col.allowed]
                check = value if col.type == "string" else value.cast(pl.Float64)
                rules.append((f"{name}: not one of the allowed values",
                              value.is_not_null() & ~check.is_in(allowed)))
        key = typed[source.key]
        rules.append((f"{source.key}: duplicate key in the same snapshot",
                      key.is_not_null() & (pl.col("_row") != pl.col("_row").min().over(key))))
        checked = bronze.with_columns(
            *[v.alias(f"__t_{k}") for k, v in typed.items()],
            *[m.alias(f"__r_{i}") for i, (_, m) in enumerate(rules)])
        bad = pl.any_horizontal([pl.col(f"__r_{i}") for i in range(len(rules))])
        silver = checked.filter(~bad).select(
            *[pl.col(f"__t_{k}").alias(k) for k in source.columns], "_snapshot_hash")
        silver.write_parquet(out / "silver" / f"ds={day}.parquet")
        quarantine = checked.filter(bad).select(
            pl.concat_list([pl.when(pl.col(f"__r_{i}")).then(pl.lit(r)).otherwise(None)
                            for i, (r, _) in enumerate(rules)]).list.drop_nulls()
            .alias("reasons"),
            pl.struct(list(source.columns)).struct.json_encode().alias("record"),
            pl.col("_row").alias("row_in_snapshot"))
        quarantine.write_parquet(out / "quarantine" / f"ds={day}.parquet")
        derived = use_case.features.entity.derived
        features = [(pl.col("existing_debt") / pl.max_horizontal(pl.col("income"), pl.lit(1.0)))
                    .alias(f) if f in derived else pl.col(f) for f in use_case.entity_features]
        silver.select(use_case.entity.join_key, source.key,
                      pl.col(source.event_time).alias("event_timestamp"), *features) \
            .write_parquet(out / "gold" / f"ds={day}.parquet")
    return rows


TRANSFORMS = {"pyarrow": pyarrow_transform, "polars": polars_transform}


def main(argv: list[str]) -> int:
    engine, raw_dir, out, name, *days = argv
    use_case = next(u for u in load_use_cases(Settings.from_env({}).use_case_dirs)
                    if u.name == name)
    for sub in ("bronze", "silver", "quarantine", "gold"):
        (Path(out) / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()  # every import is done: the transform alone is timed
    rows = TRANSFORMS[engine](Path(raw_dir), days, Path(out), use_case)
    seconds = time.perf_counter() - started
    # The kernel's own peak for this process (KiB on Linux): a cross-check of the sampling.
    maxrss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"seconds": seconds, "rows": rows, "ru_maxrss_gib": maxrss_gib}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
