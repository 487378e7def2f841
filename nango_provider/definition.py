"""Sync definitions: the fields, their defaults, and validation in one place.

A definition is validated once, when it is loaded (from YAML, from Python or from a DAG's operator), and
every error names the sync, the field and what was expected. This module touches neither the network nor
the database and imports nothing from Airflow.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from nango_provider.exceptions import PathError, SyncDefinitionError, TriggerParamsError
from nango_provider.incremental import Incremental, parse_incremental
from nango_provider.paging import Paging, parse_paging
from nango_provider.paths import MAX_PATH_LENGTH, MISSING, compile_path
from nango_provider.redaction import redact_json, redact_mapping, redact_url
from nango_provider.targets import REQUEST_FIELDS, is_metadata_host, strings_in, template_connection_ids

SYNC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_IDENTIFIER_LENGTH: Final = 63
"""Postgres truncates longer identifiers, so two longer names could land in one table."""
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
DELETE_MODES: Final = ("soft", "hard", "keep")
"""What a complete run does with stored records it no longer saw: mark them deleted, remove them, or nothing."""
FIELD_ALIASES: Final = ("soft_delete",)
"""Accepted as written by users of the original product: ``soft_delete: true`` is ``deletes: soft``, ``false`` is
``deletes: keep``."""
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


# -- limits: every one is documented in docs/reference.md ("Limits") ----------------------------------------
MAX_SYNC_NAME_LENGTH: Final = MAX_IDENTIFIER_LENGTH
"""The default table ``nango.<name>`` must be one Postgres identifier; the DAG id is then at most 74 characters."""
MAX_BIGINT: Final = 2**63 - 1
"""Integers anywhere in a definition fit a Postgres ``bigint`` (and Airflow's serializer, which stops at 2**64)."""
MAX_FLOAT: Final = 1e16
"""Non-integral numbers stay below this: from 1e16 on, Postgres' jsonb gives them back as integers."""
MAX_REQUEST_RETRIES: Final = 100
MAX_PAGES_LIMIT: Final = 100_000_000
MAX_REQUEST_TIMEOUT: Final = 3_600.0
MAX_BACKOFF_SECONDS: Final = 60.0
MAX_RETRY_SECONDS: Final = 86_400.0
MIN_REQUESTS_PER_SECOND: Final = 0.001
"""At least one request every 1,000 seconds: a slower budget would outlast any retry or timeout."""
MAX_REQUESTS_PER_SECOND: Final = 10_000.0
POOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
"""An Airflow pool name here: letters, digits, ``_``, ``.`` and ``-`` (Airflow stores up to 256 characters)."""
MAX_POOL_NAME_LENGTH: Final = 256
MAX_POOL_SLOTS: Final = 10_000
MIN_FREQUENCY: Final = timedelta(minutes=1)
"""Shorter schedules (and ``@continuous``, and cron with a seconds field) need ``allow_short_frequency: true``."""
MAX_FREQUENCY: Final = timedelta(days=366)
MAX_FREQUENCY_TEXT: Final = 100
MAX_JSON_DEPTH: Final = 32
"""How deeply ``body``, ``headers`` and ``query_params`` (and any other field) may nest."""
MAX_JSON_VALUES: Final = 20_000
"""How many values (scalars, lists, mappings) one field may hold."""
MAX_BODY_BYTES: Final = 65_536
MAX_HEADERS_BYTES: Final = 16_384
MAX_QUERY_BYTES: Final = 16_384
MAX_URL_LENGTH: Final = 8_192
MAX_CONN_ID_LENGTH: Final = 250
MAX_CONNECTIONS: Final = 1024
"""How many connections one sync may name: Airflow's default ``max_map_length`` (mapped tasks per task)."""
CONN_ID = re.compile(r"^[\w#!()\-.:/\\]+$")
"""What Airflow accepts as a connection id (``airflow.models.connection.RE_SANITIZE_CONN_ID``)."""
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""An HTTP header name is a token (RFC 9110)."""
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s")
"""What ``str.isspace`` calls whitespace (both use Unicode's definition)."""
RESERVED_SCHEMAS: Final = frozenset({"information_schema", "pg_catalog", "pg_toast"})
"""Besides these, every schema starting with ``pg_`` is refused."""

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
    paging: Paging | None = None  # the paging style and its stop conditions (``paging:`` mapping)
    incremental: Incremental | None = None  # the record field whose highest value the next run asks from
    frequency: Schedule = DEFAULT_FREQUENCY  # duration (``15m``), cron, preset (``@daily``) or null
    table: str | None = None  # ``schema.table`` or ``table``; default ``nango.<name>``
    http_conn_id: str | None = None  # Airflow connection with the API's host, auth and default headers
    connections: tuple[str, ...] | str | None = None  # several such connections, one mapped task each (or a template)
    postgres_conn_id: str = "postgres_default"  # Airflow connection of the target database
    max_total: int | None = None  # stop after this many records (the run then marks nothing as deleted)
    request_retries: int = 5  # retries of one request on 429, 5xx, resets, timeouts and truncated bodies
    request_retry_max_seconds: float = 300.0  # upper bound on the total time one request may spend retrying
    request_backoff_seconds: float = 1.0  # first wait between retries; doubles each time (with jitter), max 60 s
    request_timeout: float = 60.0  # seconds to connect and to wait for each response
    max_pages: int = 100_000  # hard limit on pages in one run: an endless pagination fails here
    allow_short_frequency: bool = False  # allow schedules more frequent than once a minute (and ``@continuous``)
    deletes: str = "soft"  # records a complete run no longer saw: soft (marked), hard (removed) or keep
    metadata: Mapping[str, Any] = field(default_factory=dict)  # constant values stored with every row (templated)
    auto_mapping: bool = False  # a typed column per scalar field (nested objects flattened with ``__``)
    pool: str | None = None  # Airflow pool the sync's task runs in: bounds how many syncs hit one API at once
    pool_slots: int | None = None  # slots of ``pool`` the task takes (Airflow's default: 1)
    max_requests_per_second: float | None = None  # request rate budget, shared by every run with the same credential
    frequency_text: str | None = field(default=None, compare=False)  # ``frequency`` as written (``30m``)

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
    def table_key(self) -> tuple[str, str, str]:
        """``(postgres_conn_id, schema, table)``: two syncs with the same key would write to one table."""
        return (self.postgres_conn_id, *self.qualified_table)

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
        shown = {name: getattr(self, name) for name in _ALL_FIELD_NAMES}
        shown["url"] = redact_url(self.url)
        shown["headers"] = redact_mapping(self.headers)
        shown["query_params"] = redact_mapping(self.query_params)
        shown["body"] = redact_json(self.body)
        shown["metadata"] = redact_json(self.metadata)
        shown["frequency"] = self.frequency_as_written
        del shown["frequency_text"]
        if self.paging is not None:
            shown["paging"] = self.paging.shown()
        if self.incremental is not None:
            shown["incremental"] = self.incremental.shown()
        return shown

    @property
    def frequency_as_written(self) -> str | None:
        """``frequency`` as the user wrote it (``30m``, ``90 minutes``, ``@daily``), never ``0:30:00``;
        ``None`` when the sync is only triggered."""
        if self.frequency_text is not None:
            return self.frequency_text
        if isinstance(self.frequency, timedelta):
            return format_duration(self.frequency)
        return self.frequency

    @classmethod
    def from_mapping(cls, name: str, fields: Mapping[str, Any], *, source: str | None = None) -> SyncDefinition:
        """Validate ``fields`` (as written in YAML, JSON or keyword arguments) into a definition."""
        return _Validator(name, source).build(fields)


def parse_connections(value: Any, fail: Callable[[str], SyncDefinitionError]) -> tuple[str, ...]:
    """``value`` as connection ids: a non-empty list (or the JSON text of one, as a template renders it) of at most
    :data:`MAX_CONNECTIONS` distinct Airflow connection ids; ``fail(message)`` builds the error."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise fail(
                f"expected a list of connection ids (JSON text of a list), got the text {value[:80]!r}"
            ) from None
    if not isinstance(value, list | tuple):
        raise fail(f"expected a list of connection ids, got {type(value).__name__}")
    if not value:
        raise fail("expected at least one connection id, got an empty list")
    if len(value) > MAX_CONNECTIONS:
        raise fail(f"expected at most {MAX_CONNECTIONS} connections (one mapped task each), got {len(value)}")
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, str) or len(item) > MAX_CONN_ID_LENGTH or not CONN_ID.fullmatch(item):
            raise fail(
                f"expected Airflow connection ids (at most {MAX_CONN_ID_LENGTH} letters, digits and _#!()-.:/\\), "
                f"got {str(item)[:80]!r}"
            )
        if item in seen:
            raise fail(f"connection {item!r} is listed twice: each connection is synced once")
        seen.add(item)
    return tuple(value)


DERIVED_FIELDS: Final = frozenset({"name", "frequency_text"})
"""Fields of :class:`SyncDefinition` that are not written as fields of a definition."""
FIELD_NAMES: Final = tuple(f.name for f in dataclasses.fields(SyncDefinition) if f.name not in DERIVED_FIELDS)
_ALL_FIELD_NAMES: Final = tuple(f.name for f in dataclasses.fields(SyncDefinition))
_FIELD_SIZES: Final = {"body": MAX_BODY_BYTES, "headers": MAX_HEADERS_BYTES, "query_params": MAX_QUERY_BYTES}
_DEFAULTS: Final = {
    f.name: f.default for f in dataclasses.fields(SyncDefinition) if f.default is not dataclasses.MISSING
}
"""The defaults of the fields that have a plain one: the dataclass is their only home."""


def default_of(field_name: str) -> Any:
    """The default of a definition field (``default_of("postgres_conn_id")`` is ``"postgres_default"``)."""
    return _DEFAULTS[field_name]


class _Validator:
    """Turns user-written fields into a :class:`SyncDefinition`, one clear error per problem."""

    def __init__(self, name: str, source: str | None) -> None:
        self.name = name
        self.source = source

    def fail(self, field_name: str | None, message: str) -> SyncDefinitionError:
        return SyncDefinitionError(self.name, field_name, message, source=self.source)

    def build(self, fields: Mapping[str, Any]) -> SyncDefinition:
        self.check_name()
        if not isinstance(fields, Mapping):
            raise self.fail(None, f"expected a mapping of fields, got {type(fields).__name__}")
        self.refuse_unknown(fields)
        self.check_values(fields)
        if fields.get("url") is None:
            raise self.fail("url", "is required")
        given = {key: value for key, value in fields.items() if value is not None or key == "frequency"}
        values = _DEFAULTS | given
        method = self.method(values["method"])
        http_conn_id = self.optional_text(values, "http_conn_id")
        connections = self.connections(values.get("connections"), http_conn_id)
        definition = SyncDefinition(
            name=self.name,
            url=self.url(values["url"], http_conn_id or connections),
            method=method,
            headers=self.headers(values.get("headers")),
            query_params=self.query_params(values.get("query_params")),
            body=values.get("body"),  # JSON types, nesting and size: checked with every field in check_values
            response_path=self.path(values, "response_path"),
            unique_key=self.path(values, "unique_key", dot_only=True),
            paging_request_path=self.path(values, "paging_request_path", dot_only=True),
            paging_response_path=self.path(values, "paging_response_path"),
            paging=parse_paging(values.get("paging"), self.fail),
            incremental=parse_incremental(values.get("incremental"), self.fail, parse_lookback),
            frequency=self.frequency(values["frequency"], self.allow_short_frequency(values)),
            frequency_text=_written_frequency(values["frequency"]),
            table=self.table(values.get("table")),
            http_conn_id=http_conn_id,
            connections=connections,
            postgres_conn_id=self.required_text(values, "postgres_conn_id"),
            max_total=self.positive_int(values, "max_total", maximum=MAX_BIGINT),
            request_retries=self.positive_int(values, "request_retries", minimum=0, maximum=MAX_REQUEST_RETRIES),
            request_retry_max_seconds=self.positive_number(
                values, "request_retry_max_seconds", maximum=MAX_RETRY_SECONDS
            ),
            request_backoff_seconds=self.positive_number(
                values, "request_backoff_seconds", maximum=MAX_BACKOFF_SECONDS
            ),
            request_timeout=self.positive_number(values, "request_timeout", maximum=MAX_REQUEST_TIMEOUT),
            max_pages=self.positive_int(values, "max_pages", maximum=MAX_PAGES_LIMIT),
            allow_short_frequency=self.allow_short_frequency(values),
            deletes=self.deletes(given),
            metadata=self.metadata(values.get("metadata")),
            auto_mapping=self.flag(values, "auto_mapping"),
            pool=self.pool(values.get("pool")),
            pool_slots=self.pool_slots(values),
            max_requests_per_second=self.requests_per_second(values.get("max_requests_per_second")),
        )
        self.check_paging(definition)
        self.check_incremental(definition)
        self.check_connections(definition)
        self.check_template_connections(definition)
        return definition

    def check_name(self) -> None:
        if not isinstance(self.name, str) or not SYNC_NAME.fullmatch(self.name):
            raise self.fail(None, "a sync name must match ^[a-z][a-z0-9_]*$ (lowercase, digits, underscores)")
        if len(self.name) > MAX_SYNC_NAME_LENGTH:
            raise self.fail(
                None,
                f"a sync name has at most {MAX_SYNC_NAME_LENGTH} characters (its table nango.<name> is a Postgres "
                f"identifier), got {len(self.name)}",
            )

    def check_values(self, fields: Mapping[str, Any]) -> None:
        """Every field, whatever its type: nesting, size, and only values that JSON and Postgres can carry."""
        for key, value in fields.items():
            problem = _json_problem(value, strict=key in ("body", "metadata"))
            if problem is None and key in _FIELD_SIZES:
                problem = _size_problem(value, _FIELD_SIZES[key])
            if problem is not None:
                raise self.fail(str(key), problem)

    def refuse_unknown(self, fields: Mapping[str, Any]) -> None:
        for key in fields:
            if key in FIELD_NAMES or key in FIELD_ALIASES:
                continue
            near_alias = difflib.get_close_matches(str(key), FIELD_ALIASES, n=1, cutoff=0.6)
            choices = FIELD_NAMES + FIELD_ALIASES if near_alias else FIELD_NAMES
            raise self.fail(str(key), f"unknown field; {_nearest_hint(str(key), choices, 'fields')}")

    def method(self, value: Any) -> str:
        if not isinstance(value, str) or value.upper() not in METHODS:
            raise self.fail("method", f"expected one of {', '.join(METHODS)} (any case), got {value!r}")
        return value.upper()

    def connections(self, value: Any, http_conn_id: str | None) -> tuple[str, ...] | str | None:
        """A list of distinct connection ids, or a template that renders to one (checked when it is rendered)."""
        if value is None:
            return None
        if http_conn_id is not None:
            raise self.fail(
                "connections",
                "give either http_conn_id (one connection) or connections (one mapped task per connection), not both",
            )
        if isinstance(value, str):
            self.check_text("connections", value, MAX_URL_LENGTH)
            if "{{" not in value:
                raise self.fail(
                    "connections",
                    f"expected a list of connection ids, or a template rendering to one "
                    f'("{{{{ var.json.tenants }}}}"), got the text {value[:80]!r}',
                )
            return value
        return parse_connections(value, lambda message: self.fail("connections", message))

    def check_connections(self, definition: SyncDefinition) -> None:
        """Rows of several connections are told apart by their key: a keyed, untyped table."""
        if definition.connections is None:
            return
        if definition.unique_key is None:
            raise self.fail(
                "connections",
                "needs unique_key: rows are keyed by (connection, unique key), and without a key each connection's "
                "run would replace the whole table",
            )
        if definition.auto_mapping:
            raise self.fail("connections", "cannot be combined with auto_mapping: true (typed columns) yet")

    def url(self, value: Any, http_conn_id: str | tuple[str, ...] | None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail("url", f"expected a non-empty string, got {value!r}")
        self.check_text("url", value, MAX_URL_LENGTH)
        if "{{" in value:
            return value  # templated: checked again once Airflow has rendered it
        shown = redact_url(value)
        if _WHITESPACE.search(value):
            raise self.fail("url", f"expected a URL without spaces, got {shown!r}")
        try:
            parts = urlsplit(value)
        except ValueError as error:
            raise self.fail("url", f"expected a URL, got {shown!r} ({error})") from None
        if is_absolute_url(value):
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise self.fail("url", f"expected an http:// or https:// URL with a host, got {shown!r}")
            if is_metadata_host(parts.hostname or ""):
                raise self.fail(
                    "url", f"{parts.hostname} is a cloud metadata or link-local address, which hands out credentials"
                )
        elif http_conn_id is None:
            raise self.fail(
                "url",
                f"{shown!r} is relative: set http_conn_id (or connections) to the connection that holds the API's "
                "host, or write an absolute http(s):// URL",
            )
        return value

    def headers(self, value: Any) -> dict[str, str]:
        mapping = self.mapping("headers", value)
        for key, item in mapping.items():
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise self.fail("headers", f"header {key!r}: expected a string value, got {type(item).__name__}")
            self.check_header(str(key), str(item))
        return {str(key): str(item) for key, item in mapping.items()}

    def check_header(self, name: str, value: str) -> None:
        if not HEADER_NAME.fullmatch(name):
            raise self.fail(
                "headers", f"header {name!r}: a header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces)"
            )
        if _CONTROL.search(value):
            raise self.fail("headers", f"header {name!r}: a header value cannot hold control characters (CR, LF, ...)")
        if value[:1].isspace():
            raise self.fail("headers", f"header {name!r}: a header value cannot start with a space")

    def query_params(self, value: Any) -> dict[str, Any]:
        mapping = self.mapping("query_params", value)
        for key, item in mapping.items():
            items = item if isinstance(item, list) else [item]
            if not all(isinstance(one, str | int | float | bool) for one in items):
                raise self.fail(
                    "query_params", f"parameter {key!r}: expected a scalar or a list of scalars, got {item!r}"
                )
            texts = [str(key), *(one for one in items if isinstance(one, str))]
            if any(_CONTROL.search(text) for text in texts):
                raise self.fail("query_params", f"parameter {key!r}: cannot hold control characters (CR, LF, ...)")
        return {str(key): _query_value(item) for key, item in mapping.items()}

    def mapping(self, field_name: str, value: Any) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(field_name, f"expected a mapping of names to values, got {type(value).__name__}")
        return value

    def path(self, values: Mapping[str, Any], field_name: str, *, dot_only: bool = False) -> str | None:
        value = values.get(field_name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(field_name, f"expected a path string, got {type(value).__name__}")
        self.check_text(field_name, value, MAX_PATH_LENGTH)
        try:
            compiled = compile_path(value)
        except PathError as error:
            raise self.fail(field_name, str(error)) from None
        if dot_only and compiled.is_jsonpath:
            raise self.fail(field_name, f"expected a dot path such as 'id' or 'paging.next.after', got {value!r}")
        return value

    def frequency(self, value: Any, allow_short: bool) -> Schedule:
        if isinstance(value, str):
            self.check_text("frequency", value, MAX_FREQUENCY_TEXT)
        try:
            schedule = parse_frequency(value)
        except ValueError as error:
            raise self.fail("frequency", str(error)) from None
        if not allow_short and _is_short(schedule):
            raise self.fail(
                "frequency",
                f"{value!r} runs more often than once a minute: every run starts a task and queries Postgres; "
                "write a longer frequency, or set allow_short_frequency: true if you mean it",
            )
        return schedule

    def allow_short_frequency(self, values: Mapping[str, Any]) -> bool:
        value = values["allow_short_frequency"]
        if not isinstance(value, bool):
            raise self.fail("allow_short_frequency", f"expected true or false, got {value!r}")
        return value

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
        self.check_schema(parts[0] if len(parts) == 2 else DEFAULT_SCHEMA, parts[-1])
        return str(value)

    def check_schema(self, schema: str, table: str) -> None:
        """System schemas are Postgres'; in ``nango`` each table ``nango.<name>`` belongs to the sync ``<name>``."""
        if schema.lower() in RESERVED_SCHEMAS or schema.lower().startswith("pg_"):
            raise self.fail("table", f"schema {schema!r} belongs to Postgres: write a schema of your own")
        if schema == DEFAULT_SCHEMA and table != self.name:
            raise self.fail(
                "table",
                f"{DEFAULT_SCHEMA}.{table} is the default table of the sync named {table!r}: in schema "
                f"{DEFAULT_SCHEMA!r} a sync may only use its own table ({DEFAULT_SCHEMA}.{self.name}); "
                "write another schema",
            )

    def optional_text(self, values: Mapping[str, Any], field_name: str) -> str | None:
        value = values.get(field_name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(field_name, f"expected a connection id (a non-empty string), got {value!r}")
        if value is not None and (len(value) > MAX_CONN_ID_LENGTH or not CONN_ID.fullmatch(value)):
            raise self.fail(
                field_name,
                f"expected an Airflow connection id (at most {MAX_CONN_ID_LENGTH} letters, digits and "
                f"_#!()-.:/\\), got {value[:80]!r}",
            )
        return value

    def check_text(self, field_name: str, value: str, limit: int) -> None:
        if len(value) > limit:
            raise self.fail(field_name, f"expected at most {limit} characters, got {len(value)}")
        if _CONTROL.search(value):
            raise self.fail(field_name, "cannot hold control characters (CR, LF, ...)")

    def required_text(self, values: Mapping[str, Any], field_name: str) -> str:
        value = self.optional_text(values, field_name)
        if value is None:
            raise self.fail(field_name, "expected a connection id (a non-empty string), got None")
        return value

    def positive_int(self, values: Mapping[str, Any], field_name: str, *, minimum: int = 1, maximum: int) -> Any:
        value = values.get(field_name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(field_name, f"expected an integer >= {minimum}, got {value!r}")
        if value > maximum:
            raise self.fail(field_name, f"expected an integer <= {maximum:_}, got {value!r}")
        return value

    def positive_number(self, values: Mapping[str, Any], field_name: str, *, maximum: float) -> float:
        value = values.get(field_name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
            raise self.fail(field_name, f"expected a number of seconds > 0, got {value!r}")
        if value > maximum:
            raise self.fail(field_name, f"expected a number of seconds <= {maximum:g}, got {value!r}")
        return float(value)

    def deletes(self, values: Mapping[str, Any]) -> str:
        value = values.get("deletes")
        soft_delete = values.get("soft_delete")
        if value is not None and soft_delete is not None:
            raise self.fail(
                "soft_delete",
                "give either deletes (soft, hard or keep) or soft_delete (true or false), not both",
            )
        if soft_delete is not None:
            if not isinstance(soft_delete, bool):
                raise self.fail(
                    "soft_delete", f"expected true (deletes: soft) or false (deletes: keep), got {soft_delete!r}"
                )
            return "soft" if soft_delete else "keep"
        if value is None:
            return str(default_of("deletes"))
        if not isinstance(value, str) or value.lower() not in DELETE_MODES:
            raise self.fail(
                "deletes",
                f"expected one of {', '.join(DELETE_MODES)} (soft: mark records gone upstream as deleted, "
                f"hard: remove them, keep: leave them as they are), got {value!r}",
            )
        return value.lower()

    def metadata(self, value: Any) -> dict[str, Any]:
        mapping = self.mapping("metadata", value)
        for key in mapping:
            if not isinstance(key, str) or not key:
                raise self.fail("metadata", f"expected names (non-empty strings) as keys, got {key!r}")
        return dict(mapping)

    def pool(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not POOL_NAME.fullmatch(value) or len(value) > MAX_POOL_NAME_LENGTH:
            raise self.fail(
                "pool",
                f"expected the name of an Airflow pool (at most {MAX_POOL_NAME_LENGTH} letters, digits and _.-), "
                f"got {str(value)[:80]!r}",
            )
        return value

    def pool_slots(self, values: Mapping[str, Any]) -> int | None:
        slots = self.positive_int(values, "pool_slots", maximum=MAX_POOL_SLOTS)
        if slots is not None and values.get("pool") is None:
            raise self.fail("pool_slots", "needs pool: the Airflow pool whose slots the task takes")
        return slots

    def requests_per_second(self, value: Any) -> float | None:
        if value is None:
            return None
        valid = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not valid or not MIN_REQUESTS_PER_SECOND <= value <= MAX_REQUESTS_PER_SECOND:
            raise self.fail(
                "max_requests_per_second",
                f"expected a number of requests per second between {MIN_REQUESTS_PER_SECOND:g} and "
                f"{MAX_REQUESTS_PER_SECOND:g}, got {value!r}",
            )
        return float(value)

    def flag(self, values: Mapping[str, Any], field_name: str) -> bool:
        value = values.get(field_name, False)
        if not isinstance(value, bool):
            raise self.fail(field_name, f"expected true or false, got {value!r}")
        return value

    def check_paging(self, definition: SyncDefinition) -> None:
        if definition.paging is not None:
            self.check_paging_style(definition, definition.paging)
            return
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

    def check_paging_style(self, definition: SyncDefinition, paging: Paging) -> None:
        """``paging:`` against the rest of the definition: one way of paging, room for what goes in the request."""
        for flat in ("paging_request_path", "paging_response_path"):
            if getattr(definition, flat):
                raise self.fail(flat, "give either paging: or paging_request_path/paging_response_path, not both")
        written = [paging.cursor_name_in_request, paging.position_name, paging.limit_name_in_request]
        if definition.uses_body_cursor and any(written) and not isinstance(definition.body, Mapping | None):
            raise self.fail(
                "body", f"paging values go into the {definition.method} body, so the body must be a JSON object"
            )
        owned = {paging.limit_name_in_request: "paging.limit_name_in_request (set the size in paging.limit)"}
        if paging.counted:
            owned[paging.position_name] = f"paging.{paging.type}_name_in_request (set the first value in paging)"
        for name, owner in owned.items():
            if name is not None:
                self.refuse_written_twice(definition, name, owner)

    def check_incremental(self, definition: SyncDefinition) -> None:
        """An incremental sync upserts by key and owns its request field."""
        if definition.incremental is None:
            return
        if definition.unique_key is None:
            raise self.fail(
                "incremental",
                "needs unique_key: an incremental run fetches only what changed, and without a key the table "
                "would be replaced by those records",
            )
        if definition.uses_body_cursor and not isinstance(definition.body, Mapping | None):
            raise self.fail(
                "body", f"the mark goes into the {definition.method} body, so the body must be a JSON object"
            )
        self.refuse_written_twice(definition, definition.incremental.request_name, "incremental.request_name")

    def check_template_connections(self, definition: SyncDefinition) -> None:
        """A request field may template only the sync's own HTTP connections, by literal id: a connection's
        secrets go only to its own host, which the run checks against each request (docs/security.md)."""
        own = http_connection_ids(definition)
        for field_name in REQUEST_FIELDS:
            value = getattr(definition, field_name)
            for text in (value,) if isinstance(value, str) else strings_in(value):
                try:
                    used = template_connection_ids(text)
                except ValueError as error:
                    raise self.fail(field_name, str(error)) from None
                foreign = sorted(used - own)
                if foreign:
                    raise self.fail(field_name, _foreign_connection_message(foreign[0], own))

    def refuse_written_twice(self, definition: SyncDefinition, name: str, owner: str) -> None:
        """A value ``paging:`` writes into every request must not also be set in ``query_params`` or ``body``."""
        if definition.uses_body_cursor:
            if isinstance(definition.body, Mapping) and compile_path(name).get(definition.body) is not MISSING:
                raise self.fail("body", f"{name!r} is also {owner}: set it in one place")
        elif name in definition.query_params:
            raise self.fail("query_params", f"{name!r} is also {owner}: set it in one place")


def http_connection_ids(definition: SyncDefinition) -> frozenset[str]:
    """The HTTP connections of a sync (``http_conn_id``, or each of a list of ``connections``): the only ones its
    request templates may read. A templated ``connections`` names none until it is rendered."""
    listed = definition.connections if isinstance(definition.connections, tuple) else ()
    return frozenset({definition.http_conn_id} if definition.http_conn_id else ()) | frozenset(listed)


def connection_ids(definition: SyncDefinition) -> frozenset[str]:
    """Every Airflow connection a sync uses: its HTTP connections and its database (``postgres_conn_id``)."""
    return http_connection_ids(definition) | {definition.postgres_conn_id}


def _foreign_connection_message(conn_id: str, own: frozenset[str]) -> str:
    mine = f"its connections are {', '.join(repr(one) for one in sorted(own))}" if own else "it names no connection"
    return (
        f"the template reads connection {conn_id!r}, which is not the sync's connection ({mine}): a connection's "
        f"secrets go only to its own host, so a template may read only the sync's own connection (set http_conn_id: "
        f"{conn_id} if the request goes to its host)"
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


def _json_problem(value: Any, *, strict: bool) -> str | None:
    """What in ``value`` cannot travel as JSON or be stored in Postgres ``jsonb``, and where; ``None`` if nothing.

    Walks without recursion, so no nesting can overflow the stack. Refused: nesting deeper than
    :data:`MAX_JSON_DEPTH`, more than :data:`MAX_JSON_VALUES` values, NaN and infinities, numbers beyond a
    ``bigint``, NUL characters and unpaired surrogates in strings and keys. With ``strict``, also anything
    that is not a mapping with string keys, a list, a string, a number, a boolean or null.
    """
    if type(value) in _PLAIN_SCALARS:
        return _scalar_problem(value, strict=strict)  # most fields: one value, nothing to walk
    pending: list[tuple[Any, _Where, int]] = [(value, None, 0)]
    count = 0
    while pending:
        item, where, depth = pending.pop()
        count += 1
        if count > MAX_JSON_VALUES:
            return f"holds more than {MAX_JSON_VALUES:_} values"
        if depth > MAX_JSON_DEPTH:
            return f"is nested more than {MAX_JSON_DEPTH} levels deep (at {_shown(where)})"
        problem = _scalar_problem(item, strict=strict)
        if problem is None and isinstance(item, Mapping):
            for key, child in item.items():
                problem = _key_problem(key, strict=strict)
                if problem is not None:
                    problem = f"key {str(key)[:40]!r}: {problem}"
                    break
                pending.append((child, (where, key), depth + 1))
        elif problem is None and isinstance(item, list | tuple):
            pending.extend((child, (where, index), depth + 1) for index, child in enumerate(item))
        if problem is not None:
            return f"{problem} (at {_shown(where)})" if where else problem
    return None


_PLAIN_SCALARS: Final = frozenset({str, int, float, bool, type(None)})

_Where = tuple[Any, Any] | None
"""Where a value is inside a field: ``(parent, key or index)``, or ``None`` for the field itself."""


def _shown(where: _Where) -> str:
    """``a.b[2].c`` for a :data:`_Where`; long keys are cut."""
    parts: list[str] = []
    while where is not None:
        where, step = where
        parts.append(f"[{step}]" if isinstance(step, int) else f".{str(step)[:40]}")
    return "".join(reversed(parts)).removeprefix(".")


def _scalar_problem(item: Any, *, strict: bool) -> str | None:
    if isinstance(item, str):
        return _text_problem(item)
    if item is None or isinstance(item, bool | Mapping | list | tuple):
        return None
    if isinstance(item, int):
        in_range = -MAX_BIGINT - 1 <= item <= MAX_BIGINT
        return None if in_range else f"an integer beyond a Postgres bigint (at most {MAX_BIGINT:_} either way)"
    if isinstance(item, float):
        if not math.isfinite(item):
            return f"{item!r}: NaN and infinities are not JSON"
        return None if abs(item) < MAX_FLOAT else f"{item!r}: write numbers of 1e16 or more as whole numbers or text"
    if strict:
        return f"expected JSON-encodable data (mappings, lists, strings, numbers, booleans), got {type(item).__name__}"
    return None


def _key_problem(key: Any, *, strict: bool) -> str | None:
    if isinstance(key, str):
        return _text_problem(key)
    return f"expected JSON-encodable data: mapping keys are strings, got {type(key).__name__}" if strict else None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000), which Postgres cannot store"
    if _SURROGATE.search(text):
        return "an unpaired surrogate, which is not Unicode text"
    return None


def _size_problem(value: Any, limit: int) -> str | None:
    """Whether ``value`` (already checked by :func:`_json_problem`) takes more than ``limit`` bytes as JSON."""
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
    return f"takes {size:_} bytes as JSON, more than the limit of {limit:_}" if size > limit else None


def _is_short(schedule: Schedule) -> bool:
    """Whether ``schedule`` runs more often than :data:`MIN_FREQUENCY` (once a minute)."""
    if isinstance(schedule, timedelta):
        return schedule < MIN_FREQUENCY
    if schedule == "@continuous":
        return True
    fields = schedule.split() if isinstance(schedule, str) else []
    return len(fields) == 6 and not fields[5].isdigit()  # croniter's sixth field is seconds


def _nearest_hint(name: str, choices: Sequence[str], what: str) -> str:
    """``did you mean 'max_total'?``, or the list of valid names when none is close."""
    nearest = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"did you mean {nearest[0]!r}?" if nearest else f"valid {what}: {', '.join(choices) or 'none'}"


def refuse_unknown_params(dag_id: str, conf: Mapping[str, Any], known: Sequence[str]) -> None:
    """Raise :class:`TriggerParamsError` for the first param of a run's ``conf`` that the DAG does not have,
    with the nearest valid name: Airflow itself keeps an unknown key, so a typo would be ignored silently."""
    for name in conf:
        if name not in known:
            raise TriggerParamsError(dag_id, str(name), f"unknown param; {_nearest_hint(str(name), known, 'params')}")


def _written_frequency(value: Any) -> str | None:
    """The text of a ``frequency`` written as a string (a ``timedelta`` from Python has none)."""
    return value.strip() if isinstance(value, str) else None


def format_duration(duration: timedelta) -> str:
    """A short text for a duration: ``30m``, ``1h``, ``2d``, ``90s`` (the largest unit that divides it)."""
    seconds = int(duration.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_frequency(value: Any) -> Schedule:
    """Turn a ``frequency`` into a schedule: ``15m`` / ``1 day`` -> timedelta; cron and presets as they are.

    ``None`` means the sync is only triggered by hand (or by the API).
    """
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"expected a positive duration, got {value}")
        return _bounded(value, value)
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
            return _bounded(timedelta(**{_DURATION_UNITS[duration.group(2).lower()]: amount}), value)
        except OverflowError:
            return _bounded(timedelta.max, value)
    if _is_cron(text):
        return text
    raise ValueError(
        f"expected a duration ('15m', '1h', '90 minutes', '1 day'), a cron expression ('*/15 * * * *') or an "
        f"Airflow preset ({', '.join(sorted(SCHEDULE_PRESETS))}), got {value!r}"
    )


MAX_LOOKBACK: Final = timedelta(days=36_600)
"""At most a century: any longer lookback is a full run."""


def parse_lookback(value: Any) -> timedelta:
    """A positive duration (``10m``, ``1h``, ``2 days``) of at most :data:`MAX_LOOKBACK`, or ``ValueError``."""
    expected = f"expected a duration such as '10m', '1h' or '2 days' (at most {MAX_LOOKBACK.days} days), got {value!r}"
    duration = value if isinstance(value, timedelta) else _duration_text(value)
    if duration is None or not timedelta(0) < duration <= MAX_LOOKBACK:
        raise ValueError(expected)
    return duration


def _duration_text(value: Any) -> timedelta | None:
    """``15m``, ``2 days``, ... as a timedelta; ``None`` when it is not one (or too long to be one)."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    unit = _DURATION_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        return None
    try:
        return timedelta(**{unit: int(match.group(1))})
    except OverflowError:
        return None


def _bounded(duration: timedelta, written: Any) -> timedelta:
    if duration > MAX_FREQUENCY:
        raise ValueError(
            f"expected a duration of at most {MAX_FREQUENCY.days} days (use a cron expression or null for rarer "
            f"runs), got {written!r}"
        )
    return duration


def _is_cron(text: str) -> bool:
    from croniter import croniter

    return len(text.split()) in (5, 6) and bool(croniter.is_valid(text))


def _read_syncs(path: str | Path) -> Mapping[Any, Any]:
    source = str(path)
    try:
        with open(path, "rb") as file:  # bytes: YAML reads every line break as one, no newline translation needed
            text = file.read().decode("utf-8")
        _refuse_aliases(text)
        document = yaml.load(text, Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as error:
        raise SyncDefinitionError("?", None, f"not UTF-8 text: {error}", source=source) from None
    except yaml.YAMLError as error:
        raise SyncDefinitionError("?", None, f"not valid YAML: {error}", source=source) from None
    except ValueError as error:  # a number of more than 4,300 digits
        raise SyncDefinitionError("?", None, f"not readable YAML: {error}", source=source) from None
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


def _refuse_aliases(text: str) -> None:
    """YAML aliases (``*name``, ``<<: *name``) are refused: a few of them can expand into gigabytes.

    Without an anchor (``&name``) there can be no alias, so the event scan only runs when ``&`` appears.
    """
    if "&" not in text:
        return
    for event in yaml.parse(text, Loader=_UniqueKeyLoader):
        if isinstance(event, yaml.AliasEvent):
            where = event.start_mark
            line = f"line {where.line + 1}, column {where.column + 1}" if where else "?"
            raise yaml.YAMLError(
                f"the alias *{event.anchor} ({line}): anchors and aliases are not supported in sync files, "
                "write each value out"
            )


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (the C one when available), refusing a key written twice in one mapping."""

    def construct_document(self, node: yaml.Node) -> Any:
        """The document's data; plain mappings, lists and strings (all a sync file usually holds) are built straight
        from the nodes, several times faster than PyYAML's general constructor, which builds everything else."""
        try:
            data = _plain_data(self, node, 0)
        except _NotPlain:
            return super().construct_document(node)
        self.constructed_objects.clear()
        self.recursive_objects.clear()
        return data

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # a list or mapping as a key: PyYAML's constructor refuses it with its own error
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_STR_TAG: Final = "tag:yaml.org,2002:str"
_MAP_TAG: Final = "tag:yaml.org,2002:map"
_SEQ_TAG: Final = "tag:yaml.org,2002:seq"
_SPECIAL_KEY_TAGS: Final = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})
_PLAIN_DEPTH: Final = MAX_JSON_DEPTH + 8
"""Deeper documents (refused later anyway) go to PyYAML's constructor, which builds them without recursion."""


class _NotPlain(Exception):
    """A node that :func:`_plain_data` leaves to PyYAML's general constructor."""


def _plain_data(loader: _UniqueKeyLoader, node: yaml.Node, depth: int) -> Any:
    """``node`` as data, as PyYAML's safe constructor builds it; raises :class:`_NotPlain` for anything but plain
    mappings, lists and scalars (merge keys, ``!!set`` and other tags, unhashable keys, deep nesting)."""
    if depth > _PLAIN_DEPTH:
        raise _NotPlain
    if isinstance(node, yaml.ScalarNode):
        return node.value if node.tag == _STR_TAG else loader.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
        return [_plain_data(loader, child, depth + 1) for child in node.value]
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP_TAG:
        raise _NotPlain
    keys: list[Any] = []
    seen: set[Any] = set()
    for key_node, _ in node.value:  # every key first, as the general constructor checks them before any value
        if key_node.tag in _SPECIAL_KEY_TAGS:
            raise _NotPlain
        key = _plain_data(loader, key_node, depth + 1)
        try:
            duplicate = key in seen
        except TypeError:
            raise _NotPlain from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
        keys.append(key)
    values = (value_node for _, value_node in node.value)
    return {key: _plain_data(loader, value_node, depth + 1) for key, value_node in zip(keys, values, strict=True)}
