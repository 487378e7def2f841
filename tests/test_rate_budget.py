"""Integration tests of ``max_requests_per_second`` against the loopback server and a real Postgres: the rate holds
across pages, across parallel fetches and across two processes sharing one credential, and a ``Retry-After``
holds the budget off.

The server records when each request arrives. Only lower bounds are asserted (what a rate limiter guarantees):
without the budget, every run here takes a small fraction of the time asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nango_provider.budget import budget_key
from nango_provider.hooks.nango import NangoHook
from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import sync

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
PAGE = 5
TOTAL = 40  # 8 pages
TOKEN = "Bearer rate-budget-secret"
SLACK = 0.8
"""Part of the budget's minimum time the tests ask for: a request held up on a loaded machine arrives late, which
can only shorten the gap to the next one by that much."""


class Jira:
    """An offset endpoint with a total that notes when each request arrives (and may answer 429 once)."""

    def __init__(self, api: FixtureServer, path: str = "/search", too_many_at: int | None = None, wait: str = "1"):
        self.arrivals: list[float] = []
        self.refused_at: float | None = None
        self._too_many_at = too_many_at
        self._wait = wait
        self._lock = threading.Lock()
        api.route("GET", path, self)

    def __call__(self, request: Request) -> Reply:
        start = int(request.query["startAt"])
        with self._lock:
            now = time.monotonic()
            self.arrivals.append(now)
            if start == self._too_many_at and self.refused_at is None:
                self.refused_at = now
                return Reply(429, {"message": "slow down"}, headers={"Retry-After": self._wait})
        records = [{"id": n} for n in range(start, min(start + PAGE, TOTAL))]
        return Reply(json={"total": TOTAL, "issues": records})


def fields(
    api: FixtureServer, rate: float, *, table: str, concurrency: int = 1, path: str = "/search"
) -> dict[str, Any]:
    return {
        "url": f"{api.url}{path}",
        "headers": {"Authorization": TOKEN},
        "response_path": "issues",
        "unique_key": "id",
        "table": table,
        "max_requests_per_second": rate,
        "paging": {
            "type": "offset",
            "offset_name_in_request": "startAt",
            "offset_calculation_method": "by-limit",
            "limit_name_in_request": "maxResults",
            "limit": PAGE,
            "total_path_in_response": "total",
            "concurrency": concurrency,
        },
    }


def span(arrivals: list[float]) -> float:
    return max(arrivals) - min(arrivals)


def test_the_rate_holds_across_pages(api: FixtureServer, db: str) -> None:
    server = Jira(api)
    counts = sync(db, "budgeted", fields(api, 10, table="test_budget.items"))
    assert counts["fetched"] == TOTAL and counts["pages"] == 8
    assert span(server.arrivals) >= 7 * 0.1 * SLACK, server.arrivals


def test_the_rate_holds_across_parallel_fetches(api: FixtureServer, db: str) -> None:
    server = Jira(api)
    counts = sync(db, "budgeted", fields(api, 20, table="test_budget.items", concurrency=4))
    assert counts["fetched"] == TOTAL and counts["added"] == TOTAL
    arrivals = sorted(server.arrivals)
    assert len(arrivals) == 8
    assert span(arrivals) >= 7 * 0.05 * SLACK, arrivals
    for first in range(len(arrivals) - 4):  # no four requests in less than three slots
        assert arrivals[first + 3] - arrivals[first] >= 3 * 0.05 * SLACK, arrivals


def test_a_retry_after_holds_the_budget_off(api: FixtureServer, db: str) -> None:
    """The hook itself does not wait here (the helper's hook sleeps for nothing): only the budget does."""
    server = Jira(api, too_many_at=2 * PAGE, wait="1")
    counts = sync(db, "budgeted", fields(api, 50, table="test_budget.items"))
    assert counts["fetched"] == TOTAL and len(server.arrivals) == 9
    assert server.refused_at is not None
    after = [arrival for arrival in server.arrivals if arrival > server.refused_at]
    assert after and min(after) - server.refused_at >= 0.9, (server.refused_at, after)


_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import psycopg
    from nango_provider.definition import SyncDefinition
    from nango_provider.engine import run_sync
    from nango_provider.hooks.nango import NangoHook
    from nango_provider.store.postgres import PostgresStore, RunIdentity

    params = json.loads(sys.argv[1])
    definition = SyncDefinition.from_mapping(params["name"], params["fields"])
    store = PostgresStore(lambda: psycopg.connect(params["db"]), definition)
    run = RunIdentity(definition.name, definition.dag_id, "sync", "run-1")
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))  # both processes start together
    counts = run_sync(NangoHook(), store, definition, run, log=lambda _: None)
    print(json.dumps(counts))
    """
)


def test_two_processes_with_one_credential_share_the_budget(api: FixtureServer, db: str) -> None:
    first, second = Jira(api, "/one"), Jira(api, "/two")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(params)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for params in (
            {"name": "one", "db": db, "fields": fields(api, 10, table="test_budget.one", path="/one")},
            {"name": "two", "db": db, "fields": fields(api, 10, table="test_budget.two", path="/two")},
        )
    ]
    assert [child.stdout.readline() if child.stdout else "" for child in children] == ["ready\n", "ready\n"]
    start_at = time.time() + 0.3  # both have imported everything: they start together
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start_at}\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert [json.loads(output)["fetched"] for output in outputs] == [TOTAL, TOTAL]
    both = sorted(first.arrivals + second.arrivals)
    # alone, each process needs 0.7 s for its 8 requests; sharing one budget, the 16 need 1.5 s
    assert span(both) >= 15 * 0.1 * SLACK, both
    assert min(second.arrivals) < max(first.arrivals) and min(first.arrivals) < max(second.arrivals)


def test_the_budget_key_is_the_host_and_the_credential_hashed() -> None:
    from nango_provider.definition import SyncDefinition

    def key(url: str, token: str) -> str:
        definition = SyncDefinition.from_mapping("s", {"url": url, "headers": {"Authorization": token}})
        return NangoHook().budget_key(definition)

    assert key("https://api.example.com/a", TOKEN) == key("https://api.example.com/b?x=1", TOKEN)
    assert key("https://api.example.com/a", TOKEN) != key("https://api.example.com/a", "Bearer another")
    assert key("https://api.example.com/a", TOKEN) != key("https://other.example.com/a", TOKEN)
    assert "rate-budget-secret" not in key("https://api.example.com/a", TOKEN)
    assert budget_key("h", ["a", "b"]) == budget_key("h", ["b", "a"])
