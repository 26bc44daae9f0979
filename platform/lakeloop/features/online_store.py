"""A SQLite online store that never rolls a value back.

Feast's SQLite store upserts whatever a materialisation writes, so materialising an older
window after a newer one would put older feature values online. This store keeps, per
entity, only writes whose event time is at least the one already stored (Feast's Redis
store behaves this way already). Selected in feature_store.yaml / RepoConfig with
``type: lakeloop.features.online_store.MonotonicSqliteOnlineStore``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig
from feast.utils import to_naive_utc

STORE_TYPE = "lakeloop.features.online_store.MonotonicSqliteOnlineStore"
CHUNK = 500


class MonotonicSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["lakeloop.features.online_store.MonotonicSqliteOnlineStore"] = STORE_TYPE  # type: ignore[assignment]


def _parse(value: Any) -> dt.datetime | None:
    """Feast stores event times as epoch seconds (or, in older files, ISO text)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, int | float) or str(value).lstrip("-").isdigit():
        return dt.datetime.fromtimestamp(int(value), dt.UTC).replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value))


class MonotonicSqliteOnlineStore(SqliteOnlineStore):
    def online_write_batch(self, config, table, data, progress) -> None:
        conn = self._get_conn(config)
        name = compute_table_id(config.project, table,
                                config.registry.enable_online_feature_view_versioning)
        version = config.entity_key_serialization_version
        keyed = [(serialize_entity_key(k, entity_key_serialization_version=version), row)
                 for row in data for k in [row[0]]]
        stored: dict[bytes, dt.datetime | None] = {}
        unique = list({k for k, _ in keyed})
        try:
            for i in range(0, len(unique), CHUNK):
                chunk = unique[i:i + CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, ts in conn.execute(
                        f'SELECT entity_key, MAX(event_ts) FROM "{name}" '  # noqa: S608
                        f"WHERE entity_key IN ({marks}) GROUP BY entity_key", chunk):
                    stored[key] = _parse(ts)
        except Exception as exc:  # the table does not exist until the first write
            if "no such table" not in str(exc):
                raise
        newest: dict[bytes, tuple[dt.datetime, Any]] = {}
        skipped = 0
        for key, row in keyed:
            ts = to_naive_utc(row[2]).replace(microsecond=0)  # stored at second precision
            floor = stored.get(key)
            if floor is not None and ts < floor:
                skipped += 1
                continue
            if key not in newest or ts >= newest[key][0]:
                if key in newest:
                    skipped += 1
                newest[key] = (ts, row)
            else:
                skipped += 1
        if progress and skipped:
            progress(skipped)
        super().online_write_batch(config, table, [row for _, row in newest.values()], progress)
