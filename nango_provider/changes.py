"""The change feed: which rows of a sync's table one run added, updated or marked deleted.

A run stamps every row it writes with ``_nango_updated_at`` inside its time window (the window's start is the
run's first try, its end the moment it finished), and every row it marks deleted with ``_nango_deleted_at``
at the window's end. Unchanged rows are never rewritten, so they keep their earlier stamps. The Asset event of
a successful run carries the window (``extra["started_at"]``, ``extra["ended_at"]``), which is what a downstream
DAG passes here::

    event = context["triggering_asset_events"][sync_asset("nango.pokemon")][-1]
    rows = changed_rows(conn, "nango.pokemon", event.extra["started_at"], event.extra["ended_at"])

The same query in SQL (``%(since)s`` and ``%(until)s`` are the window)::

    SELECT CASE WHEN _nango_deleted_at BETWEEN %(since)s AND %(until)s THEN 'deleted'
                WHEN _nango_first_seen_at >= %(since)s THEN 'added' ELSE 'updated' END AS change, *
    FROM nango.pokemon
    WHERE _nango_updated_at BETWEEN %(since)s AND %(until)s OR _nango_deleted_at BETWEEN %(since)s AND %(until)s

Rows removed by ``deletes: hard`` are gone: only the event's ``counts["deleted"]`` tells how many. The feed reads
the table as it is now: read a run's changes before the next run of the sync changes the same rows again (a
downstream DAG triggered by the run's event does), since a row updated again has left the older window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from nango_provider.definition import DEFAULT_SCHEMA

ADDED: Final = "added"
UPDATED: Final = "updated"
DELETED: Final = "deleted"
_CHANGED_ROWS: Final = """
SELECT CASE WHEN _nango_deleted_at BETWEEN %(since)s AND %(until)s THEN 'deleted'
            WHEN _nango_first_seen_at >= %(since)s THEN 'added'
            ELSE 'updated' END AS _nango_change,
       *
FROM {table}
WHERE _nango_updated_at BETWEEN %(since)s AND %(until)s OR _nango_deleted_at BETWEEN %(since)s AND %(until)s
ORDER BY _nango_unique_key
"""


@dataclass(frozen=True)
class ChangedRow:
    """One row a run changed: ``change`` is ``added``, ``updated`` (a record that came back after a deletion
    included) or ``deleted``; ``row`` is every column of the table (``_nango_data``, typed columns, ...)."""

    change: str
    key: str
    row: dict[str, Any]

    @property
    def data(self) -> Any:
        """The record as the API sent it."""
        return self.row["_nango_data"]


def changed_rows(
    conn: psycopg.Connection[Any], table: str, since: datetime | str, until: datetime | str
) -> Iterator[ChangedRow]:
    """The rows of ``table`` (``schema.table`` or ``table`` in schema ``nango``) added, updated or marked deleted
    between ``since`` and ``until`` (both included; datetimes or ISO 8601 strings, as in the Asset event's extra),
    by key. Streamed with a server-side cursor, so a large change set is never held in memory at once."""
    schema, _, name = table.rpartition(".")
    statement = sql.SQL(_CHANGED_ROWS).format(table=sql.Identifier(schema or DEFAULT_SCHEMA, name))
    window = {"since": _timestamp(since), "until": _timestamp(until)}
    with conn.transaction(), conn.cursor(name="nango_changed_rows", row_factory=dict_row) as cursor:
        cursor.execute(statement, window)
        for row in cursor:
            change = row.pop("_nango_change")
            yield ChangedRow(change, row["_nango_unique_key"], row)


def _timestamp(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
