"""The ledger of request budgets in Postgres: one row per budget key in ``nango._nango_rate_budgets``.

A row holds the moment the budget's next free slot begins. A reservation moves it on by ``count`` slots in one
``INSERT .. ON CONFLICT DO UPDATE .. RETURNING`` (the row lock makes concurrent reservations queue, so their slots
never overlap) and answers how long until its first slot begins, by the server's clock: the workers' clocks
never matter. No state lives on a worker's disk, so processes on several machines share one budget.
"""

from __future__ import annotations

import threading
from typing import Any, Final

import psycopg

from nango_provider.exceptions import StoreError
from nango_provider.store.schema import BOOKKEEPING_SCHEMA

BUDGETS_LOCK: Final = 7_305_843_009_213_693_953
"""Advisory lock key that serializes creating the budgets table."""
_DDL: Final = f"""
CREATE SCHEMA IF NOT EXISTS {BOOKKEEPING_SCHEMA};
CREATE TABLE IF NOT EXISTS {BOOKKEEPING_SCHEMA}._nango_rate_budgets (
    budget_key text PRIMARY KEY,
    next_free_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""
_RESERVE: Final = f"""
INSERT INTO {BOOKKEEPING_SCHEMA}._nango_rate_budgets AS b (budget_key, next_free_at)
VALUES (%(key)s, clock_timestamp() + %(span)s * interval '1 second')
ON CONFLICT (budget_key) DO UPDATE
    SET next_free_at = greatest(b.next_free_at, clock_timestamp()) + %(span)s * interval '1 second',
        updated_at = clock_timestamp()
RETURNING extract(epoch FROM next_free_at - clock_timestamp())::float8 - %(span)s
"""
_HOLD_OFF: Final = f"""
INSERT INTO {BOOKKEEPING_SCHEMA}._nango_rate_budgets AS b (budget_key, next_free_at)
VALUES (%(key)s, clock_timestamp() + %(seconds)s * interval '1 second')
ON CONFLICT (budget_key) DO UPDATE
    SET next_free_at = greatest(b.next_free_at, clock_timestamp() + %(seconds)s * interval '1 second'),
        updated_at = clock_timestamp()
"""


class PostgresSlotLedger:
    """The slots of every budget, in Postgres, over a connection of its own (opened on first use, autocommit,
    shared by the run's fetch threads one statement at a time).

    :param connect: returns a new psycopg 3 connection.
    :param sync: the sync's name, for error messages.
    """

    def __init__(self, connect: Any, sync: str) -> None:
        self._connect = connect
        self._sync = sync
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def reserve(self, key: str, count: int, interval: float) -> float:
        """Take the next ``count`` slots of ``interval`` seconds of ``key``; seconds until the first begins."""
        cursor = self._execute("reserving request slots", _RESERVE, {"key": key, "span": count * interval})
        row = cursor.fetchone()
        return float(row[0]) if row else 0.0

    def hold_off(self, key: str, seconds: float) -> None:
        """No slot of ``key`` begins sooner than ``seconds`` from now."""
        self._execute("holding off the rate budget", _HOLD_OFF, {"key": key, "seconds": seconds})

    def close(self) -> None:
        """Close the ledger's connection, if open."""
        with self._lock:
            self._closed = True
            self._drop()

    def _execute(self, doing: str, statement: str, params: dict[str, Any]) -> psycopg.Cursor[Any]:
        with self._lock:
            try:
                return self._connection().execute(statement, params)
            except psycopg.Error as error:
                self._drop()
                raise StoreError(
                    f"sync {self._sync!r}: Postgres refused {doing} (max_requests_per_second): {error}",
                ) from error

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:  # a fetch thread still busy after its run ended
            raise psycopg.InterfaceError("the run has ended")
        if self._conn is None:
            conn = self._connect()
            conn.autocommit = True
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (BUDGETS_LOCK,))
                conn.execute(_DDL)
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
