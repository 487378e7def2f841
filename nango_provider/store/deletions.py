"""The end of a complete run: records not seen are marked deleted or removed (keyed syncs, ``deletes: soft`` or
``hard``), or the table is replaced by the run's snapshot (syncs without a unique key)."""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

from nango_provider.store.columns import TableColumns
from nango_provider.store.jobs import RunIdentity, RunState, one_value

_SEEN_KEYS: Final = """
CREATE TEMP TABLE _nango_seen ON COMMIT DROP AS
SELECT unnest(keys) AS key FROM nango._nango_seen_keys WHERE run_key = %(run)s
"""
_MARK_DELETED: Final = """
UPDATE {table} AS t SET _nango_deleted_at = now()
WHERE t._nango_deleted_at IS NULL AND t._nango_first_seen_at < %(started)s{scope}
  AND NOT EXISTS (SELECT 1 FROM pg_temp._nango_seen s WHERE s.key = t._nango_unique_key)
"""
_REMOVE_UNSEEN: Final = """
WITH removed AS (
    DELETE FROM {table} AS t
    WHERE t._nango_first_seen_at < %(started)s{scope}
      AND NOT EXISTS (SELECT 1 FROM pg_temp._nango_seen s WHERE s.key = t._nango_unique_key)
    RETURNING t._nango_deleted_at IS NULL AS live
)
SELECT count(*) FILTER (WHERE live) FROM removed
"""
_SNAPSHOT_ROWS: Final = """
SELECT hash || ':' || row_number() OVER (PARTITION BY hash ORDER BY position) AS k, data AS d, hash AS h
FROM nango._nango_snapshot WHERE run_key = %(run)s
"""
_REPLACE: Final = (
    """CREATE TEMP TABLE _nango_fresh ON COMMIT DROP AS
       SELECT f.k, f.d, f.h, t._nango_first_seen_at AS first_seen
       FROM ({rows}) f LEFT JOIN {table} t ON t._nango_unique_key = f.k""",
    """SELECT count(*) FILTER (WHERE first_seen IS NULL), count(*) FILTER (WHERE first_seen IS NOT NULL),
              (SELECT count(*) FROM {table} t
               WHERE NOT EXISTS (SELECT 1 FROM pg_temp._nango_fresh f WHERE f.k = t._nango_unique_key))
       FROM pg_temp._nango_fresh""",
    "DELETE FROM {table}",
    """INSERT INTO {table} (_nango_unique_key, _nango_data, _nango_hash, _nango_first_seen_at{columns})
       SELECT k, d, h, coalesce(first_seen, now()){values} FROM pg_temp._nango_fresh""",
)
_APPEND_SNAPSHOT: Final = """
WITH inserted AS (
    INSERT INTO {table} (_nango_unique_key, _nango_data, _nango_hash{columns})
    SELECT k, d, h{values} FROM ({rows}) fresh ON CONFLICT (_nango_unique_key) DO NOTHING RETURNING 1
)
SELECT count(*) FROM inserted
"""


def mark_deleted(
    cursor: psycopg.Cursor[Any],
    table: sql.Composable,
    run: RunIdentity,
    state: RunState,
    *,
    remove: bool = False,
    columns: TableColumns | None = None,
) -> int:
    """Soft-delete the live rows this complete run did not see (or, with ``remove``, delete every row it did not
    see, soft-deleted ones included); how many live rows went. With rows keyed by connection (``columns``), only
    rows of the run's connection are considered."""
    if not state.track_seen:
        return 0  # the table was empty when the run started: every row in it was seen by this run
    cursor.execute(
        "SELECT coalesce(sum(cardinality(keys)), 0) FROM nango._nango_seen_keys WHERE run_key = %s", (run.run_key,)
    )
    if one_value(cursor) != state.seen:
        return 0  # seen keys were lost (unlogged table after a crash): never guess what is gone
    # The keys seen go into a temporary table with fresh statistics, so that the planner knows how many there are
    # and picks a hash anti-join by its own (realistic) costs: an estimate of a few unnested keys could make it
    # compare every row with every key in a nested loop. No planner setting distorts the costs.
    cursor.execute(_SEEN_KEYS, {"run": run.run_key})
    cursor.execute("ANALYZE pg_temp._nango_seen")
    cursor.execute("SET LOCAL work_mem = '64MB'")  # the hash of every key seen stays in memory
    scope = columns.scope("t") if columns is not None else sql.SQL("")
    statement = sql.SQL(_REMOVE_UNSEEN if remove else _MARK_DELETED).format(table=table, scope=scope)
    connection = columns.connection_id if columns is not None else None
    cursor.execute(statement, {"started": state.run_started_at, "nango_connection": connection})
    return one_value(cursor) if remove else cursor.rowcount


def apply_snapshot(
    cursor: psycopg.Cursor[Any],
    table: sql.Composable,
    run: RunIdentity,
    state: RunState,
    columns: TableColumns,
    *,
    complete: bool,
) -> None:
    """Replace the table by the run's rows (complete run), or only add the new ones (cut run); counts in ``state``.
    ``columns`` says which extra columns (metadata, typed columns) are written and how."""
    rows = sql.SQL(_SNAPSHOT_ROWS)
    extra = {"columns": columns.insert_columns(), "values": columns.insert_values(sql.Identifier("d"))}
    params = {"run": run.run_key, **columns.params}
    if not complete:
        cursor.execute(sql.SQL(_APPEND_SNAPSHOT).format(rows=rows, table=table, **extra), params)
        added = one_value(cursor)
        state.counts.update(added=added, unchanged=state.counts["fetched"] - added)
        return
    create, count, delete, insert = (sql.SQL(part).format(rows=rows, table=table, **extra) for part in _REPLACE)
    cursor.execute(create, {"run": run.run_key})
    cursor.execute(count)
    added, unchanged, deleted = cursor.fetchone() or (0, 0, 0)
    state.counts.update(added=int(added), unchanged=int(unchanged), deleted=int(deleted))
    cursor.execute(delete)
    cursor.execute(insert, columns.params)
