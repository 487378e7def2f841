"""Integration tests of every paging style of ``paging:`` against the loopback server and a real Postgres: every
record lands once, no request is sent past the end, a retried run resumes exactly, and a run that stored only the
first page of an API that pages says so on its job row."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import psycopg
import pytest

from nango_provider.exceptions import HttpError
from nango_provider.plugins.service import job_history
from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import jobs, rows, sync

pytestmark = pytest.mark.integration

RECORDS = [{"id": n, "name": f"item {n}"} for n in range(1, 251)]
TABLE = "test_paging.items"


def window(start: int, size: int) -> list[dict[str, Any]]:
    return RECORDS[start : start + size]


def landed_once(db: str, counts: dict[str, int], pages: int) -> None:
    assert counts == {"pages": pages, "fetched": 250, "added": 250, "updated": 0, "unchanged": 0, "deleted": 0}
    assert sorted(int(key) for key in rows(db, TABLE)) == list(range(1, 251))


def styled(api: FixtureServer, path: str, paging: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"url": f"{api.url}{path}", "unique_key": "id", "table": TABLE, "paging": paging, **fields}


def test_link_header_with_a_top_level_array(api: FixtureServer, db: str) -> None:
    def github(request: Request) -> Reply:
        number, size = int(request.query.get("page", 1)), int(request.query["per_page"])
        headers = {}
        if number * size < len(RECORDS):
            following = f"{api.url}/repos/o/r/issues?per_page={size}&page={number + 1}"
            headers["Link"] = f'<{following}>; rel="next", <{api.url}/repos/o/r/issues?page=3>; rel="last"'
        return Reply(json=window((number - 1) * size, size), headers=headers)

    api.route("GET", "/repos/o/r/issues", github)
    paging = {"type": "link", "limit_name_in_request": "per_page", "limit": 100}
    counts = sync(db, "issues", styled(api, "/repos/o/r/issues", paging, response_path="$"))
    landed_once(db, counts, pages=3)
    assert [request.query for request in api.requests] == [
        {"per_page": "100"},
        {"per_page": "100", "page": "2"},
        {"per_page": "100", "page": "3"},
    ]
    assert jobs(db)[0]["warnings"] is None


def test_offset_with_a_total_sends_no_request_past_the_end(api: FixtureServer, db: str) -> None:
    def jira(request: Request) -> Reply:
        start, size = int(request.query["startAt"]), int(request.query["maxResults"])
        return Reply(json={"startAt": start, "maxResults": size, "total": 250, "issues": window(start, size)})

    api.route("GET", "/rest/api/3/search", jira)
    paging = {
        "type": "offset",
        "offset_name_in_request": "startAt",
        "limit_name_in_request": "maxResults",
        "limit": 100,
        "total_path_in_response": "total",
    }
    counts = sync(db, "issues", styled(api, "/rest/api/3/search", paging, response_path="issues"))
    landed_once(db, counts, pages=3)
    assert [request.query["startAt"] for request in api.requests] == ["0", "100", "200"]


def test_offset_in_a_post_body_stops_at_the_empty_page(api: FixtureServer, db: str) -> None:
    def search(request: Request) -> Reply:
        assert request.body["query"] == "open"
        start, size = request.body["page"]["from"], request.body["page"]["size"]
        return Reply(json={"hits": window(start, size)})

    api.route("POST", "/search", search)
    paging = {
        "type": "offset",
        "offset_name_in_request": "page.from",
        "limit_name_in_request": "page.size",
        "limit": 100,
    }
    fields = styled(api, "/search", paging, method="POST", body={"query": "open"}, response_path="hits")
    counts = sync(db, "hits", fields)
    assert counts["pages"] == 4  # the fourth, empty page says the data ended
    landed_once(db, {**counts, "pages": 4}, pages=4)
    assert [request.body["page"]["from"] for request in api.requests] == [0, 100, 200, 250]


def test_page_numbers_with_a_has_more_flag(api: FixtureServer, db: str) -> None:
    def zoho(request: Request) -> Reply:
        number, size = int(request.query["page"]), int(request.query["per_page"])
        more = number * size < len(RECORDS)
        return Reply(json={"data": window((number - 1) * size, size), "info": {"page": number, "more_records": more}})

    api.route("GET", "/crm/v2/Leads", zoho)
    paging = {
        "type": "page",
        "page_name_in_request": "page",
        "limit_name_in_request": "per_page",
        "limit": 100,
        "has_more_path_in_response": "info.more_records",
    }
    counts = sync(db, "leads", styled(api, "/crm/v2/Leads", paging, response_path="data"))
    landed_once(db, counts, pages=3)
    assert [request.query["page"] for request in api.requests] == ["1", "2", "3"]


def test_cursor_in_a_post_body_with_a_has_more_flag(api: FixtureServer, db: str) -> None:
    def notion(request: Request) -> Reply:
        start = int(base64.b64decode(request.body["start_cursor"])) if "start_cursor" in request.body else 0
        size = request.body["page_size"]
        more = start + size < len(RECORDS)
        # like some APIs, a cursor is there even on the last page: only has_more says the data ended
        following = base64.b64encode(str(start + size).encode()).decode()
        return Reply(json={"results": window(start, size), "next_cursor": following, "has_more": more})

    api.route("POST", "/v1/databases/db/query", notion)
    paging = {
        "type": "cursor",
        "cursor_name_in_request": "start_cursor",
        "cursor_path_in_response": "next_cursor",
        "limit_name_in_request": "page_size",
        "limit": 100,
        "has_more_path_in_response": "has_more",
    }
    counts = sync(db, "pages", styled(api, "/v1/databases/db/query", paging, method="POST"))
    landed_once(db, counts, pages=3)
    assert len(api.requests) == 3


@pytest.mark.parametrize("path", ["$.data[-1:].id", "$.data[-1].id"])
def test_cursor_from_the_last_record(api: FixtureServer, db: str, path: str) -> None:
    def stripe(request: Request) -> Reply:
        start = int(request.query.get("starting_after", 0))
        size = int(request.query["limit"])
        return Reply(json={"object": "list", "data": window(start, size), "has_more": start + size < len(RECORDS)})

    api.route("GET", "/v1/customers", stripe)
    paging = {
        "type": "cursor",
        "cursor_name_in_request": "starting_after",
        "cursor_path_in_response": path,
        "limit_name_in_request": "limit",
        "limit": 100,
        "has_more_path_in_response": "has_more",
    }
    counts = sync(db, "customers", styled(api, "/v1/customers", paging, response_path="data"))
    landed_once(db, counts, pages=3)
    assert [request.query.get("starting_after") for request in api.requests] == [None, "100", "200"]


def test_export_whose_next_link_repeats_at_the_end_of_stream(api: FixtureServer, db: str) -> None:
    def zendesk(request: Request) -> Reply:
        start = int(request.query.get("cursor", 0))
        end = min(start + 100, len(RECORDS))
        after_url = f"{api.url}/api/v2/incremental/tickets/cursor.json?cursor={end}"
        return Reply(json={"tickets": window(start, 100), "after_url": after_url, "end_of_stream": end >= 250})

    api.route("GET", "/api/v2/incremental/tickets/cursor.json", zendesk)
    paging = {"type": "link", "link_path_in_response_body": "after_url", "is_last_path_in_response": "end_of_stream"}
    fields = styled(api, "/api/v2/incremental/tickets/cursor.json", paging, response_path="tickets")
    counts = sync(db, "tickets", {**fields, "query_params": {"start_time": 0}})
    landed_once(db, counts, pages=3)
    assert len(api.requests) == 3


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_retried_offset_run_resumes_at_the_exact_offset_and_count(api: FixtureServer, db: str, method: str) -> None:
    failing = {"on": True}

    def jira(request: Request) -> Reply:
        values = request.body if method == "POST" else {key: int(value) for key, value in request.query.items()}
        start = values["startAt"]
        if start == 200 and failing["on"]:
            return Reply(400, {"error": "bad day"})
        return Reply(json={"total": 250, "issues": window(start, 100)})

    api.route(method, "/search", jira)
    paging = {"type": "offset", "offset_name_in_request": "startAt", "total_path_in_response": "total"}
    body = {"body": {}} if method == "POST" else {}
    fields = styled(api, "/search", paging, method=method, response_path="issues", **body)
    with pytest.raises(HttpError):
        sync(db, "issues", fields)
    failing["on"] = False
    api.requests.clear()
    counts = sync(db, "issues", fields, try_number=2)
    assert counts == {"pages": 3, "fetched": 250, "added": 250, "updated": 0, "unchanged": 0, "deleted": 0}
    assert len(api.requests) == 1  # page 3 only, and no request after it: the total counts earlier tries too
    assert [(job["status"], job["resumed_from_page"]) for job in jobs(db)] == [("failed", None), ("success", 3)]


def test_one_page_with_signs_of_more_is_a_warning_on_the_job_row(api: FixtureServer, db: str) -> None:
    link = f'<{api.url}/repos/o/r/issues?page=2>; rel="next"'
    api.route("GET", "/repos/o/r/issues", lambda _: Reply(json=window(0, 100), headers={"Link": link}))
    counts = sync(db, "issues", {"url": f"{api.url}/repos/o/r/issues", "unique_key": "id", "response_path": "$"})
    assert (counts["pages"], counts["fetched"]) == (1, 100)
    (job,) = jobs(db)
    assert job["status"] == "success"
    (warning,) = job["warnings"]
    assert warning.startswith(
        'page 1 was the only page, but the response shows signs of more: a Link header with rel="next"'
    )
    assert "paging:" in warning
    history = job_history("postgres_default", ["nango_sync_issues"])
    assert history["nango_sync_issues"][-1]["warnings"] == [warning]


@pytest.mark.parametrize(
    ("document", "paging_fields"),
    [
        ({"results": window(0, 50), "has_more": True}, {}),
        ({"results": window(0, 50), "paging": {"next": {"after": "abc"}}}, {}),
        # a paging path with a typo finds nothing, while the response says there is more
        (
            {"results": window(0, 50), "next_cursor": "abc"},
            {"paging_request_path": "c", "paging_response_path": "cursor_next"},
        ),
    ],
)
def test_signs_of_more_in_the_body_are_warned_about(
    api: FixtureServer, db: str, document: dict[str, Any], paging_fields: dict[str, Any]
) -> None:
    api.route("GET", "/items", lambda _: Reply(json=document))
    sync(db, "items", {"url": f"{api.url}/items", "unique_key": "id", "table": "nango.items", **paging_fields})
    (job,) = jobs(db)
    assert job["warnings"] and "page 1 was the only page" in job["warnings"][0]


@pytest.mark.parametrize(
    ("document", "paging"),
    [
        ({"results": window(0, 50), "next": None, "has_more": False}, None),
        (
            {"results": window(0, 50), "after_url": "x", "end_of_stream": True},
            {"type": "link", "link_path_in_response_body": "after_url", "is_last_path_in_response": "end_of_stream"},
        ),
        (
            {"results": window(0, 50), "next_cursor": "abc", "has_more": False},
            {
                "type": "cursor",
                "cursor_name_in_request": "c",
                "cursor_path_in_response": "next_cursor",
                "has_more_path_in_response": "has_more",
            },
        ),
    ],
)
def test_a_single_page_that_says_it_is_the_last_has_no_warning(
    api: FixtureServer, db: str, document: dict[str, Any], paging: dict[str, Any] | None
) -> None:
    api.route("GET", "/items", lambda _: Reply(json=document))
    sync(db, "items", {"url": f"{api.url}/items", "unique_key": "id", "table": "nango.items", "paging": paging})
    assert [job["warnings"] for job in jobs(db)] == [None]


def test_a_jobs_table_made_before_warnings_existed_gets_the_column(api: FixtureServer, db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA nango")
        conn.execute(
            """CREATE TABLE nango._nango_jobs (id bigserial PRIMARY KEY, sync_name text NOT NULL, dag_id text,
               task_id text, run_id text, try_number integer, target_table text NOT NULL, status text NOT NULL,
               started_at timestamptz NOT NULL DEFAULT now(), ended_at timestamptz,
               pages bigint NOT NULL DEFAULT 0, fetched bigint NOT NULL DEFAULT 0, added bigint NOT NULL DEFAULT 0,
               updated bigint NOT NULL DEFAULT 0, unchanged bigint NOT NULL DEFAULT 0,
               deleted bigint NOT NULL DEFAULT 0, resumed_from_page integer, error text)"""
        )
        conn.execute(
            "INSERT INTO nango._nango_jobs (sync_name, dag_id, target_table, status) "
            "VALUES ('old', 'nango_sync_old', 't', 'success')"
        )
    assert job_history("postgres_default", ["nango_sync_old"])["nango_sync_old"][0]["warnings"] is None
    api.route("GET", "/items", lambda _: Reply(json={"results": window(0, 5), "has_more": True}))
    sync(db, "items", {"url": f"{api.url}/items", "unique_key": "id", "table": "nango.items"})
    sync(db, "items", {"url": f"{api.url}/items", "unique_key": "id", "table": "nango.items"}, run_id="run-2")
    assert [bool(job["warnings"]) for job in jobs(db)] == [False, True, True]


# --- parallel pages ------------------------------------------------------------------------------------------


class SlowJira:
    """A Jira-style offset endpoint that takes ``delay`` seconds per page and counts the requests in flight."""

    def __init__(self, delay: float = 0.03, fail_at: int | None = None) -> None:
        self.delay = delay
        self.fail_at = fail_at
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            start, size = int(request.query["startAt"]), int(request.query["maxResults"])
            if start == self.fail_at:
                return Reply(400, {"error": "bad page"})
            return Reply(json={"startAt": start, "total": len(RECORDS), "issues": window(start, size)})
        finally:
            with self.lock:
                self.in_flight -= 1


PARALLEL = {
    "type": "offset",
    "offset_name_in_request": "startAt",
    "offset_calculation_method": "by-limit",
    "limit_name_in_request": "maxResults",
    "limit": 20,
    "total_path_in_response": "total",
    "concurrency": 6,
}


def test_parallel_pages_land_every_record_once_in_order(api: FixtureServer, db: str) -> None:
    jira = SlowJira()
    api.route("GET", "/search", jira)
    counts = sync(db, "issues", styled(api, "/search", PARALLEL, response_path="issues"))
    landed_once(db, counts, pages=13)
    offsets = sorted(int(request.query["startAt"]) for request in api.requests)
    assert offsets == list(range(0, 250, 20))  # each page asked for once, none past the end
    assert jira.most_in_flight >= 4


def test_a_failed_parallel_run_resumes_at_the_failed_page_without_gaps_or_repeats(api: FixtureServer, db: str) -> None:
    jira = SlowJira(fail_at=100)
    api.route("GET", "/search", jira)
    fields = styled(api, "/search", PARALLEL, response_path="issues", request_retries=0)
    with pytest.raises(HttpError):
        sync(db, "issues", fields)
    assert sorted(int(key) for key in rows(db, TABLE)) == list(range(1, 101))  # pages 1-5 written, nothing after
    (failed,) = jobs(db)
    assert (failed["status"], failed["pages"], failed["fetched"]) == ("failed", 5, 100)
    jira.fail_at = None
    api.requests.clear()
    counts = sync(db, "issues", fields, try_number=2)
    assert counts == {"pages": 13, "fetched": 250, "added": 250, "updated": 0, "unchanged": 0, "deleted": 0}
    assert sorted(int(request.query["startAt"]) for request in api.requests) == list(range(100, 250, 20))
    assert sorted(int(key) for key in rows(db, TABLE)) == list(range(1, 251))


def test_a_stop_flag_ends_a_parallel_run_and_drops_the_pages_fetched_ahead(api: FixtureServer, db: str) -> None:
    def zoho(request: Request) -> Reply:
        number = int(request.query["page"])
        time.sleep(0.01)
        # the total says 13 pages, but page 3 says it is the last: what was fetched ahead is not written
        return Reply(json={"data": window((number - 1) * 20, 20), "info": {"more": number < 3, "pages": 13}})

    api.route("GET", "/leads", zoho)
    paging = {
        "type": "page",
        "page_name_in_request": "page",
        "limit_name_in_request": "per_page",
        "limit": 20,
        "total_pages_path_in_response": "info.pages",
        "has_more_path_in_response": "info.more",
        "concurrency": 4,
    }
    counts = sync(db, "leads", styled(api, "/leads", paging, response_path="data"))
    assert (counts["pages"], counts["fetched"], len(rows(db, TABLE))) == (3, 60, 60)
