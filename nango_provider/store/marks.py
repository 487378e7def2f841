"""Incremental marks: per sync table (per table and connection for a sync with ``connections``), the highest value
of the record field the last complete run saw.

The next run asks the API only for what changed since (see :mod:`nango_provider.incremental`). A mark is kept
for one record field: a definition that names another field starts over with a full run.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg


def load_mark(cursor: psycopg.Cursor[Any], table: str, record_field: str, connection_id: str | None = None) -> Any:
    """The mark of ``table`` (of one of its connections) for ``record_field``, or ``None`` when no complete run
    has left one."""
    if connection_id is not None:
        cursor.execute(
            """SELECT value FROM nango._nango_connection_marks
               WHERE target_table = %s AND connection_id = %s AND record_field = %s""",
            (table, connection_id, record_field),
        )
        row = cursor.fetchone()
        return None if row is None else row[0]
    cursor.execute(
        "SELECT value FROM nango._nango_marks WHERE target_table = %s AND record_field = %s", (table, record_field)
    )
    row = cursor.fetchone()
    return None if row is None else row[0]


def save_mark(
    cursor: psycopg.Cursor[Any],
    table: str,
    sync_name: str,
    record_field: str,
    value: Any,
    *,
    connection_id: str | None = None,
) -> None:
    """Keep ``value`` as the mark of ``table`` (of one of its connections), in the transaction that ends a
    complete run."""
    if connection_id is not None:
        cursor.execute(
            """INSERT INTO nango._nango_connection_marks
                   (target_table, connection_id, sync_name, record_field, value, saved_at)
               VALUES (%s, %s, %s, %s, %s, now())
               ON CONFLICT (target_table, connection_id) DO UPDATE SET sync_name = EXCLUDED.sync_name,
                   record_field = EXCLUDED.record_field, value = EXCLUDED.value, saved_at = now()""",
            (table, connection_id, sync_name, record_field, json.dumps(value)),
        )
        return
    cursor.execute(
        """INSERT INTO nango._nango_marks (target_table, sync_name, record_field, value, saved_at)
           VALUES (%s, %s, %s, %s, now())
           ON CONFLICT (target_table) DO UPDATE SET sync_name = EXCLUDED.sync_name,
               record_field = EXCLUDED.record_field, value = EXCLUDED.value, saved_at = now()""",
        (table, sync_name, record_field, json.dumps(value)),
    )
