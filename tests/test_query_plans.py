"""What the statements of a sync cost Postgres to plan, on a stock server (Debian's PostgreSQL, JIT on).

Every page of a sync is a handful of statements; if one of them is JIT-compiled (which Postgres does when a
plan's estimated cost passes ``jit_above_cost``) or takes long to plan, every page pays it again: 100 ms of
JIT compilation for an 8 ms statement makes a re-sync ten times slower. The embedded Postgres has no JIT,
so these tests run on the stock server and read, from ``pg_stat_statements``, every statement the sync sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from nango_provider.definition import SyncDefinition
from nango_provider.engine import run_sync
from nango_provider.hooks.nango import NangoHook
from nango_provider.store.postgres import PostgresStore, RunIdentity
from tests.fixture_server import FixtureServer, Reply, Request, paged
from tests.helpers import items_sync

pytestmark = pytest.mark.integration

RECORDS = 4000
PAGE_SIZE = 500
PAGES = RECORDS // PAGE_SIZE
MAX_MEAN_PLANNING_MS = 5.0
# A server configured to JIT-compile every statement, whatever its cost: only the store's own guard keeps
# the sync's statements from being compiled.
JIT_EVERYTHING = "-c jit_above_cost=0 -c jit_inline_above_cost=0 -c jit_optimize_above_cost=0"


@dataclass(frozen=True)
class Statement:
    """One normalized statement of ``pg_stat_statements``: calls, planning time and JIT work."""

    query: str
    calls: int
    mean_plan_ms: float
    jit_functions: int
    jit_ms: float


@pytest.fixture
def stock_db(stock_postgres_uri: str) -> str:
    """The stock server with no ``nango`` or test schemas and ``pg_stat_statements`` available."""
    with psycopg.connect(stock_postgres_uri, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = 'nango' OR nspname LIKE 'test\\_%'"
        ).fetchall()
        for (schema,) in schemas:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return stock_postgres_uri


def contacts(count: int, changed: int = 0) -> list[dict[str, Any]]:
    """``count`` records shaped like an API's contacts; the first ``changed`` have a new e-mail address."""
    return [
        {
            "id": index,
            "properties": {
                "email": f"{'new-' if index < changed else ''}person{index}@example.com",
                "firstname": f"First {index}",
                "lastname": f"Last {index}",
                "company": f"Company {index % 97}",
            },
            "archived": False,
        }
        for index in range(count)
    ]


def serve(api: FixtureServer, records: list[Any]) -> None:
    """``records`` in pages of ``PAGE_SIZE`` with a page-number cursor."""
    pages = paged(records, PAGE_SIZE)

    def handler(request: Request) -> Reply:
        number = int(request.query.get("page", "1"))
        following = number + 1 if number < len(pages) else None
        return Reply(json={"results": pages[number - 1], "next_page": following})

    api.route("GET", "/items", handler)


def run(uri: str, api: FixtureServer, run_id: str, options: str) -> dict[str, int]:
    """One run of the ``items`` sync over connections opened with ``options``."""
    definition = SyncDefinition.from_mapping("items", items_sync(api.url))
    store = PostgresStore(lambda: psycopg.connect(uri, options=options), definition)
    identity = RunIdentity("items", "nango_sync_items", "sync", run_id)
    return run_sync(NangoHook(sleep=lambda _: None), store, definition, identity, log=lambda _: None)


def statements_sent_by(uri: str, action: Callable[[], dict[str, int]]) -> tuple[dict[str, int], list[Statement]]:
    """Run ``action`` and return its result and every statement sent meanwhile, from ``pg_stat_statements``."""
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        result = action()
        rows = conn.execute(
            """SELECT query, calls, CASE WHEN plans > 0 THEN total_plan_time / plans ELSE 0 END, jit_functions,
                      jit_generation_time + jit_inlining_time + jit_optimization_time + jit_emission_time
               FROM pg_stat_statements
               WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND query NOT LIKE '%pg_stat_statements%'"""
        ).fetchall()
    return result, [Statement(*row) for row in rows]


def _short(query: str) -> str:
    return " ".join(query.split())[:400]


def jit_compiled(statements: list[Statement]) -> list[str]:
    return [
        f"{s.jit_functions} functions JIT-compiled in {s.jit_ms:.0f} ms over {s.calls} calls: {_short(s.query)}"
        for s in statements
        if s.jit_functions > 0
    ]


def slow_to_plan(statements: list[Statement]) -> list[str]:
    return [
        f"{s.mean_plan_ms:.1f} ms planning per call over {s.calls} calls: {_short(s.query)}"
        for s in statements
        if s.mean_plan_ms > MAX_MEAN_PLANNING_MS
    ]


def assert_cheap_to_plan(statements: list[Statement]) -> None:
    assert statements, "pg_stat_statements saw no statement of the sync"
    problems = jit_compiled(statements) + slow_to_plan(statements)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("options", ["", JIT_EVERYTHING], ids=["default-config", "jit-for-every-statement"])
def test_no_statement_of_a_sync_is_jit_compiled_or_slow_to_plan(
    stock_db: str, api: FixtureServer, options: str
) -> None:
    serve(api, contacts(RECORDS))
    counts, initial = statements_sent_by(stock_db, lambda: run(stock_db, api, "initial", options))
    assert counts["added"] == RECORDS and counts["pages"] == PAGES
    assert_cheap_to_plan(initial)
    # New rows of an initial sync go straight into the table by COPY: no stage, no INSERT .. ON CONFLICT.
    assert [s.calls for s in initial if s.query.startswith('COPY "nango"."items"')] == [PAGES]
    assert not [s for s in initial if "ON CONFLICT (_nango_unique_key)" in s.query]

    counts, unchanged = statements_sent_by(stock_db, lambda: run(stock_db, api, "unchanged", options))
    assert counts["unchanged"] == RECORDS and counts["added"] == counts["updated"] == 0
    assert_cheap_to_plan(unchanged)
    assert max(s.calls for s in unchanged) >= PAGES  # the per-page statements are among those checked

    serve(api, contacts(RECORDS - 10, changed=RECORDS // 100))  # 1% changed, the last 10 gone
    counts, changed = statements_sent_by(stock_db, lambda: run(stock_db, api, "changed", options))
    assert counts["updated"] == RECORDS // 100 and counts["deleted"] == 10
    assert_cheap_to_plan(changed)
