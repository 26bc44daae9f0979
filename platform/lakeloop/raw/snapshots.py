"""Raw snapshots: immutable, content-addressed copies of the files a source system drops.

A snapshot for day D of source S lands at ``landing/<use case>/<S>/D.<csv|parquet>``. Loading
it copies the bytes to ``<use case>/raw/<S>/ds=D/<sha256>.<ext>`` (never overwritten) and
points ``ds=D/_current.json`` at it; the same bytes delivered again are recognised by their
hash and not loaded twice.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

CURRENT = "_current.json"
# The hash recorded for a day whose source delivered no file and says that means "nothing
# happened" (see Source.missing_file): a file landing later for that day differs from it.
ABSENT = "absent"


class SnapshotError(Exception):
    """A snapshot is missing or cannot be read; the message says which and why."""


@dataclass(frozen=True)
class Snapshot:
    ds: str
    sha256: str
    path: str
    source_file: str
    size_bytes: int
    rows: int
    loaded_at: str
    extra_columns: tuple[str, ...] = ()
    duplicate_of_current: bool = False
    absent: bool = False  # no file for the day, and the source says that means no rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def landing_file(landing_dir: Path, ds: str, fmt: str) -> Path:
    dt.date.fromisoformat(ds)  # partition keys are dates: never a path from user input
    return landing_dir / f"{ds}.{fmt}"


def count_rows(path: Path, fmt: str) -> int:
    """Data rows of a snapshot file: the Parquet footer's count, or the CSV's records after
    its header (quoted values may hold line breaks; blank lines are not rows)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as fh:
        quoted = any(b'"' in chunk for chunk in iter(lambda: fh.read(1 << 20), b""))
    if quoted:  # a quoted value may span lines: let the CSV parser count records
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return max(sum(1 for record in csv.reader(fh) if record) - 1, 0)
    with path.open("rb") as fh:  # \n, \r\n; a last line may lack its line break
        lines = sum(1 for line in fh if line.strip())
    return max(lines - 1, 0)  # minus the header line


def _utf8_problem(path: Path) -> str | None:
    """Where a file stops being UTF-8 text, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return f"byte {offset + exc.start}: {exc.reason}"
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "it ends inside a character"
    return None


def check_readable(path: Path, fmt: str, columns: dict[str, str]) -> list[str]:
    """Whole-file problems (format, encoding, missing contract columns); returns extra columns.

    ``columns`` maps each contract column to its type. Raises SnapshotError for a file that
    cannot be loaded as a whole, so no table is touched; the message names the file, the
    problem and the fix.
    """
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.ParquetFile(path).schema_arrow
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise SnapshotError(f"{path.name} is not a readable Parquet file ({exc}); "
                                "deliver it again (a truncated copy?)") from None
        header = list(schema.names)
        retyped = _retyped_parquet_columns(schema, columns)
        if retyped:
            raise SnapshotError(f"{path.name}: contract columns changed type: "
                                f"{', '.join(retyped)}; fix the export or change the "
                                "use-case file's contract first")
    else:
        problem = _utf8_problem(path)
        if problem is not None:
            raise SnapshotError(f"{path.name} is not UTF-8 text ({problem}); re-export it as "
                                "UTF-8 (\"CSV UTF-8\" in a spreadsheet)")
        header = header_of(path, fmt)
        if not any(header):
            raise SnapshotError(f"{path.name} has no header line; the first line must name "
                                "the columns")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise SnapshotError(f"{path.name} names column(s) {', '.join(repeated)} more than "
                            "once; rename them in the export")
    missing = [c for c in columns if c not in header]
    if missing:
        raise SnapshotError(
            f"{path.name} lacks contract column(s) {', '.join(missing)} (its header: "
            f"{', '.join(header[:12])}{', ...' if len(header) > 12 else ''}); a removed or "
            "renamed column needs a change to the use-case file first"
        )
    return [h for h in header if h not in columns]


_ARROW_FAMILY = {
    "string": ("string", "large_string"),
    # pandas writes an int column with a missing value as double: whole values load as ints,
    # a fractional one is quarantined row by row.
    "int": ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "float",
            "double"),
    "double": ("float", "double", "halffloat", "int8", "int16", "int32", "int64"),
    "boolean": ("bool",),
    "timestamp": ("timestamp", "date32", "string", "large_string"),
    "date": ("date32", "timestamp", "string", "large_string"),
}


def _retyped_parquet_columns(schema, columns: dict[str, str]) -> list[str]:
    retyped = []
    for name, type_ in columns.items():
        if name not in schema.names:
            continue
        arrow = str(schema.field(name).type)
        if arrow == "null":
            continue
        if not any(arrow.startswith(f) for f in _ARROW_FAMILY[type_]):
            retyped.append(f"{name} is {arrow}, the contract says {type_}")
    return retyped


def header_of(path: Path | str, fmt: str) -> list[str]:
    """Column names of a snapshot file, from the CSV header line or the Parquet schema."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark, not part of the
    # first column's name.
    with open(path, encoding="utf-8-sig", newline="") as fh:
        first = next(csv.reader(fh), [])
    return [h.strip() for h in first]


def current(raw_dir: Path, ds: str) -> Snapshot | None:
    pointer = raw_dir / f"ds={ds}" / CURRENT
    if not pointer.exists():
        return None
    data = json.loads(pointer.read_text())
    data["extra_columns"] = tuple(data.get("extra_columns", ()))
    return Snapshot(**data)


def inspect_snapshot(landing_dir: Path, ds: str, fmt: str, columns: dict[str, str], *,
                     missing_means_empty: bool = False, raw_dir: Path | None = None
                     ) -> tuple[Path | None, list[str]]:
    """The landed file for ``ds`` and its extra columns; SnapshotError if it cannot load.

    No file is fine (None) when the day's snapshot was loaded before (the landing folder may
    be cleaned after ingestion) or when the source says a missing file means no rows."""
    source = landing_file(landing_dir, ds, fmt)
    if not source.exists():
        if missing_means_empty or (raw_dir is not None and current(raw_dir, ds) is not None):
            return None, []
        raise SnapshotError(f"no {fmt} snapshot landed for {ds}: expected {source}; a feed "
                            "that can have days without a file sets missing_file: empty")
    if source.stat().st_size == 0:
        raise SnapshotError(f"the snapshot for {ds} is an empty file (0 bytes): {source}")
    return source, check_readable(source, fmt, columns)


def load_snapshot(
    landing_dir: Path, raw_dir: Path, ds: str, fmt: str, columns: dict[str, str], *,
    missing_means_empty: bool = False,
) -> Snapshot:
    source, extra = inspect_snapshot(landing_dir, ds, fmt, columns,
                                     missing_means_empty=missing_means_empty, raw_dir=raw_dir)
    previous = current(raw_dir, ds)
    if source is None:
        if previous is not None:  # loaded before; nothing new landed
            return Snapshot(**{**asdict(previous), "duplicate_of_current": True})
        return _record(raw_dir, Snapshot(
            ds=ds, sha256=ABSENT, path="", source_file=str(landing_file(landing_dir, ds, fmt)),
            size_bytes=0, rows=0, absent=True,
            loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")))
    size = source.stat().st_size
    sha = file_sha256(source)
    if previous is not None and previous.sha256 == sha:
        return Snapshot(**{**asdict(previous), "duplicate_of_current": True})
    day_dir = raw_dir / f"ds={ds}"
    day_dir.mkdir(parents=True, exist_ok=True)
    target = day_dir / f"{sha}.{fmt}"
    if not target.exists():
        tmp = day_dir / f".{sha}.{fmt}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        target.chmod(0o444)
    snapshot = Snapshot(
        ds=ds,
        sha256=sha,
        path=str(target),
        source_file=str(source),
        size_bytes=size,
        rows=count_rows(target, fmt),
        loaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        extra_columns=tuple(extra),
    )
    return _record(raw_dir, snapshot)


def _record(raw_dir: Path, snapshot: Snapshot) -> Snapshot:
    """Point the day at ``snapshot`` (atomically: a reader sees the old or the new one)."""
    day_dir = raw_dir / f"ds={snapshot.ds}"
    day_dir.mkdir(parents=True, exist_ok=True)
    pointer_tmp = day_dir / f".{CURRENT}.tmp"
    pointer_tmp.write_text(json.dumps(asdict(snapshot), indent=2))
    os.replace(pointer_tmp, day_dir / CURRENT)
    return snapshot


def latest_loaded_day(raw_dir: Path) -> str | None:
    """The newest day whose snapshot (or its recorded absence) has been loaded."""
    days = [p.parent.name.removeprefix("ds=") for p in Path(raw_dir).glob(f"ds=*/{CURRENT}")]
    return max(days, default=None)


class WindowRefused(SnapshotError):
    """Some files of a window cannot load: none of the window was copied."""

    def __init__(self, problems: list[str], days: int):
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more"
                                           if len(problems) > 5 else "")
        super().__init__(f"{len(problems)} of {days} snapshots could not be loaded, so no "
                         f"table was written: {shown}")


def load_window(landing_dir: Path, raw_dir: Path, days: list[str], fmt: str,
                columns: dict[str, str], *, missing_means_empty: bool = False
                ) -> list[Snapshot]:
    """Every day's snapshot of a window, or none: each file is inspected before any is
    copied, so a bad file leaves the raw layer (and everything after it) untouched."""
    problems = []
    for ds in days:
        try:
            inspect_snapshot(landing_dir, ds, fmt, columns,
                             missing_means_empty=missing_means_empty, raw_dir=raw_dir)
        except SnapshotError as exc:
            problems.append(str(exc))
    if problems:
        raise WindowRefused(problems, len(days))
    return [load_snapshot(landing_dir, raw_dir, ds, fmt, columns,
                          missing_means_empty=missing_means_empty) for ds in days]


def table(loaded: list[Snapshot], nothing: str) -> str:
    """The window's snapshots as Markdown: day, rows, hash and whether it was new."""
    rows = ["| day | rows | sha256 | status |", "|---|---:|---|---|"]
    for s in loaded:
        status = (f"no file | {nothing}" if s.absent else
                  f"`{s.sha256[:16]}` | {'already loaded' if s.duplicate_of_current else 'new'}")
        rows.append(f"| {s.ds} | {s.rows} | {status} |")
    return "\n".join(rows)
