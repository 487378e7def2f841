"""``PostgresStore``: one sync's connection, lock and run lifecycle, over the store's modules.

It knows Postgres and nothing of HTTP or paginators: the next request is an opaque JSON checkpoint. Every page
is one transaction (:mod:`.pages`): its rows, its counts and the checkpoint for the next page commit together, so
a retried task resumes after the last committed page (:mod:`.checkpoints`). The end of a complete run decides
deletions (:mod:`.deletions`); every run has a row in ``nango._nango_jobs`` (:mod:`.jobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import StoreError
from nango_provider.paths import compile_path
from nango_provider.store import checkpoints, deletions, jobs, pages, schema
from nango_provider.store.jobs import COUNT_NAMES, RunIdentity, RunState
from nango_provider.store.records import PreparedPage, prepare_keyed, prepare_positional

ConnectionFactory = Callable[[], psycopg.Connection[Any]]

__all__ = ["COUNT_NAMES", "ConnectionFactory", "PostgresStore", "RunIdentity", "RunState"]


class PostgresStore:
    """Writes one sync's pages into its table in Postgres.

    :param connect: returns a new psycopg 3 connection (``PostgresHook(...).get_conn`` in Airflow).
    :param definition: the sync being written.
    """

    def __init__(self, connect: ConnectionFactory, definition: SyncDefinition) -> None:
        self._connect = connect
        self.definition = definition
        self.table = sql.Identifier(*definition.qualified_table)
        self.table_text = ".".join(definition.qualified_table)
        self._unique_key = compile_path(definition.unique_key) if definition.unique_key else None
        self._conn: psycopg.Connection[Any] | None = None

    # -- connection and lock ------------------------------------------------------------------------------

    @contextmanager
    def connected(self) -> Iterator[PostgresStore]:
        """Open the store's connection for one run; it is closed (and the table lock released) on exit."""
        try:
            self._conn = self._connect()
        except psycopg.Error as error:
            raise StoreError(f"sync {self.definition.name!r}: cannot connect to Postgres: {error}") from error
        self._conn.autocommit = True
        try:
            yield self
        finally:
            conn, self._conn = self._conn, None
            conn.close()

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The open connection (inside :meth:`connected`)."""
        if self._conn is None:
            raise StoreError("the store is not connected: use `with store.connected():`")
        return self._conn

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction; a psycopg error becomes a :class:`StoreError` that says what was being done."""
        try:
            with self.conn.transaction(), self.conn.cursor(row_factory=tuple_row) as cursor:
                yield cursor
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise StoreError(
                f"sync {self.definition.name!r}: lost the connection to Postgres while {doing} ({error}); "
                "every committed page is kept and a retry resumes after the last one"
            ) from error
        except psycopg.Error as error:
            raise StoreError(f"sync {self.definition.name!r}: Postgres refused {doing}: {error}") from error

    def create_tables(self) -> None:
        """Create the bookkeeping tables, the schema and the sync's table if they are missing."""
        with self._transaction("creating tables") as cursor:
            schema.create_tables(cursor, self.definition.schema_name, self.table)

    def lock_table(self, log: Callable[[str], None]) -> None:
        """Hold the table's advisory lock until the connection closes; wait if another run holds it."""
        key = f"nango:{self.table_text}"
        with self._transaction("locking the table") as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
            if cursor.fetchone() == (True,):
                return
        log(f"another run is writing {self.table_text}; waiting for it to finish")
        with self._transaction("waiting for the table's lock") as cursor:
            cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))

    # -- run lifecycle ------------------------------------------------------------------------------------

    def start(self, run: RunIdentity, *, full_refresh: bool) -> RunState:
        """Open a job row and return the run's state: resumed from its checkpoint, or fresh."""
        with self._transaction("starting the run") as cursor:
            checkpoints.drop_abandoned_runs(cursor, self.table_text, run.run_key)
            state = None if full_refresh else checkpoints.load_checkpoint(cursor, run.run_key)
            if state is None:
                checkpoints.clear_run(cursor, run.run_key)
                state = self._fresh_state(cursor)
                checkpoints.save_checkpoint(cursor, run, self.table_text, state)
            state.job_id = jobs.open_job(cursor, run, self.table_text, state)
        return state

    def prepare_page(self, records: list[Any], page: int, fetched_before: int) -> PreparedPage:
        """Turn a page's records into COPY rows; pure CPU work, safe to run in the fetch thread."""
        if self._unique_key is not None:
            return prepare_keyed(records, self._unique_key, self.definition.name, page)
        return prepare_positional(records, fetched_before, self.definition.name, page)

    def write_page(
        self,
        run: RunIdentity,
        state: RunState,
        prepared: PreparedPage,
        page: int,
        checkpoint: Mapping[str, Any] | None,
    ) -> dict[str, int]:
        """Write one prepared page, its counts and ``checkpoint`` (the next request) in one transaction."""
        page_counts = {"pages": 1, "fetched": prepared.fetched, "added": 0, "updated": 0, "unchanged": 0}
        with self._transaction(f"writing page {page}") as cursor:
            if self._unique_key is not None:
                added, updated = pages.upsert_page(cursor, self.table, prepared, run, state)
                page_counts.update(added=added, updated=updated, unchanged=prepared.rows - added - updated)
            else:
                pages.stage_snapshot_page(cursor, prepared, run)
            for name, value in page_counts.items():
                state.counts[name] += value
            state.checkpoint = checkpoint
            state.next_page = page + 1
            checkpoints.save_checkpoint(cursor, run, self.table_text, state)
        return page_counts

    def finish(self, run: RunIdentity, state: RunState, *, complete: bool) -> dict[str, int]:
        """End the run: soft-delete or replace (only when ``complete``), mark the job done, drop the checkpoint."""
        with self._transaction("finishing the run") as cursor:
            if self._unique_key is None:
                deletions.apply_snapshot(cursor, self.table, run, state, complete=complete)
            elif complete:
                state.counts["deleted"] = deletions.mark_deleted(cursor, self.table, run, state)
            checkpoints.clear_run(cursor, run.run_key)
            jobs.end_job(cursor, state, "success")
        return dict(state.counts)

    def record_failure(self, state: RunState | None, run: RunIdentity, message: str) -> None:
        """Mark the job failed with ``message``; uses a new connection, as the run's own may be broken.

        The checkpoint is kept, so the task's next try resumes where this one stopped.
        """
        try:
            with self._connect() as conn, conn.cursor(row_factory=tuple_row) as cursor:
                conn.autocommit = True
                jobs.fail_job(cursor, state, run, self.table_text, message)
        except psycopg.Error:
            pass  # the database itself is gone; the task log still has the error

    def _fresh_state(self, cursor: psycopg.Cursor[Any]) -> RunState:
        cursor.execute(
            sql.SQL("SELECT now(), EXISTS (SELECT 1 FROM {} WHERE _nango_deleted_at IS NULL)").format(self.table)
        )
        row = cursor.fetchone()
        if row is None:
            raise StoreError("Postgres returned no row for now()")
        started, has_live_rows = row
        return RunState(0, started, None, 1, track_seen=bool(has_live_rows), resumed=False)
