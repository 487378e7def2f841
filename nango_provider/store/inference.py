"""Typed columns, the pure part: which Postgres type holds a JSON value without losing anything, how two types
widen into one, how nested objects flatten into column paths, and how a path becomes a column name.

No database here: the store (:mod:`.columns`) turns what this module infers into DDL.

Types, narrowest first: ``bigint`` (integers that fit 64 bits), ``numeric`` (other integers and decimals, exact),
``double precision`` (numbers written with an exponent, such as ``6.02e23``), ``boolean``, ``timestamptz``
(ISO 8601 date and time with ``Z`` or an offset, at most microseconds), ``date`` (``YYYY-MM-DD``), ``text``
(any other string; ``"007"`` stays text) and ``jsonb`` (arrays, and paths that hold objects and other values).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime
from typing import Any, Final

BIGINT: Final = "bigint"
NUMERIC: Final = "numeric"
DOUBLE: Final = "double precision"
BOOLEAN: Final = "boolean"
TIMESTAMPTZ: Final = "timestamptz"
DATE: Final = "date"
TEXT: Final = "text"
JSONB: Final = "jsonb"
OBJECT: Final = "object"
"""Not a column type: the path holds objects, whose fields are columns of their own (``stats__hp``)."""
TYPES: Final = (BIGINT, NUMERIC, DOUBLE, BOOLEAN, TIMESTAMPTZ, DATE, TEXT, JSONB)
_NUMBERS: Final = frozenset({BIGINT, NUMERIC, DOUBLE})
SEPARATOR: Final = "__"
MAX_NAME_BYTES: Final = 63
_SYSTEM_COLUMNS: Final = frozenset({"oid", "tableoid", "xmin", "xmax", "cmin", "cmax", "ctid"})
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-](\d{2})(?::?(\d{2}))?)"
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_NOT_NAME = re.compile(r"[^a-z0-9_]")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

Path = tuple[str, ...]
Shape = dict[Path, str]
"""Each path seen in some records, with the narrowest type that holds every value seen there (or ``object``)."""


def widen(current: str | None, other: str | None) -> str | None:
    """The narrowest type that holds the values of both types (``None``: nothing seen yet)."""
    if current is None or current == other:
        return other if current is None else current
    if other is None:
        return current
    if JSONB in (current, other) or OBJECT in (current, other):
        return JSONB
    if current in _NUMBERS and other in _NUMBERS:
        return NUMERIC
    return TEXT


def value_type(value: Any) -> str | None:
    """The narrowest type for one JSON value (``None`` for null; ``object`` for a mapping)."""
    kind = type(value)
    if kind is str:
        return _string_type(value)
    if kind is bool:
        return BOOLEAN
    if kind is int:
        return BIGINT if _INT64_MIN <= value <= _INT64_MAX else NUMERIC
    if kind is float:
        return DOUBLE if "e" in repr(value) else NUMERIC
    if kind is dict:
        return OBJECT
    if kind is list:
        return JSONB
    return None


def add_to_shape(shape: Shape, record: Mapping[str, Any], prefix: Path = ()) -> None:
    """Add the paths and types of one record (an object) to ``shape``; nested objects flatten into longer paths."""
    # This runs for every field of every record of an auto-mapped sync: values that cannot change what is known
    # about their path (a string where text is known, anything but an object where jsonb is) are not examined.
    for key, value in record.items():
        path = (*prefix, key)
        known = shape.get(path)
        kind = type(value)
        if (known is TEXT and kind is str) or (known is JSONB and kind is not dict):
            continue
        found = value_type(value)
        if found is None or found is known:
            if found is OBJECT:
                add_to_shape(shape, value, path)
            continue
        shape[path] = widen(known, found)  # type: ignore[assignment]
        if found is OBJECT:
            add_to_shape(shape, value, path)


def shape_of(records: Iterable[Any]) -> Shape:
    """The shape of a page: every path of its records (objects; other records have no fields) with its type."""
    shape: Shape = {}
    for record in records:
        if type(record) is dict:
            add_to_shape(shape, record)
    return shape


def column_name(path: Path, origin: str, taken: Collection[str]) -> str:
    """The column name of ``path``: its segments lowercased, other characters than letters, digits and ``_``
    replaced by ``_``, joined by ``__``. A name already ``taken`` (by another path, or reserved), or longer
    than Postgres allows, is cut and ends in a hash of the path instead, so it is unique and always the same."""
    name = SEPARATOR.join(_NOT_NAME.sub("_", segment.lower()) or "_" for segment in path)
    if name[0].isdigit():
        name = f"_{name}"
    reserved = name.startswith("_nango_") or name in _SYSTEM_COLUMNS
    if not reserved and name not in taken and len(name) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.blake2b(repr((origin, path)).encode(), digest_size=8).hexdigest()
    for length in (8, 16):
        candidate = f"{name[: MAX_NAME_BYTES - length - 1]}_{digest[:length]}"
        if candidate not in taken:
            return candidate
    raise ValueError(f"no free column name for {path!r}")  # two 64-bit hashes of different paths would be equal


def _string_type(value: str) -> str:
    if len(value) < 10 or value[4:5] != "-" or not value[:4].isdigit():
        return TEXT
    if len(value) == 10:
        return DATE if _is_date(value) else TEXT
    return TIMESTAMPTZ if _is_timestamp(value) else TEXT


def _is_date(value: str) -> bool:
    match = _DATE.fullmatch(value)
    if match is None:
        return False
    try:
        date(*(int(part) for part in match.groups()))
    except ValueError:
        return False
    return True


def _is_timestamp(value: str) -> bool:
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second, _fraction, _zone, offset_hours, offset_minutes = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return False
    return int(offset_hours or 0) <= 15 and int(offset_minutes or 0) < 60
