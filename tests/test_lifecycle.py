"""Every run ends, against the real HTTP server and Postgres: a cancelled run stops at once and says
``cancelled`` wherever it waits (a long ``Retry-After``, the table's lock, a slow statement); a run whose process
was killed is closed as ``abandoned`` by the next run of its table, and a live one never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from nango_provider.definition import SyncDefinition
from nango_provider.engine import Cancellation
from nango_provider.exceptions import SyncCancelled
from nango_provider.hooks.nango import NangoHook
from nango_provider.store.jobs import ABANDONED_MESSAGE
from nango_provider.streaming import Prefetcher
from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import items_sync, jobs, rows, sync

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Items:
    """Page 1 (five items) at once; page 2 as ``page_two`` says (a stall until released, or a reply)."""

    def __init__(self, api: FixtureServer, page_two: Reply | None = None) -> None:
        self.url = api.url
        self.release = threading.Event()
        self.page_two = page_two
        self.asked_for_page_two = threading.Event()
        api.route("GET", "/items", self.handle)

    def handle(self, request: Request) -> Reply:
        if request.query.get("page", "1") == "1":
            return Reply(json={"results": [{"id": i} for i in range(1, 6)], "next_page": 2})
        self.asked_for_page_two.set()
        if self.page_two is not None:
            return self.page_two
        self.release.wait(60)
        return Reply(json={"results": [{"id": 6}], "next_page": None})


@pytest.fixture
def items(api: FixtureServer) -> Iterator[Items]:
    server = Items(api)
    yield server
    server.release.set()


def cancel_when(
    condition: Callable[[], bool], cancellation: Cancellation, reason: str = "test", *, after: float = 0.0
) -> threading.Thread:
    """Cancel from another thread ``after`` seconds once ``condition`` holds (as Airflow's SIGTERM handler would)."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(after)
        cancellation.cancel(reason)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def fetch_threads() -> set[threading.Thread]:
    """The fetch threads alive now."""
    return {thread for thread in threading.enumerate() if thread.name == "nango-prefetch" and thread.is_alive()}


def timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


# -- the fetch thread never delays a shutdown --------------------------------------------------------------


def test_closing_the_prefetcher_while_the_fetch_waits_out_a_long_retry_after_returns_at_once(
    api: FixtureServer,
) -> None:
    api.route("GET", "/items", lambda request: Reply(429, {}, headers={"Retry-After": "3600"}))
    definition = SyncDefinition.from_mapping(
        "items", {**items_sync(api.url), "request_retry_max_seconds": 7200, "request_retries": 3}
    )
    stop = threading.Event()
    before = fetch_threads()
    prefetcher = Prefetcher(NangoHook().pages(definition, stop=stop), stop=stop)
    pages = iter(prefetcher)
    waiting = threading.Thread(target=lambda: next(pages, None), daemon=True)
    waiting.start()
    deadline = time.monotonic() + 10
    while not api.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # the fetch thread is now waiting out the Retry-After

    assert timed(prefetcher.close) < 1.0
    assert fetch_threads() <= before  # the fetch thread ended: its wait was cut short, not abandoned
    assert len(api.requests) == 1


# -- cancelled runs ----------------------------------------------------------------------------------------


def test_a_run_cancelled_while_waiting_out_a_retry_after_ends_as_cancelled_and_resumes(
    db: str, api: FixtureServer
) -> None:
    server = Items(api, page_two=Reply(429, {}, headers={"Retry-After": "200"}))
    cancellation = Cancellation()
    cancel_when(server.asked_for_page_two.is_set, cancellation, "the task was told to terminate", after=0.3)

    started, before = time.monotonic(), fetch_threads()
    with pytest.raises(SyncCancelled, match="told to terminate"):
        sync(db, "items", items_sync(api.url), cancellation=cancellation, hook=NangoHook(), try_number=1)
    assert time.monotonic() - started < 5
    assert len([request for request in api.requests if request.query.get("page") == "2"]) == 1  # one wait, cut
    assert fetch_threads() <= before

    (job,) = jobs(db)
    assert (job["status"], job["pages"], job["error"]) == ("cancelled", 1, "cancelled: the task was told to terminate")
    assert job["ended_at"] is not None
    assert sorted(map(int, rows(db))) == [1, 2, 3, 4, 5]
    server.page_two = Reply(json={"results": [{"id": 6}], "next_page": None})
    counts = sync(db, "items", items_sync(api.url), try_number=2)  # clearing the task resumes after page 1
    assert (counts["pages"], counts["fetched"]) == (2, 6)
    assert [job["status"] for job in jobs(db)] == ["cancelled", "success"]


def test_a_run_cancelled_while_waiting_for_the_tables_lock_ends_as_cancelled(db: str, items: Items) -> None:
    items.release.set()
    sync(db, "items", items_sync(items.url), run_id="run-1")  # creates the bookkeeping tables
    cancellation = Cancellation()
    with psycopg.connect(db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtextextended('nango:nango.items', 0))")
        asked_at = time.monotonic() + 1.5  # the run is waiting for the lock by then
        cancel_when(lambda: time.monotonic() > asked_at, cancellation, "asked to stop")
        with pytest.raises(SyncCancelled):
            sync(db, "items", items_sync(items.url), run_id="run-2", cancellation=cancellation)
        assert 0 < time.monotonic() - asked_at < 1.5
    statuses = [(job["run_id"], job["status"], job["error"]) for job in jobs(db)]
    assert statuses == [("run-1", "success", None), ("run-2", "cancelled", "cancelled: asked to stop")]


def test_a_run_cancelled_during_a_slow_statement_stops_it_and_ends_as_cancelled(db: str, api: FixtureServer) -> None:
    Items(api, page_two=Reply(json={"results": [], "next_page": None}))
    with psycopg.connect(db, autocommit=True) as conn:  # the table, with a trigger that makes every write slow
        conn.execute("CREATE SCHEMA IF NOT EXISTS nango")
        conn.execute(
            """CREATE TABLE nango.items (_nango_unique_key text PRIMARY KEY, _nango_data jsonb NOT NULL,
                   _nango_hash text NOT NULL, _nango_first_seen_at timestamptz NOT NULL DEFAULT now(),
                   _nango_updated_at timestamptz NOT NULL DEFAULT now(),
                   _nango_last_seen_at timestamptz NOT NULL DEFAULT now(), _nango_deleted_at timestamptz)"""
        )
        conn.execute(
            "CREATE FUNCTION nango.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(60); "
            "RETURN NEW; END $$"
        )
        conn.execute("CREATE TRIGGER slow BEFORE INSERT ON nango.items FOR EACH ROW EXECUTE FUNCTION nango.slow()")
    cancellation = Cancellation()
    cancel_when(lambda: _sleeping_in_postgres(db), cancellation)

    started = time.monotonic()
    with pytest.raises(SyncCancelled):
        sync(db, "items", items_sync(api.url), cancellation=cancellation)
    assert time.monotonic() - started < 10

    (job,) = jobs(db)
    assert (job["status"], job["pages"]) == ("cancelled", 0)
    assert rows(db) == {}
    assert not _sleeping_in_postgres(db)


def _sleeping_in_postgres(db: str) -> bool:
    """Whether some session is inside ``pg_sleep`` (the slow trigger)."""
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'").fetchone()
    return bool(row and row[0])


# -- abandoned runs ----------------------------------------------------------------------------------------


def insert_running_job(db: str, table: str = "nango.items", run_id: str = "dead-run") -> None:
    """A job row left ``running`` by a task whose session is gone (it holds no lock)."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO nango._nango_jobs (sync_name, dag_id, task_id, run_id, try_number, target_table, status)
               VALUES ('items', 'nango_sync_items', 'sync', %s, 1, %s, 'running')""",
            (run_id, table),
        )


def test_the_next_run_closes_a_running_row_whose_session_is_gone_as_abandoned(db: str, items: Items) -> None:
    items.release.set()
    url = items.url
    sync(db, "items", items_sync(url), run_id="run-1")
    insert_running_job(db)
    insert_running_job(db, table="nango.other", run_id="other-table")

    sync(db, "items", items_sync(url), run_id="run-2")

    by_run = {job["run_id"]: job for job in jobs(db)}
    assert by_run["dead-run"]["status"] == "abandoned"
    assert by_run["dead-run"]["error"] == ABANDONED_MESSAGE and by_run["dead-run"]["ended_at"] is not None
    assert by_run["other-table"]["status"] == "running"  # another table's run: not this run's to judge
    assert (by_run["run-1"]["status"], by_run["run-2"]["status"]) == ("success", "success")


def test_a_live_run_is_never_abandoned_by_a_run_waiting_for_the_table(db: str, items: Items) -> None:
    url = items.url
    results: dict[str, Any] = {}

    def run(run_id: str) -> None:
        try:
            results[run_id] = sync(db, "items", items_sync(url), run_id=run_id)
        except BaseException as error:  # reported by the assertions below
            results[run_id] = error

    first = threading.Thread(target=run, args=("run-1",))
    first.start()
    assert items.asked_for_page_two.wait(10)
    second = threading.Thread(target=run, args=("run-2",))
    second.start()
    time.sleep(2.5)  # the second run polls the lock twice meanwhile
    assert [(job["run_id"], job["status"]) for job in jobs(db)] == [("run-1", "running")]
    items.release.set()
    first.join(30)
    second.join(30)

    assert [(job["run_id"], job["status"]) for job in jobs(db)] == [("run-1", "success"), ("run-2", "success")]
    assert all(isinstance(result, dict) for result in results.values()), results


_KILLED_RUN = """
import sys
from tests.helpers import items_sync, sync
sync(sys.argv[1], "items", items_sync(sys.argv[2]), run_id="killed-run")
"""


def test_a_run_killed_with_sigkill_is_closed_as_abandoned_by_the_next_run(db: str, items: Items) -> None:
    url = items.url
    process = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, db, url], cwd=ROOT)
    try:
        assert items.asked_for_page_two.wait(30), "the run never reached page 2"
        # page 2 is asked for as soon as page 1 has arrived, before page 1 is written: wait for its commit
        deadline = time.monotonic() + 30
        while jobs(db)[0]["pages"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(job["run_id"], job["status"], job["pages"]) for job in jobs(db)] == [("killed-run", "running", 1)]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    items.release.set()

    sync(db, "items", items_sync(url), run_id="next-run")

    killed, following = jobs(db)
    assert (killed["run_id"], killed["status"], killed["pages"]) == ("killed-run", "abandoned", 1)
    assert (following["run_id"], following["status"]) == ("next-run", "success")
