"""Unit tests of the ``paging:`` field: every field read, defaults per type, and each refusal with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import SyncDefinitionError
from nango_provider.paging import Paging

URL = "https://api.example.com/v1/items"


def build(paging: Any, **fields: Any) -> SyncDefinition:
    return SyncDefinition.from_mapping("demo", {"url": URL, "paging": paging, **fields})


def refused(paging: Any, field: str, message: str, **fields: Any) -> None:
    with pytest.raises(SyncDefinitionError) as info:
        build(paging, **fields)
    assert (info.value.sync, info.value.field) == ("demo", field)
    assert str(info.value) == f"sync 'demo', field {field!r}: {message}"


def test_every_paging_field_is_read() -> None:
    paging = build(
        {
            "type": "offset",
            "offset_name_in_request": "startAt",
            "offset_start_value": 5,
            "offset_calculation_method": "by-limit",
            "limit_name_in_request": "maxResults",
            "limit": 50,
            "stop_on_empty_page": True,
            "stop_on_short_page": True,
            "total_path_in_response": "$.total",
            "is_last_path_in_response": "isLast",
        }
    ).paging
    assert paging == Paging(
        type="offset",
        offset_name_in_request="startAt",
        offset_start_value=5,
        offset_calculation_method="by-limit",
        limit_name_in_request="maxResults",
        limit=50,
        stop_on_empty_page=True,
        stop_on_short_page=True,
        total_path_in_response="$.total",
        is_last_path_in_response="isLast",
    )


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ({"type": "link"}, Paging("link", link_rel_in_response_header="next")),
        ({"type": "link", "link_path_in_response_body": "next"}, Paging("link", link_path_in_response_body="next")),
        (
            {"type": "offset", "offset_name_in_request": "offset"},
            Paging("offset", offset_name_in_request="offset", stop_on_empty_page=True),
        ),
        (
            {"type": "page", "page_name_in_request": "page"},
            Paging("page", page_name_in_request="page", page_start_value=1, stop_on_empty_page=True),
        ),
        (
            {"type": "cursor", "cursor_name_in_request": "after", "cursor_path_in_response": "$.data[-1:].id"},
            Paging("cursor", cursor_name_in_request="after", cursor_path_in_response="$.data[-1:].id"),
        ),
    ],
)
def test_defaults_per_type(written: dict[str, Any], expected: Paging) -> None:
    assert build(written).paging == expected


def test_nango_paginate_blocks_read_the_same() -> None:
    """A ``paginate:`` block of a Nango sync, pasted under ``paging:``."""
    written = yaml.safe_load(
        """
        type: offset
        offset_name_in_request: page
        offset_start_value: 1
        offset_calculation_method: per-page
        limit_name_in_request: per_page
        limit: 100
        """
    )
    paging = build(written).paging
    assert paging is not None
    assert (paging.position_name, paging.start_value, paging.step, paging.limit) == ("page", 1, "per-page", 100)


def test_shown_and_redacted_hold_only_what_was_set() -> None:
    definition = build({"type": "page", "page_name_in_request": "page", "has_more_path_in_response": "more"})
    assert definition.redacted()["paging"] == {
        "type": "page",
        "page_name_in_request": "page",
        "has_more_path_in_response": "more",
    }


def test_a_built_paging_is_accepted_again() -> None:
    """The operator passes the definition's fields back through validation."""
    definition = build({"type": "link"})
    assert SyncDefinition.from_mapping("demo", {"url": URL, "paging": definition.paging}) == definition


def test_null_paging_means_the_flat_fields_or_none() -> None:
    assert build(None).paging is None


@pytest.mark.parametrize(
    ("paging", "field", "message"),
    [
        ("cursor", "paging", "expected a mapping such as {type: cursor, ...}, got str"),
        ({}, "paging.type", "is required: one of cursor, link, offset, page"),
        ({"type": "Link"}, "paging.type", "expected one of cursor, link, offset, page, got 'Link'"),
        (
            {"type": "link", "link_rel": "next"},
            "paging.link_rel",
            "unknown paging field; did you mean 'link_rel_in_response_header'?",
        ),
        (
            {"type": "offset", "offset_name_in_request": "o", "totl_path_in_response": "t"},
            "paging.totl_path_in_response",
            "unknown paging field; did you mean 'total_path_in_response'?",
        ),
        (
            {"type": "link", "offset_name_in_request": "o"},
            "paging.offset_name_in_request",
            "belongs to paging type 'offset', but this sync's type is 'link'",
        ),
        (
            {"type": "page", "page_name_in_request": "p", "offset_calculation_method": "per-page"},
            "paging.offset_calculation_method",
            "belongs to paging type 'offset', but this sync's type is 'page'",
        ),
        (
            {"type": "cursor", "cursor_path_in_response": "next"},
            "paging.cursor_name_in_request",
            "is required with paging type 'cursor'",
        ),
        (
            {"type": "cursor", "cursor_name_in_request": "a"},
            "paging.cursor_path_in_response",
            "is required with paging type 'cursor'",
        ),
        ({"type": "offset"}, "paging.offset_name_in_request", "is required with paging type 'offset'"),
        ({"type": "page"}, "paging.page_name_in_request", "is required with paging type 'page'"),
        (
            {"type": "cursor", "cursor_name_in_request": "$.after", "cursor_path_in_response": "next"},
            "paging.cursor_name_in_request",
            "expected a parameter name or a dot path such as 'page.cursor', got '$.after'",
        ),
        (
            {"type": "cursor", "cursor_name_in_request": "a", "cursor_path_in_response": "$[["},
            "paging.cursor_path_in_response",
            "'$[[' is not valid JSONPath: Parse error at 1:2 near token [ ([)",
        ),
        (
            {"type": "link", "response_path": "data"},
            "paging.response_path",
            "is a field of the sync, not of paging: move it up one level",
        ),
        (
            {"type": "link", "link_path_in_response_body": 5},
            "paging.link_path_in_response_body",
            "expected a path string, got int",
        ),
        (
            {"type": "link", "link_rel_in_response_header": 'next"'},
            "paging.link_rel_in_response_header",
            "expected a link relation such as 'next', got 'next\"'",
        ),
        (
            {"type": "link", "link_rel_in_response_header": "next", "link_path_in_response_body": "next"},
            "paging.link_rel_in_response_header",
            "give either link_rel_in_response_header (the Link header) or link_path_in_response_body (a URL in the "
            "body), not both",
        ),
        (
            {"type": "offset", "offset_name_in_request": "o", "offset_calculation_method": "by-size"},
            "paging.offset_calculation_method",
            "expected one of by-response-size, by-limit, per-page (add the records received, add limit, or add 1), "
            "got 'by-size'",
        ),
        (
            {"type": "offset", "offset_name_in_request": "o", "offset_start_value": -1},
            "paging.offset_start_value",
            "expected an integer >= 0, got -1",
        ),
        (
            {"type": "page", "page_name_in_request": "p", "page_start_value": "1"},
            "paging.page_start_value",
            "expected an integer >= 0, got '1'",
        ),
        ({"type": "link", "limit_name_in_request": "n", "limit": 0}, "paging.limit", "expected an integer >= 1, got 0"),
        (
            {"type": "link", "limit_name_in_request": "n", "limit": True},
            "paging.limit",
            "expected an integer >= 1, got True",
        ),
        (
            {"type": "link", "limit": 10},
            "paging.limit_name_in_request",
            "limit_name_in_request and limit go together: the page-size parameter and the size asked for",
        ),
        (
            {"type": "link", "limit_name_in_request": "per_page"},
            "paging.limit",
            "limit_name_in_request and limit go together: the page-size parameter and the size asked for",
        ),
        (
            {"type": "link", "stop_on_empty_page": "yes"},
            "paging.stop_on_empty_page",
            "expected true or false, got 'yes'",
        ),
        (
            {"type": "offset", "offset_name_in_request": "o", "stop_on_empty_page": False},
            "paging.stop_on_empty_page",
            "offset paging always stops at an empty page: nothing else ends it reliably",
        ),
        (
            {"type": "page", "page_name_in_request": "p", "stop_on_short_page": True},
            "paging.stop_on_short_page",
            "needs limit_name_in_request and limit: the page size to compare",
        ),
        (
            {"type": "offset", "offset_name_in_request": "o", "offset_calculation_method": "by-limit"},
            "paging.offset_calculation_method",
            "by-limit needs limit_name_in_request and limit: the step to add",
        ),
        (
            {"type": "link", "total_path_in_response": "total"},
            "paging.total_path_in_response",
            "is for offset and page paging; with link paging the missing next value ends the data",
        ),
        (
            {"type": "link", "has_more_path_in_response": "more", "is_last_path_in_response": "last"},
            "paging.is_last_path_in_response",
            "give one flag: has_more_path_in_response (false on the last page) or is_last_path_in_response (true on "
            "the last page)",
        ),
    ],
)
def test_refused_paging(paging: Any, field: str, message: str) -> None:
    refused(paging, field, message)


@pytest.mark.parametrize("flat", ["paging_request_path", "paging_response_path"])
def test_paging_and_the_flat_fields_are_not_mixed(flat: str) -> None:
    fields: Mapping[str, Any] = {"paging_response_path": "next"} | (
        {flat: "after"} if flat == "paging_request_path" else {}
    )
    with pytest.raises(SyncDefinitionError) as info:
        build({"type": "link"}, **fields)
    assert info.value.field in ("paging_request_path", "paging_response_path")
    assert "give either paging: or paging_request_path/paging_response_path, not both" in str(info.value)


def test_what_paging_writes_is_set_in_one_place() -> None:
    refused(
        {"type": "link", "limit_name_in_request": "per_page", "limit": 100},
        "query_params",
        "'per_page' is also paging.limit_name_in_request (set the size in paging.limit): set it in one place",
        query_params={"per_page": 50},
    )
    refused(
        {"type": "offset", "offset_name_in_request": "p.offset", "limit_name_in_request": "p.limit", "limit": 100},
        "body",
        "'p.limit' is also paging.limit_name_in_request (set the size in paging.limit): set it in one place",
        method="POST",
        body={"p": {"limit": 10}},
    )
    refused(
        {"type": "offset", "offset_name_in_request": "startAt"},
        "query_params",
        "'startAt' is also paging.offset_name_in_request (set the first value in paging): set it in one place",
        query_params={"startAt": 0},
    )
    refused(
        {"type": "page", "page_name_in_request": "page"},
        "body",
        "'page' is also paging.page_name_in_request (set the first value in paging): set it in one place",
        method="POST",
        body={"page": 2},
    )
    # a cursor's first value may be given, as with paging_request_path
    cursor = {"type": "cursor", "cursor_name_in_request": "after", "cursor_path_in_response": "next"}
    assert build(cursor, query_params={"after": "x"}).query_params == {"after": "x"}


def test_paging_values_in_a_body_need_an_object_body() -> None:
    refused(
        {"type": "offset", "offset_name_in_request": "offset"},
        "body",
        "paging values go into the POST body, so the body must be a JSON object",
        method="POST",
        body=["a"],
    )
    assert build({"type": "link"}, method="POST", body=["a"]).body == ["a"]


def test_paging_errors_name_the_file_of_a_yaml_sync(tmp_path: Any) -> None:
    from nango_provider.definition import iter_definitions_file

    path = tmp_path / "syncs.yaml"
    path.write_text(f"syncs:\n  demo:\n    url: {URL}\n    paging: {{type: offset}}\n")
    (error,) = iter_definitions_file(path)
    assert isinstance(error, SyncDefinitionError)
    assert (
        str(error)
        == f"{path}: sync 'demo', field 'paging.offset_name_in_request': is required with paging type 'offset'"
    )


def test_concurrency_with_a_known_total_and_a_fixed_step() -> None:
    paging = build(
        {
            "type": "page",
            "page_name_in_request": "page",
            "total_pages_path_in_response": "meta.pages",
            "concurrency": 8,
        }
    ).paging
    assert paging is not None
    assert (paging.concurrency, paging.parallel, paging.total_pages_path_in_response) == (8, True, "meta.pages")
    offset = {"type": "offset", "offset_name_in_request": "o", "limit_name_in_request": "n", "limit": 10}
    assert build({**offset, "offset_calculation_method": "by-limit", "total_path_in_response": "t", "concurrency": 2})


OFFSET = {"type": "offset", "offset_name_in_request": "o", "limit_name_in_request": "n", "limit": 10}


@pytest.mark.parametrize(
    ("paging", "message"),
    [
        ({**OFFSET, "concurrency": 0}, "expected an integer >= 1, got 0"),
        ({**OFFSET, "concurrency": 11}, "expected an integer from 1 to 10, got 11"),
        (
            {"type": "link", "concurrency": 2},
            "only offset and page paging can fetch pages at once; link paging learns each next request from the page "
            "before",
        ),
        (
            {**OFFSET, "offset_calculation_method": "by-limit", "concurrency": 2},
            "needs total_path_in_response (or total_pages_path_in_response): the pages to fetch at once must be known "
            "from the first page",
        ),
        (
            {**OFFSET, "total_path_in_response": "t", "concurrency": 2},
            "needs a fixed step: offset_calculation_method by-limit or per-page (by-response-size knows the next "
            "offset only once the page before has arrived)",
        ),
        (
            {"type": "page", "page_name_in_request": "p", "total_path_in_response": "t", "concurrency": 2},
            "needs limit_name_in_request and limit: the page size that divides the total into pages",
        ),
    ],
)
def test_refused_concurrency(paging: dict[str, Any], message: str) -> None:
    refused(paging, "paging.concurrency", message)


def test_one_total_only() -> None:
    refused(
        {
            "type": "page",
            "page_name_in_request": "p",
            "total_path_in_response": "t",
            "total_pages_path_in_response": "n",
        },
        "paging.total_pages_path_in_response",
        "give one total: total_path_in_response (records) or total_pages_path_in_response (pages)",
    )
    refused(
        {"type": "offset", "offset_name_in_request": "o", "total_pages_path_in_response": "n"},
        "paging.total_pages_path_in_response",
        "belongs to paging type 'page', but this sync's type is 'offset'",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a" * 1025, "expected at most 1024 characters, got 1025"),
        ("a\nb", "cannot hold control characters (CR, LF, ...)"),
    ],
)
def test_paths_in_paging_and_incremental_are_bounded(value: str, message: str) -> None:
    refused({"type": "link", "link_path_in_response_body": value}, "paging.link_path_in_response_body", message)
    with pytest.raises(SyncDefinitionError) as info:
        build(None, unique_key="id", incremental={"record_field": value, "request_name": "since"})
    assert (info.value.field, info.value.detail) == ("incremental.record_field", message)
