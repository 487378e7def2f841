"""Sync definitions: the fields, their defaults, and validation in one place.

A definition is validated once, when it is loaded (from YAML, from Python or from a DAG's operator), and
every error names the sync, the field and what was expected. This module touches neither the network nor
the database and imports nothing from Airflow.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from nango_provider.exceptions import PathError, SyncDefinitionError
from nango_provider.paths import compile_path
from nango_provider.redaction import redact_json, redact_mapping, redact_url

SYNC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_IDENTIFIER_LENGTH: Final = 63
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose cursor travels in the JSON body; every method may send a body, but GET and DELETE page by query."""
DEFAULT_SCHEMA: Final = "nango"
DAG_ID_PREFIX: Final = "nango_sync_"
"""A sync's DAG id is this prefix and the sync's name."""
DEFAULT_FREQUENCY: Final = "1h"
SCHEDULE_PRESETS: Final = frozenset(
    {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
)
_DURATION = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$", re.IGNORECASE)
_DURATION_UNITS: Final = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "seconds"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hours"),
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("w", "week", "weeks"), "weeks"),
}

Schedule = timedelta | str | None
"""What ``frequency`` becomes: a duration, a cron expression or preset, or ``None`` (triggered only)."""


@dataclass(frozen=True)
class SyncDefinition:
    """One sync: which request to run, where the records are, how to page, and where they land."""

    name: str  # sync name, ``^[a-z][a-z0-9_]*$``; the DAG id is ``nango_sync_<name>``
    url: str  # absolute URL, or a path relative to the host of ``http_conn_id``
    method: str = "GET"  # GET, POST, PUT, PATCH or DELETE
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with every request
    query_params: Mapping[str, Any] = field(default_factory=dict)  # on the first request (kept by cursor paging)
    body: Any = None  # JSON-encoded request body, sent with any method (GET included)
    response_path: str | None = None  # where the records are; default: the top-level key ``results``
    unique_key: str | None = None  # dot path to each record's identity; without it the table is replaced
    paging_request_path: str | None = None  # where the cursor goes: query parameter, or body field (dot path)
    paging_response_path: str | None = None  # where the cursor or the next URL is found in a response
    frequency: Schedule = DEFAULT_FREQUENCY  # duration (``15m``), cron, preset (``@daily``) or null
    table: str | None = None  # ``schema.table`` or ``table``; default ``nango.<name>``
    http_conn_id: str | None = None  # Airflow connection with the API's host, auth and default headers
    postgres_conn_id: str = "postgres_default"  # Airflow connection of the target database
    max_total: int | None = None  # stop after this many records (the run then marks nothing as deleted)
    request_retries: int = 5  # retries of one request on 429, 5xx, resets, timeouts and truncated bodies
    request_retry_max_seconds: float = 300.0  # upper bound on the total time one request may spend retrying
    request_backoff_seconds: float = 1.0  # first wait between retries; doubles each time (with jitter), max 60 s
    request_timeout: float = 60.0  # seconds to connect and to wait for each response
    max_pages: int = 100_000  # hard limit on pages in one run: an endless pagination fails here

    @property
    def dag_id(self) -> str:
        """The id of the DAG that runs this sync."""
        return f"{DAG_ID_PREFIX}{self.name}"

    @property
    def schema_name(self) -> str:
        """The Postgres schema of the sync's table."""
        return self.qualified_table[0]

    @property
    def table_name(self) -> str:
        """The Postgres table name (without schema)."""
        return self.qualified_table[1]

    @property
    def qualified_table(self) -> tuple[str, str]:
        """``(schema, table)`` where the records land."""
        if self.table is None:
            return DEFAULT_SCHEMA, self.name
        schema, _, table = self.table.rpartition(".")
        return schema or DEFAULT_SCHEMA, table

    @property
    def records_path(self) -> str:
        """The path of the records in a response (``results`` when ``response_path`` is not set)."""
        return self.response_path or "results"

    @property
    def uses_body_cursor(self) -> bool:
        """Whether the cursor travels in the JSON body (POST, PUT, PATCH) rather than the query string."""
        return self.method in BODY_METHODS

    def redacted(self) -> dict[str, Any]:
        """The definition as a plain dict, safe to show: secret headers, params and URL parts hidden."""
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["url"] = redact_url(self.url)
        shown["headers"] = redact_mapping(self.headers)
        shown["query_params"] = redact_mapping(self.query_params)
        shown["body"] = redact_json(self.body)
        if isinstance(self.frequency, timedelta):
            shown["frequency"] = str(self.frequency)
        return shown

    @classmethod
    def from_mapping(cls, name: str, fields: Mapping[str, Any], *, source: str | None = None) -> SyncDefinition:
        """Validate ``fields`` (as written in YAML, JSON or keyword arguments) into a definition."""
        return _Validator(name, source).build(fields)


FIELD_NAMES: Final = tuple(f.name for f in dataclasses.fields(SyncDefinition) if f.name != "name")


class _Validator:
    """Turns user-written fields into a :class:`SyncDefinition`, one clear error per problem."""

    def __init__(self, name: str, source: str | None) -> None:
        self.name = name
        self.source = source

    def fail(self, field_name: str | None, message: str) -> SyncDefinitionError:
        return SyncDefinitionError(self.name, field_name, message, source=self.source)

    def build(self, fields: Mapping[str, Any]) -> SyncDefinition:
        if not isinstance(self.name, str) or not SYNC_NAME.fullmatch(self.name):
            raise self.fail(None, "a sync name must match ^[a-z][a-z0-9_]*$ (lowercase, digits, underscores)")
        if not isinstance(fields, Mapping):
            raise self.fail(None, f"expected a mapping of fields, got {type(fields).__name__}")
        self.refuse_unknown(fields)
        if fields.get("url") is None:
            raise self.fail("url", "is required")
        values = {key: value for key, value in fields.items() if value is not None or key == "frequency"}
        method = self.method(values.get("method", "GET"))
        http_conn_id = self.optional_text(values, "http_conn_id")
        definition = SyncDefinition(
            name=self.name,
            url=self.url(values["url"], http_conn_id),
            method=method,
            headers=self.headers(values.get("headers")),
            query_params=self.query_params(values.get("query_params")),
            body=self.body(values.get("body")),
            response_path=self.path(values, "response_path"),
            unique_key=self.path(values, "unique_key", dot_only=True),
            paging_request_path=self.path(values, "paging_request_path", dot_only=True),
            paging_response_path=self.path(values, "paging_response_path"),
            frequency=self.frequency(values.get("frequency", DEFAULT_FREQUENCY)),
            table=self.table(values.get("table")),
            http_conn_id=http_conn_id,
            postgres_conn_id=self.optional_text(values, "postgres_conn_id") or "postgres_default",
            max_total=self.positive_int(values, "max_total"),
            request_retries=self.positive_int(values, "request_retries", minimum=0, default=5),
            request_retry_max_seconds=self.positive_number(values, "request_retry_max_seconds", 300.0),
            request_backoff_seconds=self.positive_number(values, "request_backoff_seconds", 1.0),
            request_timeout=self.positive_number(values, "request_timeout", 60.0),
            max_pages=self.positive_int(values, "max_pages", default=100_000),
        )
        self.check_paging(definition)
        return definition

    def refuse_unknown(self, fields: Mapping[str, Any]) -> None:
        for key in fields:
            if key in FIELD_NAMES:
                continue
            nearest = difflib.get_close_matches(str(key), FIELD_NAMES, n=1, cutoff=0.6)
            hint = f"did you mean {nearest[0]!r}?" if nearest else f"valid fields: {', '.join(FIELD_NAMES)}"
            raise self.fail(str(key), f"unknown field; {hint}")

    def method(self, value: Any) -> str:
        if not isinstance(value, str) or value.upper() not in METHODS:
            raise self.fail("method", f"expected one of {', '.join(METHODS)} (any case), got {value!r}")
        return value.upper()

    def url(self, value: Any, http_conn_id: str | None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail("url", f"expected a non-empty string, got {value!r}")
        if "{{" in value:
            return value  # templated: checked again once Airflow has rendered it
        shown = redact_url(value)
        if any(char.isspace() for char in value):
            raise self.fail("url", f"expected a URL without spaces, got {shown!r}")
        try:
            parts = urlsplit(value)
        except ValueError as error:
            raise self.fail("url", f"expected a URL, got {shown!r} ({error})") from None
        if is_absolute_url(value):
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise self.fail("url", f"expected an http:// or https:// URL with a host, got {shown!r}")
        elif http_conn_id is None:
            raise self.fail(
                "url",
                f"{shown!r} is relative: set http_conn_id to the connection that holds the API's host, "
                "or write an absolute http(s):// URL",
            )
        return value

    def headers(self, value: Any) -> dict[str, str]:
        mapping = self.mapping("headers", value)
        for key, item in mapping.items():
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise self.fail("headers", f"header {key!r}: expected a string value, got {type(item).__name__}")
        return {str(key): str(item) for key, item in mapping.items()}

    def query_params(self, value: Any) -> dict[str, Any]:
        mapping = self.mapping("query_params", value)
        for key, item in mapping.items():
            items = item if isinstance(item, list) else [item]
            if not all(isinstance(one, str | int | float | bool) for one in items):
                raise self.fail(
                    "query_params", f"parameter {key!r}: expected a scalar or a list of scalars, got {item!r}"
                )
        return {str(key): _query_value(item) for key, item in mapping.items()}

    def mapping(self, field_name: str, value: Any) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(field_name, f"expected a mapping of names to values, got {type(value).__name__}")
        return value

    def body(self, value: Any) -> Any:
        if not _is_json(value):
            raise self.fail("body", "expected JSON-encodable data (mappings, lists, strings, numbers, booleans)")
        return value

    def path(self, values: Mapping[str, Any], field_name: str, *, dot_only: bool = False) -> str | None:
        value = values.get(field_name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(field_name, f"expected a path string, got {type(value).__name__}")
        try:
            compiled = compile_path(value)
        except PathError as error:
            raise self.fail(field_name, str(error)) from None
        if dot_only and compiled.is_jsonpath:
            raise self.fail(field_name, f"expected a dot path such as 'id' or 'paging.next.after', got {value!r}")
        return value

    def frequency(self, value: Any) -> Schedule:
        try:
            return parse_frequency(value)
        except ValueError as error:
            raise self.fail("frequency", str(error)) from None

    def table(self, value: Any) -> str | None:
        if value is None:
            return None
        parts = value.split(".") if isinstance(value, str) else []
        valid = 1 <= len(parts) <= 2 and all(
            IDENTIFIER.fullmatch(part) and len(part) <= MAX_IDENTIFIER_LENGTH for part in parts
        )
        if not valid:
            raise self.fail(
                "table",
                f"expected 'schema.table' or 'table', each a Postgres identifier "
                f"(letters, digits, underscores, not starting with a digit, at most 63 characters), got {value!r}",
            )
        if parts[-1].startswith("_nango_"):
            raise self.fail("table", f"names starting with '_nango_' are reserved for bookkeeping, got {value!r}")
        return str(value)

    def optional_text(self, values: Mapping[str, Any], field_name: str) -> str | None:
        value = values.get(field_name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(field_name, f"expected a connection id (a non-empty string), got {value!r}")
        return value

    def positive_int(
        self, values: Mapping[str, Any], field_name: str, *, minimum: int = 1, default: int | None = None
    ) -> Any:
        value = values.get(field_name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(field_name, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def positive_number(self, values: Mapping[str, Any], field_name: str, default: float) -> float:
        value = values.get(field_name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise self.fail(field_name, f"expected a number of seconds > 0, got {value!r}")
        return float(value)

    def check_paging(self, definition: SyncDefinition) -> None:
        if definition.paging_request_path and not definition.paging_response_path:
            raise self.fail(
                "paging_request_path",
                "needs paging_response_path too: where in the response the cursor to send back is found",
            )
        cursor_in_body = definition.paging_request_path and definition.uses_body_cursor
        if cursor_in_body and not isinstance(definition.body, Mapping | None):
            raise self.fail(
                "body", f"the cursor goes into the {definition.method} body, so the body must be a JSON object"
            )


def is_absolute_url(url: str) -> bool:
    """Whether ``url`` names its host (``https://host/...``, ``//host/...``) rather than a path relative to the
    connection's host. The one rule for relative URLs: ``://`` in a query string does not make a URL absolute."""
    try:
        return bool(urlsplit(url).scheme) or url.startswith("//")
    except ValueError:
        return True  # not a URL at all; never joined to the connection's host


def _query_value(value: Any) -> Any:
    """Booleans as JSON spells them (``true``), which is what APIs expect; lists item by item."""
    if isinstance(value, list):
        return [_query_value(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_is_json(item) for item in value)
    return False


def parse_frequency(value: Any) -> Schedule:
    """Turn a ``frequency`` into a schedule: ``15m`` / ``1 day`` -> timedelta; cron and presets as they are.

    ``None`` means the sync is only triggered by hand (or by the API).
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"expected a positive duration, got {value}")
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"expected a duration ('15m', '1h', '90 minutes', '1 day'), a cron expression, an Airflow preset "
            f"('@daily') or null, got {value!r}"
        )
    text = value.strip()
    if text in SCHEDULE_PRESETS:
        return text
    duration = _DURATION.match(text)
    if duration and duration.group(2).lower() in _DURATION_UNITS:
        amount = int(duration.group(1))
        if amount <= 0:
            raise ValueError(f"expected a positive duration, got {value!r}")
        try:
            return timedelta(**{_DURATION_UNITS[duration.group(2).lower()]: amount})
        except OverflowError:
            raise ValueError(f"expected a duration of less than a million years, got {value!r}") from None
    if _is_cron(text):
        return text
    raise ValueError(
        f"expected a duration ('15m', '1h', '90 minutes', '1 day'), a cron expression ('*/15 * * * *') or an "
        f"Airflow preset ({', '.join(sorted(SCHEDULE_PRESETS))}), got {value!r}"
    )


def _is_cron(text: str) -> bool:
    from croniter import croniter

    return len(text.split()) in (5, 6) and bool(croniter.is_valid(text))


def _read_syncs(path: str | Path) -> Mapping[Any, Any]:
    source = str(path)
    try:
        document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as error:
        raise SyncDefinitionError("?", None, f"not UTF-8 text: {error}", source=source) from None
    except yaml.YAMLError as error:
        raise SyncDefinitionError("?", None, f"not valid YAML: {error}", source=source) from None
    if not isinstance(document, Mapping) or not isinstance(document.get("syncs"), Mapping):
        raise SyncDefinitionError(
            "?", "syncs", "expected a top-level 'syncs:' mapping of sync names to definitions", source=source
        )
    extra = sorted(set(document) - {"syncs"})
    if extra:
        raise SyncDefinitionError("?", str(extra[0]), "unknown top-level key; only 'syncs:' is read", source=source)
    return document["syncs"]


def iter_definitions_file(path: str | Path) -> Iterator[SyncDefinition | SyncDefinitionError]:
    """Each sync of a YAML file, validated on its own: a definition, or the error that refuses it.

    A file that cannot be read as ``syncs:`` at all raises :class:`SyncDefinitionError` at once.
    """
    source = str(path)
    for name, fields in _read_syncs(path).items():
        try:
            yield SyncDefinition.from_mapping(str(name), fields or {}, source=source)
        except SyncDefinitionError as error:
            yield error


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (the C one when available), refusing a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
