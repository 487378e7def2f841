"""The columns a sync's table has besides the bookkeeping ones: ``_nango_connection_id`` (a sync with several
``connections``), ``_nango_metadata`` (the sync's ``metadata``) and, with ``auto_mapping``, a typed column per
scalar field of the records and of the metadata.

Every typed column is known in ``nango._nango_columns`` (its origin, JSON path, name and type; paths that only
held objects are known there too, without a column). A page's shape (:mod:`.inference`) is compared with what is
known before the page is written: new paths add columns, values that no longer fit widen the column's type, in the
page's own transaction (which holds the table's lock). Columns are never dropped. Values are always taken from
the JSON (``_nango_data``, ``_nango_metadata``), which stays the source of truth: a widened column is rebuilt
from it, and adding a column never touches a row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
import psycopg
from psycopg import sql

from nango_provider.store.inference import JSONB, OBJECT, TEXT, Path, Shape, column_name, shape_of, widen

RECORD: Final = "record"
METADATA: Final = "metadata"
_TYPED: Final = "typed"
"""Marks (as an origin of ``nango._nango_columns``) that every stored row has its typed columns filled."""
_SOURCE_COLUMNS: Final = {RECORD: "_nango_data", METADATA: "_nango_metadata"}
_ENCODER = msgspec.json.Encoder(order="sorted")
MAX_TYPED_COLUMNS: Final = 1000
"""Postgres allows 1,600 columns: records whose keys are data (ids as keys) would need more. Paths beyond this
many get no column (their values stay in ``_nango_data``)."""


@dataclass
class Column:
    """A JSON path of the records (or of the metadata) and the column that holds its values (none for objects)."""

    origin: str
    path: Path
    name: str | None
    type: str


class TableColumns:
    """The extra columns of one sync's table during a run: metadata, typed columns, and how a write fills them."""

    def __init__(
        self,
        table: sql.Identifier,
        table_text: str,
        *,
        metadata: Mapping[str, Any],
        auto: bool,
        connection_id: str | None = None,
    ) -> None:
        self.table = table
        self.table_text = table_text
        self.auto = auto
        self.connection_id = connection_id
        self.metadata_json = _ENCODER.encode(dict(metadata)).decode() if metadata else None
        self.columns: dict[tuple[str, Path], Column] = {}
        self._taken: set[str] = set()
        self._metadata_column = self.metadata_json is not None

    @property
    def hash_key(self) -> bytes:
        """Goes into every row's hash, so that changing the metadata counts as a change of every row."""
        if self.metadata_json is None:
            return b""
        return hashlib.blake2b(self.metadata_json.encode(), digest_size=32).digest()

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the write statements take: the metadata, and the JSON path of each typed column (as
        parameters, never in the statement's text)."""
        paths = {f"nango_path_{number}": list(column.path) for number, column in enumerate(self._typed())}
        return {"metadata": self.metadata_json, "nango_connection": self.connection_id, **paths}

    def conflict_target(self) -> sql.Composable:
        """The key an upsert's ``ON CONFLICT`` names: the unique key, with the connection first when rows are keyed
        by connection."""
        if self.connection_id is None:
            return sql.SQL("(_nango_unique_key)")
        return sql.SQL("(_nango_connection_id, _nango_unique_key)")

    def scope(self, alias: str) -> sql.Composable:
        """``AND <alias>._nango_connection_id = <this connection>`` when rows are keyed by connection (a run only
        compares, counts and deletes its own connection's rows), else nothing."""
        if self.connection_id is None:
            return sql.SQL("")
        return sql.SQL(" AND {}._nango_connection_id = %(nango_connection)s").format(sql.Identifier(alias))

    def prepare(self, cursor: psycopg.Cursor[Any], *, created: bool) -> None:
        """At the start of a run, under the table's lock: add ``_nango_metadata`` if needed; with typed columns,
        load what is known (type the rows already stored, the first time), then the metadata's columns."""
        self._taken = _column_names(cursor, self.table)
        if self.metadata_json is not None and "_nango_metadata" not in self._taken:
            cursor.execute(sql.SQL("ALTER TABLE {} ADD COLUMN _nango_metadata jsonb").format(self.table))
            self._taken.add("_nango_metadata")
        self._metadata_column = "_nango_metadata" in self._taken  # metadata removed from the sync: rows get null
        if not self.auto:
            # Rows written now do not fill the typed columns: the next run with them types every row again.
            cursor.execute(
                "DELETE FROM nango._nango_columns WHERE target_table = %s AND origin = %s", (self.table_text, _TYPED)
            )
            return
        if created:
            cursor.execute("DELETE FROM nango._nango_columns WHERE target_table = %s", (self.table_text,))
        self._load(cursor)
        if (_TYPED, ()) not in self.columns:
            self._type_stored_rows(cursor)
            self.columns[(_TYPED, ())] = marker = Column(_TYPED, (), None, _TYPED)
            _save(cursor, self.table_text, marker)
        if self.metadata_json is not None:
            metadata_shape = shape_of([msgspec.json.decode(self.metadata_json)])
            self._fill(cursor, self.evolve(cursor, metadata_shape, METADATA))  # rows stored with this metadata

    def evolve(self, cursor: psycopg.Cursor[Any], shape: Shape | None, origin: str = RECORD) -> list[Column]:
        """Add and widen columns so that every value of ``shape`` fits; the columns added (run it inside the page's
        transaction: DDL rolls back with it)."""
        if not self.auto or not shape:
            return []
        added: list[Column] = []
        were_objects: list[Column] = []
        actions: list[sql.Composable] = []
        typed = len(self._typed())
        for path, kind in shape.items():
            known = self.columns.get((origin, path))
            wanted = widen(known.type if known else None, kind) or kind
            if known is not None and wanted == known.type:
                continue
            column = known or Column(origin, path, None, wanted)
            if wanted != OBJECT and column.name is None and typed >= MAX_TYPED_COLUMNS:
                continue
            column.type = wanted
            if wanted != OBJECT and column.name is None:
                column.name = column_name(path, origin, self._taken)
                self._taken.add(column.name)
                typed += 1
                actions.append(sql.SQL("ADD COLUMN {} {}").format(sql.Identifier(column.name), sql.SQL(wanted)))
                added.append(column)
                if known is not None:  # objects are stored at this path: the new jsonb column holds them too
                    were_objects.append(column)
            elif wanted != OBJECT and known is not None:
                actions.append(
                    sql.SQL("ALTER COLUMN {} TYPE {} USING {}").format(
                        sql.Identifier(column.name or ""), sql.SQL(wanted), _stored_value(column)
                    )
                )
            self.columns[(origin, path)] = column
            _save(cursor, self.table_text, column)
        if actions:
            cursor.execute(sql.SQL("ALTER TABLE {} ").format(self.table) + sql.SQL(", ").join(actions))
        self._fill(cursor, were_objects)
        return added

    @property
    def writes_extra(self) -> bool:
        """Whether writes fill columns besides the bookkeeping ones (a plain COPY of the page cannot)."""
        return bool(self._written_names())

    def insert_columns(self) -> sql.Composable:
        """``, _nango_metadata, "col", ...``: the extra columns an INSERT fills (empty when there are none)."""
        return sql.SQL("").join(sql.SQL(", ") + sql.Identifier(name) for name in self._written_names())

    def insert_values(self, record: sql.Composable) -> sql.Composable:
        """``, %(metadata)s::jsonb, (d #>> '{a}')::bigint, ...``: their values, the record's JSON being ``record``."""
        values: list[sql.Composable] = []
        if self.connection_id is not None:
            values.append(sql.SQL("%(nango_connection)s"))
        if self._metadata_column:
            values.append(sql.SQL("%(metadata)s::jsonb"))
        metadata = sql.SQL("%(metadata)s::jsonb")
        for number, column in enumerate(self._typed()):
            path = sql.SQL("{}::text[]").format(sql.Placeholder(f"nango_path_{number}"))
            values.append(_value(record if column.origin == RECORD else metadata, path, column.type))
        return sql.SQL("").join(sql.SQL(", ") + value for value in values)

    def update_assignments(self) -> sql.Composable:
        """``, "col" = EXCLUDED."col", ...``: what an upsert's update sets besides the bookkeeping columns."""
        return sql.SQL("").join(
            sql.SQL(", {} = EXCLUDED.{}").format(sql.Identifier(name), sql.Identifier(name))
            for name in self._written_names()
            if name != "_nango_connection_id"  # part of the conflict key: never changes
        )

    def _written_names(self) -> list[str]:
        names = ["_nango_connection_id"] if self.connection_id is not None else []
        names += ["_nango_metadata"] if self._metadata_column else []
        return names + [column.name for column in self._typed() if column.name]

    def _typed(self) -> list[Column]:
        return [column for column in self.columns.values() if column.name is not None]

    def _load(self, cursor: psycopg.Cursor[Any]) -> None:
        cursor.execute(
            "SELECT origin, path, column_name, type FROM nango._nango_columns WHERE target_table = %s",
            (self.table_text,),
        )
        self.columns = {
            (origin, tuple(path)): Column(origin, tuple(path), name, kind) for origin, path, name, kind in cursor
        }

    def _type_stored_rows(self, cursor: psycopg.Cursor[Any]) -> None:
        """The first run with typed columns (ever, or since runs without them wrote the table): type every stored
        row from its JSON and fill every typed column (nothing to do for an empty table)."""
        shapes: dict[str, Shape] = {RECORD: {}, METADATA: {}}
        metadata = sql.SQL("_nango_metadata" if self._metadata_column else "NULL::jsonb")
        with cursor.connection.cursor(name="nango_type_rows") as rows:
            rows.execute(sql.SQL("SELECT _nango_data, {} FROM {}").format(metadata, self.table))
            for row in rows:
                for origin, data in zip((RECORD, METADATA), row, strict=True):
                    if type(data) is dict:
                        for path, kind in shape_of([data]).items():
                            shapes[origin][path] = widen(shapes[origin].get(path), kind) or kind
        for origin, shape in shapes.items():
            self.evolve(cursor, shape, origin)
        self._fill(cursor, self._typed())

    def _fill(self, cursor: psycopg.Cursor[Any], columns: list[Column]) -> None:
        """Set ``columns`` of the stored rows from their JSON (rows without a value at the path are not touched)."""
        if not columns:
            return
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(column.name or ""), _stored_value(column)) for column in columns
        )
        present = sql.SQL(" OR ").join(
            sql.SQL("{} #> {} IS NOT NULL").format(sql.Identifier(_SOURCE_COLUMNS[column.origin]), _path(column.path))
            for column in columns
        )
        cursor.execute(sql.SQL("UPDATE {} SET {} WHERE {}").format(self.table, assignments, present))


def _save(cursor: psycopg.Cursor[Any], table: str, column: Column) -> None:
    cursor.execute(
        """INSERT INTO nango._nango_columns (target_table, origin, path, column_name, type)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (target_table, origin, path) DO UPDATE SET column_name = EXCLUDED.column_name,
               type = EXCLUDED.type""",
        (table, column.origin, list(column.path), column.name, column.type),
    )


def _column_names(cursor: psycopg.Cursor[Any], table: sql.Identifier) -> set[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table.as_string(cursor),),
    )
    return {name for (name,) in cursor}


def _path(path: Path) -> sql.Composable:
    """A path as a text[] literal: only for statements run without parameters (DDL), where ``%`` is plain text."""
    return sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(segment) for segment in path))


def _value(source: sql.Composable, path: sql.Composable, kind: str) -> sql.Composable:
    """The value at ``path`` of the JSON ``source`` as ``kind`` (a type that holds every value there)."""
    if kind == JSONB:
        return sql.SQL("({} #> {})").format(source, path)
    if kind == TEXT:
        return sql.SQL("({} #>> {})").format(source, path)
    return sql.SQL("({} #>> {})::{}").format(source, path, sql.SQL(kind))


def _stored_value(column: Column) -> sql.Composable:
    """The column's value from the stored JSON, for DDL and updates run without parameters."""
    return _value(sql.Identifier(_SOURCE_COLUMNS[column.origin]), _path(column.path), column.type)
