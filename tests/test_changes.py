"""The change feed against a real Postgres: each run's window returns exactly the rows it added, updated, revived
or marked deleted, and none of another run's."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from nango_provider.changes import changed_rows
from nango_provider.definition import SyncDefinition
from nango_provider.engine import RunOutcome, execute_sync
from nango_provider.hooks.nango import NangoHook
from nango_provider.store.postgres import PostgresStore, RunIdentity
from tests.fixture_server import FixtureServer
from tests.helpers import items_sync
from tests.test_store import items, serve

pytestmark = pytest.mark.integration


def run(db: str, fields: dict[str, Any], run_id: str) -> RunOutcome:
    definition = SyncDefinition.from_mapping("items", fields)
    store = PostgresStore(lambda: psycopg.connect(db), definition)
    identity = RunIdentity("items", "nango_sync_items", "sync", run_id)
    return execute_sync(NangoHook(sleep=lambda _: None), store, definition, identity, log=lambda _: None)


def changes(db: str, outcome: RunOutcome) -> dict[str, str]:
    with psycopg.connect(db) as conn:
        return {row.key: row.change for row in changed_rows(conn, "nango.items", outcome.started_at, outcome.ended_at)}


def test_each_run_window_returns_the_rows_it_changed(db: str, api: FixtureServer) -> None:
    serve(api, items(5))
    first = run(db, items_sync(api.url), "run-1")
    assert changes(db, first) == dict.fromkeys(["1", "2", "3", "4", "5"], "added")
    serve(api, [record for record in items(6, **{"2": {"name": "renamed"}}) if record["id"] != 4])
    second = run(db, items_sync(api.url), "run-2")
    assert changes(db, second) == {"2": "updated", "4": "deleted", "6": "added"}
    # An older window shows the rows as they are now: updated again since means gone from it (a later update
    # moved _nango_updated_at), marked deleted since does not (the mark leaves _nango_updated_at alone).
    assert changes(db, first) == {"1": "added", "3": "added", "4": "added", "5": "added"}
    serve(api, items(6, **{"2": {"name": "renamed"}}))
    third = run(db, items_sync(api.url), "run-3")
    assert changes(db, third) == {"4": "updated"}  # back after its deletion
    assert second.counts["deleted"] == 1 and third.counts["updated"] == 1


def test_the_window_in_the_event_extra_is_iso_text_that_the_helper_reads(db: str, api: FixtureServer) -> None:
    serve(api, items(3))
    outcome = run(db, items_sync(api.url), "run-1")
    extra = outcome.event_extra("items", "nango.items", "soft")
    assert extra["counts"]["added"] == 3 and extra["job_id"] == outcome.job_id
    with psycopg.connect(db) as conn:
        found = list(changed_rows(conn, "nango.items", extra["started_at"], extra["ended_at"]))
    assert [(row.key, row.change, row.data) for row in found] == [
        (str(i), "added", {"id": i, "name": f"item {i}"}) for i in (1, 2, 3)
    ]


def test_hard_deleted_rows_are_gone_from_the_feed_but_counted(db: str, api: FixtureServer) -> None:
    serve(api, items(3))
    run(db, items_sync(api.url, deletes="hard"), "run-1")
    serve(api, items(2))
    outcome = run(db, items_sync(api.url, deletes="hard"), "run-2")
    assert changes(db, outcome) == {} and outcome.counts["deleted"] == 1
