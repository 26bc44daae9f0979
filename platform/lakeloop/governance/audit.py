"""The audit trail: every decision and alarm of a use case, in an append-only Delta table.

One row per event (see lakeloop.governance.events): when, what, which model version, who,
why (the summary and its numbers), the links, the run, and where its alert went. The table
lives under the data root (``<data root>/<use case>/governance/audit``), the volume every
process of Lakeloop can reach, and is written with delta-rs: the command line and sensors
record decisions without a Spark session. ``delta.appendOnly`` makes Delta itself refuse any
update or delete; Spark reads it like every other table.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakeloop.governance.events import Event

SCHEMA = pa.schema([
    ("at", pa.timestamp("us", tz="UTC")),
    ("use_case", pa.string()),
    ("kind", pa.string()),
    ("event_key", pa.string()),
    ("model_version", pa.string()),
    ("actor", pa.string()),
    ("summary", pa.string()),
    ("details", pa.string()),  # JSON: the numbers behind the decision
    ("links", pa.string()),  # JSON: name -> URL
    ("run_id", pa.string()),
    ("alerted", pa.string()),  # destinations it reached, comma-separated
    ("alert_errors", pa.string()),  # destinations it did not reach, with why
])
PROPERTIES = {"delta.appendOnly": "true"}


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    use_case: str
    kind: str
    event_key: str
    model_version: str
    actor: str
    summary: str
    details: dict[str, Any]
    links: dict[str, str]
    run_id: str
    alerted: str
    alert_errors: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat(timespec="seconds")}


class AuditTrail:
    """One use case's trail at ``path`` (a local folder: created on the first event)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def exists(self) -> bool:
        return (self.path / "_delta_log").is_dir()

    def _scan(self, columns: list[str] | None = None, filters=None) -> pa.Table:
        """The table's rows: the current version's data files (an append-only table has no
        deletions to apply), read by Arrow's own Parquet reader. Not delta-rs's pyarrow
        dataset: its scanner threads can outlive the interpreter and abort the process at
        exit (delta-io/delta-rs#2184; 3 exits in 20 aborted here)."""
        import pyarrow.parquet as pq
        from deltalake import DeltaTable

        files = DeltaTable(str(self.path)).file_uris()
        if not files:
            return SCHEMA.empty_table().select(columns or SCHEMA.names)
        return pq.read_table(files, columns=columns, filters=filters, schema=SCHEMA)

    def seen(self, identity: str) -> bool:
        """Whether the trail holds ``identity``: only the data files whose Delta statistics
        (min/max of event_key, from the log) can hold it are opened, so a check does not
        read the whole trail as it grows (each append is one file of one row)."""
        if not self.exists():
            return False
        import pyarrow.parquet as pq
        from deltalake import DeltaTable

        table = DeltaTable(str(self.path))
        actions = pa.table(table.get_add_actions(flatten=True))
        paths = actions.column("path").to_pylist()
        lows = actions.column("min.event_key").to_pylist()
        highs = actions.column("max.event_key").to_pylist()
        candidates = [f"{str(self.path).rstrip('/')}/{path}"
                      for path, low, high in zip(paths, lows, highs, strict=True)
                      if low is None or high is None or low <= identity <= high]
        if not candidates:
            return False
        return pq.read_table(candidates, columns=["event_key"], schema=SCHEMA,
                             filters=[("event_key", "=", identity)]).num_rows > 0

    def append(self, event: Event, alerted: Sequence[str] = (),
               errors: Sequence[str] = ()) -> None:
        from deltalake import write_deltalake

        row = {
            "at": [event.at], "use_case": [event.use_case], "kind": [event.kind],
            "event_key": [event.identity], "model_version": [event.model_version],
            "actor": [event.actor], "summary": [event.summary],
            "details": [event.details_json()],
            "links": [json.dumps(event.links, sort_keys=True)], "run_id": [event.run_id],
            "alerted": [",".join(alerted)], "alert_errors": ["; ".join(errors)],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_deltalake(str(self.path), pa.table(row, schema=SCHEMA), mode="append",
                        configuration=None if self.exists() else PROPERTIES)

    def read(self, since: dt.date | None = None, kinds: Sequence[str] = ()) -> list[Entry]:
        """The trail in time order: from ``since`` (a UTC day) on, of ``kinds`` if given."""
        if not self.exists():
            return []
        filters: list[tuple[str, str, Any]] = []
        if since is not None:
            filters.append(("at", ">=", pa.scalar(
                dt.datetime.combine(since, dt.time(), dt.UTC), pa.timestamp("us", tz="UTC"))))
        if kinds:
            filters.append(("kind", "in", list(kinds)))
        table = self._scan(filters=filters or None)
        rows = sorted(table.to_pylist(), key=lambda r: (r["at"], r["event_key"]))
        return [Entry(**{**r, "details": json.loads(r["details"] or "{}"),
                         "links": json.loads(r["links"] or "{}")}) for r in rows]
