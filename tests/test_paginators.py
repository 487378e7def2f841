"""Unit tests of the paging styles of ``paging:`` (no network): link header, offset, page number, cursor from the
last record, stop rules, checkpoints of every style, and the signs of more pages behind the partial-data warning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import PaginationError
from nango_provider.pagination import (
    CursorPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageRequest,
    PageResponse,
    Paginator,
    first_request,
    paginator_for,
    request_from_checkpoint,
)
from nango_provider.pagination.hints import signs_of_more_pages
from nango_provider.pagination.next_url import link_from_header

URL = "https://api.example.com/v1/items"


def sync(method: str = "GET", **paging: Any) -> SyncDefinition:
    extra = {"body": {"filter": {"open": True}}} if method == "POST" else {}
    return SyncDefinition.from_mapping("demo", {"url": URL, "method": method, "paging": paging, **extra})


def page(document: Any = None, records: int = 0, headers: dict[str, str] | None = None, url: str = URL) -> PageResponse:
    return PageResponse(
        url, document if document is not None else {}, [{"id": n} for n in range(records)], headers or {}
    )


def walk(paginator: Paginator, start: PageRequest, responses: list[PageResponse]) -> list[PageRequest]:
    """The requests a run sends, given the responses in order (stops when the paginator stops)."""
    sent = [start]
    for number, response in enumerate(responses, start=1):
        following = paginator.next_request(sent[-1], response, number)
        if following is None:
            break
        sent.append(following)
    return sent


def round_trip(definition: SyncDefinition, request: PageRequest) -> PageRequest:
    checkpoint = json.loads(json.dumps(request.to_checkpoint()))
    return request_from_checkpoint(definition, checkpoint)


# --- Link header --------------------------------------------------------------------------------------------


GITHUB_LINK = (
    '<https://api.example.com/v1/items?per_page=2&page=2>; rel="next", '
    '<https://api.example.com/v1/items?per_page=2&page=5>; rel="last"'
)


@pytest.mark.parametrize(
    ("header", "rel", "expected"),
    [
        (GITHUB_LINK, "next", "https://api.example.com/v1/items?per_page=2&page=2"),
        (GITHUB_LINK, "last", "https://api.example.com/v1/items?per_page=2&page=5"),
        (GITHUB_LINK, "prev", None),
        ("<https://x.test/a?page_info=abc,def>; rel=next", "next", "https://x.test/a?page_info=abc,def"),
        ('<https://x.test/p1>; rel="previous", <https://x.test/p3>; rel="next"', "next", "https://x.test/p3"),
        ('<https://x.test/n>; title="a; b"; rel="next last"', "last", "https://x.test/n"),
        ('<https://x.test/n>; REL="Next"', "next", "https://x.test/n"),
        ("", "next", None),
        (None, "next", None),
    ],
)
def test_link_header_parsing(header: str | None, rel: str, expected: str | None) -> None:
    assert link_from_header(header, rel) == expected


def test_link_style_follows_the_link_header_until_it_has_no_next() -> None:
    definition = sync(type="link", limit_name_in_request="per_page", limit=2)
    paginator = paginator_for(definition)
    assert type(paginator) is NextUrlPaginator
    first = first_request(definition)
    assert first == PageRequest("GET", URL, {"per_page": 2})
    sent = walk(
        paginator,
        first,
        [
            page([], 2, {"Link": GITHUB_LINK}, URL + "?per_page=2"),
            page([], 1, {"link": '<https://api.example.com/v1/items?per_page=2&page=1>; rel="first"'}),
        ],
    )
    assert sent == [first, PageRequest("GET", "https://api.example.com/v1/items?per_page=2&page=2", {}, None)]
    assert paginator.ended_by == "no next value"


def test_link_header_with_another_relation() -> None:
    definition = sync(type="link", link_rel_in_response_header="older")
    following = paginator_for(definition).next_request(
        first_request(definition), page(headers={"Link": '</v1/items?before=9>; rel="older"'}), 1
    )
    assert following == PageRequest("GET", "https://api.example.com/v1/items?before=9", {}, None)


def test_link_header_to_another_host_is_refused() -> None:
    definition = sync(type="link")
    with pytest.raises(PaginationError, match=r"page 1: the next URL 'https://evil\.test/x' is on another host"):
        paginator_for(definition).next_request(
            first_request(definition), page(headers={"Link": '<https://evil.test/x>; rel="next"'}), 1
        )


def test_link_in_the_body_with_a_stop_flag_stops_before_the_repeated_link() -> None:
    """Zendesk's export: at the end ``after_url`` points at itself and ``end_of_stream`` is true."""
    definition = sync(type="link", link_path_in_response_body="after_url", is_last_path_in_response="end_of_stream")
    paginator = paginator_for(definition)
    end = URL + "?cursor=END"
    sent = walk(
        paginator,
        first_request(definition),
        [
            page({"after_url": end, "end_of_stream": False}, 3),
            page({"after_url": end, "end_of_stream": True}, 1, url=end),
        ],
    )
    assert [request.url for request in sent] == [URL, end]
    assert paginator.ended_by == "end_of_stream is true"


def test_without_the_stop_flag_the_repeated_export_link_is_a_loop() -> None:
    definition = sync(type="link", link_path_in_response_body="after_url")
    paginator = paginator_for(definition)
    end = URL + "?cursor=END"
    following = paginator.next_request(first_request(definition), page({"after_url": end}, 3), 1)
    assert following is not None
    with pytest.raises(PaginationError, match=r"page 2 returned the next URL .*cursor=END' again"):
        paginator.next_request(following, page({"after_url": end}, 0, url=end), 2)


def test_a_link_checkpoint_resumes_at_the_same_url() -> None:
    definition = sync(type="link")
    following = paginator_for(definition).next_request(
        first_request(definition), page(headers={"Link": GITHUB_LINK}), 1
    )
    assert following is not None
    assert round_trip(definition, following) == following


# --- offset -------------------------------------------------------------------------------------------------


def test_offset_moves_by_the_records_received_and_stops_at_the_total() -> None:
    """Jira: ``startAt`` and ``maxResults``, ``total`` in the body."""
    definition = sync(
        type="offset",
        offset_name_in_request="startAt",
        limit_name_in_request="maxResults",
        limit=50,
        total_path_in_response="total",
    )
    paginator = paginator_for(definition)
    assert type(paginator) is OffsetPaginator
    sent = walk(
        paginator,
        first_request(definition),
        [page({"total": 120}, 50), page({"total": 120}, 40), page({"total": 120}, 30), page({"total": 120}, 0)],
    )
    assert [request.params for request in sent] == [
        {"maxResults": 50, "startAt": 0},
        {"maxResults": 50, "startAt": 50},
        {"maxResults": 50, "startAt": 90},
    ]
    assert paginator.ended_by == "all 120 records at total were received"


def test_offset_by_limit_and_from_a_start_value() -> None:
    definition = sync(
        type="offset",
        offset_name_in_request="skip",
        offset_start_value=10,
        offset_calculation_method="by-limit",
        limit_name_in_request="top",
        limit=25,
    )
    sent = walk(paginator_for(definition), first_request(definition), [page({}, 20), page({}, 25), page({}, 0)])
    assert [request.params["skip"] for request in sent] == [10, 35, 60]


def test_offset_per_page_counts_pages_as_nango_does() -> None:
    definition = sync(type="offset", offset_name_in_request="page", offset_calculation_method="per-page")
    sent = walk(paginator_for(definition), first_request(definition), [page({}, 5), page({}, 5), page({}, 0)])
    assert [request.params for request in sent] == [{"page": 0}, {"page": 1}, {"page": 2}]


def test_offset_always_stops_at_an_empty_page() -> None:
    definition = sync(type="offset", offset_name_in_request="offset")
    paginator = paginator_for(definition)
    assert paginator.next_request(first_request(definition), page({}, 0), 1) is None
    assert paginator.ended_by == "the page is empty"


def test_offset_in_a_post_body() -> None:
    definition = sync(
        "POST", type="offset", offset_name_in_request="paging.offset", limit_name_in_request="paging.limit", limit=2
    )
    first = first_request(definition)
    assert first.body == {"filter": {"open": True}, "paging": {"limit": 2, "offset": 0}}
    assert first.params == {}
    sent = walk(paginator_for(definition), first, [page({}, 2), page({}, 1), page({}, 0)])
    assert [request.body["paging"] for request in sent] == [
        {"limit": 2, "offset": 0},
        {"limit": 2, "offset": 2},
        {"limit": 2, "offset": 3},
    ]
    assert definition.body == {"filter": {"open": True}}


def test_short_page_stops_only_when_asked() -> None:
    counted = {"type": "offset", "offset_name_in_request": "o", "limit_name_in_request": "n", "limit": 10}
    without = sync(**counted)
    assert paginator_for(without).next_request(first_request(without), page({}, 9), 1) is not None
    opted = sync(**counted, stop_on_short_page=True)
    paginator = paginator_for(opted)
    assert paginator.next_request(first_request(opted), page({}, 9), 1) is None
    assert paginator.ended_by == "the page has fewer than 10 records"
    assert paginator.next_request(first_request(opted), page({}, 10), 1) is not None


@pytest.mark.parametrize("total", [None, "many", True, {"n": 1}])
def test_a_total_that_is_not_a_number_fails_clearly(total: Any) -> None:
    definition = sync(type="offset", offset_name_in_request="o", total_path_in_response="meta.total")
    document = {} if total is None else {"meta": {"total": total}}
    with pytest.raises(PaginationError) as info:
        paginator_for(definition).next_request(first_request(definition), page(document, 5), 2)
    found = "nothing" if total is None else repr(total)
    assert str(info.value) == (
        f"sync 'demo': page 2: expected a whole number (the total) at 'meta.total', found {found}"
    )


def test_a_total_as_a_numeric_string() -> None:
    definition = sync(type="offset", offset_name_in_request="o", total_path_in_response="total")
    assert paginator_for(definition).next_request(first_request(definition), page({"total": "5"}, 5), 1) is None


# --- page number --------------------------------------------------------------------------------------------


def test_page_numbers_from_one_until_the_has_more_flag_is_false() -> None:
    """Zoho: ``page`` and ``per_page``, ``info.more_records``."""
    definition = sync(
        type="page",
        page_name_in_request="page",
        limit_name_in_request="per_page",
        limit=3,
        has_more_path_in_response="info.more_records",
    )
    paginator = paginator_for(definition)
    more, last = {"info": {"more_records": True}}, {"info": {"more_records": False}}
    sent = walk(paginator, first_request(definition), [page(more, 3), page(more, 3), page(last, 3)])
    assert [request.params for request in sent] == [
        {"per_page": 3, "page": 1},
        {"per_page": 3, "page": 2},
        {"per_page": 3, "page": 3},
    ]
    assert paginator.ended_by == "info.more_records is false"


def test_page_numbers_with_a_total_of_records() -> None:
    definition = sync(type="page", page_name_in_request="p", page_start_value=0, total_path_in_response="count")
    sent = walk(paginator_for(definition), first_request(definition), [page({"count": 7}, 4), page({"count": 7}, 3)])
    assert [request.params for request in sent] == [{"p": 0}, {"p": 1}]


@pytest.mark.parametrize(
    "style",
    [
        {"type": "offset", "offset_name_in_request": "offset"},
        {"type": "offset", "offset_name_in_request": "o", "offset_calculation_method": "per-page"},
        {"type": "page", "page_name_in_request": "page", "total_path_in_response": "total"},
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_offset_or_page_checkpoint_resumes_exactly(style: dict[str, Any], method: str) -> None:
    definition = sync(method, **style)
    paginator = paginator_for(definition)
    sent = walk(paginator, first_request(definition), [page({"total": 100}, 10), page({"total": 100}, 10)])
    resumed = round_trip(definition, sent[-1])
    assert resumed == sent[-1]
    assert (resumed.offset, resumed.received) == (sent[-1].offset, 20)
    # the resumed run goes on exactly as the first would have, total included
    fresh = paginator_for(definition)
    assert fresh.next_request(resumed, page({"total": 100}, 10), 3) == paginator.next_request(
        sent[-1], page({"total": 100}, 10), 3
    )
    last = paginator_for(definition).next_request(resumed, page({"total": 30}, 10), 3)
    assert (last is None) is ("total_path_in_response" in style)


def test_a_checkpoint_of_another_paging_style_is_refused() -> None:
    definition = sync(type="link")
    with pytest.raises(PaginationError, match="the checkpoint holds an offset but the sync's paging is not"):
        request_from_checkpoint(definition, {"offset": 20, "received": 20})


# --- cursor, from a path or from the last record -------------------------------------------------------------


@pytest.mark.parametrize("path", ["$.data[-1].id", "$.data[-1:].id"])
def test_cursor_from_the_last_record(path: str) -> None:
    """Stripe: ``starting_after`` is the id of the last object of the page; ``has_more`` ends it."""
    definition = sync(
        type="cursor",
        cursor_name_in_request="starting_after",
        cursor_path_in_response=path,
        has_more_path_in_response="has_more",
    )
    paginator = paginator_for(definition)
    assert type(paginator) is CursorPaginator
    first = {"data": [{"id": "cus_1"}, {"id": "cus_2"}], "has_more": True}
    single = {"data": [{"id": "cus_3"}], "has_more": True}
    last = {"data": [{"id": "cus_4"}], "has_more": False}
    sent = walk(paginator, first_request(definition), [page(first, 2), page(single, 1), page(last, 1)])
    assert [request.params for request in sent] == [{}, {"starting_after": "cus_2"}, {"starting_after": "cus_3"}]
    assert round_trip(definition, sent[-1]) == sent[-1]


def test_cursor_from_the_last_record_of_an_empty_page_stops() -> None:
    definition = sync(type="cursor", cursor_name_in_request="after", cursor_path_in_response="$.data[-1:].id")
    paginator = paginator_for(definition)
    assert paginator.next_request(first_request(definition), page({"data": []}), 1) is None
    assert paginator.ended_by == "no next value"


def test_cursor_in_a_post_body_with_a_has_more_flag() -> None:
    """Notion: ``start_cursor`` and ``page_size`` in the body; ``next_cursor`` and ``has_more`` in the response."""
    definition = sync(
        "POST",
        type="cursor",
        cursor_name_in_request="start_cursor",
        cursor_path_in_response="next_cursor",
        limit_name_in_request="page_size",
        limit=100,
        has_more_path_in_response="has_more",
    )
    paginator = paginator_for(definition)
    sent = walk(
        paginator,
        first_request(definition),
        [page({"next_cursor": "c2", "has_more": True}, 100), page({"next_cursor": "c3", "has_more": False}, 100)],
    )
    assert [request.body for request in sent] == [
        {"filter": {"open": True}, "page_size": 100},
        {"filter": {"open": True}, "page_size": 100, "start_cursor": "c2"},
    ]
    assert round_trip(definition, sent[-1]) == sent[-1]


@pytest.mark.parametrize(
    ("flags", "document", "stops"),
    [
        ({"has_more_path_in_response": "has_more"}, {"has_more": True, "next": "c"}, False),
        ({"has_more_path_in_response": "has_more"}, {"has_more": False, "next": "c"}, True),
        ({"has_more_path_in_response": "$.meta.more"}, {"meta": {"more": "false"}, "next": "c"}, True),
        ({"is_last_path_in_response": "isLast"}, {"isLast": True, "next": "c"}, True),
        ({"is_last_path_in_response": "done"}, {"done": False, "next": "c"}, False),
        ({"stop_on_empty_page": True}, {"next": "c"}, True),
        ({}, {"next": "c"}, False),
    ],
)
def test_stop_flags_in_either_polarity(flags: dict[str, Any], document: dict[str, Any], stops: bool) -> None:
    definition = sync(type="cursor", cursor_name_in_request="after", cursor_path_in_response="next", **flags)
    following = paginator_for(definition).next_request(first_request(definition), page(document, 0), 1)
    assert (following is None) is stops


@pytest.mark.parametrize(("document", "found"), [({}, "nothing"), ({"has_more": None}, "None"), ({"has_more": 1}, "1")])
def test_a_flag_that_is_not_a_boolean_fails_clearly(document: dict[str, Any], found: str) -> None:
    definition = sync(
        type="cursor", cursor_name_in_request="a", cursor_path_in_response="next", has_more_path_in_response="has_more"
    )
    with pytest.raises(PaginationError) as info:
        paginator_for(definition).next_request(first_request(definition), page(document, 1), 4)
    assert str(info.value) == (
        f"sync 'demo': page 4: expected true or false at 'has_more', found {found}; check the paging flag's path "
        "against the API's response"
    )


# --- signs of more pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "headers", "signs"),
    [
        ([{"id": 1}], {"Link": GITHUB_LINK}, ['a Link header with rel="next"']),
        ({"data": [], "has_more": True}, {}, ["'has_more' is true"]),
        ({"results": [], "next": "https://x.test/?page=2"}, {}, ["a non-empty 'next'"]),
        (
            {"items": [], "response_metadata": {"next_cursor": "dXNlcjpV"}},
            {},
            ["a non-empty 'response_metadata.next_cursor'"],
        ),
        ({"issues": [], "isLast": False}, {}, ["'isLast' is false"]),
        (
            {"records": [], "done": False, "nextRecordsUrl": "/q/01g-2000"},
            {},
            ["a non-empty 'nextRecordsUrl'", "'done' is false"],
        ),
        ({"results": [], "next": None, "has_more": False, "next_cursor": ""}, {}, []),
        ({"messages": [], "response_metadata": {"next_cursor": ""}}, {}, []),
        ([{"id": 1}], {"Link": '<https://x.test/?page=1>; rel="first"'}, []),
    ],
)
def test_signs_of_more_pages(document: Any, headers: dict[str, str], signs: list[str]) -> None:
    assert signs_of_more_pages(page(document, headers=headers)) == signs


# --- parallel pages: the requests planned from the total ---------------------------------------------------


def test_planned_offsets_by_limit_up_to_the_total() -> None:
    definition = sync(
        type="offset",
        offset_name_in_request="startAt",
        offset_calculation_method="by-limit",
        limit_name_in_request="maxResults",
        limit=50,
        total_path_in_response="total",
        concurrency=3,
    )
    paginator = paginator_for(definition)
    assert isinstance(paginator, OffsetPaginator)
    following = paginator.next_request(first_request(definition), page({"total": 180}, 50), 1)
    assert following is not None
    planned = paginator.planned(following, page({"total": 180}, 50), 1, 10)
    assert [request.params["startAt"] for request in planned] == [50, 100, 150]
    assert [request.params["startAt"] for request in paginator.planned(following, page({"total": 180}), 1, 2)] == [
        50,
        100,
    ]


def test_planned_page_numbers_from_a_total_of_records_or_of_pages() -> None:
    by_records = sync(
        type="page",
        page_name_in_request="page",
        limit_name_in_request="per_page",
        limit=10,
        total_path_in_response="count",
        concurrency=8,
    )
    paginator = paginator_for(by_records)
    assert isinstance(paginator, OffsetPaginator)
    following = paginator.next_request(first_request(by_records), page({"count": 35}, 10), 1)
    assert following is not None
    assert [r.params["page"] for r in paginator.planned(following, page({"count": 35}), 1, 8)] == [2, 3, 4]

    by_pages = sync(type="page", page_name_in_request="p", total_pages_path_in_response="meta.pages", concurrency=8)
    paginator = paginator_for(by_pages)
    assert isinstance(paginator, OffsetPaginator)
    document = {"meta": {"pages": 3}}
    following = paginator.next_request(first_request(by_pages), page(document, 10), 1)
    assert following is not None
    assert [r.params["p"] for r in paginator.planned(following, page(document), 1, 8)] == [2, 3]


def test_a_total_of_pages_stops_after_the_last_page() -> None:
    definition = sync(type="page", page_name_in_request="p", page_start_value=0, total_pages_path_in_response="pages")
    paginator = paginator_for(definition)
    sent = walk(paginator, first_request(definition), [page({"pages": 3}, 5)] * 5)
    assert [request.params["p"] for request in sent] == [0, 1, 2]
    assert paginator.ended_by == "all 3 pages at pages were fetched"


def test_a_response_without_a_body_ends_a_run_with_stop_rules() -> None:
    definition = sync(type="page", page_name_in_request="p", has_more_path_in_response="more")
    paginator = paginator_for(definition)
    assert paginator.next_request(first_request(definition), PageResponse(URL, None), 2) is None
    assert paginator.ended_by == "the response has no body"
