"""Page writes: a page's rows go into the sync's table in one statement, from a temporary stage filled by COPY
or, for a few rows, from array parameters of the statement.

With a unique key: one set-based upsert that counts inserts and updates with ``RETURNING``; a re-sync first
looks up the stored hashes of the page's keys and writes only the rows that are new or changed, so an unchanged
row is neither sent nor touched. While a run only meets new keys (an initial sync), a COPY straight into the
table, which is the least work Postgres can do for new rows. Without a unique key: the rows are kept in
``nango._nango_snapshot`` until the run replaces the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
import psycopg
from psycopg import errors, sql

from nango_provider.store.columns import TableColumns
from nango_provider.store.jobs import RunIdentity
from nango_provider.store.records import PreparedPage
from nango_provider.store.schema import COPY_TO_STAGE

_UPSERT: Final = """
WITH written AS (
    INSERT INTO {table} AS t (_nango_unique_key, _nango_data, _nango_hash,
                              _nango_first_seen_at, _nango_updated_at, _nango_last_seen_at{columns})
    SELECT k, {data}, h, now(), now(), now(){values} FROM {source}{parsed}
    ON CONFLICT {conflict} DO UPDATE SET
        _nango_data = EXCLUDED._nango_data,
        _nango_hash = EXCLUDED._nango_hash,
        _nango_updated_at = EXCLUDED._nango_updated_at,
        _nango_last_seen_at = EXCLUDED._nango_last_seen_at,
        _nango_deleted_at = NULL{assignments}
    WHERE t._nango_hash IS DISTINCT FROM EXCLUDED._nango_hash OR t._nango_deleted_at IS NOT NULL
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written
"""
_PARSED: Final = " CROSS JOIN LATERAL (SELECT p.d::jsonb AS j OFFSET 0) AS x"
_STAGE: Final = "pg_temp._nango_page AS p"
_PAGE_PARAMETERS: Final = "unnest(%(page_keys)s::text[], %(page_datas)s::text[], %(page_hashes)s::text[]) AS p(k, d, h)"
ROWS_AS_PARAMETERS: Final = 100
"""Up to this many rows (a re-sync's changed rows, mostly) travel as three array parameters of the upsert, in
one round trip; more go by COPY into the stage first, which costs two more round trips and truncating the stage
at the commit, but less work per row."""
_CHANGED_ROWS: Final = """
-- The page's keys are recorded as seen, and the positions of its rows that differ from the live row stored under
-- their key come back (new, changed, or stored as deleted). Each row costs one primary-key lookup, in a correlated
-- scalar subquery, which the planner never turns into a scan of the table: its costs stay realistic, with no
-- planner setting. The keys and hashes travel as one JSON array of pairs, the rows' JSON not at all.
WITH page AS MATERIALIZED (
    SELECT r.e ->> 0 AS k, r.e ->> 1 AS h, r.n - 1 AS i
    FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS r(e, n)
), seen AS (
    INSERT INTO nango._nango_seen_keys (run_key, keys) SELECT %(run)s, array_agg(k) FROM page
)
SELECT i FROM page AS p
WHERE (
    SELECT c._nango_hash FROM {table} AS c WHERE c._nango_unique_key = p.k AND c._nango_deleted_at IS NULL{scope}
) IS DISTINCT FROM p.h"""


_ENCODER: Final = msgspec.json.Encoder()
_COPY_TO_TABLE: Final = "COPY {table} (_nango_unique_key, _nango_data, _nango_hash) FROM STDIN"


def copy_new_page(
    cursor: psycopg.Cursor[Any],
    table: sql.Composable,
    prepared: PreparedPage,
    meanwhile: Callable[[], None] = lambda: None,
) -> bool:
    """COPY a page's rows straight into the table, all of them new; False if a key is stored already.

    The page's keys are distinct (``prepare_keyed``), so the primary key refuses the COPY only for a key stored
    before (an earlier page of the run, or a soft-deleted row). The refused COPY fails the transaction, which the
    caller rolls back, with nothing written, before it upserts the page instead. The timestamps take their
    defaults, ``now()``, as the upsert sets them. ``meanwhile`` is called once the rows are sent, while Postgres
    stores them.
    """
    try:
        with cursor.copy(sql.SQL(_COPY_TO_TABLE).format(table=table)) as copy:
            copy.write(prepared.copy_text)
            meanwhile()
    except errors.UniqueViolation:
        return False
    return True


def upsert_page(
    cursor: psycopg.Cursor[Any],
    table: sql.Composable,
    prepared: PreparedPage,
    *,
    columns: TableColumns,
) -> tuple[int, int]:
    """Upsert a keyed page's rows; ``(added, updated)``: rows whose stored hash is the same are left untouched.

    On a re-sync, ``prepared`` holds only the rows :func:`changed_rows` found new or changed; with none, nothing
    is sent. ``columns`` says which extra columns (metadata, typed columns) are written and how."""
    if not prepared.rows:
        return 0, 0
    params = columns.params
    if prepared.rows <= ROWS_AS_PARAMETERS:
        source = sql.SQL(_PAGE_PARAMETERS)
        datas = [data.decode() for data in prepared.datas]
        params = params | {"page_keys": list(prepared.keys), "page_datas": datas, "page_hashes": list(prepared.hashes)}
    else:
        source = sql.SQL(_STAGE)
        with cursor.copy(COPY_TO_STAGE) as copy:
            copy.write(prepared.copy_text)
    # With extra columns the page's JSON is parsed once per written row (a lateral subquery the planner keeps
    # apart), not once per column.
    parsed = sql.SQL(_PARSED if columns.writes_extra else "")
    data = sql.SQL("x.j" if columns.writes_extra else "d::jsonb")
    upsert = sql.SQL(_UPSERT).format(
        table=table,
        source=source,
        conflict=columns.conflict_target(),
        data=data,
        parsed=parsed,
        columns=columns.insert_columns(),
        values=columns.insert_values(data),
        assignments=columns.update_assignments(),
    )
    cursor.execute(upsert, params)
    added, updated = cursor.fetchone() or (0, 0)
    return int(added), int(updated)


def changed_rows(
    cursor: psycopg.Cursor[Any],
    table: sql.Composable,
    prepared: PreparedPage,
    run: RunIdentity,
    columns: TableColumns,
) -> PreparedPage:
    """Record the page's keys as seen by ``run``; the page's rows that are new, changed (another hash) or stored
    as deleted (in the run's connection's rows, when rows are keyed by connection), which are all that needs
    writing. An unchanged row costs one index lookup and its key and hash over the wire, not its JSON."""
    pairs = _ENCODER.encode(list(zip(prepared.keys, prepared.hashes, strict=True))).decode()
    statement = sql.SQL(_CHANGED_ROWS).format(table=table, scope=columns.scope("c"))
    cursor.execute(statement, {"run": run.run_key, "rows": pairs, **columns.params})
    changed = sorted(index for (index,) in cursor.fetchall())
    return prepared if len(changed) == prepared.rows else prepared.only(changed)


def stage_snapshot_page(cursor: psycopg.Cursor[Any], prepared: PreparedPage, run: RunIdentity) -> None:
    """Keep an unkeyed page's rows (keyed by position) until the run ends and replaces the table."""
    with cursor.copy(COPY_TO_STAGE) as copy:
        copy.write(prepared.copy_text)
    cursor.execute(
        """INSERT INTO nango._nango_snapshot (run_key, position, data, hash)
           SELECT %s, k::bigint, d::jsonb, h FROM pg_temp._nango_page""",
        (run.run_key,),
    )
