"""``SyncRegistry``: sync definitions created through the REST API, stored in Postgres.

YAML definitions live in files next to the DAG file; definitions created with ``POST /nango/v1/syncs`` live in
the table ``nango._nango_definitions`` of the database behind the Airflow connection named by
``$NANGO_REGISTRY_CONN_ID`` (default ``postgres_default``). In a real deployment the API server and the DAG
processor run on different machines, and the DAG folder is often read-only (git-sync): Postgres is the shared
state that both reach. The API server writes the table; the DAG factory reads it when it parses the DAG file.

Every definition is validated with :meth:`SyncDefinition.from_mapping` before it is stored, and again when it is
read, so a stored definition gives exactly the errors a YAML file would. Identifiers are composed with
``psycopg.sql``; values are always parameters.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import RegistryNotConfiguredError, StoreError, SyncDefinitionError, SyncExistsError
from nango_provider.store.schema import BOOKKEEPING_SCHEMA, REGISTRY_LOCK

if TYPE_CHECKING:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

ConnectionFactory = Callable[[], psycopg.Connection[Any]]
PendingRead = Callable[[], "list[RegisteredSync | SyncDefinitionError]"]

REGISTRY_CONN_VARIABLE: Final = "NANGO_REGISTRY_CONN_ID"
DEFAULT_REGISTRY_CONN_ID: Final = "postgres_default"
TABLE: Final = "_nango_definitions"
SOURCE: Final = f"{BOOKKEEPING_SCHEMA}.{TABLE}"
"""How errors name the registry (where a YAML error names its file)."""
CONNECT_TIMEOUT: Final = 10
"""Seconds to wait for the registry database when its connection does not set ``connect_timeout``."""
PARSE_TIMEOUT_VARIABLE: Final = "NANGO_REGISTRY_TIMEOUT"
DEFAULT_PARSE_TIMEOUT: Final = 1.0
"""Seconds a parse of the DAG file waits for the registry (connecting and reading) before going on without it."""
_COLUMNS: Final = sql.SQL("name, fields, created_at, updated_at")


@dataclass(frozen=True)
class RegisteredSync:
    """One stored definition: the fields as written, the validated definition, and when it was stored."""

    name: str
    fields: Mapping[str, Any]
    definition: SyncDefinition
    created_at: datetime | None
    updated_at: datetime | None


def registry_conn_id() -> str:
    """The Airflow connection of the registry database: ``$NANGO_REGISTRY_CONN_ID`` or ``postgres_default``."""
    return os.environ.get(REGISTRY_CONN_VARIABLE) or DEFAULT_REGISTRY_CONN_ID


def parse_timeout() -> float:
    """``$NANGO_REGISTRY_TIMEOUT`` (seconds, > 0), else :data:`DEFAULT_PARSE_TIMEOUT`."""
    text = os.environ.get(PARSE_TIMEOUT_VARIABLE)
    try:
        value = float(text) if text else DEFAULT_PARSE_TIMEOUT
    except ValueError:
        return DEFAULT_PARSE_TIMEOUT
    return value if value > 0 else DEFAULT_PARSE_TIMEOUT


def connection_factory(
    conn_id: str, *, connect_timeout: int = CONNECT_TIMEOUT, statement_timeout: float | None = None
) -> ConnectionFactory:
    """``PostgresHook(conn_id).get_conn`` (psycopg 3 on Airflow 3.3); an undefined connection is reported as such.

    ``connect_timeout`` (seconds) applies when the connection does not set its own; ``statement_timeout``
    (seconds) bounds every statement of the session.
    """

    def connect() -> psycopg.Connection[Any]:
        hook = _postgres_hook(conn_id, connect_timeout, statement_timeout)
        return hook.get_conn()  # type: ignore[return-value]  # psycopg 3 on Airflow 3.3

    return connect


def _postgres_hook(conn_id: str, connect_timeout: int, statement_timeout: float | None) -> PostgresHook:
    """A ``PostgresHook`` whose Airflow connection is already looked up (the lookup is not a database call)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    options = f"-c statement_timeout={math.ceil(statement_timeout * 1000)}" if statement_timeout else None
    hook = PostgresHook(postgres_conn_id=conn_id, options=options)
    try:
        connection = hook.connection
    except AirflowNotFoundException as error:
        raise RegistryNotConfiguredError(f"{SOURCE}: the Airflow connection {conn_id!r} is not defined") from error
    extra = connection.extra_dejson
    if "connect_timeout" not in extra:  # libpq's default (130 s) is longer than Airflow's DAG import timeout
        connection.extra = json.dumps({**extra, "connect_timeout": connect_timeout})
    return hook


class SyncRegistry:
    """The API-created syncs in ``nango._nango_definitions``.

    :param conn_id: Airflow connection of the registry database (default: :func:`registry_conn_id`).
    :param connect: returns a new psycopg 3 connection; defaults to ``PostgresHook(conn_id).get_conn``.
    """

    table: Final = sql.Identifier(BOOKKEEPING_SCHEMA, TABLE)

    def __init__(self, conn_id: str | None = None, *, connect: ConnectionFactory | None = None) -> None:
        self.conn_id = conn_id or registry_conn_id()
        self._default_connect = connect is None
        self._connect = connect or connection_factory(self.conn_id)

    # -- writing --------------------------------------------------------------------------------------------

    def save(self, name: str, fields: Mapping[str, Any], *, replace: bool = False) -> SyncDefinition:
        """Validate and store a definition; returns it. Raises :class:`SyncDefinitionError` when it is invalid,
        :class:`SyncExistsError` when ``name`` is taken (unless ``replace``)."""
        definition = SyncDefinition.from_mapping(name, fields)
        stored = dict(fields)
        conflict = sql.SQL("DO UPDATE SET fields = EXCLUDED.fields, updated_at = now()" if replace else "DO NOTHING")
        query = sql.SQL(
            "INSERT INTO {table} (name, fields, created_at, updated_at) VALUES (%s, %s, now(), now()) "
            "ON CONFLICT (name) {conflict} RETURNING name"
        ).format(table=self.table, conflict=conflict)
        with self._connection("saving a sync definition") as conn:
            self._create_table(conn)
            with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
                cursor.execute(query, (name, Jsonb(stored)))
                inserted = cursor.fetchone()
        if inserted is None:
            raise SyncExistsError(name, SOURCE)
        return definition

    def delete(self, name: str) -> bool:
        """Remove a definition; whether there was one. The sync's table and its rows are kept."""
        query = sql.SQL("DELETE FROM {table} WHERE name = %s RETURNING name").format(table=self.table)
        with self._connection("deleting a sync definition") as conn, conn.cursor(row_factory=tuple_row) as cursor:
            try:
                cursor.execute(query, (name,))
            except psycopg.errors.UndefinedTable:
                return False
            return cursor.fetchone() is not None

    # -- reading --------------------------------------------------------------------------------------------

    def get(self, name: str) -> RegisteredSync | None:
        """The stored sync ``name``, or ``None``. Raises :class:`SyncDefinitionError` if it no longer validates."""
        rows = self._select(sql.SQL("WHERE name = %s"), (name,))
        return _registered(rows[0]) if rows else None

    def iter_definitions(self) -> Iterator[RegisteredSync | SyncDefinitionError]:
        """Each stored sync, validated on its own: the sync, or the error that refuses it (like a YAML file)."""
        for row in self._select(sql.SQL("ORDER BY name"), ()):
            yield _validated(row)

    def start_reading(self, seconds: float, name: str | None = None) -> PendingRead:
        """Start reading the stored syncs (only ``name``'s when given) in the background; returns a function that
        waits for them, like :meth:`iter_definitions` gives them, but never past ``seconds`` after the start.

        One attempt: the Airflow connection is looked up here (raises :class:`RegistryNotConfiguredError` when it
        is not defined), then a helper thread connects and reads with connect and statement timeouts of about
        ``seconds`` (libpq waits at least 2 s to connect). When ``seconds`` pass first, the waiting function
        raises :class:`StoreError` and the helper thread is left to end on its own timeouts.
        """
        started = time.monotonic()
        connect = self._connect
        if self._default_connect:
            hook = _postgres_hook(self.conn_id, max(2, math.ceil(seconds)), statement_timeout=seconds)
            connect = hook.get_conn  # type: ignore[assignment]  # psycopg 3 on Airflow 3.3
        reader = SyncRegistry(self.conn_id, connect=connect)
        where, params = (sql.SQL("WHERE name = %s"), (name,)) if name else (sql.SQL("ORDER BY name"), ())
        outcome: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

        def read() -> None:
            try:
                outcome.put((True, [_validated(row) for row in reader._select(where, params)]))
            except BaseException as error:  # handed to the waiting thread, which raises it
                outcome.put((False, error))

        threading.Thread(target=read, name="nango-registry-read", daemon=True).start()

        def wait() -> list[RegisteredSync | SyncDefinitionError]:
            try:
                succeeded, value = outcome.get(timeout=max(0.0, started + seconds - time.monotonic()))
            except queue.Empty:
                raise StoreError(f"{SOURCE}: Postgres ({self.conn_id}) did not answer within {seconds:g} s") from None
            if succeeded:
                return list(value)
            raise value

        return wait

    # -- plumbing -------------------------------------------------------------------------------------------

    def _select(self, where: sql.Composable, params: Sequence[Any]) -> Sequence[tuple[Any, ...]]:
        """Rows of the registry table; none when the table does not exist yet (no sync was ever created)."""
        query = sql.SQL("SELECT {columns} FROM {table} ").format(columns=_COLUMNS, table=self.table) + where
        with self._connection("reading sync definitions") as conn, conn.cursor(row_factory=tuple_row) as cursor:
            try:
                cursor.execute(query, params)
            except psycopg.errors.UndefinedTable:
                return []
            return cursor.fetchall()

    def _create_table(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema and the table if they are missing (one creator at a time)."""
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (REGISTRY_LOCK,))
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BOOKKEEPING_SCHEMA)))
            cursor.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, fields jsonb NOT NULL, "
                    "created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now())"
                ).format(table=self.table)
            )

    @contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection, closed on exit; connection and database errors become :class:`StoreError`."""
        try:
            conn = self._connect()
        except psycopg.Error as error:
            raise StoreError(f"{SOURCE}: cannot connect to Postgres ({self.conn_id}): {error}") from error
        try:
            conn.autocommit = True
            yield conn
        except psycopg.Error as error:
            raise StoreError(f"{SOURCE}: Postgres refused {doing}: {error}") from error
        finally:
            conn.close()


def _registered(row: tuple[Any, ...]) -> RegisteredSync:
    name, fields, created_at, updated_at = row
    definition = SyncDefinition.from_mapping(name, fields, source=SOURCE)
    return RegisteredSync(name, fields, definition, created_at, updated_at)


def _validated(row: tuple[Any, ...]) -> RegisteredSync | SyncDefinitionError:
    try:
        return _registered(row)
    except SyncDefinitionError as error:
        return error
