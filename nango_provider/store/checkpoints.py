"""Checkpoints: where a run is (the next request, as opaque JSON, and the counts so far), saved with every page
so that a retried task resumes after the last committed page."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from nango_provider.store.jobs import PAGE_COUNT_NAMES, RunIdentity, RunState


def load_checkpoint(cursor: psycopg.Cursor[Any], run_key: str) -> RunState | None:
    """The state a retry resumes from, or ``None`` when the run has not written a page yet."""
    cursor.execute(
        """SELECT run_started_at, next_request, next_page, track_seen, seen, incremental, since, high_mark,
                  pages, fetched, added, updated, unchanged
           FROM nango._nango_checkpoints WHERE run_key = %s FOR UPDATE""",
        (run_key,),
    )
    row = cursor.fetchone()
    if row is None or row[2] == 1:
        return None
    started, checkpoint, next_page, track_seen, seen, incremental, since, high_mark, *counts = row
    state = RunState(0, started, checkpoint, next_page, track_seen=track_seen, resumed=True, seen=seen)
    state.incremental, state.since, state.high_mark = incremental, since, high_mark
    state.counts.update(zip(PAGE_COUNT_NAMES, (int(value) for value in counts), strict=True))
    return state


def save_checkpoint(cursor: psycopg.Cursor[Any], run: RunIdentity, table: str, state: RunState) -> None:
    """Save where the run is, and show its counts so far in its job row, in one round trip."""
    cursor.execute(
        """WITH saved AS (
               INSERT INTO nango._nango_checkpoints (run_key, sync_name, target_table, run_started_at,
                   next_request, next_page, track_seen, seen, incremental, since, high_mark,
                   pages, fetched, added, updated, unchanged, saved_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
               ON CONFLICT (run_key) DO UPDATE SET next_request = EXCLUDED.next_request,
                   next_page = EXCLUDED.next_page, seen = EXCLUDED.seen, high_mark = EXCLUDED.high_mark,
                   pages = EXCLUDED.pages,
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
            table,
            state.run_started_at,
            json.dumps(state.checkpoint) if state.checkpoint is not None else None,
            state.next_page,
            state.track_seen,
            state.seen,
            state.incremental,
            _json(state.since),
            _json(state.high_mark),
            *(state.counts[name] for name in PAGE_COUNT_NAMES),
            state.job_id,
        ),
    )


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def clear_run(cursor: psycopg.Cursor[Any], run_key: str) -> None:
    """Forget a run's checkpoint, seen keys and snapshot rows."""
    for statement in (
        "DELETE FROM nango._nango_checkpoints WHERE run_key = %s",
        "DELETE FROM nango._nango_seen_keys WHERE run_key = %s",
        "DELETE FROM nango._nango_snapshot WHERE run_key = %s",
    ):
        cursor.execute(statement, (run_key,))


def drop_abandoned_runs(cursor: psycopg.Cursor[Any], table: str, run_key: str) -> None:
    """Forget day-old checkpoints of other runs of this table: their retries are long over."""
    cursor.execute(
        """SELECT run_key FROM nango._nango_checkpoints
           WHERE target_table = %s AND run_key <> %s AND saved_at < now() - interval '1 day'""",
        (table, run_key),
    )
    for (abandoned,) in cursor.fetchall():
        clear_run(cursor, abandoned)
