"""Incremental marks: per sync table, the highest value of the record field the last complete run saw.

The next run asks the API only for what changed since (see :mod:`nango_provider.incremental`). A mark is kept
for one record field: a definition that names another field starts over with a full run.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg


def load_mark(cursor: psycopg.Cursor[Any], table: str, record_field: str) -> Any:
    """The mark of ``table`` for ``record_field``, or ``None`` when no complete run has left one."""
    cursor.execute(
        "SELECT value FROM nango._nango_marks WHERE target_table = %s AND record_field = %s", (table, record_field)
    )
    row = cursor.fetchone()
    return None if row is None else row[0]


def save_mark(cursor: psycopg.Cursor[Any], table: str, sync_name: str, record_field: str, value: Any) -> None:
    """Keep ``value`` as the mark of ``table`` (in the transaction that ends a complete run)."""
    cursor.execute(
        """INSERT INTO nango._nango_marks (target_table, sync_name, record_field, value, saved_at)
           VALUES (%s, %s, %s, %s, now())
           ON CONFLICT (target_table) DO UPDATE SET sync_name = EXCLUDED.sync_name,
               record_field = EXCLUDED.record_field, value = EXCLUDED.value, saved_at = now()""",
        (table, sync_name, record_field, json.dumps(value)),
    )
