"""Turning one page of decoded records into rows ready for COPY: key, canonical JSON, content hash.

Pure Python, no database: the store streams the result into Postgres. Records of a page are deduplicated
by key (the last one wins, as it is the newest the API sent).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from nango_provider.exceptions import RecordError
from nango_provider.paths import MISSING, CompiledPath
from nango_provider.store.inference import Shape, shape_of

_ENCODER = msgspec.json.Encoder(order="sorted")
_NUL = b"\\u0000"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass(frozen=True)
class PreparedPage:
    """A page's distinct rows and its number of fetched records; with typed columns, the paths and types its
    records hold (``shape``). Each row's key, content hash and canonical JSON (``keys``, ``hashes``, ``datas``,
    in the same order), so that rows can be compared with the stored ones by key and hash before any JSON is sent.

    ``copy_text`` (``key \\t data \\t hash`` lines) is built when first asked for: a re-sync builds it only for
    the rows that are new or changed (:meth:`only`)."""

    rows: int
    fetched: int
    shape: Shape | None = None
    keys: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()
    datas: tuple[bytes, ...] = ()

    @functools.cached_property
    def copy_text(self) -> bytes:
        """The rows as COPY text, one line each; runs once per page written, for every row it writes."""
        return b"".join(
            [
                b"%b\t%b\t%b\n"
                % (
                    key.translate(_COPY_ESCAPES).encode(),
                    data.replace(b"\\", b"\\\\"),  # JSON has no raw control characters: only \\ needs COPY escaping
                    digest.encode(),
                )
                for key, data, digest in zip(self.keys, self.datas, self.hashes, strict=True)
            ]
        )

    def only(self, indexes: Sequence[int]) -> PreparedPage:
        """The page with only the rows at ``indexes`` (positions among its rows); ``fetched`` stays the page's."""
        return dataclasses.replace(
            self,
            rows=len(indexes),
            keys=tuple(self.keys[index] for index in indexes),
            hashes=tuple(self.hashes[index] for index in indexes),
            datas=tuple(self.datas[index] for index in indexes),
        )


def prepare_keyed(
    records: Sequence[Any],
    unique_key: CompiledPath,
    sync: str,
    page: int,
    *,
    hash_key: bytes = b"",
    infer: bool = False,
) -> PreparedPage:
    """Rows keyed by the value at ``unique_key``; a record without it fails the run naming page and position.

    ``hash_key`` goes into every row's hash (the run's metadata: changing it changes every row); ``infer`` adds
    the page's shape for typed columns."""
    # This loop runs for every record of a sync: the common case (a top-level string or integer key) is inlined.
    field = unique_key.segments[0] if unique_key.segments is not None and len(unique_key.segments) == 1 else None
    encode = _ENCODER.encode
    rows: dict[str, bytes] = {}
    for position, record in enumerate(records):
        key = record.get(field) if field is not None and type(record) is dict else None
        if type(key) is int:
            key = str(key)
        elif type(key) is not str or "\x00" in key:
            key = _key_of(record, unique_key, sync, page, position)
        data = encode(record)
        if _NUL in data:
            _refuse_nul(record, sync, page, position)
        rows[key] = data
    shape = shape_of(records) if infer else None
    datas = tuple(rows.values())
    return PreparedPage(len(rows), len(records), shape, tuple(rows), tuple(_hashes(datas, hash_key)), datas)


def prepare_positional(
    records: Sequence[Any], first_position: int, sync: str, page: int, *, hash_key: bytes = b"", infer: bool = False
) -> PreparedPage:
    """Rows keyed by their position in the run, for syncs without a unique key."""
    datas = tuple(_encode(record, sync, page, offset) for offset, record in enumerate(records))
    keys = tuple(str(first_position + offset) for offset in range(len(datas)))
    shape = shape_of(records) if infer else None
    return PreparedPage(len(datas), len(records), shape, keys, tuple(_hashes(datas, hash_key)), datas)


def _hashes(datas: Iterable[bytes], hash_key: bytes = b"") -> list[str]:
    """The content hash of each row's JSON (keyed with ``hash_key``), as stored in ``_nango_hash``."""
    blake2b = functools.partial(hashlib.blake2b, key=hash_key) if hash_key else hashlib.blake2b
    return [blake2b(data, digest_size=16).hexdigest() for data in datas]


def _key_of(record: Any, unique_key: CompiledPath, sync: str, page: int, position: int) -> str:
    value = unique_key.get(record) if isinstance(record, dict | list) else MISSING
    if value is MISSING or value is None:
        keys = list(record)[:20] if isinstance(record, dict) else type(record).__name__
        raise RecordError(
            f"page {page}, record {position}: no value at unique_key {unique_key.expression!r} (the record has {keys})",
            sync=sync,
        )
    if isinstance(value, dict | list):
        raise RecordError(
            f"page {page}, record {position}: unique_key {unique_key.expression!r} holds "
            f"{'an object' if isinstance(value, dict) else 'a list'}; expected a string or number",
            sync=sync,
        )
    key = value if isinstance(value, str) else _ENCODER.encode(value).decode()
    if "\x00" in key:
        raise RecordError(f"page {page}, record {position}: the unique key contains a NUL character", sync=sync)
    return key


def _encode(record: Any, sync: str, page: int, position: int) -> bytes:
    data = _ENCODER.encode(record)
    if _NUL in data:
        _refuse_nul(record, sync, page, position)
    return data


def _refuse_nul(record: Any, sync: str, page: int, position: int) -> None:
    """Raise if ``record`` really holds a NUL character (its JSON may only hold an escaped ``\\u0000`` text)."""
    if _holds_nul(record):
        raise RecordError(
            f"page {page}, record {position}: contains a NUL character (\\u0000), which Postgres cannot store "
            "in jsonb; the page was not written",
            sync=sync,
        )


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
