"""Failure behaviour against the real HTTP server and Postgres: resume after a failed try, full refresh,
Postgres dropping the connection mid-run, two runs on one table, and secrets kept out of errors."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from nango_provider.exceptions import HttpError, PaginationError, ResponseError, StoreError
from tests.fixture_server import FixtureServer, Reply, Request, paged
from tests.helpers import items_sync, jobs, rows, sync

pytestmark = pytest.mark.integration


class PagedItems:
    """Serves ``count`` items in pages of ``size`` with a page-number cursor; can fail or act on a page."""

    def __init__(self, api: FixtureServer, count: int, size: int = 5) -> None:
        self.pages = paged([{"id": i, "name": f"item {i}"} for i in range(1, count + 1)], size)
        self.fail_on: int | None = None
        self.on_page: dict[int, Any] = {}
        self.served: list[int] = []
        self.delay = 0.0
        api.route("GET", "/items", self.handle)

    def handle(self, request: Request) -> Reply:
        number = int(request.query.get("page", "1"))
        self.served.append(number)
        if number in self.on_page:
            self.on_page.pop(number)()
        if number == self.fail_on:
            return Reply(400, {"error": "bad page"})
        time.sleep(self.delay)
        following = number + 1 if number < len(self.pages) else None
        return Reply(json={"results": self.pages[number - 1], "next_page": following})


def test_a_retried_try_resumes_at_the_failed_page_and_ends_as_an_uninterrupted_run(db: str, api: FixtureServer) -> None:
    server = PagedItems(api, count=30)
    server.fail_on = 4
    with pytest.raises(HttpError, match="400"):
        sync(db, "items", items_sync(api.url), run_id="run-1", try_number=1)
    assert sorted(map(int, rows(db))) == list(range(1, 16))
    server.fail_on, server.served = None, []

    counts = sync(db, "items", items_sync(api.url), run_id="run-1", try_number=2)

    assert server.served == [4, 5, 6]
    assert counts == {"pages": 6, "fetched": 30, "added": 30, "updated": 0, "unchanged": 0, "deleted": 0}
    assert sorted(map(int, rows(db))) == list(range(1, 31))
    failed, succeeded = jobs(db)
    assert (failed["status"], failed["pages"], failed["try_number"]) == ("failed", 3, 1)
    assert (succeeded["status"], succeeded["resumed_from_page"], succeeded["try_number"]) == ("success", 4, 2)
    assert succeeded["fetched"] == 30


def test_resume_keeps_deletion_detection_exact(db: str, api: FixtureServer) -> None:
    server = PagedItems(api, count=20)
    sync(db, "items", items_sync(api.url), run_id="run-1")
    server.pages = paged([{"id": i, "name": f"item {i}"} for i in range(1, 20)], 5)  # id 20 is gone upstream
    server.fail_on = 3
    with pytest.raises(HttpError):
        sync(db, "items", items_sync(api.url), run_id="run-2", try_number=1)
    assert all(row["deleted_at"] is None for row in rows(db).values())  # an unfinished run marks nothing gone
    server.fail_on = None
    counts = sync(db, "items", items_sync(api.url), run_id="run-2", try_number=2)
    assert counts["deleted"] == 1 and counts["unchanged"] == 19
    assert [key for key, row in rows(db).items() if row["deleted_at"] is not None] == ["20"]


def test_full_refresh_ignores_the_checkpoint(db: str, api: FixtureServer) -> None:
    server = PagedItems(api, count=15)
    server.fail_on = 2
    with pytest.raises(HttpError):
        sync(db, "items", items_sync(api.url), run_id="run-1")
    server.fail_on, server.served = None, []
    counts = sync(db, "items", items_sync(api.url), run_id="run-1", try_number=2, full_refresh=True)
    assert server.served == [1, 2, 3]
    assert counts == {"pages": 3, "fetched": 15, "added": 10, "updated": 0, "unchanged": 5, "deleted": 0}


def test_postgres_dropping_the_connection_fails_clearly_and_the_retry_completes(db: str, api: FixtureServer) -> None:
    server = PagedItems(api, count=25)

    def kill_sync_connections() -> None:
        with psycopg.connect(db, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )

    server.on_page[3] = kill_sync_connections
    with pytest.raises(StoreError) as error:
        sync(db, "items", items_sync(api.url), run_id="run-1", try_number=1)
    assert "lost the connection to Postgres while writing page" in str(error.value), repr(error.value.__cause__)
    written = len(rows(db))
    # Whole pages only. Fetching runs several pages ahead of writing, so the writer may not have committed any.
    assert written in (0, 5, 10, 15), written
    counts = sync(db, "items", items_sync(api.url), run_id="run-1", try_number=2)
    assert counts["fetched"] == 25 and counts["added"] == 25 and counts["pages"] == 5
    assert sorted(map(int, rows(db))) == list(range(1, 26))
    assert [job["status"] for job in jobs(db)] == ["failed", "success"]


def test_two_runs_on_one_table_never_interleave(db: str, api: FixtureServer) -> None:
    server = PagedItems(api, count=20)
    server.delay = 0.05
    results: dict[str, dict[str, int]] = {}

    def run(run_id: str) -> None:
        results[run_id] = sync(db, "items", items_sync(api.url), run_id=run_id)

    first = threading.Thread(target=run, args=("scheduled",))
    second = threading.Thread(target=run, args=("manual",))
    first.start()
    time.sleep(0.1)
    second.start()
    first.join(30)
    second.join(30)
    assert results["scheduled"]["added"] == 20
    assert results["manual"] == {"pages": 4, "fetched": 20, "added": 0, "updated": 0, "unchanged": 20, "deleted": 0}
    one, two = jobs(db)
    assert one["run_id"] == "scheduled" and two["started_at"] >= one["ended_at"]


def test_secrets_never_reach_the_jobs_table(db: str, api: FixtureServer) -> None:
    def echo(request: Request) -> Reply:
        return Reply(401, {"error": "bad token", "echo": request.headers.get("Authorization")})

    api.route("GET", "/secret", echo)
    with pytest.raises(HttpError) as error:
        sync(
            db,
            "items",
            {"url": f"{api.url}/secret?api_key=key-123456", "headers": {"Authorization": "Bearer tok-abcdef"}},
        )
    assert "401" in str(error.value) and "tok-abcdef" not in str(error.value)  # the API echoed it back
    stored = jobs(db)[-1]["error"]
    assert "401" in stored and "tok-abcdef" not in stored and "key-123456" not in stored


def test_checkpoints_hold_no_secret_and_the_resume_still_authenticates(db: str, api: FixtureServer) -> None:
    server = PagedItems(api, count=15)
    keys: list[str | None] = []
    original = server.handle

    def checked(request: Request) -> Reply:
        keys.append(request.query.get("api_key"))
        return original(request)

    api.route("GET", "/items", checked)
    server.fail_on = 2
    with pytest.raises(HttpError):
        sync(db, "items", items_sync(api.url, query_params={"api_key": "key-7890abc"}))
    with psycopg.connect(db) as conn:
        saved = conn.execute("SELECT next_request::text FROM nango._nango_checkpoints").fetchall()
    assert saved == [('{"cursor": 2}',)]
    server.fail_on = None
    counts = sync(db, "items", items_sync(api.url, query_params={"api_key": "key-7890abc"}), try_number=2)
    assert counts["fetched"] == 15 and set(keys) == {"key-7890abc"}


def test_a_flaky_api_syncs_completely_inside_one_run(db: str, api: FixtureServer) -> None:
    server = PagedItems(api, count=30)
    faults = {2: Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}), 3: Reply(503), 4: Reply(drop=True)}
    served_faults: list[int] = []

    def flaky(request: Request) -> Reply:
        number = int(request.query.get("page", "1"))
        if number in faults:
            served_faults.append(number)
            return faults.pop(number)
        return server.handle(request)

    api.route("GET", "/items", flaky)
    counts = sync(db, "items", items_sync(api.url))
    assert served_faults == [2, 3, 4]
    assert counts == {"pages": 6, "fetched": 30, "added": 30, "updated": 0, "unchanged": 0, "deleted": 0}
    assert sorted(map(int, rows(db))) == list(range(1, 31))
    assert [job["status"] for job in jobs(db)] == ["success"]


def test_an_endless_cursor_and_an_html_answer_fail_with_clear_errors_in_the_jobs_table(
    db: str, api: FixtureServer
) -> None:
    api.route("GET", "/forever", lambda request: Reply(json={"results": [{"id": 1}], "next_page": "same"}))
    api.route(
        "GET", "/html", lambda request: Reply(body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"})
    )
    started = time.monotonic()
    with pytest.raises(PaginationError, match="'same'"):
        sync(db, "forever", items_sync(api.url, url=f"{api.url}/forever", table="nango.forever"))
    assert time.monotonic() - started < 5
    with pytest.raises(ResponseError, match="not JSON"):
        sync(db, "html", items_sync(api.url, url=f"{api.url}/html", table="nango.html"))
    errors = [job["error"] for job in jobs(db)]
    assert "cursor 'same'" in errors[0] and "not JSON" in errors[1] and "text/html" in errors[1]


@pytest.mark.parametrize("unique_key", ["id", None])
@pytest.mark.parametrize(
    "reply",
    [Reply(204, body=b""), Reply(json=None), Reply(json={"results": None}), Reply(json=[])],
    ids=["204", "null-document", "null-at-response-path", "empty-list"],
)
def test_a_sync_of_an_empty_collection_succeeds_with_zero_rows(
    db: str, api: FixtureServer, reply: Reply, unique_key: str | None
) -> None:
    api.route("GET", "/items", lambda request: reply)

    counts = sync(db, "items", items_sync(api.url, unique_key=unique_key))

    assert counts == {"pages": 1, "fetched": 0, "added": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    assert rows(db) == {}
    assert [(job["status"], job["error"]) for job in jobs(db)] == [("success", None)]
