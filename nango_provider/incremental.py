"""The ``incremental:`` field of a sync definition, and the high-water mark it keeps between runs.

A complete run remembers the highest value of a record field (``updated_at``); the next run sends that value,
less an optional lookback, in a query parameter or body field, so the API returns only what changed since.
Values compare as timestamps when both are ISO 8601 date-times, as numbers when both are numbers, and as text
otherwise. Like :mod:`nango_provider.definition`, this module touches neither the network nor the database.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from nango_provider.exceptions import PathError, SyncDefinitionError, SyncRunError
from nango_provider.paths import MISSING, CompiledPath, compile_path, path_text_problem

Fail = Callable[[str, str], SyncDefinitionError]
"""Builds the definition error for ``(field, message)``."""
Duration = Callable[[Any], timedelta]
"""Parses a duration such as ``5m`` (``parse_lookback`` of the definition module), or raises ``ValueError``."""


@dataclass(frozen=True)
class Incremental:
    """Which record field's highest value a complete run keeps, and where the next run sends it."""

    record_field: str  # dot path in each record: updated_at, properties.hs_lastmodifieddate
    request_name: str  # query parameter, or body field (dot path) for POST/PUT/PATCH, that gets the mark
    lookback: timedelta | None = None  # subtracted from a timestamp (or epoch-seconds) mark before it is sent
    initial_value: Any = None  # sent by a run without a mark (the first, and full_refresh); none: no parameter

    def shown(self) -> dict[str, Any]:
        """The fields that are set, for display."""
        shown = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        if self.lookback is not None:
            shown["lookback"] = str(self.lookback)
        return {name: value for name, value in shown.items() if value is not None}


INCREMENTAL_FIELD_NAMES: Final = tuple(item.name for item in dataclasses.fields(Incremental))


def parse_incremental(value: Any, fail: Fail, duration: Duration) -> Incremental | None:
    """Validate the ``incremental:`` mapping (or an already built :class:`Incremental`)."""
    if value is None or isinstance(value, Incremental):
        return value
    if not isinstance(value, Mapping):
        raise fail(
            "incremental", f"expected a mapping such as {{record_field: updated_at, ...}}, got {type(value).__name__}"
        )
    fields = {key: item for key, item in value.items() if item is not None}
    for key in fields:
        if key not in INCREMENTAL_FIELD_NAMES:
            nearest = difflib.get_close_matches(str(key), INCREMENTAL_FIELD_NAMES, n=1, cutoff=0.6)
            hint = f"did you mean {nearest[0]!r}?" if nearest else f"valid fields: {', '.join(INCREMENTAL_FIELD_NAMES)}"
            raise fail(f"incremental.{key}", f"unknown incremental field; {hint}")
    return Incremental(
        record_field=_dot_path(fields, "record_field", fail),
        request_name=_dot_path(fields, "request_name", fail),
        lookback=_lookback(fields.get("lookback"), fail, duration),
        initial_value=_initial_value(fields.get("initial_value"), fail),
    )


def _dot_path(fields: Mapping[str, Any], name: str, fail: Fail) -> str:
    value = fields.get(name)
    if value is None:
        raise fail(f"incremental.{name}", "is required")
    if not isinstance(value, str):
        raise fail(f"incremental.{name}", f"expected a dot path, got {type(value).__name__}")
    problem = path_text_problem(value)
    if problem is not None:
        raise fail(f"incremental.{name}", problem)
    try:
        compiled = compile_path(value)
    except PathError as error:
        raise fail(f"incremental.{name}", str(error)) from None
    if compiled.is_jsonpath:
        raise fail(f"incremental.{name}", f"expected a dot path such as 'updated_at', got {value!r}")
    return value


def _lookback(value: Any, fail: Fail, duration: Duration) -> timedelta | None:
    if value is None:
        return None
    try:
        return duration(value)
    except ValueError as error:
        raise fail("incremental.lookback", str(error)) from None


def _initial_value(value: Any, fail: Fail) -> Any:
    if value is not None and (not isinstance(value, str | int | float) or isinstance(value, bool)):
        raise fail("incremental.initial_value", f"expected a string or a number, got {type(value).__name__}")
    return value


# -- marks --------------------------------------------------------------------------------------------------


def _as_datetime(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def order_key(value: Any) -> tuple[int, Any]:
    """How marks compare: numbers by value, ISO 8601 date-times by instant, other text as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 0, value
    if isinstance(value, str):
        moment = _as_datetime(value) if len(value) >= 10 and value[:4].isdigit() else None
        return (1, moment) if moment is not None else (2, value)
    raise TypeError(f"not a mark: {value!r}")


def highest(values: Iterable[Any]) -> Any:
    """The highest of ``values`` (``None`` values left out), or ``None`` when there is none."""
    present = [value for value in values if value is not None]
    return max(present, key=order_key) if present else None


def page_high(records: Iterable[Any], path: CompiledPath, sync: str, page: int) -> Any:
    """The highest value at ``path`` among a page's records; records without it (or with null) are left out."""
    best: Any = None
    best_key: tuple[int, Any] | None = None
    for number, record in enumerate(records, start=1):
        value = path.get(record) if isinstance(record, dict) else MISSING
        if value is MISSING or value is None:
            continue
        try:
            key = order_key(value)
        except TypeError:
            raise SyncRunError(
                f"page {page}, record {number}: incremental.record_field {path.expression!r} holds "
                f"{type(value).__name__}, not a timestamp, number or string",
                sync=sync,
            ) from None
        if best_key is None or _greater(key, best_key):
            best, best_key = value, key
    return best


def _greater(key: tuple[int, Any], than: tuple[int, Any]) -> bool:
    if key[0] != than[0]:
        return key[0] > than[0]
    return bool(key[1] > than[1])


def value_to_send(incremental: Incremental, mark: Any, sync: str) -> Any:
    """What a run sends under ``request_name``: the mark less the lookback, or the initial value without one."""
    if mark is None:
        return incremental.initial_value
    if incremental.lookback is None:
        return mark
    if isinstance(mark, int | float) and not isinstance(mark, bool):
        return type(mark)(mark - incremental.lookback.total_seconds())
    moment = _as_datetime(mark) if isinstance(mark, str) else None
    if moment is None:
        raise SyncRunError(
            f"incremental.lookback needs a timestamp or a number as the mark, but the mark is {mark!r}", sync=sync
        )
    earlier = moment - incremental.lookback
    text = earlier.isoformat()
    return text.replace("+00:00", "Z") if mark.endswith("Z") else text
