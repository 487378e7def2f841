"""The run lifecycle: who is running (``RunIdentity``), its progress (``RunState``) and its row in
``nango._nango_jobs`` (opened as ``running``, updated per page, ended as ``success``, ``failed`` or ``cancelled``,
or closed as ``abandoned`` by a later run when its task died without ending it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import sql

from nango_provider.exceptions import StoreError

COUNT_NAMES: Final = ("pages", "fetched", "added", "updated", "unchanged", "deleted")
PAGE_COUNT_NAMES: Final = COUNT_NAMES[:5]
"""The counts a page adds to (deletions are counted once, when the run ends)."""
RUNNING: Final = "running"
SUCCESS: Final = "success"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
ABANDONED: Final = "abandoned"
STATUSES: Final = (RUNNING, SUCCESS, FAILED, CANCELLED, ABANDONED)
"""Every value of ``nango._nango_jobs.status``; all but ``running`` are final."""
ABANDONED_MESSAGE: Final = (
    "the task stopped without ending its run (killed, or its worker or Postgres connection lost); "
    "closed by the next run of the table"
)


@dataclass(frozen=True)
class RunIdentity:
    """Who is running: the Airflow coordinates of one task run (all tries share ``run_key``), and the connection
    it syncs when its sync has several (``connections``: one mapped task each)."""

    sync_name: str
    dag_id: str
    task_id: str
    run_id: str
    try_number: int = 1
    connection_id: str | None = None

    @property
    def run_key(self) -> str:
        """Identifies the run across tries: the checkpoint a retry resumes from is stored under it."""
        key = f"{self.dag_id}/{self.task_id}/{self.run_id}"
        return key if self.connection_id is None else f"{key}/{self.connection_id}"


@dataclass
class RunState:
    """Progress of a run: where the next page comes from and the counts so far (saved per page).

    ``checkpoint`` is the engine's opaque description of the next request (JSON), ``None`` after the last page.
    An incremental run asks only for records changed ``since`` the mark of the last complete run; ``high_mark``
    is the highest value of the mark's record field seen so far in this run.
    ``copy_new_rows``: while the run finds none of its keys stored (the table had no live rows at the start),
    pages go straight into the table by COPY; the first page with a stored key switches the run to the upsert.
    """

    job_id: int
    run_started_at: datetime
    checkpoint: Mapping[str, Any] | None
    next_page: int
    track_seen: bool
    resumed: bool
    seen: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_NAMES, 0))
    incremental: bool = False
    since: Any = None
    high_mark: Any = None
    copy_new_rows: bool = True


def open_job(cursor: psycopg.Cursor[Any], run: RunIdentity, table: str, state: RunState) -> int:
    """Insert the run's job row as ``running`` (with the counts it resumes from); its id."""
    cursor.execute(
        """INSERT INTO nango._nango_jobs (sync_name, dag_id, task_id, run_id, try_number, target_table,
               connection_id, status, resumed_from_page, pages, fetched, added, updated, unchanged)
           VALUES (%s, %s, %s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            run.sync_name,
            run.dag_id,
            run.task_id,
            run.run_id,
            run.try_number,
            table,
            run.connection_id,
            state.next_page if state.resumed else None,
            *(state.counts[name] for name in PAGE_COUNT_NAMES),
        ),
    )
    return one_value(cursor)


def end_job(cursor: psycopg.Cursor[Any], state: RunState, status: str, warnings: list[str]) -> None:
    """Close the run's job row with ``status``, its final counts and its ``warnings`` (null when none)."""
    cursor.execute(
        """UPDATE nango._nango_jobs SET status = %s, pages = %s, fetched = %s, added = %s, updated = %s,
               unchanged = %s, deleted = %s, ended_at = now(), warnings = %s
           WHERE id = %s""",
        (status, *(state.counts[name] for name in COUNT_NAMES), warnings or None, state.job_id),
    )


def stop_job(
    cursor: psycopg.Cursor[Any], state: RunState | None, run: RunIdentity, table: str, *, status: str, message: str
) -> None:
    """End the run's job row as ``failed`` or ``cancelled`` with ``message``; a run that stopped before opening
    one gets a row now."""
    if state is not None:
        cursor.execute(
            "UPDATE nango._nango_jobs SET status = %s, ended_at = now(), error = %s WHERE id = %s",
            (status, message, state.job_id),
        )
        return
    # connection_id only when there is one: a jobs table of an older version may not have the column yet
    # (a run adds it when it creates the bookkeeping tables, which a run that failed first did not reach).
    values = [run.sync_name, run.dag_id, run.task_id, run.run_id, run.try_number, table, status, message]
    columns = sql.SQL("")
    if run.connection_id is not None:
        columns, values = sql.SQL(", connection_id"), [*values, run.connection_id]
    cursor.execute(
        sql.SQL(
            """INSERT INTO nango._nango_jobs (sync_name, dag_id, task_id, run_id, try_number,
                   target_table, status, error{columns}, ended_at)
               SELECT {placeholders}, now()
               WHERE to_regclass('nango._nango_jobs') IS NOT NULL"""
        ).format(
            columns=columns,
            placeholders=sql.SQL(", ").join(sql.Placeholder() * len(values)),
        ),
        values,
    )


def abandon_dead_jobs(cursor: psycopg.Cursor[Any], table: str, connection_id: str | None = None) -> int:
    """Close as ``abandoned`` every ``running`` row of ``table`` (of its connection ``connection_id``); how many.

    Call it only while holding the table's lock and before opening this run's row: every run takes the lock
    before it opens its row and ends its row before it lets the lock go, so a ``running`` row seen by the lock's
    holder belongs to a task that died (its session, and with it the lock, went away).
    """
    cursor.execute(
        """UPDATE nango._nango_jobs SET status = %s, ended_at = now(), error = %s
           WHERE target_table = %s AND status = %s AND connection_id IS NOT DISTINCT FROM %s""",
        (ABANDONED, ABANDONED_MESSAGE, table, RUNNING, connection_id),
    )
    return cursor.rowcount


def one_value(cursor: psycopg.Cursor[Any]) -> int:
    """The integer in the first column of the one row a statement returned."""
    return int(one_row(cursor)[0])


def one_row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The one row a statement returned."""
    row = cursor.fetchone()
    if row is None:
        raise StoreError("expected one row from Postgres, got none")
    return tuple(row)
