"""``PostgresStore``: one sync's connection, lock and run lifecycle, over the store's modules.

It knows Postgres and nothing of HTTP or paginators: the next request is an opaque JSON checkpoint. Every page
is one transaction (:mod:`.pages`): its rows, its counts and the checkpoint for the next page commit together, so
a retried task resumes after the last committed page (:mod:`.checkpoints`). The end of a complete run decides
deletions (:mod:`.deletions`); every run has a row in ``nango._nango_jobs`` (:mod:`.jobs`). A table has one
owning sync (:mod:`.owners`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.rows import tuple_row

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import StoreError, SyncDefinitionError
from nango_provider.incremental import highest
from nango_provider.paths import compile_path
from nango_provider.store import checkpoints, deletions, jobs, marks, owners, pages, schema
from nango_provider.store.budgets import PostgresSlotLedger
from nango_provider.store.columns import TableColumns
from nango_provider.store.jobs import COUNT_NAMES, RunIdentity, RunState, one_row
from nango_provider.store.records import PreparedPage, prepare_keyed, prepare_positional

ConnectionFactory = Callable[[], psycopg.Connection[Any]]
LOCK_POLL_SECONDS = 1.0
"""How often a run waiting for its table's lock tries again (and checks whether it was cancelled)."""
_CANCEL_TIMEOUT_SECONDS = 2.0

__all__ = ["COUNT_NAMES", "ConnectionFactory", "PostgresStore", "RunIdentity", "RunState", "record_failed_start"]


def record_failed_start(connect: ConnectionFactory, run: RunIdentity, table: str, message: str) -> None:
    """A ``failed`` row in ``nango._nango_jobs`` for a run that could not start (its definition is invalid once
    rendered), creating the bookkeeping tables if needed. Postgres out of reach is ignored: the log has the error.
    """
    try:
        with connect() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            conn.autocommit = True
            with conn.transaction():
                schema.create_bookkeeping(cursor)
            jobs.stop_job(cursor, None, run, table, status=jobs.FAILED, message=message)
    except psycopg.Error:
        pass


class PostgresStore:
    """Writes one sync's pages into its table in Postgres.

    :param connect: returns a new psycopg 3 connection (``PostgresHook(...).get_conn`` in Airflow).
    :param definition: the sync being written.
    :param connection_id: the HTTP connection this run syncs, when the sync has several (``connections``): its
        rows are keyed by (connection, unique key), and its lock, deletions and incremental mark are its own.
    """

    def __init__(
        self, connect: ConnectionFactory, definition: SyncDefinition, *, connection_id: str | None = None
    ) -> None:
        self._connect = connect
        self.definition = definition
        self.connection_id = connection_id
        self.table = sql.Identifier(*definition.qualified_table)
        self.table_text = ".".join(definition.qualified_table)
        self._unique_key = compile_path(definition.unique_key) if definition.unique_key else None
        self._conn: psycopg.Connection[Any] | None = None
        self.columns = TableColumns(
            self.table,
            self.table_text,
            metadata=definition.metadata,
            auto=definition.auto_mapping,
            connection_id=connection_id,
        )
        self._table_created = False

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
            self._configure()
            yield self
        finally:
            self._disconnect()

    def interrupt(self) -> None:
        """Cancel the statement the run is waiting for, if any (safe from a signal handler or another thread):
        the statement fails at once and its transaction rolls back."""
        conn = self._conn
        if conn is not None and conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            _cancel(conn)

    def release_if_busy(self) -> None:
        """Close the run's connection (which lets its lock go) if it is inside a statement or a transaction,
        so that a job row it may lock can be ended from another connection."""
        if self._conn is not None and _busy(self._conn):
            self._disconnect()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if _busy(conn):
            _cancel(conn)  # a statement cut off by an interrupt would go on running, holding the table's lock
        conn.close()

    def _configure(self) -> None:
        """Settings of this connection, which the store owns for the whole run.

        JIT compilation off: a sync's statements are small and run once per page; compiling them (which a server
        does for any plan whose estimated cost passes ``jit_above_cost``, as a large page or table can make it)
        costs 100 ms or more each time, many times what they take to run.

        Pages commit without waiting for the disk (``synchronous_commit = off``): a page's rows, counts and
        checkpoint are one transaction, so a server crash can only lose the last few pages together with their
        checkpoints, and the retry resumes after the last page that survived. The end of the run
        (:meth:`finish`) commits synchronously, which also makes every page before it durable.
        """
        with self._transaction("configuring the connection") as cursor:
            cursor.execute("SET jit = off")
            cursor.execute("SET synchronous_commit = off")

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The open connection (inside :meth:`connected`)."""
        if self._conn is None:
            raise StoreError("the store is not connected: use `with store.connected():`")
        return self._conn

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction; a psycopg error becomes a :class:`StoreError` that says what was being done."""
        with self._errors(doing), self.conn.transaction(), self.conn.cursor(row_factory=tuple_row) as cursor:
            yield cursor

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """A psycopg error raised in the block becomes a :class:`StoreError` that says what was being done."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise StoreError(
                f"sync {self.definition.name!r}: lost the connection to Postgres while {doing} ({error}); "
                "every committed page is kept and a retry resumes after the last one"
            ) from error
        except psycopg.Error as error:
            raise StoreError(f"sync {self.definition.name!r}: Postgres refused {doing}: {error}") from error

    def slot_ledger(self) -> PostgresSlotLedger:
        """The ledger of request budgets, over a connection of its own (close it when the run ends)."""
        return PostgresSlotLedger(self._connect, self.definition.name)

    def create_tables(self) -> None:
        """Create the bookkeeping tables, the schema and the sync's table if they are missing."""
        per_connection = self.connection_id is not None
        with self._transaction("creating tables") as cursor:
            self._table_created = schema.create_tables(
                cursor, self.definition.schema_name, self.table, per_connection=per_connection
            )
            if not self._table_created and schema.has_connection_column(cursor, self.table) != per_connection:
                raise self._key_mismatch(per_connection)

    def _key_mismatch(self, per_connection: bool) -> SyncDefinitionError:
        """The table keys its rows otherwise than this run would (by connection or not): nothing is written."""
        if per_connection:
            found = "keys its rows by unique key alone (a sync with one connection wrote it)"
        else:
            found = "keys its rows by (connection, unique key) (a sync with connections wrote it)"
        return SyncDefinitionError(
            self.definition.name,
            "connections",
            f"the table {self.table_text} {found}; this run would key them "
            + ("by (connection, unique key)" if per_connection else "by unique key alone")
            + ": write another table, or move the existing one away (ALTER TABLE ... RENAME)",
        )

    def claim_table(self, run: RunIdentity) -> None:
        """Make ``run``'s task the table's owner if it has none; :class:`TableOwnedError` if another task owns it."""
        with self._transaction("claiming the table") as cursor:
            owners.claim_table(cursor, self.table_text, run)

    def lock_table(self, log: Callable[[str], None], check: Callable[[], None] = lambda: None) -> None:
        """Hold the table's advisory lock until the connection closes; wait if another run holds it. A run of one
        of a sync's ``connections`` locks only that connection's rows, so the connections' runs go side by side.

        While waiting, ``check`` is called every :data:`LOCK_POLL_SECONDS` (a cancelled run raises there).
        """
        key = f"nango:{self.table_text}"
        if self.connection_id is not None:
            key = f"{key}:{self.connection_id}"
        waiting = False
        while True:
            check()
            with self._transaction("locking the table") as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
                if cursor.fetchone() == (True,):
                    return
            if not waiting:
                log(f"another run is writing {self.table_text}; waiting for it to finish")
                waiting = True
            time.sleep(LOCK_POLL_SECONDS)

    # -- run lifecycle ------------------------------------------------------------------------------------

    def start(self, run: RunIdentity, *, full_refresh: bool, log: Callable[[str], None] = print) -> RunState:
        """Open a job row and return the run's state: resumed from its checkpoint, or fresh.

        Job rows of this table still ``running`` are closed as ``abandoned`` first: this run holds the table's
        lock, so their tasks are gone.

        A fresh run of an incremental sync with a mark (and not ``full_refresh``) is incremental: it asks from
        the mark (``state.since``), and so does every retry of it.
        """
        with self._transaction("starting the run") as cursor:
            if self.connection_id is not None:
                # The runs of other connections start at the same time: one at a time adds a column here.
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"nango:{self.table_text}",))
            if abandoned := jobs.abandon_dead_jobs(cursor, self.table_text, self.connection_id):
                log(f"closed {abandoned} run(s) of {self.table_text} whose task stopped without ending as abandoned")
            checkpoints.drop_abandoned_runs(cursor, self.table_text, run.run_key)
            self.columns.prepare(cursor, created=self._table_created)
            state = None if full_refresh else checkpoints.load_checkpoint(cursor, run.run_key)
            if state is None:
                checkpoints.clear_run(cursor, run.run_key)
                state = self._fresh_state(cursor)
                incremental = self.definition.incremental
                if incremental is not None and not full_refresh:
                    state.since = marks.load_mark(cursor, self.table_text, incremental.record_field, self.connection_id)
                    state.incremental = state.since is not None
                checkpoints.save_checkpoint(cursor, run, self.table_text, state)
            state.job_id = jobs.open_job(cursor, run, self.table_text, state)
        return state

    def prepare_page(self, records: list[Any], page: int, fetched_before: int) -> PreparedPage:
        """Turn a page's records into COPY rows; pure CPU work, safe to run in the fetch thread."""
        hash_key, infer = self.columns.hash_key, self.definition.auto_mapping
        if self._unique_key is not None:
            return prepare_keyed(records, self._unique_key, self.definition.name, page, hash_key=hash_key, infer=infer)
        return prepare_positional(records, fetched_before, self.definition.name, page, hash_key=hash_key, infer=infer)

    def write_page(
        self,
        run: RunIdentity,
        state: RunState,
        prepared: PreparedPage | Callable[[], PreparedPage],
        page: int,
        checkpoint: Mapping[str, Any] | None,
        *,
        high_mark: Any = None,
        meanwhile: Callable[[], None] = lambda: None,
    ) -> dict[str, int]:
        """Write one prepared page, its counts and ``checkpoint`` (the next request) in one transaction, with
        ``high_mark`` (the page's highest value of an incremental sync's record field) kept in the run's state.
        ``meanwhile`` is called while Postgres stores the rows of a COPY (not on every path): the caller prepares
        its next page then.

        ``prepared`` may be a function that prepares the page: a COPY calls it once its transaction has begun. The
        writing thread then waits for the server before its longest stretch of Python work, and the thread that
        fetches pages, which has just handed this page on, sends its next request meanwhile instead of waiting
        for the interpreter.

        While the run has met no stored key, the page goes straight into the table by COPY; if a key of the page
        is stored already, that transaction rolls back with nothing written and the page is upserted in a new one,
        and so is the rest of the run. A table with extra columns (metadata, typed columns), whose values the
        upsert computes, is always upserted."""
        doing = f"writing page {page}"
        if self.copies_new_rows(state):
            with self._page_transaction(doing) as cursor:
                cursor.execute("BEGIN")
                prepared = prepared() if callable(prepared) else prepared
                end = _PageEnd(page, prepared.fetched, checkpoint, high_mark)
                if pages.copy_new_page(cursor, self.table, prepared, meanwhile):
                    return self._commit_page(cursor, run, state, end, added=prepared.rows)
            state.copy_new_rows = False  # a key of this page was stored already: upsert from here on
        prepared = prepared() if callable(prepared) else prepared
        end = _PageEnd(page, prepared.fetched, checkpoint, high_mark)
        with self._page_transaction(doing) as cursor:
            if self._unique_key is None:
                cursor.execute("BEGIN")
                self.columns.evolve(cursor, prepared.shape)
                pages.stage_snapshot_page(cursor, prepared, run)
                return self._commit_page(cursor, run, state, end)
            rows = prepared.rows
            with self.conn.pipeline():  # BEGIN travels with the page's first statements, in one round trip
                cursor.execute("BEGIN")
                self.columns.evolve(cursor, prepared.shape)
                if state.track_seen and rows:
                    prepared = pages.changed_rows(cursor, self.table, prepared, run, self.columns)
                    state.seen += rows
            added, updated = pages.upsert_page(cursor, self.table, prepared, columns=self.columns)
            return self._commit_page(
                cursor, run, state, end, added=added, updated=updated, unchanged=rows - added - updated
            )

    def copies_new_rows(self, state: RunState) -> bool:
        """Whether the next page goes into the table by COPY: a keyed table without extra columns, while the run
        has met none of its keys stored."""
        keyed_rows_only = self._unique_key is not None and not self.columns.auto and not self.columns.writes_extra
        return keyed_rows_only and state.copy_new_rows and not state.track_seen

    @contextmanager
    def _page_transaction(self, doing: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor for a page's transaction, which the caller begins and :meth:`_commit_page` commits; rolled back
        if the block ends otherwise (an error, or a COPY refused). A psycopg error becomes a :class:`StoreError`.

        The transaction is begun and ended by hand rather than with ``Connection.transaction()`` so that its
        ``COMMIT`` goes to the server in one round trip with the checkpoint: a page costs few round trips, and
        the writing thread waits less for the server and for the threads that fetch and prepare the next pages.
        """
        with self._errors(doing), self.conn.cursor(row_factory=tuple_row) as cursor:
            try:
                yield cursor
            finally:
                if self.conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                    self._roll_back()

    def _roll_back(self) -> None:
        """Roll back the page's transaction; a connection too broken for it is left to the error being raised."""
        with suppress(psycopg.Error):
            self.conn.rollback()

    def _commit_page(
        self,
        cursor: psycopg.Cursor[Any],
        run: RunIdentity,
        state: RunState,
        end: _PageEnd,
        *,
        added: int = 0,
        updated: int = 0,
        unchanged: int = 0,
    ) -> dict[str, int]:
        """Count the page into ``state``, save the checkpoint and commit, in one round trip; the page's counts."""
        page_counts = {"pages": 1, "fetched": end.fetched, "added": added, "updated": updated, "unchanged": unchanged}
        for name, value in page_counts.items():
            state.counts[name] += value
        state.checkpoint = end.checkpoint
        state.next_page = end.number + 1
        state.high_mark = highest([state.high_mark, end.high_mark])
        with self.conn.pipeline():
            checkpoints.save_checkpoint(cursor, run, self.table_text, state)
            cursor.execute("COMMIT")
        return page_counts

    def finish(
        self, run: RunIdentity, state: RunState, *, complete: bool, warnings: list[str] | None = None
    ) -> tuple[dict[str, int], datetime]:
        """End the run: decide deletions as ``deletes`` says (only when ``complete`` and not incremental) or replace
        an unkeyed table, move the incremental mark (only when ``complete``), mark the job done with its
        ``warnings``, drop the checkpoint. The final counts, and the end of the run: the latest time its changes
        are stamped with."""
        keeps_rows = self.definition.deletes == "keep"
        with self._transaction("finishing the run") as cursor:
            # The end of the run waits for the disk, and with it every page committed before (see _configure).
            cursor.execute("SET LOCAL synchronous_commit = on")
            if self._unique_key is None:
                deletions.apply_snapshot(
                    cursor, self.table, run, state, self.columns, complete=complete and not keeps_rows
                )
            elif complete and not state.incremental and not keeps_rows:
                remove = self.definition.deletes == "hard"
                state.counts["deleted"] = deletions.mark_deleted(
                    cursor, self.table, run, state, remove=remove, columns=self.columns
                )
            if complete:
                self._move_mark(cursor, state)
            checkpoints.clear_run(cursor, run.run_key)
            jobs.end_job(cursor, state, jobs.SUCCESS, warnings or [])
            cursor.execute("SELECT now()")
            ended_at = one_row(cursor)[0]
        return dict(state.counts), ended_at

    def _move_mark(self, cursor: psycopg.Cursor[Any], state: RunState) -> None:
        """After a complete run: the highest value it saw (an incremental run never moves the mark back)."""
        incremental = self.definition.incremental
        if incremental is None:
            return
        value = highest([state.since, state.high_mark]) if state.incremental else state.high_mark
        if value is not None:
            marks.save_mark(
                cursor,
                self.table_text,
                self.definition.name,
                incremental.record_field,
                value,
                connection_id=self.connection_id,
            )

    def record_stop(self, state: RunState | None, run: RunIdentity, message: str, *, cancelled: bool) -> None:
        """End the job row as ``failed`` (or ``cancelled``) with ``message``; uses a new connection, as the run's
        own may be broken.

        The checkpoint is kept, so the task's next try (or a clear of the task) resumes where this one stopped.
        """
        status = jobs.CANCELLED if cancelled else jobs.FAILED
        try:
            with self._connect() as conn, conn.cursor(row_factory=tuple_row) as cursor:
                conn.autocommit = True
                jobs.stop_job(cursor, state, run, self.table_text, status=status, message=message)
        except psycopg.Error:
            pass  # the database itself is gone; the task log still has the error

    def _fresh_state(self, cursor: psycopg.Cursor[Any]) -> RunState:
        # Keys seen are only worth recording when stored rows may have to be marked or removed at the end.
        rows_to_decide = "true" if self.definition.deletes == "hard" else "_nango_deleted_at IS NULL"
        cursor.execute(
            sql.SQL("SELECT now(), EXISTS (SELECT 1 FROM {} AS t WHERE {}{})").format(
                self.table, sql.SQL(rows_to_decide), self.columns.scope("t")
            ),
            {"nango_connection": self.connection_id},
        )
        row = cursor.fetchone()
        if row is None:
            raise StoreError("Postgres returned no row for now()")
        started, has_live_rows = row
        return RunState(0, started, None, 1, track_seen=bool(has_live_rows), resumed=False)


@dataclass(frozen=True)
class _PageEnd:
    """Where a written page leaves the run: its number and records fetched, the next request, its high mark."""

    number: int
    fetched: int
    checkpoint: Mapping[str, Any] | None
    high_mark: Any


def _busy(conn: psycopg.Connection[Any]) -> bool:
    """Whether the connection is inside a statement or a transaction (not idle, not closed)."""
    status = conn.pgconn.transaction_status
    return status not in (pq.TransactionStatus.IDLE, pq.TransactionStatus.UNKNOWN)


def _cancel(conn: psycopg.Connection[Any]) -> None:
    """Ask the server to cancel the connection's statement; best effort (the connection may be gone)."""
    with suppress(psycopg.Error):
        conn.cancel_safe(timeout=_CANCEL_TIMEOUT_SECONDS)
