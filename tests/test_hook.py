"""Integration tests of ``NangoHook.pages()`` against the real loopback HTTP server.

Every test registers its own routes on ``api`` and checks the exact records, the requests the server saw
(method, query, body, headers), and the error class, attributes and message. Retries wait through a recorder,
so they take no real time.

The hook logs through Airflow 3's structlog setup, which renders to stdout rather than to stdlib ``logging``;
:func:`logged` therefore reads both ``caplog`` and the captured output.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import HttpError, PaginationError, ResponseError
from nango_provider.hooks.nango import EnvironmentPerHost, NangoHook, Page
from nango_provider.pagination import PageRequest, request_from_checkpoint
from tests.fixture_server import FixtureServer, Handler, Reply, Request, paged

pytestmark = pytest.mark.integration

CONTACTS = [{"id": str(number), "properties": {"email": f"c{number}@example.com"}} for number in range(1, 6)]
POKEMON = [{"name": name, "url": f"https://pokeapi.co/api/v2/pokemon/{n}/"} for n, name in enumerate("abcde", 1)]
BEARER = "topsecret-abc"
API_KEY = "supersecret-xyz"


# ---------------------------------------------------------------------------------------------------- helpers


def sync(url: str, **fields: Any) -> SyncDefinition:
    """A validated definition named ``items`` for ``url``."""
    return SyncDefinition.from_mapping("items", {"url": url, **fields})


def run(hook: NangoHook, definition: SyncDefinition, **kwargs: Any) -> list[Page]:
    """Every page of a run."""
    return list(hook.pages(definition, **kwargs))


def replies(*answers: Reply) -> Handler:
    """A handler that answers with ``answers`` in order, then repeats the last one."""
    queue = list(answers)

    def handler(request: Request) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


def cursor_handler(
    records: list[Any], *, param: str = "after", build: Callable[[list[Any], str | None], Any]
) -> Handler:
    """Serves ``records`` by offset cursor in query parameter ``param``, ``limit`` per page; ``build`` makes the
    document from the page's records and the next cursor (``None`` on the last page)."""

    def handler(request: Request) -> Reply:
        offset = int(request.query.get(param) or 0)
        limit = int(request.query.get("limit") or 2)
        end = offset + limit
        return Reply(json=build(records[offset:end], str(end) if end < len(records) else None))

    return handler


def hubspot(records: list[Any], after: str | None) -> dict[str, Any]:
    """A HubSpot CRM list response: ``paging.next.after`` and ``paging.next.link``, no ``paging`` at the end."""
    document: dict[str, Any] = {"results": records}
    if after is not None:
        document["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
    return document


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything logged so far: stdlib records and the structlog lines Airflow renders to stdout/stderr."""
    captured = capfd.readouterr()
    return "\n".join((caplog.text, captured.out, captured.err))


def retry_lines(text: str) -> list[str]:
    """The hook's retry warnings in ``text``."""
    return [line for line in text.splitlines() if "; retry " in line]


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def waits() -> list[float]:
    """The waits the hook asked for, in order."""
    return []


@pytest.fixture
def hook(waits: list[float]) -> NangoHook:
    """A hook without a connection whose retries are recorded instead of slept."""

    def recorder(seconds: float) -> None:
        waits.append(seconds)

    return NangoHook(sleep=recorder)


@pytest.fixture
def connection(api: FixtureServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Connection ``my_api``: the server as host, basic auth ``u``/``p``, an ``X-Api-Version`` extra header."""
    conn = {"conn_type": "nango", "host": api.url, "login": "u", "password": "p", "extra": {"X-Api-Version": "2"}}
    monkeypatch.setenv("AIRFLOW_CONN_MY_API", json.dumps(conn))
    yield "my_api"


# ------------------------------------------------------------------------ 1. the Nango guide's three examples


def test_pokeapi_next_url_with_default_results_path(api: FixtureServer, hook: NangoHook) -> None:
    def handler(request: Request) -> Reply:
        offset, limit = int(request.query.get("offset", 0)), int(request.query["limit"])
        end = offset + limit
        following = f"{api.url}/api/v2/pokemon?offset={end}&limit={limit}" if end < len(POKEMON) else None
        return Reply(json={"count": len(POKEMON), "next": following, "previous": None, "results": POKEMON[offset:end]})

    api.route("GET", "/api/v2/pokemon", handler)
    definition = sync(f"{api.url}/api/v2/pokemon", query_params={"limit": 2}, paging_response_path="next")

    pages = run(hook, definition)

    assert [page.records for page in pages] == paged(POKEMON, 2)
    assert [page.number for page in pages] == [1, 2, 3]
    assert [(r.method, r.path, r.query) for r in api.requests] == [
        ("GET", "/api/v2/pokemon", {"limit": "2"}),
        ("GET", "/api/v2/pokemon", {"offset": "2", "limit": "2"}),
        ("GET", "/api/v2/pokemon", {"offset": "4", "limit": "2"}),
    ]
    assert pages[0].request == PageRequest("GET", f"{api.url}/api/v2/pokemon", {"limit": 2}, None)
    assert pages[0].next_request == PageRequest("GET", f"{api.url}/api/v2/pokemon?offset=2&limit=2", {}, None)
    assert pages[0].url == f"{api.url}/api/v2/pokemon?limit=2"
    assert pages[-1].next_request is None


def test_hubspot_cursor_in_query_param(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/crm/v3/objects/contacts", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        f"{api.url}/crm/v3/objects/contacts",
        query_params={"limit": 2, "properties": "email"},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )

    pages = run(hook, definition)

    assert [page.records for page in pages] == paged(CONTACTS, 2)
    # the cursor is added to the query parameters, which are kept on every page
    assert [r.query for r in api.requests] == [
        {"limit": "2", "properties": "email"},
        {"limit": "2", "properties": "email", "after": "2"},
        {"limit": "2", "properties": "email", "after": "4"},
    ]
    assert [page.next_request.params if page.next_request else None for page in pages] == [
        {"limit": 2, "properties": "email", "after": "2"},
        {"limit": 2, "properties": "email", "after": "4"},
        None,
    ]


def test_records_under_a_nested_dot_path(api: FixtureServer, hook: NangoHook) -> None:
    def build(records: list[Any], cursor: str | None) -> dict[str, Any]:
        return {"returned": {"data": {"objects": records, "next_page": cursor}}, "status": "ok"}

    api.route("GET", "/v1/objects", cursor_handler(CONTACTS, param="page", build=build))
    definition = sync(
        f"{api.url}/v1/objects",
        response_path="returned.data.objects",
        paging_request_path="page",
        paging_response_path="returned.data.next_page",
    )

    pages = run(hook, definition)

    assert [page.records for page in pages] == paged(CONTACTS, 2)
    assert [r.query for r in api.requests] == [{}, {"page": "2"}, {"page": "4"}]


def test_hubspot_relative_next_link_resolves_against_the_current_url(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/crm/v3/objects/contacts", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        f"{api.url}/crm/v3/objects/contacts", query_params={"limit": 2}, paging_response_path="paging.next.link"
    )

    pages = run(hook, definition)

    assert [page.records for page in pages] == paged(CONTACTS, 2)
    # '?after=2' replaces the query of the URL just fetched, path kept; the limit is not re-added
    assert [(r.path, r.query) for r in api.requests] == [
        ("/crm/v3/objects/contacts", {"limit": "2"}),
        ("/crm/v3/objects/contacts", {"after": "2"}),
        ("/crm/v3/objects/contacts", {"after": "4"}),
    ]
    assert pages[0].next_request == PageRequest("GET", f"{api.url}/crm/v3/objects/contacts?after=2", {}, None)


def test_jsonpath_wildcard_response_path(api: FixtureServer, hook: NangoHook) -> None:
    def build(records: list[Any], cursor: str | None) -> dict[str, Any]:
        return {"data": records, "meta": {"next": cursor}}

    api.route("GET", "/things", cursor_handler(CONTACTS, param="cursor", build=build))
    definition = sync(
        f"{api.url}/things", response_path="$.data[*]", paging_request_path="cursor", paging_response_path="meta.next"
    )

    pages = run(hook, definition)

    # the last page holds a single record: still a list of one
    assert [page.records for page in pages] == [CONTACTS[0:2], CONTACTS[2:4], [CONTACTS[4]]]
    assert [r.query for r in api.requests] == [{}, {"cursor": "2"}, {"cursor": "4"}]


def test_jsonpath_wildcard_response_path_with_an_empty_page(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/things", replies(Reply(json={"data": [], "meta": {"next": None}})))

    pages = run(hook, sync(f"{api.url}/things", response_path="$.data[*]"))

    assert [page.records for page in pages] == [[]]


def test_jsonpath_root_for_a_top_level_array(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/list", replies(Reply(json=CONTACTS)))

    pages = run(hook, sync(f"{api.url}/list", response_path="$"))

    assert [page.records for page in pages] == [CONTACTS]
    assert pages[0].next_request is None
    assert len(api.requests) == 1


def test_connection_resolves_relative_urls_and_sends_auth_and_extra_headers(
    api: FixtureServer, connection: str, waits: list[float]
) -> None:
    api.route("GET", "/crm/v3/objects/contacts", cursor_handler(CONTACTS, build=hubspot))
    definition = SyncDefinition.from_mapping(
        "contacts",
        {
            "url": "/crm/v3/objects/contacts",
            "http_conn_id": connection,
            "headers": {"Accept-Language": "en"},
            "query_params": {"limit": 2},
            "paging_response_path": "paging.next.link",
        },
    )

    pages = run(NangoHook(connection, sleep=waits.append), definition)

    assert [page.records for page in pages] == paged(CONTACTS, 2)
    assert [(r.path, r.query) for r in api.requests] == [
        ("/crm/v3/objects/contacts", {"limit": "2"}),
        ("/crm/v3/objects/contacts", {"after": "2"}),
        ("/crm/v3/objects/contacts", {"after": "4"}),
    ]
    basic = "Basic " + base64.b64encode(b"u:p").decode()
    for request in api.requests:
        assert request.headers["Authorization"] == basic
        assert request.headers["X-Api-Version"] == "2"
        assert request.headers["Accept-Language"] == "en"
    assert pages[0].request.url == "/crm/v3/objects/contacts"
    assert pages[0].url == f"{api.url}/crm/v3/objects/contacts?limit=2"


def test_connection_endpoint_without_leading_slash(api: FixtureServer, connection: str, waits: list[float]) -> None:
    api.route("GET", "/items", replies(Reply(json={"results": [1, 2]})))
    definition = SyncDefinition.from_mapping("items", {"url": "items", "http_conn_id": connection})

    pages = run(NangoHook(connection, sleep=waits.append), definition)

    assert [page.records for page in pages] == [[1, 2]]
    assert [r.path for r in api.requests] == ["/items"]


# ------------------------------------------------------------------------------- 2. body cursors and methods


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "post", "patch"])
def test_cursor_in_a_nested_body_field_keeps_the_original_body(
    api: FixtureServer, hook: NangoHook, method: str
) -> None:
    def handler(request: Request) -> Reply:
        offset = int((request.body.get("page") or {}).get("cursor") or 0)
        end = offset + request.body["page"]["size"]
        return Reply(json={"results": CONTACTS[offset:end], "next_cursor": end if end < len(CONTACTS) else None})

    api.route(method, "/search", handler)
    body = {"filters": [{"property": "email", "operator": "HAS_PROPERTY"}], "page": {"size": 2}}
    definition = sync(
        f"{api.url}/search",
        method=method,
        body=body,
        paging_request_path="page.cursor",
        paging_response_path="next_cursor",
    )

    pages = run(hook, definition)

    assert [page.records for page in pages] == paged(CONTACTS, 2)
    assert [r.method for r in api.requests] == [method.upper()] * 3
    assert [r.body for r in api.requests] == [
        body,
        {"filters": body["filters"], "page": {"size": 2, "cursor": 2}},
        {"filters": body["filters"], "page": {"size": 2, "cursor": 4}},
    ]
    assert [r.query for r in api.requests] == [{}, {}, {}]
    assert body == {"filters": [{"property": "email", "operator": "HAS_PROPERTY"}], "page": {"size": 2}}


def test_post_without_a_body_gets_the_cursor_as_the_body(api: FixtureServer, hook: NangoHook) -> None:
    api.route(
        "POST",
        "/search",
        replies(Reply(json={"results": [1], "next": "c2"}), Reply(json={"results": [2], "next": None})),
    )
    definition = sync(
        f"{api.url}/search", method="POST", paging_request_path="page.cursor", paging_response_path="next"
    )

    pages = run(hook, definition)

    assert [page.records for page in pages] == [[1], [2]]
    assert [r.body for r in api.requests] == [None, {"page": {"cursor": "c2"}}]


def test_delete_sends_the_cursor_as_a_query_parameter(api: FixtureServer, hook: NangoHook) -> None:
    api.route("DELETE", "/sessions", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        f"{api.url}/sessions",
        method="delete",
        query_params={"limit": 2},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )

    pages = run(hook, definition)

    assert [page.records for page in pages] == paged(CONTACTS, 2)
    assert [(r.method, r.query, r.body) for r in api.requests] == [
        ("DELETE", {"limit": "2"}, None),
        ("DELETE", {"limit": "2", "after": "2"}, None),
        ("DELETE", {"limit": "2", "after": "4"}, None),
    ]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_send_their_body_and_page_by_query(api: FixtureServer, hook: NangoHook, method: str) -> None:
    api.route(method, "/search", cursor_handler(CONTACTS, build=hubspot))
    body = {"mykey": "A great value"}
    definition = sync(
        f"{api.url}/search",
        method=method,
        body=body,
        query_params={"limit": 2},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )

    pages = run(hook, definition)

    assert [page.records for page in pages] == paged(CONTACTS, 2)
    assert [(r.method, r.query, r.body) for r in api.requests] == [
        (method, {"limit": "2"}, body),
        (method, {"limit": "2", "after": "2"}, body),
        (method, {"limit": "2", "after": "4"}, body),
    ]
    assert all(r.headers["Content-Type"] == "application/json" for r in api.requests)


def test_a_get_body_follows_next_urls_and_survives_a_resume(api: FixtureServer, hook: NangoHook) -> None:
    def handler(request: Request) -> Reply:
        number = int(request.query.get("page", 1))
        following = f"/search?page={number + 1}" if number < 3 else None
        return Reply(json={"results": [number], "next": following})

    api.route("GET", "/search", handler)
    definition = sync(f"{api.url}/search", body={"q": "lamps"}, paging_response_path="next")
    first, second, _ = run(hook, definition)
    assert second.next_request is not None
    api.requests.clear()

    resumed = run(hook, definition, start=request_from_checkpoint(definition, second.next_request.to_checkpoint()))

    assert [page.records for page in (first, *resumed)] == [[1], [3]]
    assert [(r.query, r.body) for r in api.requests] == [({"page": "3"}, {"q": "lamps"})]


# --------------------------------------------------------------------------------------------- 3. query_params


def test_query_params_go_on_the_first_request_only_and_next_urls_are_followed_as_given(
    api: FixtureServer, hook: NangoHook
) -> None:
    api.route(
        "GET",
        "/items",
        replies(
            Reply(json={"results": [1, 2], "next": f"{api.url}/items?page=2"}),
            Reply(json={"results": [3], "next": f"{api.url}/items?page=3&sort=id"}),
            Reply(json={"results": [], "next": None}),
        ),
    )
    definition = sync(f"{api.url}/items", query_params={"limit": 2, "sort": "name"}, paging_response_path="next")

    pages = run(hook, definition)

    assert [page.records for page in pages] == [[1, 2], [3], []]
    assert [r.query for r in api.requests] == [
        {"limit": "2", "sort": "name"},
        {"page": "2"},
        {"page": "3", "sort": "id"},
    ]


def test_boolean_query_params_are_sent_as_json_literals(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/items", replies(Reply(json={"results": []})))

    run(hook, sync(f"{api.url}/items", query_params={"archived": False, "associations": True}))

    assert [r.query for r in api.requests] == [{"archived": "false", "associations": "true"}]


# ------------------------------------------------------------------------------------------ 4. stop and resume


@pytest.mark.parametrize(
    ("paging", "document"),
    [
        pytest.param({"paging_request_path": "after"}, {"results": [1]}, id="cursor-missing"),
        pytest.param({"paging_request_path": "after"}, {"results": [1], "next": None}, id="cursor-null"),
        pytest.param({"paging_request_path": "after"}, {"results": [1], "next": ""}, id="cursor-empty"),
        pytest.param({}, {"results": [1]}, id="next-url-missing"),
        pytest.param({}, {"results": [1], "next": None}, id="next-url-null"),
        pytest.param({}, {"results": [1], "next": ""}, id="next-url-empty"),
    ],
)
def test_paging_stops_on_a_missing_null_or_empty_value(
    api: FixtureServer, hook: NangoHook, paging: dict[str, str], document: dict[str, Any]
) -> None:
    api.route("GET", "/items", replies(Reply(json=document)))

    pages = run(hook, sync(f"{api.url}/items", paging_response_path="next", **paging))

    assert [(page.number, page.records, page.next_request) for page in pages] == [(1, [1], None)]
    assert len(api.requests) == 1


def test_start_request_and_start_page_resume_a_run(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/contacts", cursor_handler(CONTACTS * 2, build=hubspot))
    definition = sync(
        f"{api.url}/contacts",
        query_params={"limit": 2},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )
    start = PageRequest("GET", f"{api.url}/contacts", {"limit": 2, "after": "6"})

    pages = run(hook, definition, start=start, start_page=5)

    assert [page.number for page in pages] == [5, 6]
    assert [page.records for page in pages] == [CONTACTS[1:3], CONTACTS[3:5]]
    assert pages[0].request == start
    assert [r.query for r in api.requests] == [{"limit": "2", "after": "6"}, {"limit": "2", "after": "8"}]


def test_a_checkpoint_round_trips_through_json(api: FixtureServer, hook: NangoHook) -> None:
    api.route("POST", "/search", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        f"{api.url}/search",
        method="POST",
        body={"q": "x"},
        query_params={"limit": 2},
        paging_request_path="cursor.after",
        paging_response_path="paging.next.after",
    )
    # the handler pages by the query parameter `after`, absent here: each request gets the first page back
    pages = hook.pages(definition)
    first = next(pages)
    pages.close()  # no next request is sent
    assert first.next_request is not None
    checkpoint = json.loads(json.dumps(first.next_request.to_checkpoint()))
    assert checkpoint == {"cursor": "2"}
    api.requests.clear()

    start = request_from_checkpoint(definition, checkpoint)
    resumed_pages = hook.pages(definition, start=start, start_page=2)
    resumed = next(resumed_pages)
    resumed_pages.close()

    assert resumed.number == 2
    assert resumed.request == first.next_request
    assert (api.requests[0].query, api.requests[0].body) == ({"limit": "2"}, {"q": "x", "cursor": {"after": "2"}})


# --------------------------------------------------------------------------------------------------- 5. errors


def test_missing_results_key_names_it_and_lists_the_top_level_keys(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/items", replies(Reply(json={"data": [1], "next": None, "total": 1})))

    with pytest.raises(ResponseError) as raised:
        run(hook, sync(f"{api.url}/items"))

    message = str(raised.value)
    assert "'results'" in message
    assert "['data', 'next', 'total']" in message
    assert raised.value.sync == "items"
    assert len(api.requests) == 1


def test_response_path_holding_an_object_is_not_a_list(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/items", replies(Reply(json={"data": {"id": 1}})))

    with pytest.raises(ResponseError, match="not a list") as raised:
        run(hook, sync(f"{api.url}/items", response_path="data"))

    assert "'data'" in str(raised.value)
    assert "object" in str(raised.value)


def test_top_level_list_without_dollar_is_a_clear_error(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/items", replies(Reply(json=[1, 2])))

    with pytest.raises(ResponseError) as raised:
        run(hook, sync(f"{api.url}/items"))

    message = str(raised.value)
    assert "got a list" in message
    assert "response_path '$'" in message
    assert len(api.requests) == 1


def test_html_body_is_not_json_and_is_not_retried(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    html = b"<!DOCTYPE html><html><body><h1>Maintenance</h1></body></html>"
    api.route("GET", "/items", replies(Reply(200, body=html, headers={"Content-Type": "text/html; charset=utf-8"})))

    with pytest.raises(ResponseError) as raised:
        run(hook, sync(f"{api.url}/items"))

    message = str(raised.value)
    assert "not JSON" in message
    assert "answered 200" in message
    assert "text/html; charset=utf-8" in message
    assert "<!DOCTYPE html><html><body><h1>Maintenance" in message
    assert len(api.requests) == 1
    assert waits == []


def test_404_is_an_http_error_without_retry(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    api.route("GET", "/items", replies(Reply(404, {"message": "no such list"})))

    with pytest.raises(HttpError) as raised:
        run(hook, sync(f"{api.url}/items"))

    assert raised.value.status == 404
    assert raised.value.response is not None and raised.value.response.status_code == 404
    assert "404 Not Found" in str(raised.value)
    assert "no such list" in str(raised.value)
    assert len(api.requests) == 1
    assert waits == []


def test_a_repeating_cursor_fails_fast(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/items", replies(Reply(json={"results": [1], "paging": {"next": {"after": "stuck-cursor-7"}}})))
    definition = sync(f"{api.url}/items", paging_request_path="after", paging_response_path="paging.next.after")
    seen: list[Page] = []

    with pytest.raises(PaginationError) as raised:
        for page in hook.pages(definition):
            seen.append(page)

    assert "stuck-cursor-7" in str(raised.value)
    assert [page.number for page in seen] == [1]
    assert [r.query for r in api.requests] == [{}, {"after": "stuck-cursor-7"}]


def test_a_repeating_next_url_fails_fast(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/items", replies(Reply(json={"results": [1], "next": f"{api.url}/items?page=2"})))

    with pytest.raises(PaginationError, match="page=2"):
        run(hook, sync(f"{api.url}/items", paging_response_path="next"))

    assert [r.query for r in api.requests] == [{}, {"page": "2"}]


def test_a_next_url_looping_back_to_the_first_page_fails_fast(api: FixtureServer, hook: NangoHook) -> None:
    def handler(request: Request) -> Reply:
        following = f"{api.url}/items" if request.query.get("page") == "2" else f"{api.url}/items?page=2"
        return Reply(json={"results": [request.query.get("page", "1")], "next": following})

    api.route("GET", "/items", handler)

    with pytest.raises(PaginationError):
        run(hook, sync(f"{api.url}/items", paging_response_path="next"))

    assert [r.query for r in api.requests] == [{}, {"page": "2"}]


def test_max_pages_exceeded(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/contacts", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        f"{api.url}/contacts", paging_request_path="after", paging_response_path="paging.next.after", max_pages=2
    )
    seen: list[Page] = []

    with pytest.raises(PaginationError, match="max_pages is 2") as raised:
        for page in hook.pages(definition):
            seen.append(page)

    assert "page 3" in str(raised.value)
    assert [page.records for page in seen] == paged(CONTACTS, 2)[:2]
    assert len(api.requests) == 2


def test_exactly_max_pages_is_fine(api: FixtureServer, hook: NangoHook) -> None:
    api.route("GET", "/contacts", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        f"{api.url}/contacts", paging_request_path="after", paging_response_path="paging.next.after", max_pages=3
    )

    assert [page.records for page in run(hook, definition)] == paged(CONTACTS, 2)


# -------------------------------------------------------------------------------------------------- 6. retries


def test_429_waits_at_least_retry_after(
    api: FixtureServer,
    hook: NangoHook,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    api.route(
        "GET",
        "/items",
        replies(Reply(429, {"message": "slow down"}, headers={"Retry-After": "2"}), Reply(json={"results": [1]})),
    )

    pages = run(hook, sync(f"{api.url}/items", request_backoff_seconds=0.01))

    assert [page.records for page in pages] == [[1]]
    assert waits == [2.0]
    assert len(api.requests) == 2
    lines = retry_lines(logged(caplog, capfd))
    assert len(lines) == 1
    assert "429 Too Many Requests" in lines[0]
    assert "retry 1 of 5 in 2.0 s" in lines[0]
    assert "page 1" in lines[0]


@pytest.mark.parametrize("headers", [{"Retry-After": "0"}, {}], ids=["retry-after-0", "no-retry-after"])
def test_429_without_a_useful_retry_after_still_backs_off(
    api: FixtureServer, hook: NangoHook, waits: list[float], headers: dict[str, str]
) -> None:
    api.route("GET", "/items", replies(Reply(429, {}, headers=headers), Reply(json={"results": [1]})))

    pages = run(hook, sync(f"{api.url}/items", request_backoff_seconds=0.01))

    assert [page.records for page in pages] == [[1]]
    assert len(waits) == 1
    assert 0.005 <= waits[0] <= 0.01
    assert len(api.requests) == 2


def test_retry_after_as_an_http_date(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 4, usegmt=True)
    api.route("GET", "/items", replies(Reply(503, {}, headers={"Retry-After": when}), Reply(json={"results": [1]})))

    pages = run(hook, sync(f"{api.url}/items", request_backoff_seconds=0.01))

    assert [page.records for page in pages] == [[1]]
    assert len(waits) == 1
    assert 2.5 <= waits[0] <= 4.0


def test_503_twice_then_success(
    api: FixtureServer,
    hook: NangoHook,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    api.route("GET", "/items", replies(Reply(503, {}), Reply(503, {}), Reply(json={"results": [1, 2]})))

    pages = run(hook, sync(f"{api.url}/items", request_backoff_seconds=0.01))

    assert [page.records for page in pages] == [[1, 2]]
    assert len(api.requests) == 3
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.01
    assert 0.01 <= waits[1] <= 0.02  # doubled
    lines = retry_lines(logged(caplog, capfd))
    assert len(lines) == 2
    assert all("503 Service Unavailable" in line for line in lines)
    assert "retry 1 of 5 in 0.0 s" in lines[0]
    assert "retry 2 of 5 in 0.0 s" in lines[1]


def test_dropped_connection_then_success(
    api: FixtureServer,
    hook: NangoHook,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    api.route("GET", "/items", replies(Reply(drop=True), Reply(json={"results": [1]})))

    pages = run(hook, sync(f"{api.url}/items", request_backoff_seconds=0.01))

    assert [page.records for page in pages] == [[1]]
    assert len(api.requests) == 2
    assert len(waits) == 1
    lines = retry_lines(logged(caplog, capfd))
    assert len(lines) == 1
    assert f"ConnectionError on GET {api.url}/items (page 1)" in lines[0]


def test_truncated_body_then_success(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    api.route(
        "GET",
        "/items",
        replies(Reply(json={"results": CONTACTS}, truncate=10), Reply(json={"results": CONTACTS})),
    )

    pages = run(hook, sync(f"{api.url}/items", request_backoff_seconds=0.01))

    assert [page.records for page in pages] == [CONTACTS]
    assert len(api.requests) == 2
    assert len(waits) == 1


def test_read_timeout_then_success(
    api: FixtureServer,
    hook: NangoHook,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    calls: list[Request] = []

    def handler(request: Request) -> Reply:
        calls.append(request)
        if len(calls) == 1:
            time.sleep(0.8)
        return Reply(json={"results": [len(calls)]})

    api.route("GET", "/items", handler)

    started = time.monotonic()
    pages = run(hook, sync(f"{api.url}/items", request_timeout=0.3, request_backoff_seconds=0.01))

    assert time.monotonic() - started < 0.8
    assert [page.records for page in pages] == [[2]]
    assert len(api.requests) == 2
    assert len(waits) == 1
    lines = retry_lines(logged(caplog, capfd))
    assert len(lines) == 1
    assert "Timeout" in lines[0]


def test_retries_exhausted(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    api.route("GET", "/items", replies(Reply(503, {"message": "down"})))

    with pytest.raises(HttpError) as raised:
        run(hook, sync(f"{api.url}/items", request_retries=2, request_backoff_seconds=0.01))

    assert raised.value.status == 503
    assert "503 Service Unavailable" in str(raised.value)
    assert len(api.requests) == 3
    assert len(waits) == 2


def test_no_retries_at_all(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    api.route("GET", "/items", replies(Reply(500, {})))

    with pytest.raises(HttpError) as raised:
        run(hook, sync(f"{api.url}/items", request_retries=0))

    assert raised.value.status == 500
    assert len(api.requests) == 1
    assert waits == []


def test_dropped_connection_every_time_is_an_http_error_with_status_0(
    api: FixtureServer, hook: NangoHook, waits: list[float]
) -> None:
    api.route("GET", "/items", replies(Reply(drop=True)))

    with pytest.raises(HttpError) as raised:
        run(hook, sync(f"{api.url}/items", request_retries=1, request_backoff_seconds=0.01))

    assert raised.value.status == 0
    assert f"ConnectionError on GET {api.url}/items (page 1)" in str(raised.value)
    assert len(api.requests) == 2
    assert len(waits) == 1


def test_retry_time_bound_stops_before_a_wait_that_would_pass_it(
    api: FixtureServer, hook: NangoHook, waits: list[float]
) -> None:
    api.route("GET", "/items", replies(Reply(429, {}, headers={"Retry-After": "30"})))

    with pytest.raises(HttpError) as raised:
        run(hook, sync(f"{api.url}/items", request_retry_max_seconds=5, request_backoff_seconds=0.01))

    assert raised.value.status == 429
    assert len(api.requests) == 1
    assert waits == []


def test_retry_time_bound_counts_real_waits(api: FixtureServer) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    api.route("GET", "/items", replies(Reply(503, {})))
    definition = sync(
        f"{api.url}/items", request_retries=10, request_backoff_seconds=0.05, request_retry_max_seconds=0.3
    )

    with pytest.raises(HttpError) as raised:
        run(NangoHook(sleep=sleep), definition)

    assert raised.value.status == 503
    assert 0 < sum(waits) <= 0.3
    assert len(api.requests) == len(waits) + 1 < 11


# -------------------------------------------------------------------------------------------------- 7. secrets


def test_secrets_never_reach_error_messages_or_retry_logs(
    api: FixtureServer,
    hook: NangoHook,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    api.route(
        "GET",
        "/items",
        replies(
            Reply(json={"results": [1], "next": f"{api.url}/items?page=2&api_key={API_KEY}"}),
            Reply(503, {"message": "down"}),
        ),
    )
    definition = sync(
        f"{api.url}/items",
        headers={"Authorization": f"Bearer {BEARER}"},
        query_params={"api_key": API_KEY},
        paging_response_path="next",
        request_retries=2,
        request_backoff_seconds=0.01,
    )
    seen: list[Page] = []

    with pytest.raises(HttpError) as raised:
        for page in hook.pages(definition):
            seen.append(page)

    # the secrets really were sent
    assert [r.query for r in api.requests] == [{"api_key": API_KEY}] + [{"page": "2", "api_key": API_KEY}] * 3
    assert {r.headers["Authorization"] for r in api.requests} == {f"Bearer {BEARER}"}
    message = str(raised.value)
    assert raised.value.status == 503
    assert f"GET {api.url}/items?page=2&api_key=*** (page 2)" in message
    assert seen[0].url == f"{api.url}/items?api_key=***"
    text = logged(caplog, capfd)
    lines = retry_lines(text)
    assert len(lines) == 2
    for shown in (message, text, *lines):
        assert BEARER not in shown
        assert API_KEY not in shown


def test_secrets_never_reach_a_connection_error_message(
    hook: NangoHook, waits: list[float], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    definition = sync(
        f"http://127.0.0.1:{free_port()}/items",
        headers={"Authorization": f"Bearer {BEARER}"},
        query_params={"api_key": API_KEY},
        request_retries=1,
        request_backoff_seconds=0.01,
    )

    with pytest.raises(HttpError) as raised:
        run(hook, definition)

    assert raised.value.status == 0
    assert len(waits) == 1
    for shown in (str(raised.value), logged(caplog, capfd)):
        assert BEARER not in shown
        assert API_KEY not in shown


# ------------------------------------------------------------------------------------------- 9. HTTP edges


@pytest.fixture
def other_host() -> Iterator[FixtureServer]:
    """A second loopback server: another host (port) than ``api``, which must never see the sync's secrets."""
    server = FixtureServer().start()
    yield server
    server.stop()


def test_a_redirect_to_another_host_is_not_followed(
    api: FixtureServer, other_host: FixtureServer, connection: str, waits: list[float]
) -> None:
    api.route("GET", "/items", replies(Reply(302, json={}, headers={"Location": f"{other_host.url}/steal"})))
    other_host.route("GET", "/steal", replies(Reply(json={"results": [1]})))
    definition = sync("/items", http_conn_id=connection, headers={"X-Api-Key": API_KEY})

    with pytest.raises(HttpError) as raised:
        run(NangoHook(connection, sleep=waits.append), definition)

    assert other_host.requests == []
    assert raised.value.status == 302 and raised.value.retryable is False
    assert f"a redirect to '{other_host.url}/steal' on another host; it is not followed" in str(raised.value)
    assert len(api.requests) == 1 and waits == []


@pytest.mark.parametrize(
    ("status", "method", "sent_again"),
    [
        (301, "GET", ("GET", None)),
        (302, "GET", ("GET", None)),
        (307, "POST", ("POST", {"q": 1})),
        (308, "PUT", ("PUT", {"q": 1})),
    ],
)
def test_a_redirect_on_the_same_host_is_followed_with_the_sync_headers(
    api: FixtureServer, connection: str, status: int, method: str, sent_again: tuple[str, Any]
) -> None:
    api.route(method, "/old", replies(Reply(status, json={}, headers={"Location": "/new?moved=yes"})))
    api.route(sent_again[0], "/new", replies(Reply(json={"results": [1, 2]})))
    definition = sync("/old", http_conn_id=connection, method=method, body={"q": 1}, headers={"X-Api-Key": API_KEY})

    pages = run(NangoHook(connection), definition)

    assert [page.records for page in pages] == [[1, 2]]
    assert [(r.method, r.path, r.query, r.body) for r in api.requests] == [
        (method, "/old", {}, {"q": 1}),
        (*sent_again[:1], "/new", {"moved": "yes"}, sent_again[1]),
    ]
    assert all(
        r.headers["X-Api-Key"] == API_KEY and r.headers["Authorization"].startswith("Basic ") for r in api.requests
    )


def test_endless_redirects_fail_without_retry(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    api.route("GET", "/loop", replies(Reply(302, json={}, headers={"Location": "/loop"})))

    with pytest.raises(HttpError, match="redirected more than 30 times") as raised:
        run(hook, sync(f"{api.url}/loop"))

    assert raised.value.status == 302 and raised.value.retryable is False and waits == []


def test_a_relative_url_with_a_scheme_in_its_query_uses_the_connection(api: FixtureServer, connection: str) -> None:
    api.route("GET", "/search", replies(Reply(json={"results": [1]})))
    definition = sync("/search?return_to=https://example.com/done", http_conn_id=connection)

    pages = run(NangoHook(connection), definition)

    assert [page.records for page in pages] == [[1]]
    assert [(r.path, r.query) for r in api.requests] == [("/search", {"return_to": "https://example.com/done"})]


@pytest.mark.parametrize(
    ("fields", "error_class"),
    [
        pytest.param({"headers": {"X-Note": "two\nlines"}}, "InvalidHeader", id="invalid-header"),
        pytest.param({"url": "http://127.0.0.1:99999/items"}, "InvalidURL", id="invalid-url"),
    ],
)
def test_every_requests_error_is_an_http_error(
    api: FixtureServer, hook: NangoHook, waits: list[float], fields: dict[str, Any], error_class: str
) -> None:
    # Past validation, which refuses both when a definition is read: as a connection's extra headers would be.
    definition = dataclasses.replace(sync(f"{api.url}/items"), **fields)
    with pytest.raises(HttpError) as raised:
        run(hook, definition)

    assert raised.value.status == 0 and raised.value.retryable is False
    assert str(raised.value).startswith(f"sync 'items': {error_class} on GET ")
    assert waits == [] and api.requests == []


def test_a_tls_failure_is_an_http_error_without_retry(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    with pytest.raises(HttpError, match="SSLError") as raised:
        run(hook, sync(api.url.replace("http://", "https://") + "/items"))  # TLS to a plain HTTP server

    assert raised.value.status == 0 and raised.value.retryable is False and waits == []


def test_408_is_retried_like_429(api: FixtureServer, hook: NangoHook, waits: list[float]) -> None:
    api.route("GET", "/items", replies(Reply(408, json={"error": "slow"}), Reply(json={"results": [1]})))

    pages = run(hook, sync(f"{api.url}/items"))

    assert [page.records for page in pages] == [[1]] and len(waits) == 1


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(204, body=b""), id="204"),
        pytest.param(Reply(200, body=b""), id="empty-body"),
        pytest.param(Reply(200, body=b" \r\n"), id="blank-body"),
        pytest.param(Reply(json=None), id="null-document"),
        pytest.param(Reply(json={"results": None}), id="null-at-response-path"),
        pytest.param(Reply(json=[]), id="empty-list-document"),
        pytest.param(Reply(json={"results": []}), id="empty-list-at-response-path"),
    ],
)
def test_an_empty_answer_is_an_empty_last_page(
    api: FixtureServer, hook: NangoHook, waits: list[float], reply: Reply
) -> None:
    api.route("GET", "/items", replies(reply))
    definition = sync(f"{api.url}/items", paging_request_path="after", paging_response_path="paging.next.after")

    pages = run(hook, definition)

    assert [(page.records, page.next_request) for page in pages] == [([], None)]
    assert len(api.requests) == 1 and waits == []


# ------------------------------------------------------------------------ proxies and CA bundle from the environment


def _clear_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_a_proxy_from_the_environment_carries_every_page_and_is_looked_up_once(
    api: FixtureServer, hook: NangoHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY`` routes every page through the proxy (the loopback server plays it: it gets the absolute
    URL and the API's Host header), and the environment is read once for the host, not once per page."""
    _clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", api.url)
    api.route("GET", "/contacts", cursor_handler(CONTACTS, build=hubspot))
    looked_up: list[str] = []
    environment_proxies = requests.sessions.get_environ_proxies

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        looked_up.append(url)
        return environment_proxies(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    definition = sync(
        "http://api.example.test/contacts",
        query_params={"limit": 2},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )
    records = [record for page in run(hook, definition) for record in page.records]
    assert records == CONTACTS
    assert [request.headers["Host"] for request in api.requests] == ["api.example.test"] * 3
    assert len(looked_up) == 1


def test_no_proxy_from_the_environment_still_sends_its_hosts_directly(
    api: FixtureServer, hook: NangoHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host in ``NO_PROXY`` is reached directly although ``HTTP_PROXY`` names a proxy that refuses connections."""
    _clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    api.route("GET", "/contacts", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        f"{api.url}/contacts",
        query_params={"limit": 2},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )
    records = [record for page in run(hook, definition) for record in page.records]
    assert records == CONTACTS
    assert len(api.requests) == 3


def _contacts_sync(api: FixtureServer) -> SyncDefinition:
    api.route("GET", "/contacts", cursor_handler(CONTACTS, build=hubspot))
    return sync(
        f"{api.url}/contacts",
        query_params={"limit": 2},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )


def _netrc(monkeypatch: pytest.MonkeyPatch, folder: Any, machine: str) -> list[str]:
    """A ``~/.netrc`` (``NETRC``) with one entry, for ``machine``; the list of the hook's reads of it (once per
    host), while ``requests`` reading it itself, as it would for every request, fails the test."""
    netrc = folder / "netrc"
    netrc.write_text(f"machine {machine} login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    read: list[str] = []
    netrc_auth = requests.utils.get_netrc_auth

    def counted(url: str, raise_errors: bool = False) -> Any:
        read.append(url)
        return netrc_auth(url, raise_errors)

    def refused(url: str, raise_errors: bool = False) -> Any:
        raise AssertionError(f"requests read ~/.netrc for {url}")

    monkeypatch.setattr(requests.utils, "get_netrc_auth", counted)
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", refused)
    return read


def test_a_netrc_entry_of_the_host_signs_every_page_and_is_read_once(
    api: FixtureServer, hook: NangoHook, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """``requests`` sends a host's ``~/.netrc`` login when the connection has none; the hook reads the file once
    per host and run, not once per page."""
    read = _netrc(monkeypatch, tmp_path, "127.0.0.1")

    records = [record for page in run(hook, _contacts_sync(api)) for record in page.records]

    assert records == CONTACTS
    basic = "Basic " + base64.b64encode(b"netrc-user:netrc-pass").decode()
    assert [request.headers.get("Authorization") for request in api.requests] == [basic] * 3
    assert len(read) == 1


def test_without_a_netrc_entry_no_authorization_is_sent(
    api: FixtureServer, hook: NangoHook, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    read = _netrc(monkeypatch, tmp_path, "api.example.com")

    assert len(run(hook, _contacts_sync(api))) == 3
    assert [request.headers.get("Authorization") for request in api.requests] == [None] * 3
    assert len(read) == 1


def test_a_connection_that_does_not_trust_the_environment_sends_no_netrc_login(
    api: FixtureServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    read = _netrc(monkeypatch, tmp_path, "127.0.0.1")
    conn = {"conn_type": "nango", "host": api.url, "extra": {"trust_env": False}}
    monkeypatch.setenv("AIRFLOW_CONN_NO_ENV", json.dumps(conn))
    api.route("GET", "/contacts", cursor_handler(CONTACTS, build=hubspot))
    definition = sync(
        "/contacts",
        http_conn_id="no_env",
        query_params={"limit": 2},
        paging_request_path="after",
        paging_response_path="paging.next.after",
    )

    assert len(run(NangoHook("no_env"), definition)) == 3
    assert [request.headers.get("Authorization") for request in api.requests] == [None] * 3
    assert read == []


def test_a_ca_bundle_from_the_environment_applies_to_https_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Plain HTTP has no certificate to verify, so its requests do not look the bundle up on disk each time;
    HTTPS requests, and plain ones through a proxy (which may speak TLS), keep it."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    _clear_proxy_environment(monkeypatch)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    def verify(url: str) -> Any:
        return EnvironmentPerHost(requests.Session()).settings(url)["verify"]

    assert verify("http://api.example.com/items") is True
    assert verify("https://api.example.com/items") == str(bundle)
    monkeypatch.setenv("HTTP_PROXY", "https://proxy.example.com:3128")
    assert verify("http://api.example.com/items") == str(bundle)


def test_the_next_request_is_prepared_before_its_page_is_handed_on(
    api: FixtureServer, hook: NangoHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One page at a time, a page reaches its reader with the next request prepared but not sent: the thread that
    writes the page then starts its work while little of the sending is left."""
    prepared: list[str | None] = []
    prepare_request = requests.Session.prepare_request

    def recorded(session: requests.Session, request: requests.Request) -> requests.PreparedRequest:
        found = prepare_request(session, request)
        prepared.append(found.url)
        return found

    monkeypatch.setattr(requests.Session, "prepare_request", recorded)
    seen = [(page.number, len(prepared), len(api.requests)) for page in hook.pages(_contacts_sync(api))]
    assert seen == [(1, 2, 1), (2, 3, 2), (3, 3, 3)]
    assert prepared == [f"{api.url}/contacts?limit=2{after}" for after in ("", "&after=2", "&after=4")]
