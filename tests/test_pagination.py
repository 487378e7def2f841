"""Unit tests of nango_provider/pagination/: choosing a paginator, next requests, stops and loop guards."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import PaginationError
from nango_provider.pagination import (
    CursorPaginator,
    NextUrlPaginator,
    PageRequest,
    PageResponse,
    SinglePagePaginator,
    first_request,
    paginator_for,
    request_from_checkpoint,
)

URL = "https://api.example.com/v1/items"


def definition(**fields: Any) -> SyncDefinition:
    return SyncDefinition.from_mapping("demo", {"url": URL, **fields})


def cursor_definition(method: str = "GET", **fields: Any) -> SyncDefinition:
    return definition(method=method, paging_request_path="after", paging_response_path="next", **fields)


# --- choosing a paginator -----------------------------------------------------------------------------------


def test_single_page_without_paging_response_path() -> None:
    paginator = paginator_for(definition())
    assert type(paginator) is SinglePagePaginator
    assert paginator.sync == "demo"
    assert paginator.next_request(first_request(definition()), PageResponse(URL, {"next": "abc"}), 1) is None


@pytest.mark.parametrize(("method", "in_body"), [("GET", False), ("DELETE", False), ("POST", True), ("patch", True)])
def test_cursor_with_both_paths(method: str, in_body: bool) -> None:
    paginator = paginator_for(cursor_definition(method))
    assert type(paginator) is CursorPaginator
    assert paginator.in_body is in_body
    assert paginator.request_path == "after"
    assert paginator.response_path.expression == "next"


def test_next_url_with_only_paging_response_path() -> None:
    paginator = paginator_for(definition(paging_response_path="paging.next.link"))
    assert type(paginator) is NextUrlPaginator
    assert paginator.response_path.expression == "paging.next.link"


# --- cursor in the query ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_cursor_goes_into_the_query(method: str) -> None:
    sync = cursor_definition(method, query_params={"limit": 10, "after": "initial"})
    paginator = paginator_for(sync)
    first = first_request(sync)
    assert first == PageRequest(method, URL, {"limit": 10, "after": "initial"}, None)
    second = paginator.next_request(first, PageResponse(URL, {"next": "abc"}), 1)
    assert second == PageRequest(method, URL, {"limit": 10, "after": "abc"}, None)
    third = paginator.next_request(second, PageResponse(URL, {"next": "def"}), 2)
    assert third == PageRequest(method, URL, {"limit": 10, "after": "def"}, None)
    assert first.params == {"limit": 10, "after": "initial"}
    assert sync.query_params == {"limit": 10, "after": "initial"}


def test_cursor_from_a_nested_response_path() -> None:
    sync = definition(paging_request_path="after", paging_response_path="paging.next.after")
    request = paginator_for(sync).next_request(
        first_request(sync), PageResponse(URL, {"paging": {"next": {"after": "x1"}}}), 1
    )
    assert request == PageRequest("GET", URL, {"after": "x1"}, None)


def test_cursor_from_a_jsonpath_response_path() -> None:
    sync = definition(paging_request_path="after", paging_response_path="$.meta.cursor")
    request = paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"meta": {"cursor": "c9"}}), 1)
    assert request == PageRequest("GET", URL, {"after": "c9"}, None)


def test_int_cursor() -> None:
    sync = cursor_definition()
    request = paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"next": 2}), 1)
    assert request == PageRequest("GET", URL, {"after": 2}, None)


# --- cursor in the body -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_cursor_goes_into_a_nested_body_field(method: str) -> None:
    body = {"filter": {"active": True}, "page": {"size": 50}}
    sync = definition(
        method=method,
        body=body,
        query_params={"v": 2},
        paging_request_path="page.cursor",
        paging_response_path="next",
    )
    paginator = paginator_for(sync)
    first = first_request(sync)
    assert first == PageRequest(method, URL, {"v": 2}, {"filter": {"active": True}, "page": {"size": 50}})
    second = paginator.next_request(first, PageResponse(URL, {"next": "abc"}), 1)
    assert second == PageRequest(
        method, URL, {"v": 2}, {"filter": {"active": True}, "page": {"size": 50, "cursor": "abc"}}
    )
    third = paginator.next_request(second, PageResponse(URL, {"next": "def"}), 2)
    assert third is not None
    assert third.body == {"filter": {"active": True}, "page": {"size": 50, "cursor": "def"}}
    # the first request, the definition and the caller's dict are untouched (deep copy)
    assert first.body == {"filter": {"active": True}, "page": {"size": 50}}
    assert sync.body == {"filter": {"active": True}, "page": {"size": 50}}
    assert body == {"filter": {"active": True}, "page": {"size": 50}}
    assert second.body == {"filter": {"active": True}, "page": {"size": 50, "cursor": "abc"}}
    assert third.body["page"] is not second.body["page"]
    assert third.body["filter"] is not first.body["filter"]


def test_cursor_into_a_missing_body() -> None:
    sync = definition(method="POST", paging_request_path="cursor", paging_response_path="next")
    request = paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"next": "abc"}), 1)
    assert request == PageRequest("POST", URL, {}, {"cursor": "abc"})


# --- stopping -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [{}, {"next": None}, {"next": ""}, {"next": []}, {"next": {}}, [], "text"])
@pytest.mark.parametrize(
    "sync",
    [
        cursor_definition(),
        cursor_definition("POST"),
        definition(paging_response_path="next"),
    ],
    ids=["cursor-query", "cursor-body", "next-url"],
)
def test_stop_when_there_is_no_next_value(sync: SyncDefinition, document: Any) -> None:
    assert paginator_for(sync).next_request(first_request(sync), PageResponse(URL, document), 1) is None


@pytest.mark.parametrize(("value", "type_name"), [({"a": 1}, "dict"), ([1, 2], "list"), (True, "bool")])
def test_cursor_of_the_wrong_type(value: Any, type_name: str) -> None:
    sync = cursor_definition()
    with pytest.raises(PaginationError) as info:
        paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"next": value}), 1)
    assert info.value.sync == "demo"
    assert str(info.value) == f"sync 'demo': expected the cursor at 'next' to be a string or number, got {type_name}"


# --- next URL -----------------------------------------------------------------------------------------------


def test_next_url_absolute_is_followed_as_given() -> None:
    sync = definition(query_params={"limit": 10}, paging_response_path="next")
    link = "https://api.example.com/v2/items?page=2&limit=10"
    request = paginator_for(sync).next_request(first_request(sync), PageResponse(URL + "?limit=10", {"next": link}), 1)
    assert request == PageRequest("GET", link, {}, None)


def test_next_url_on_another_host_is_refused() -> None:
    sync = definition(query_params={"limit": 10}, paging_response_path="next")
    link = "https://other.example.com/v2/items?page=2&limit=10"
    with pytest.raises(PaginationError, match=r"page 1: the next URL .*other\.example\.com.* is on another host"):
        paginator_for(sync).next_request(first_request(sync), PageResponse(URL + "?limit=10", {"next": link}), 1)


def test_next_url_relative_query_hubspot() -> None:
    fetched = "https://api.hubapi.com/crm/v3/objects/contacts?limit=10"
    sync = SyncDefinition.from_mapping(
        "contacts",
        {
            "url": "https://api.hubapi.com/crm/v3/objects/contacts",
            "query_params": {"limit": 10},
            "paging_response_path": "paging.next.link",
        },
    )
    document = {"results": [], "paging": {"next": {"after": "abc", "link": "?after=abc"}}}
    request = paginator_for(sync).next_request(first_request(sync), PageResponse(fetched, document), 1)
    assert request == PageRequest("GET", "https://api.hubapi.com/crm/v3/objects/contacts?after=abc", {}, None)


def test_next_url_relative_path() -> None:
    sync = definition(paging_response_path="next")
    request = paginator_for(sync).next_request(
        first_request(sync), PageResponse(URL + "?page=1", {"next": "/path?x=1"}), 1
    )
    assert request == PageRequest("GET", "https://api.example.com/path?x=1", {}, None)


def test_next_url_keeps_method_and_body() -> None:
    sync = definition(method="POST", body={"q": 1}, query_params={"limit": 5}, paging_response_path="links.next")
    request = paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"links": {"next": "page2"}}), 1)
    assert request == PageRequest("POST", "https://api.example.com/v1/page2", {}, {"q": 1})


def test_next_url_not_a_string() -> None:
    sync = definition(paging_response_path="next")
    with pytest.raises(PaginationError) as info:
        paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"next": 5}), 3)
    assert str(info.value) == "sync 'demo': page 3: expected a URL at 'next', got int"


def test_next_url_of_the_wrong_type() -> None:
    sync = definition(paging_response_path="next")
    with pytest.raises(PaginationError) as info:
        paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"next": {"href": "x"}}), 1)
    assert "expected the next URL at 'next' to be a string or number, got dict" in str(info.value)


# --- loop guards --------------------------------------------------------------------------------------------


def test_repeated_cursor_raises_naming_the_cursor_and_the_page() -> None:
    sync = cursor_definition()
    paginator = paginator_for(sync)
    second = paginator.next_request(first_request(sync), PageResponse(URL, {"next": "abc"}), 1)
    assert second is not None
    third = paginator.next_request(second, PageResponse(URL, {"next": "def"}), 2)
    assert third is not None
    with pytest.raises(PaginationError) as info:
        paginator.next_request(third, PageResponse(URL, {"next": "abc"}), 3)
    assert info.value.sync == "demo"
    assert str(info.value).startswith("sync 'demo': page 3 returned the cursor 'abc' again, which was already followed")


def test_repeated_body_cursor_raises() -> None:
    sync = cursor_definition("POST")
    paginator = paginator_for(sync)
    second = paginator.next_request(first_request(sync), PageResponse(URL, {"next": 7}), 1)
    assert second is not None
    with pytest.raises(PaginationError, match=r"page 2 returned the cursor '7' again"):
        paginator.next_request(second, PageResponse(URL, {"next": 7}), 2)


def test_repeated_next_url_raises_naming_the_url_and_the_page() -> None:
    sync = definition(paging_response_path="next")
    paginator = paginator_for(sync)
    second = paginator.next_request(first_request(sync), PageResponse(URL, {"next": "/v1/items?page=2"}), 1)
    assert second == PageRequest("GET", "https://api.example.com/v1/items?page=2", {}, None)
    with pytest.raises(PaginationError) as info:
        # written differently, resolved to the same URL
        paginator.next_request(second, PageResponse(second.url, {"next": "https://api.example.com/v1/items?page=2"}), 2)
    assert str(info.value).startswith(
        "sync 'demo': page 2 returned the next URL 'https://api.example.com/v1/items?page=2' again"
    )


def test_next_url_back_to_the_page_just_fetched_raises() -> None:
    sync = definition(paging_response_path="next")
    with pytest.raises(PaginationError) as info:
        paginator_for(sync).next_request(first_request(sync), PageResponse(URL + "?page=1", {"next": "?page=1"}), 1)
    assert str(info.value).startswith(
        "sync 'demo': page 1 returned the next URL 'https://api.example.com/v1/items?page=1' again"
    )


def test_next_url_back_to_an_earlier_page_raises() -> None:
    sync = definition(paging_response_path="next")
    paginator = paginator_for(sync)
    second = paginator.next_request(first_request(sync), PageResponse(URL, {"next": "?page=2"}), 1)
    assert second is not None
    third = paginator.next_request(second, PageResponse(second.url, {"next": "?page=3"}), 2)
    assert third is not None
    with pytest.raises(PaginationError, match=r"^sync 'demo': page 3 returned the next URL '.*/v1/items' again"):
        paginator.next_request(third, PageResponse(third.url, {"next": URL}), 3)


def test_repeated_next_url_message_redacts_secrets() -> None:
    sync = definition(paging_response_path="next")
    paginator = paginator_for(sync)
    link = "https://user:pw9999@api.example.com/v1/items?page=2&token=tok12345"
    paginator.next_request(first_request(sync), PageResponse(URL, {"next": link}), 1)
    with pytest.raises(PaginationError) as info:
        paginator.next_request(first_request(sync), PageResponse(link, {"next": link}), 2)
    text = str(info.value)
    assert "'https://api.example.com/v1/items?page=2&token=***'" in text
    assert "tok12345" not in text
    assert "pw9999" not in text


def test_each_paginator_remembers_only_its_own_run() -> None:
    sync = cursor_definition()
    first_run, second_run = paginator_for(sync), paginator_for(sync)
    assert first_run.next_request(first_request(sync), PageResponse(URL, {"next": "abc"}), 1) is not None
    assert second_run.next_request(first_request(sync), PageResponse(URL, {"next": "abc"}), 1) is not None


# --- PageRequest --------------------------------------------------------------------------------------------


def test_a_cursor_checkpoint_keeps_only_the_cursor_and_rebuilds_the_request() -> None:
    sync = SyncDefinition.from_mapping(
        "demo",
        {
            "url": URL,
            "method": "POST",
            "body": {"api_key": "body-secret", "page": {"size": 10}},
            "query_params": {"api_key": "query-secret", "limit": 10},
            "paging_request_path": "page.cursor",
            "paging_response_path": "next",
        },
    )
    following = paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"next": "abc"}), 1)
    assert following is not None
    checkpoint = json.loads(json.dumps(following.to_checkpoint()))
    assert checkpoint == {"cursor": "abc"}
    assert request_from_checkpoint(sync, checkpoint) == following


def test_a_next_url_checkpoint_hides_secret_query_values_and_restores_them() -> None:
    sync = SyncDefinition.from_mapping(
        "demo", {"url": URL, "query_params": {"api_key": "k-123456"}, "paging_response_path": "next"}
    )
    link = "https://api.example.com/items?offset=20&api_key=k-123456"
    following = paginator_for(sync).next_request(first_request(sync), PageResponse(URL, {"next": link}), 1)
    assert following is not None
    checkpoint = json.loads(json.dumps(following.to_checkpoint()))
    assert "k-123456" not in json.dumps(checkpoint)
    assert request_from_checkpoint(sync, checkpoint) == following


def test_a_next_url_without_secrets_is_kept_exactly() -> None:
    request = PageRequest("GET", "https://api.example.com/items?after=NTI1Cg%3D%3D&x=a+b")
    assert request.to_checkpoint() == {"url": "https://api.example.com/items?after=NTI1Cg%3D%3D&x=a+b"}


def test_first_request_carries_query_params_and_body() -> None:
    sync = definition(method="put", query_params={"limit": 5, "tags": ["x"]}, body={"q": {"a": 1}})
    assert first_request(sync) == PageRequest("PUT", URL, {"limit": 5, "tags": ["x"]}, {"q": {"a": 1}})
    assert first_request(definition()) == PageRequest("GET", URL, {}, None)
