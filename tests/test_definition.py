"""Unit tests of nango_provider/definition.py: fields, defaults, validation messages, frequency, YAML loading."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from nango_provider import definition as definition_module
from nango_provider.definition import (
    FIELD_NAMES,
    SyncDefinition,
    is_absolute_url,
    iter_definitions_file,
    parse_frequency,
    refuse_unknown_params,
)
from nango_provider.exceptions import SyncDefinitionError, TriggerParamsError

URL = "https://api.example.com/v1/items"
NAME = "demo"


def build(fields: Mapping[str, Any], name: str = NAME) -> SyncDefinition:
    return SyncDefinition.from_mapping(name, fields)


def refused(fields: Mapping[str, Any], field: str | None, message: str, name: str = NAME) -> SyncDefinitionError:
    """Assert ``fields`` is refused for ``field`` with ``message`` in the text; return the error."""
    with pytest.raises(SyncDefinitionError) as info:
        SyncDefinition.from_mapping(name, fields)
    error = info.value
    assert error.sync == name
    assert error.field == field
    text = str(error)
    assert f"sync {name!r}" in text
    if field is not None:
        assert f"field {field!r}" in text
    assert message in text, text
    return error


# --- fields and defaults -----------------------------------------------------------------------------------


def test_every_field_is_read() -> None:
    definition = build(
        {
            "url": URL,
            "method": "post",
            "headers": {"Accept": "application/json", "X-Page-Size": 100},
            "query_params": {"limit": 100, "types": ["a", "b"], "archived": False},
            "body": {"filter": {"active": True}, "page": {"size": 50}},
            "response_path": "data.items",
            "unique_key": "meta.id",
            "paging_request_path": "page.cursor",
            "paging_response_path": "paging.next.after",
            "frequency": "15m",
            "table": "raw.items",
            "http_conn_id": "my_api",
            "postgres_conn_id": "warehouse",
            "max_total": 500,
            "request_retries": 0,
            "request_retry_max_seconds": 10,
            "request_backoff_seconds": 0.5,
            "request_timeout": 30,
            "max_pages": 10,
            "deletes": "hard",
        }
    )
    assert definition == SyncDefinition(
        name=NAME,
        url=URL,
        method="POST",
        headers={"Accept": "application/json", "X-Page-Size": "100"},
        query_params={"limit": 100, "types": ["a", "b"], "archived": "false"},
        body={"filter": {"active": True}, "page": {"size": 50}},
        response_path="data.items",
        unique_key="meta.id",
        paging_request_path="page.cursor",
        paging_response_path="paging.next.after",
        frequency=timedelta(minutes=15),
        table="raw.items",
        http_conn_id="my_api",
        postgres_conn_id="warehouse",
        max_total=500,
        request_retries=0,
        request_retry_max_seconds=10.0,
        request_backoff_seconds=0.5,
        request_timeout=30.0,
        max_pages=10,
        deletes="hard",
    )
    assert definition.dag_id == "nango_sync_demo"
    assert definition.qualified_table == ("raw", "items")
    assert definition.records_path == "data.items"
    assert definition.uses_body_cursor is True
    assert isinstance(definition.request_timeout, float)


def test_defaults() -> None:
    definition = build({"url": URL})
    assert definition.name == NAME
    assert definition.url == URL
    assert definition.method == "GET"
    assert definition.headers == {}
    assert definition.query_params == {}
    assert definition.body is None
    assert definition.response_path is None
    assert definition.records_path == "results"
    assert definition.unique_key is None
    assert definition.paging_request_path is None
    assert definition.paging_response_path is None
    assert definition.frequency == timedelta(hours=1)
    assert definition.table is None
    assert definition.qualified_table == ("nango", NAME)
    assert definition.schema_name == "nango"
    assert definition.table_name == NAME
    assert definition.http_conn_id is None
    assert definition.postgres_conn_id == "postgres_default"
    assert definition.max_total is None
    assert definition.request_retries == 5
    assert definition.request_retry_max_seconds == 300.0
    assert definition.request_backoff_seconds == 1.0
    assert definition.request_timeout == 60.0
    assert definition.max_pages == 100_000
    assert definition.deletes == "soft"
    assert definition.uses_body_cursor is False
    assert definition.dag_id == "nango_sync_demo"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({"deletes": "Keep"}, "keep"), ({"soft_delete": True}, "soft"), ({"soft_delete": False}, "keep")],
)
def test_deletion_mode_and_the_original_soft_delete_spelling(fields: dict[str, Any], expected: str) -> None:
    assert build({"url": URL, **fields}).deletes == expected


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"deletes": "remove"}, "deletes", "expected one of soft, hard, keep"),
        ({"soft_delete": "yes"}, "soft_delete", "expected true (deletes: soft) or false (deletes: keep)"),
        ({"deletes": "hard", "soft_delete": True}, "soft_delete", "not both"),
        ({"softdelete": True}, "softdelete", "did you mean 'soft_delete'?"),
    ],
)
def test_deletion_mode_refused(fields: dict[str, Any], field: str, message: str) -> None:
    refused({"url": URL, **fields}, field, message)


def test_metadata_and_auto_mapping() -> None:
    definition = build({"url": URL, "metadata": {"tenant": "acme", "region": {"id": 3}}, "auto_mapping": True})
    assert definition.metadata == {"tenant": "acme", "region": {"id": 3}} and definition.auto_mapping is True
    assert build({"url": URL}).metadata == {} and build({"url": URL}).auto_mapping is False


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"auto_mapping": "yes"}, "auto_mapping", "expected true or false"),
        ({"metadata": ["tenant"]}, "metadata", "expected a mapping"),
        ({"metadata": {"": 1}}, "metadata", "expected names (non-empty strings)"),
        ({"metadata": {"x": float("nan")}}, "metadata", "NaN"),
        ({"automapping": True}, "automapping", "did you mean 'auto_mapping'?"),
    ],
)
def test_metadata_and_auto_mapping_refused(fields: dict[str, Any], field: str, message: str) -> None:
    refused({"url": URL, **fields}, field, message)


def test_null_fields_take_their_defaults() -> None:
    definition = build({"url": URL, "method": None, "postgres_conn_id": None, "headers": None, "table": None})
    assert definition.method == "GET"
    assert definition.postgres_conn_id == "postgres_default"
    assert definition.headers == {}
    assert definition.qualified_table == ("nango", NAME)


def test_frequency_null_means_triggered_only() -> None:
    assert build({"url": URL, "frequency": None}).frequency is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("demo", ("nango", "demo")),
        ("schema.x", ("schema", "x")),
        ("a.b", ("a", "b")),
        ("nango.demo", ("nango", "demo")),
    ],
)
def test_qualified_table(table: str, expected: tuple[str, str]) -> None:
    definition = build({"url": URL, "table": table})
    assert definition.table == table
    assert definition.qualified_table == expected
    assert (definition.schema_name, definition.table_name) == expected


def test_table_name_of_63_characters_is_accepted() -> None:
    assert build({"url": URL, "table": "raw." + "t" * 63}).table_name == "t" * 63


@pytest.mark.parametrize(
    ("written", "expected"), [("get", "GET"), ("Get", "GET"), ("DELETE", "DELETE"), ("pAtCh", "PATCH")]
)
def test_method_in_any_case(written: str, expected: str) -> None:
    assert build({"url": URL, "method": written}).method == expected


def test_source_prefixes_the_message() -> None:
    with pytest.raises(SyncDefinitionError) as info:
        SyncDefinition.from_mapping(NAME, {}, source="syncs/demo.yaml")
    assert info.value.source == "syncs/demo.yaml"
    assert str(info.value) == "syncs/demo.yaml: sync 'demo', field 'url': is required"


# --- unknown fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "nearest"),
    [
        ("paging_respone_path", "paging_response_path"),
        ("paging_requests_path", "paging_request_path"),
        ("respose_path", "response_path"),
        ("uniqe_key", "unique_key"),
    ],
)
def test_unknown_field_suggests_the_nearest(written: str, nearest: str) -> None:
    error = refused({"url": URL, written: "x"}, written, f"unknown field; did you mean {nearest!r}?")
    assert error.detail == f"unknown field; did you mean {nearest!r}?"


def test_unknown_field_without_a_near_name_lists_the_valid_ones() -> None:
    error = refused({"url": URL, "zzzzzz": 1}, "zzzzzz", "unknown field; valid fields: url, method, headers")
    assert error.detail == f"unknown field; valid fields: {', '.join(FIELD_NAMES)}"


# --- url -----------------------------------------------------------------------------------------------------


def test_missing_url() -> None:
    error = refused({"method": "GET"}, "url", "is required")
    assert error.detail == "is required"


@pytest.mark.parametrize(("value", "shown"), [(42, "42"), ("", "''"), ("   ", "'   '"), (["x"], "['x']")])
def test_url_not_a_non_empty_string(value: Any, shown: str) -> None:
    refused({"url": value}, "url", f"expected a non-empty string, got {shown}")


@pytest.mark.parametrize("url", ["ftp://example.com/file", "http://", "https:///path", "//example.com/x", "mailto:a@b"])
def test_url_not_http(url: str) -> None:
    refused({"url": url}, "url", f"expected an http:// or https:// URL with a host, got {url!r}")


def test_url_with_spaces() -> None:
    refused({"url": "https://api.example.com/v1/my items"}, "url", "expected a URL without spaces")


def test_relative_url_needs_http_conn_id() -> None:
    refused({"url": "/v1/items"}, "url", "'/v1/items' is relative: set http_conn_id")
    definition = build({"url": "/v1/items", "http_conn_id": "my_api"})
    assert (definition.url, definition.http_conn_id) == ("/v1/items", "my_api")


@pytest.mark.parametrize("url", ["https://api.example.com/{{ params.path }}", "{{ var.value.api_base }}/items"])
def test_templated_url_is_accepted_as_written(url: str) -> None:
    assert build({"url": url}).url == url


def test_url_null_is_refused_as_required() -> None:
    refused({"url": None}, "url", "")


def test_unparseable_url_is_a_definition_error() -> None:
    refused({"url": "http://[abc/x"}, "url", "http://[abc/x")


@pytest.mark.parametrize("url", ["ftp://user:hunter22@example.com/x", "/v1/items?api_key=SECRET123"])
def test_url_errors_do_not_show_secrets(url: str) -> None:
    with pytest.raises(SyncDefinitionError) as info:
        build({"url": url})
    assert "hunter22" not in str(info.value)
    assert "SECRET123" not in str(info.value)


# --- method, headers, query_params, body --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [("FETCH", "'FETCH'"), ("", "''"), (1, "1")])
def test_bad_method(value: Any, shown: str) -> None:
    refused(
        {"url": URL, "method": value},
        "method",
        f"expected one of GET, POST, PUT, PATCH, DELETE (any case), got {shown}",
    )


@pytest.mark.parametrize(("value", "type_name"), [(["Accept: x"], "list"), ("Accept: x", "str")])
def test_headers_not_a_mapping(value: Any, type_name: str) -> None:
    refused({"url": URL, "headers": value}, "headers", f"expected a mapping of names to values, got {type_name}")


@pytest.mark.parametrize(("value", "type_name"), [({"a": 1}, "dict"), (True, "bool"), (["x"], "list")])
def test_header_value_not_a_string(value: Any, type_name: str) -> None:
    refused(
        {"url": URL, "headers": {"X-A": value}}, "headers", f"header 'X-A': expected a string value, got {type_name}"
    )


def test_query_params_booleans_are_spelled_as_json() -> None:
    definition = build({"url": URL, "query_params": {"archived": False, "active": True, "flags": [True, 1, "x"]}})
    assert definition.query_params == {"archived": "false", "active": "true", "flags": ["true", 1, "x"]}


def test_query_params_value_a_dict() -> None:
    refused(
        {"url": URL, "query_params": {"filter": {"a": 1}}},
        "query_params",
        "parameter 'filter': expected a scalar or a list of scalars, got {'a': 1}",
    )


def test_query_params_not_a_mapping() -> None:
    refused({"url": URL, "query_params": [1]}, "query_params", "expected a mapping of names to values, got list")


@pytest.mark.parametrize("method", ["GET", "DELETE", "get"])
def test_any_method_may_carry_a_body_and_get_and_delete_still_page_by_query(method: str) -> None:
    definition = build({"url": URL, "method": method, "body": {"mykey": "A great value"}})
    assert definition.body == {"mykey": "A great value"} and not definition.uses_body_cursor
    paged = build(
        {"url": URL, "method": method, "body": ["not", "a", "mapping"], "paging_request_path": "after",
         "paging_response_path": "next"}
    )  # fmt: skip
    assert paged.body == ["not", "a", "mapping"] and not paged.uses_body_cursor


@pytest.mark.parametrize(
    "body", [{"when": datetime.date(2024, 1, 1)}, {1: "non-string key"}, {"tags": {"a", "b"}}, object()]
)
def test_body_not_json(body: Any) -> None:
    refused({"url": URL, "method": "POST", "body": body}, "body", "expected JSON-encodable data")


@pytest.mark.parametrize("body", [{"a": [1, 2.5, None, True, "x"]}, [1, 2], "text", 3])
def test_json_bodies_are_accepted(body: Any) -> None:
    assert build({"url": URL, "method": "PUT", "body": body}).body == body


# --- paths and paging ---------------------------------------------------------------------------------------


def test_paging_request_path_needs_paging_response_path() -> None:
    refused(
        {"url": URL, "paging_request_path": "cursor"},
        "paging_request_path",
        "needs paging_response_path too: where in the response the cursor to send back is found",
    )


def test_cursor_in_a_list_body_is_refused() -> None:
    refused(
        {
            "url": URL,
            "method": "POST",
            "body": [1, 2],
            "paging_request_path": "cursor",
            "paging_response_path": "next",
        },
        "body",
        "the cursor goes into the POST body, so the body must be a JSON object",
    )


def test_cursor_in_the_query_with_a_jsonpath_response_path() -> None:
    definition = build({"url": URL, "paging_request_path": "after", "paging_response_path": "$.paging.next.after"})
    assert (definition.paging_request_path, definition.paging_response_path) == ("after", "$.paging.next.after")


@pytest.mark.parametrize("field", ["unique_key", "paging_request_path"])
def test_jsonpath_is_refused_where_a_dot_path_is_needed(field: str) -> None:
    fields: dict[str, Any] = {"url": URL, field: "$.id", "paging_response_path": "next"}
    refused(fields, field, "expected a dot path such as 'id' or 'paging.next.after', got '$.id'")


@pytest.mark.parametrize("field", ["response_path", "paging_response_path"])
def test_bad_jsonpath(field: str) -> None:
    refused({"url": URL, field: "$["}, field, "'$[' is not valid JSONPath")


def test_bad_dot_path() -> None:
    refused({"url": URL, "unique_key": "a..b"}, "unique_key", "'a..b' is not a dot path")


def test_path_not_a_string() -> None:
    refused({"url": URL, "response_path": 5}, "response_path", "expected a path string, got int")


def test_jsonpath_response_path_is_accepted() -> None:
    assert build({"url": URL, "response_path": "$.data[*]"}).records_path == "$.data[*]"


# --- table, connections, numbers, names ---------------------------------------------------------------------


@pytest.mark.parametrize("table", ["a.b.c", "1abc", "a-b", "t" * 64, "s." + "t" * 64, "", "a.", ".a", 5])
def test_bad_table(table: Any) -> None:
    refused({"url": URL, "table": table}, "table", "expected 'schema.table' or 'table', each a Postgres identifier")


@pytest.mark.parametrize("table", ["_nango_jobs", "nango._nango_jobs", "raw._nango_anything"])
def test_reserved_table(table: str) -> None:
    refused(
        {"url": URL, "table": table},
        "table",
        f"names starting with '_nango_' are reserved for bookkeeping, got {table!r}",
    )


def test_table_with_trailing_newline_is_refused() -> None:
    refused({"url": URL, "table": "items\n"}, "table", "expected 'schema.table' or 'table'")


@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (-1, "-1"), ("10", "'10'"), (True, "True"), (1.5, "1.5")])
def test_bad_max_total(value: Any, shown: str) -> None:
    refused({"url": URL, "max_total": value}, "max_total", f"expected an integer >= 1, got {shown}")


def test_max_total_one_is_accepted() -> None:
    assert build({"url": URL, "max_total": 1}).max_total == 1


def test_request_retries_may_be_zero_but_not_negative() -> None:
    assert build({"url": URL, "request_retries": 0}).request_retries == 0
    refused({"url": URL, "request_retries": -1}, "request_retries", "expected an integer >= 0, got -1")


@pytest.mark.parametrize("field", ["request_timeout", "request_backoff_seconds", "request_retry_max_seconds"])
@pytest.mark.parametrize(("value", "shown"), [(0, "0"), (-2.5, "-2.5"), ("5", "'5'"), (False, "False")])
def test_bad_seconds(field: str, value: Any, shown: str) -> None:
    refused({"url": URL, field: value}, field, f"expected a number of seconds > 0, got {shown}")


def test_nan_seconds_are_refused() -> None:
    refused({"url": URL, "request_timeout": float("nan")}, "request_timeout", "nan: NaN and infinities are not JSON")


@pytest.mark.parametrize("field", ["http_conn_id", "postgres_conn_id"])
@pytest.mark.parametrize(("value", "shown"), [("", "''"), (" ", "' '"), (5, "5")])
def test_bad_connection_id(field: str, value: Any, shown: str) -> None:
    refused({"url": URL, field: value}, field, f"expected a connection id (a non-empty string), got {shown}")


@pytest.mark.parametrize("name", ["Pokemon", "1abc", "a-b", "", "_x", "a b"])
def test_bad_sync_name(name: str) -> None:
    error = refused({"url": URL}, None, "a sync name must match ^[a-z][a-z0-9_]*$", name=name)
    assert "field" not in str(error)


def test_sync_name_with_trailing_newline_is_refused() -> None:
    refused({"url": URL}, None, "a sync name must match", name="pokemon\n")


def test_fields_not_a_mapping() -> None:
    refused(["url"], None, "expected a mapping of fields, got list")  # type: ignore[arg-type]


# --- frequency ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("90 minutes", timedelta(minutes=90)),
        ("1 day", timedelta(days=1)),
        ("2 weeks", timedelta(weeks=2)),
        ("30s", timedelta(seconds=30)),
        (" 2H ", timedelta(hours=2)),
        ("@daily", "@daily"),
        ("@once", "@once"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("0 3 * * 1-5", "0 3 * * 1-5"),
        (None, None),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_parse_frequency(value: Any, expected: Any) -> None:
    parsed = parse_frequency(value)
    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0m", "expected a positive duration, got '0m'"),
        (timedelta(0), "expected a positive duration, got 0:00:00"),
        ("every tuesday", "a cron expression ('*/15 * * * *') or an Airflow preset (@annually, "),
        ("61 * * * *", "got '61 * * * *'"),
        ("0 0 * * * 0 2030", "got '0 0 * * * 0 2030'"),  # seven fields: croniter's year field, not Airflow's
        ("* * * *", "got '* * * *'"),
        ("@sometimes", "got '@sometimes'"),
        (15, "or null, got 15"),
        ("", "or null, got ''"),
        ("  ", "or null, got '  '"),
    ],
)
def test_parse_frequency_refusals(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_frequency(value)
    assert message in str(info.value)


def test_bad_frequency_in_a_definition() -> None:
    refused({"url": URL, "frequency": "every tuesday"}, "frequency", "got 'every tuesday'")


def test_frequency_in_a_definition() -> None:
    assert build({"url": URL, "frequency": "@daily"}).frequency == "@daily"
    assert build({"url": URL, "frequency": "90 minutes"}).frequency == timedelta(minutes=90)


@pytest.mark.parametrize(
    ("written", "shown"),
    [("30m", "30m"), (" 90 minutes ", "90 minutes"), ("1 day", "1 day"), ("@daily", "@daily"), (None, None)],
)
def test_frequency_is_shown_as_written(written: str | None, shown: str | None) -> None:
    definition = build({"url": URL, "frequency": written})
    assert definition.frequency_as_written == shown and definition.redacted()["frequency"] == shown


def test_default_and_python_durations_are_shown_short() -> None:
    assert build({"url": URL}).redacted()["frequency"] == "1h"
    assert build({"url": URL, "frequency": timedelta(minutes=30)}).frequency_as_written == "30m"
    assert build({"url": URL, "frequency": timedelta(seconds=90)}).frequency_as_written == "90s"
    assert build({"url": URL, "frequency": "30m"}) == build({"url": URL, "frequency": "30 minutes"})


def test_frequency_text_is_not_a_field_users_write() -> None:
    refused({"url": URL, "frequency_text": "30m"}, "frequency_text", "unknown field")


def test_huge_frequency_is_a_definition_error() -> None:
    refused({"url": URL, "frequency": "1000000000 days"}, "frequency", "1000000000 days")


# --- YAML files ---------------------------------------------------------------------------------------------

TWO_SYNCS = """\
syncs:
  pokemon:
    url: https://pokeapi.co/api/v2/pokemon
    unique_key: name
    paging_response_path: next
    frequency: 1 day
  contacts:
    url: /crm/v3/objects/contacts
    http_conn_id: hubspot
    method: post
    body:
      limit: 100
    unique_key: id
    paging_request_path: after
    paging_response_path: paging.next.after
    frequency: null
"""


def load_definitions_file(path: Path | str) -> list[SyncDefinition]:
    """Every definition of a file; raises the first definition's error."""
    loaded = list(iter_definitions_file(path))
    for item in loaded:
        if isinstance(item, SyncDefinitionError):
            raise item
    return [item for item in loaded if isinstance(item, SyncDefinition)]


def write(tmp_path: Path, text: str, name: str = "syncs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_refused(path: Path | str, sync: str, field: str | None, message: str) -> SyncDefinitionError:
    with pytest.raises(SyncDefinitionError) as info:
        load_definitions_file(path)
    error = info.value
    assert (error.sync, error.field, error.source) == (sync, field, str(path))
    assert str(error).startswith(f"{path}: sync {sync!r}")
    assert message in str(error), str(error)
    return error


def test_load_a_file_with_two_syncs(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_SYNCS)
    pokemon, contacts = load_definitions_file(path)
    assert pokemon == SyncDefinition(
        name="pokemon",
        url="https://pokeapi.co/api/v2/pokemon",
        unique_key="name",
        paging_response_path="next",
        frequency=timedelta(days=1),
    )
    assert contacts == SyncDefinition(
        name="contacts",
        url="/crm/v3/objects/contacts",
        http_conn_id="hubspot",
        method="POST",
        body={"limit": 100},
        unique_key="id",
        paging_request_path="after",
        paging_response_path="paging.next.after",
        frequency=None,
    )
    assert [d.name for d in load_definitions_file(str(path))] == ["pokemon", "contacts"]


def test_load_an_empty_syncs_mapping(tmp_path: Path) -> None:
    assert load_definitions_file(write(tmp_path, "syncs: {}\n")) == []


def test_load_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "syncs:\n  pokemon: [unclosed\n")
    load_refused(path, "?", None, "not valid YAML")


@pytest.mark.parametrize("text", ["pokemon:\n  url: https://x.example.com\n", "", "- a\n- b\n", "syncs: [a]\n"])
def test_load_a_file_without_syncs(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    load_refused(path, "?", "syncs", "expected a top-level 'syncs:' mapping of sync names to definitions")


def test_load_a_file_with_an_extra_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 2\nsyncs:\n  pokemon:\n    url: https://x.example.com\n")
    load_refused(path, "?", "version", "unknown top-level key; only 'syncs:' is read")


def test_load_an_invalid_definition_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "syncs:\n  pokemon:\n    url: ftp://x.example.com\n")
    load_refused(path, "pokemon", "url", "expected an http:// or https:// URL with a host")


def test_load_an_empty_definition(tmp_path: Path) -> None:
    path = write(tmp_path, "syncs:\n  pokemon:\n")
    load_refused(path, "pokemon", "url", "is required")


def test_load_a_bad_sync_name(tmp_path: Path) -> None:
    path = write(tmp_path, "syncs:\n  Pokemon:\n    url: https://x.example.com\n")
    load_refused(path, "Pokemon", None, "a sync name must match")


def test_load_a_duplicate_sync_name(tmp_path: Path) -> None:
    text = "syncs:\n  pokemon:\n    url: https://a.example.com\n  pokemon:\n    url: https://b.example.com\n"
    error = load_refused(write(tmp_path, text), "?", None, "the key 'pokemon' appears twice in one mapping")
    assert "line 4" in str(error)


def test_load_a_list_as_a_key(tmp_path: Path) -> None:
    text = "syncs:\n  pokemon:\n    url: https://a.example.com\n    ? [a]\n    : 1\n"
    error = load_refused(write(tmp_path, text), "?", None, "found unhashable key")
    assert "line 4" in str(error)


YAML_DOCUMENTS = [
    "syncs:\n  a:\n    url: https://x.example.com\n    query_params: {limit: 5, on: yes}\n    max_total: 1_000\n",
    "a: [1, 2.5, true, null, ~, 2024-01-01, 2024-01-01T10:00:00Z, 0x1f, .inf, 0b101, 12:30:00]\n",
    "a: !!str 12\nb: !!set {x, y}\nc: !!omap [d: 1]\nd: !!binary aGVsbG8=\ne: |\n  block\n",
    "1: a\n2.5: b\n~: c\n'=': d\n",
    "=: 1\n",
    "? [a]\n: 1\n",
    "m:\n  <<: {c: 2}\n  d: 3\n",
    "1: a\ntrue: b\n",
    "a: {x: [1, 2], x: 3}\n",
    "a: 2024-13-45\n",
    "a: " + "9" * 5000 + "\n",
    "x: !!str [1]\n",
    "x: !custom 1\n",
    "a: " + "[" * 3000 + "]" * 3000 + "\n",
    "",
]


def _loaded(text: str, loader: type) -> tuple[str, Any]:
    try:
        return "data", yaml.load(text, Loader=loader)
    except Exception as error:  # the same error, whichever way the document is built
        return type(error).__name__, str(error)


@pytest.mark.parametrize("text", YAML_DOCUMENTS, ids=range(len(YAML_DOCUMENTS)))
def test_sync_files_read_the_same_as_with_pyyamls_general_constructor(text: str) -> None:
    class General(definition_module._UniqueKeyLoader):  # type: ignore[misc]
        def construct_document(self, node: yaml.Node) -> Any:
            return yaml.constructor.BaseConstructor.construct_document(self, node)

    assert _loaded(text, definition_module._UniqueKeyLoader) == _loaded(text, General)


def test_a_plain_sync_file_is_read_without_pyyamls_general_constructor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain mappings, lists and strings are built straight from the nodes, several times faster."""
    built: list[Any] = []
    construct = yaml.constructor.SafeConstructor.construct_yaml_map

    def counting(self: Any, node: yaml.Node) -> Any:
        built.append(node)
        return construct(self, node)

    monkeypatch.setattr(yaml.constructor.SafeConstructor, "construct_yaml_map", counting)
    path = write(tmp_path, "syncs:\n  pokemon:\n    url: https://x.example.com\n    query_params: {limit: 5}\n")
    (definition,) = iter_definitions_file(path)
    assert isinstance(definition, SyncDefinition) and definition.query_params == {"limit": 5} and built == []


# --- redacted() ---------------------------------------------------------------------------------------------


def test_redacted_hides_secrets() -> None:
    definition = build(
        {
            "url": "https://user:pa55word@api.example.com/v1/items?api_key=k3y123&limit=5",
            "method": "POST",
            "headers": {"Authorization": "Bearer t0k3n", "Accept": "application/json"},
            "query_params": {"api_key": "k3y123", "limit": 5},
            "body": {
                "query": "q",
                "client_secret": "s3cr3t",
                "nested": {"password": "pw0rd"},
                "items": [{"token": "tk"}],
            },
        }
    )
    shown = definition.redacted()
    assert shown["url"] == "https://api.example.com/v1/items?api_key=***&limit=5"
    assert shown["headers"] == {"Authorization": "***", "Accept": "application/json"}
    assert shown["query_params"] == {"api_key": "***", "limit": 5}
    assert shown["body"] == {
        "query": "q",
        "client_secret": "***",
        "nested": {"password": "***"},
        "items": [{"token": "***"}],
    }
    assert shown["frequency"] == "1h"
    assert shown["name"] == NAME
    assert shown["method"] == "POST"
    assert set(shown) == {"name", *FIELD_NAMES}
    for secret in ("pa55word", "k3y123", "t0k3n", "s3cr3t", "pw0rd"):
        assert secret not in repr(shown)
    assert definition.headers["Authorization"] == "Bearer t0k3n"  # the definition itself is unchanged


def test_redacted_keeps_non_mapping_bodies_and_null_frequency() -> None:
    shown = build({"url": URL, "method": "POST", "body": "plain", "frequency": None}).redacted()
    assert shown["body"] == "plain"
    assert shown["frequency"] is None


def test_redacted_hides_secrets_in_a_list_body() -> None:
    shown = build({"url": URL, "method": "POST", "body": [{"token": "s3cr3t"}]}).redacted()
    assert shown["body"] == [{"token": "***"}]


@pytest.mark.parametrize(
    ("url", "absolute"),
    [
        ("https://api.example.com/items", True),
        ("//api.example.com/items", True),
        ("/search?return_to=https://example.com/done", False),
        ("search?next=http://x", False),
        ("/items", False),
    ],
)
def test_one_rule_tells_relative_urls_from_absolute_ones(url: str, absolute: bool) -> None:
    assert is_absolute_url(url) is absolute


def test_a_relative_url_with_a_scheme_in_its_query_needs_a_connection() -> None:
    url = "/search?return_to=https://example.com/done"
    assert build({"url": url, "http_conn_id": "my_api"}).url == url
    refused({"url": url}, "url", "is relative: set http_conn_id")


# --- params of a run -----------------------------------------------------------------------------------------


def test_a_misspelled_run_param_is_refused_with_the_nearest_name() -> None:
    known = ["full_refresh", "max_total"]
    refuse_unknown_params("nango_sync_x", {"max_total": 5, "full_refresh": True}, known)
    with pytest.raises(TriggerParamsError) as info:
        refuse_unknown_params("nango_sync_x", {"max_totl": 5}, known)
    assert info.value.param == "max_totl" and info.value.dag_id == "nango_sync_x"
    assert str(info.value) == "param 'max_totl' of nango_sync_x: unknown param; did you mean 'max_total'?"
    with pytest.raises(TriggerParamsError, match="valid params: full_refresh, max_total"):
        refuse_unknown_params("nango_sync_x", {"zzz": 1}, known)


def test_pool_pool_slots_and_max_requests_per_second() -> None:
    definition = build({"url": URL, "pool": "github_api", "pool_slots": 2, "max_requests_per_second": 2})
    assert (definition.pool, definition.pool_slots, definition.max_requests_per_second) == ("github_api", 2, 2.0)
    assert isinstance(definition.max_requests_per_second, float)
    plain = build({"url": URL})
    assert (plain.pool, plain.pool_slots, plain.max_requests_per_second) == (None, None, None)
    assert build({"url": URL, "max_requests_per_second": 0.5}).max_requests_per_second == 0.5


@pytest.mark.parametrize("pool", ["", "two words", "a/b", 7, ["x"], "x" * 257])
def test_a_pool_is_an_airflow_pool_name(pool: Any) -> None:
    refused({"url": URL, "pool": pool}, "pool", "expected the name of an Airflow pool")


@pytest.mark.parametrize("slots", [0, -1, 1.5, "2", True, 10_001])
def test_pool_slots_is_a_positive_integer(slots: Any) -> None:
    refused({"url": URL, "pool": "p", "pool_slots": slots}, "pool_slots", "expected an integer")


def test_pool_slots_needs_a_pool() -> None:
    refused({"url": URL, "pool_slots": 2}, "pool_slots", "needs pool")


@pytest.mark.parametrize("rate", [0, -1, 0.0001, 10_001, float("inf"), True, "5"])
def test_max_requests_per_second_is_a_bounded_positive_number(rate: Any) -> None:
    message = "NaN and infinities" if rate == float("inf") else "expected a number of requests per second between"
    refused({"url": URL, "max_requests_per_second": rate}, "max_requests_per_second", message)
