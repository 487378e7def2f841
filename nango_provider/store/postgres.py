"""``PostgresStore``: the sync's table, the staged per-page upsert, counts, jobs, checkpoints and the lock.

It knows Postgres and nothing of HTTP. Every page is one transaction: COPY into a temporary stage, one
set-based upsert that skips unchanged rows and counts inserts and updates with ``RETURNING``, and the
checkpoint for the next page. A retried task resumes from that checkpoint. Identifiers are composed with
``psycopg.sql``; values are always parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from nango_provider.definition import DEFAULT_SCHEMA, SyncDefinition
from nango_provider.exceptions import StoreError
from nango_provider.pagination import PageRequest, request_from_checkpoint
from nango_provider.paths import compile_path
from nango_provider.store.records import PreparedPage, prepare_keyed, prepare_positional

ConnectionFactory = Callable[[], psycopg.Connection[Any]]

COUNT_NAMES: Final = ("pages", "fetched", "added", "updated", "unchanged", "deleted")
_BOOTSTRAP_LOCK: Final = 7_305_843_009_213_693_951  # serializes DDL of the bookkeeping tables
_BOOKKEEPING_DDL: Final = """
CREATE SCHEMA IF NOT EXISTS nango;
CREATE TABLE IF NOT EXISTS nango._nango_jobs (
    id bigserial PRIMARY KEY,
    sync_name text NOT NULL,
    dag_id text,
    task_id text,
    run_id text,
    try_number integer,
    target_table text NOT NULL,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    ended_at timestamptz,
    pages bigint NOT NULL DEFAULT 0,
    fetched bigint NOT NULL DEFAULT 0,
    added bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0,
    deleted bigint NOT NULL DEFAULT 0,
    resumed_from_page integer,
    error text
);
CREATE INDEX IF NOT EXISTS _nango_jobs_sync_started ON nango._nango_jobs (sync_name, started_at DESC);
CREATE TABLE IF NOT EXISTS nango._nango_checkpoints (
    run_key text PRIMARY KEY,
    sync_name text NOT NULL,
    target_table text NOT NULL,
    run_started_at timestamptz NOT NULL,
    next_request jsonb,
    next_page integer NOT NULL,
    track_seen boolean NOT NULL,
    seen bigint NOT NULL DEFAULT 0,
    pages bigint NOT NULL DEFAULT 0,
    fetched bigint NOT NULL DEFAULT 0,
    added bigint NOT NULL DEFAULT 0,
    updated bigint NOT NULL DEFAULT 0,
    unchanged bigint NOT NULL DEFAULT 0,
    saved_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNLOGGED TABLE IF NOT EXISTS nango._nango_seen_keys (run_key text NOT NULL, keys text[] NOT NULL);
CREATE TABLE IF NOT EXISTS nango._nango_snapshot (
    run_key text NOT NULL, position bigint NOT NULL, data jsonb NOT NULL, hash text NOT NULL
);
"""
_TARGET_DDL: Final = """
CREATE TABLE IF NOT EXISTS {table} (
    _nango_unique_key text PRIMARY KEY,
    _nango_data jsonb NOT NULL,
    _nango_hash text NOT NULL,
    _nango_first_seen_at timestamptz NOT NULL DEFAULT now(),
    _nango_updated_at timestamptz NOT NULL DEFAULT now(),
    _nango_last_seen_at timestamptz NOT NULL DEFAULT now(),
    _nango_deleted_at timestamptz
)
"""
_UPSERT: Final = """
WITH written AS (
    INSERT INTO {table} AS t (_nango_unique_key, _nango_data, _nango_hash,
                              _nango_first_seen_at, _nango_updated_at, _nango_last_seen_at)
    SELECT k, d, h, now(), now(), now() FROM pg_temp._nango_page AS p{skip_unchanged}
    ON CONFLICT (_nango_unique_key) DO UPDATE SET
        _nango_data = EXCLUDED._nango_data,
        _nango_hash = EXCLUDED._nango_hash,
        _nango_updated_at = EXCLUDED._nango_updated_at,
        _nango_last_seen_at = EXCLUDED._nango_last_seen_at,
        _nango_deleted_at = NULL
    WHERE t._nango_hash IS DISTINCT FROM EXCLUDED._nango_hash OR t._nango_deleted_at IS NOT NULL
    RETURNING (xmax = 0) AS inserted
){seen}
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""
_SKIP_UNCHANGED: Final = """
-- Unchanged rows are skipped here, by one index lookup each (a scalar subquery, so never a scan of the table):
-- ON CONFLICT would lock, and so dirty, every one of them. Only worth it when the table held rows at the start.
WHERE (
    SELECT c._nango_hash FROM {table} AS c WHERE c._nango_unique_key = p.k AND c._nango_deleted_at IS NULL
) IS DISTINCT FROM p.h"""
_SEEN: Final = """,
seen AS (
    INSERT INTO nango._nango_seen_keys (run_key, keys)
    SELECT %(run)s, array_agg(k) FROM pg_temp._nango_page HAVING count(*) > 0
)"""
_MARK_DELETED: Final = """
WITH seen AS (SELECT unnest(keys) AS key FROM nango._nango_seen_keys WHERE run_key = %(run)s)
UPDATE {table} AS t SET _nango_deleted_at = now()
WHERE t._nango_deleted_at IS NULL AND t._nango_first_seen_at < %(started)s
  AND NOT EXISTS (SELECT 1 FROM seen s WHERE s.key = t._nango_unique_key)
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
    """INSERT INTO {table} (_nango_unique_key, _nango_data, _nango_hash, _nango_first_seen_at)
       SELECT k, d, h, coalesce(first_seen, now()) FROM pg_temp._nango_fresh""",
)
_APPEND_SNAPSHOT: Final = """
WITH inserted AS (
    INSERT INTO {table} (_nango_unique_key, _nango_data, _nango_hash)
    SELECT k, d, h FROM ({rows}) fresh ON CONFLICT (_nango_unique_key) DO NOTHING RETURNING 1
)
SELECT count(*) FROM inserted
"""


@dataclass(frozen=True)
class RunIdentity:
    """Who is running: the Airflow coordinates of one task run (all tries share ``run_key``)."""

    sync_name: str
    dag_id: str
    task_id: str
    run_id: str
    try_number: int = 1

    @property
    def run_key(self) -> str:
        """Identifies the run across tries: the checkpoint a retry resumes from is stored under it."""
        return f"{self.dag_id}/{self.task_id}/{self.run_id}"


@dataclass
class RunState:
    """Progress of a run: where the next page comes from and the counts so far (saved per page)."""

    job_id: int
    run_started_at: datetime
    next_request: PageRequest | None
    next_page: int
    track_seen: bool
    resumed: bool
    seen: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))


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

    def _cursor(self) -> psycopg.Cursor[Any]:
        return self.conn.cursor(row_factory=tuple_row)

    @contextmanager
    def _database_errors(self, doing: str) -> Iterator[None]:
        """Turn a psycopg error into a :class:`StoreError` that says what was being done."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            raise StoreError(
                f"sync {self.definition.name!r}: lost the connection to Postgres while {doing} ({error}); "
                "every committed page is kept and a retry resumes after the last one"
            ) from error
        except psycopg.Error as error:
            raise StoreError(f"sync {self.definition.name!r}: Postgres refused {doing}: {error}") from error

    def create_tables(self) -> None:
        """Create the bookkeeping tables, the schema and the sync's table if they are missing."""
        with self._database_errors("creating tables"), self.conn.transaction(), self._cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_BOOTSTRAP_LOCK,))
            cursor.execute(_BOOKKEEPING_DDL)
            schema = self.definition.schema_name
            if schema != DEFAULT_SCHEMA:
                cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            cursor.execute(sql.SQL(_TARGET_DDL).format(table=self.table))
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _nango_page (k text, d jsonb, h text) ON COMMIT DELETE ROWS"
            )

    def lock_table(self, log: Callable[[str], None]) -> None:
        """Hold the table's advisory lock until the connection closes; wait if another run holds it."""
        key = f"nango:{self.table_text}"
        with self._database_errors("locking the table"), self._cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
            if cursor.fetchone() == (True,):
                return
            log(f"another run is writing {self.table_text}; waiting for it to finish")
            cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))

    # -- run lifecycle ------------------------------------------------------------------------------------

    def start(self, run: RunIdentity, *, full_refresh: bool) -> RunState:
        """Open a job row and return the run's state: resumed from its checkpoint, or fresh."""
        with self._database_errors("starting the run"), self.conn.transaction(), self._cursor() as cursor:
            self._drop_abandoned_runs(cursor, run.run_key)
            state = None if full_refresh else self._load_checkpoint(cursor, run.run_key)
            if state is None:
                self._clear_run(cursor, run.run_key)
                state = self._fresh_state(cursor)
                self._save_checkpoint(cursor, run, state)
            cursor.execute(
                """INSERT INTO nango._nango_jobs (sync_name, dag_id, task_id, run_id, try_number, target_table,
                       status, resumed_from_page, pages, fetched, added, updated, unchanged)
                   VALUES (%s, %s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    run.sync_name,
                    run.dag_id,
                    run.task_id,
                    run.run_id,
                    run.try_number,
                    self.table_text,
                    state.next_page if state.resumed else None,
                    *(state.counts[name] for name in COUNT_NAMES[:5]),
                ),
            )
            state.job_id = _one(cursor)
        return state

    def prepare_page(self, records: list[Any], page: int, fetched_before: int) -> PreparedPage:
        """Turn a page's records into COPY rows; pure CPU work, safe to run in the fetch thread."""
        if self._unique_key is not None:
            return prepare_keyed(records, self._unique_key, self.definition.name, page)
        return prepare_positional(records, fetched_before, self.definition.name, page)

    def write_page(
        self, run: RunIdentity, state: RunState, prepared: PreparedPage, page: int, next_request: PageRequest | None
    ) -> dict[str, int]:
        """Write one prepared page, its counts and the checkpoint for ``next_request`` in one transaction."""
        page_counts = {"pages": 1, "fetched": prepared.fetched, "added": 0, "updated": 0, "unchanged": 0}
        doing = f"writing page {page}"
        with self._database_errors(doing), self.conn.transaction(), self._cursor() as cursor:
            if self._unique_key is not None:
                added, updated = self._upsert(cursor, prepared, run, state)
                page_counts.update(added=added, updated=updated, unchanged=prepared.rows - added - updated)
            else:
                self._stage_snapshot(cursor, prepared, run)
            for name, value in page_counts.items():
                state.counts[name] += value
            state.next_request = next_request
            state.next_page = page + 1
            self._save_checkpoint(cursor, run, state)
        return page_counts

    def finish(self, run: RunIdentity, state: RunState, *, complete: bool) -> dict[str, int]:
        """End the run: soft-delete or replace (only when ``complete``), mark the job done, drop the checkpoint."""
        with self._database_errors("finishing the run"), self.conn.transaction(), self._cursor() as cursor:
            if self._unique_key is not None:
                if complete:
                    state.counts["deleted"] = self._mark_deleted(cursor, run, state)
            else:
                self._apply_snapshot(cursor, run, state, complete)
            self._clear_run(cursor, run.run_key)
            self._update_job(cursor, state, "success", ended=True)
        return dict(state.counts)

    def record_failure(self, state: RunState | None, run: RunIdentity, message: str) -> None:
        """Mark the job failed with ``message``; uses a new connection, as the run's own may be broken.

        The checkpoint is kept, so the task's next try resumes where this one stopped.
        """
        try:
            with self._connect() as conn, conn.cursor(row_factory=tuple_row) as cursor:
                conn.autocommit = True
                if state is not None:
                    cursor.execute(
                        """UPDATE nango._nango_jobs SET status = 'failed', ended_at = now(), error = %s
                           WHERE id = %s""",
                        (message, state.job_id),
                    )
                else:
                    cursor.execute(
                        """INSERT INTO nango._nango_jobs (sync_name, dag_id, task_id, run_id, try_number,
                               target_table, status, ended_at, error)
                           SELECT %s, %s, %s, %s, %s, %s, 'failed', now(), %s
                           WHERE to_regclass('nango._nango_jobs') IS NOT NULL""",
                        (run.sync_name, run.dag_id, run.task_id, run.run_id, run.try_number, self.table_text, message),
                    )
        except psycopg.Error:
            pass  # the database itself is gone; the task log still has the error

    # -- pieces -------------------------------------------------------------------------------------------

    def _upsert(
        self, cursor: psycopg.Cursor[Any], prepared: PreparedPage, run: RunIdentity, state: RunState
    ) -> tuple[int, int]:
        with cursor.copy("COPY pg_temp._nango_page (k, d, h) FROM STDIN") as copy:
            copy.write(prepared.copy_text)
        # A table with rows at the start (a re-sync) skips unchanged rows and records the keys it sees.
        seen = sql.SQL(_SEEN if state.track_seen else "")
        skip = sql.SQL(_SKIP_UNCHANGED if state.track_seen else "").format(table=self.table)
        if state.track_seen:
            # The skip of unchanged rows must be an index lookup per row whatever the table's statistics say
            # (they are stale while a sync fills the table); only the page's own stage is scanned here.
            cursor.execute("SET LOCAL enable_seqscan = off")
        upsert = sql.SQL(_UPSERT).format(table=self.table, seen=seen, skip_unchanged=skip)
        cursor.execute(upsert, {"run": run.run_key})
        added, updated = cursor.fetchone() or (0, 0)
        if state.track_seen:
            state.seen += prepared.rows
        return int(added), int(updated)

    def _stage_snapshot(self, cursor: psycopg.Cursor[Any], prepared: PreparedPage, run: RunIdentity) -> None:
        with cursor.copy("COPY pg_temp._nango_page (k, d, h) FROM STDIN") as copy:
            copy.write(prepared.copy_text)
        cursor.execute(
            """INSERT INTO nango._nango_snapshot (run_key, position, data, hash)
               SELECT %s, k::bigint, d, h FROM pg_temp._nango_page""",
            (run.run_key,),
        )

    def _mark_deleted(self, cursor: psycopg.Cursor[Any], run: RunIdentity, state: RunState) -> int:
        if not state.track_seen:
            return 0  # the table was empty when the run started: every row in it was seen by this run
        cursor.execute(
            "SELECT coalesce(sum(cardinality(keys)), 0) FROM nango._nango_seen_keys WHERE run_key = %s",
            (run.run_key,),
        )
        if _one(cursor) != state.seen:
            return 0  # seen keys were lost (unlogged table after a crash): never guess what is gone
        # One hash anti-join over every key seen, whatever the (stale) statistics estimate for the unnested keys:
        # a nested loop here would compare every row with every key.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(
            sql.SQL(_MARK_DELETED).format(table=self.table), {"started": state.run_started_at, "run": run.run_key}
        )
        return cursor.rowcount

    def _apply_snapshot(self, cursor: psycopg.Cursor[Any], run: RunIdentity, state: RunState, complete: bool) -> None:
        rows = sql.SQL(_SNAPSHOT_ROWS)
        if complete:
            create, count, delete, insert = (sql.SQL(part).format(rows=rows, table=self.table) for part in _REPLACE)
            cursor.execute(create, {"run": run.run_key})
            cursor.execute(count)
            added, unchanged, deleted = cursor.fetchone() or (0, 0, 0)
            state.counts.update(added=int(added), unchanged=int(unchanged), deleted=int(deleted))
            cursor.execute(delete)
            cursor.execute(insert)
        else:
            cursor.execute(sql.SQL(_APPEND_SNAPSHOT).format(rows=rows, table=self.table), {"run": run.run_key})
            added = _one(cursor)
            state.counts.update(added=added, unchanged=state.counts["fetched"] - added)

    def _fresh_state(self, cursor: psycopg.Cursor[Any]) -> RunState:
        cursor.execute(
            sql.SQL("SELECT now(), EXISTS (SELECT 1 FROM {} WHERE _nango_deleted_at IS NULL)").format(self.table)
        )
        row = cursor.fetchone()
        if row is None:
            raise StoreError("Postgres returned no row for now()")
        started, has_live_rows = row
        return RunState(0, started, None, 1, track_seen=bool(has_live_rows), resumed=False)

    def _load_checkpoint(self, cursor: psycopg.Cursor[Any], run_key: str) -> RunState | None:
        cursor.execute(
            """SELECT run_started_at, next_request, next_page, track_seen, seen,
                      pages, fetched, added, updated, unchanged
               FROM nango._nango_checkpoints WHERE run_key = %s FOR UPDATE""",
            (run_key,),
        )
        row = cursor.fetchone()
        if row is None or row[2] == 1:
            return None
        started, next_request, next_page, track_seen, seen, *counts = row
        state = RunState(
            0,
            started,
            request_from_checkpoint(self.definition, next_request) if next_request else None,
            next_page,
            track_seen=track_seen,
            resumed=True,
            seen=seen,
        )
        state.counts.update(zip(COUNT_NAMES[:5], (int(value) for value in counts), strict=True))
        return state

    def _save_checkpoint(self, cursor: psycopg.Cursor[Any], run: RunIdentity, state: RunState) -> None:
        """Save where the run is, and show its counts so far in its job row, in one round trip."""
        request = json.dumps(state.next_request.to_checkpoint()) if state.next_request else None
        cursor.execute(
            """WITH saved AS (
                   INSERT INTO nango._nango_checkpoints (run_key, sync_name, target_table, run_started_at,
                       next_request, next_page, track_seen, seen, pages, fetched, added, updated, unchanged, saved_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                   ON CONFLICT (run_key) DO UPDATE SET next_request = EXCLUDED.next_request,
                       next_page = EXCLUDED.next_page, seen = EXCLUDED.seen, pages = EXCLUDED.pages,
                       fetched = EXCLUDED.fetched, added = EXCLUDED.added, updated = EXCLUDED.updated,
                       unchanged = EXCLUDED.unchanged, saved_at = now()
                   RETURNING pages, fetched, added, updated, unchanged
               )
               UPDATE nango._nango_jobs AS j SET pages = s.pages, fetched = s.fetched, added = s.added,
                   updated = s.updated, unchanged = s.unchanged
               FROM saved AS s WHERE j.id = %s""",
            (
                run.run_key,
                run.sync_name,
                self.table_text,
                state.run_started_at,
                request,
                state.next_page,
                state.track_seen,
                state.seen,
                *(state.counts[name] for name in COUNT_NAMES[:5]),
                state.job_id,
            ),
        )

    def _update_job(self, cursor: psycopg.Cursor[Any], state: RunState, status: str, *, ended: bool = False) -> None:
        cursor.execute(
            """UPDATE nango._nango_jobs SET status = %s, pages = %s, fetched = %s, added = %s, updated = %s,
                   unchanged = %s, deleted = %s, ended_at = CASE WHEN %s THEN now() END
               WHERE id = %s""",
            (status, *(state.counts[name] for name in COUNT_NAMES), ended, state.job_id),
        )

    def _clear_run(self, cursor: psycopg.Cursor[Any], run_key: str) -> None:
        for statement in (
            "DELETE FROM nango._nango_checkpoints WHERE run_key = %s",
            "DELETE FROM nango._nango_seen_keys WHERE run_key = %s",
            "DELETE FROM nango._nango_snapshot WHERE run_key = %s",
        ):
            cursor.execute(statement, (run_key,))

    def _drop_abandoned_runs(self, cursor: psycopg.Cursor[Any], run_key: str) -> None:
        """Forget day-old checkpoints of other runs of this table: their retries are long over."""
        cursor.execute(
            """SELECT run_key FROM nango._nango_checkpoints
               WHERE target_table = %s AND run_key <> %s AND saved_at < now() - interval '1 day'""",
            (self.table_text, run_key),
        )
        for (abandoned,) in cursor.fetchall():
            self._clear_run(cursor, abandoned)


def _one(cursor: psycopg.Cursor[Any]) -> int:
    row = cursor.fetchone()
    if row is None:
        raise StoreError("expected one row from Postgres, got none")
    return int(row[0])
