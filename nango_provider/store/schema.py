"""The tables: bookkeeping in schema ``nango`` (jobs, checkpoints, table owners, seen keys, snapshots, incremental
marks, per table or per table and connection) and each sync's table.

Also the constants every store module shares: the bookkeeping schema, the advisory lock keys that serialize
DDL, and the COPY statement that fills a page's temporary stage.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

from nango_provider.definition import DEFAULT_SCHEMA

BOOKKEEPING_SCHEMA: Final = DEFAULT_SCHEMA
"""Schema of the bookkeeping tables (and the default schema of sync tables)."""
BOOTSTRAP_LOCK: Final = 7_305_843_009_213_693_951
"""Advisory lock key that serializes creating the bookkeeping tables."""
REGISTRY_LOCK: Final = 7_305_843_009_213_693_952
"""Advisory lock key that serializes creating the registry table."""
COPY_TO_STAGE: Final = "COPY pg_temp._nango_page (k, d, h) FROM STDIN"
"""Fills a page's temporary stage (key, JSON, hash) from COPY text."""

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
    error text,
    warnings text[]
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
    incremental boolean NOT NULL DEFAULT false,
    since jsonb,
    high_mark jsonb,
    saved_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS nango._nango_table_owners (
    target_table text PRIMARY KEY,
    sync_name text NOT NULL,
    dag_id text NOT NULL,
    task_id text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNLOGGED TABLE IF NOT EXISTS nango._nango_seen_keys (run_key text NOT NULL, keys text[] NOT NULL);
CREATE TABLE IF NOT EXISTS nango._nango_columns (
    target_table text NOT NULL,
    origin text NOT NULL,
    path text[] NOT NULL,
    column_name text,
    type text NOT NULL,
    PRIMARY KEY (target_table, origin, path)
);
CREATE TABLE IF NOT EXISTS nango._nango_snapshot (
    run_key text NOT NULL, position bigint NOT NULL, data jsonb NOT NULL, hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS nango._nango_marks (
    target_table text PRIMARY KEY,
    sync_name text NOT NULL,
    record_field text NOT NULL,
    value jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS nango._nango_connection_marks (
    target_table text NOT NULL,
    connection_id text NOT NULL,
    sync_name text NOT NULL,
    record_field text NOT NULL,
    value jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_table, connection_id)
);
-- Tables made before a column existed get it; the catalog is checked first, so an ALTER (and its exclusive
-- lock) happens once, not on every run.
DO $$
DECLARE
    wanted record;
BEGIN
    FOR wanted IN SELECT * FROM (VALUES
        ('_nango_jobs', 'warnings', 'text[]'),
        ('_nango_jobs', 'connection_id', 'text'),
        ('_nango_checkpoints', 'incremental', 'boolean NOT NULL DEFAULT false'),
        ('_nango_checkpoints', 'since', 'jsonb'),
        ('_nango_checkpoints', 'high_mark', 'jsonb')
    ) AS c (table_name, column_name, column_type) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute
                       WHERE attrelid = ('nango.' || wanted.table_name)::regclass
                         AND attname = wanted.column_name AND NOT attisdropped) THEN
            EXECUTE format('ALTER TABLE nango.%I ADD COLUMN IF NOT EXISTS %I ', wanted.table_name,
                           wanted.column_name) || wanted.column_type;
        END IF;
    END LOOP;
END $$;
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

_CONNECTIONS_TARGET_DDL: Final = """
CREATE TABLE IF NOT EXISTS {table} (
    _nango_connection_id text NOT NULL,
    _nango_unique_key text NOT NULL,
    _nango_data jsonb NOT NULL,
    _nango_hash text NOT NULL,
    _nango_first_seen_at timestamptz NOT NULL DEFAULT now(),
    _nango_updated_at timestamptz NOT NULL DEFAULT now(),
    _nango_last_seen_at timestamptz NOT NULL DEFAULT now(),
    _nango_deleted_at timestamptz,
    PRIMARY KEY (_nango_connection_id, _nango_unique_key)
)
"""
"""The table of a sync with several connections: rows are keyed by (connection, unique key)."""


def create_bookkeeping(cursor: psycopg.Cursor[Any]) -> None:
    """Create the bookkeeping tables where missing (one creator at a time); run inside a transaction."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (BOOTSTRAP_LOCK,))
    cursor.execute(_BOOKKEEPING_DDL)


def create_tables(
    cursor: psycopg.Cursor[Any], schema: str, table: sql.Composable, *, per_connection: bool = False
) -> bool:
    """Create the bookkeeping tables, ``schema``, ``table`` and the page stage where missing (one creator at a
    time); run inside a transaction. Whether ``table`` was created. A ``per_connection`` table keys its rows by
    (``_nango_connection_id``, ``_nango_unique_key``)."""
    create_bookkeeping(cursor)
    if schema != BOOKKEEPING_SCHEMA:
        cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    cursor.execute("SELECT to_regclass(%s) IS NULL", (table.as_string(cursor),))
    created = bool((cursor.fetchone() or (False,))[0])
    ddl = _CONNECTIONS_TARGET_DDL if per_connection else _TARGET_DDL
    cursor.execute(sql.SQL(ddl).format(table=table))
    # The stage keeps the JSON as text: only the rows that get written are parsed into jsonb (a re-sync of
    # unchanged records parses none), and parsing JSON is most of what Postgres spends on a row.
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS _nango_page (k text, d text, h text) ON COMMIT DELETE ROWS")
    return created


def has_connection_column(cursor: psycopg.Cursor[Any], table: sql.Composable) -> bool:
    """Whether ``table`` keys its rows by connection (it has ``_nango_connection_id``)."""
    cursor.execute(
        """SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass
                          AND attname = '_nango_connection_id' AND NOT attisdropped)""",
        (table.as_string(cursor),),
    )
    return bool((cursor.fetchone() or (False,))[0])
