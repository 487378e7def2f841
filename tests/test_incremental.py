"""Incremental syncs: the ``incremental:`` field, how marks compare and move, and runs against the demo API's
``updated_since`` filter in a real Postgres (first run full, later runs only the changes, a failed or cut run
never moves the mark, only a complete full run marks deletions)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from devtools.demo_api import DemoApi
from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import HttpError, SyncDefinitionError, SyncRunError
from nango_provider.incremental import Incremental, highest, page_high, value_to_send
from nango_provider.pagination import first_request, request_from_checkpoint
from nango_provider.paths import compile_path
from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import jobs, rows, sync

URL = "https://api.example.com/v1/items"


def build(incremental: Any, **fields: Any) -> SyncDefinition:
    return SyncDefinition.from_mapping("demo", {"url": URL, "unique_key": "id", "incremental": incremental, **fields})


# --- the field ----------------------------------------------------------------------------------------------


def test_every_incremental_field_is_read() -> None:
    definition = build(
        {"record_field": "meta.updated_at", "request_name": "since", "lookback": "5m", "initial_value": 0}
    )
    assert definition.incremental == Incremental("meta.updated_at", "since", timedelta(minutes=5), 0)
    assert definition.redacted()["incremental"] == {
        "record_field": "meta.updated_at",
        "request_name": "since",
        "lookback": "0:05:00",
        "initial_value": 0,
    }


@pytest.mark.parametrize(
    ("incremental", "fields", "field", "message"),
    [
        ("updated_at", {}, "incremental", "expected a mapping such as {record_field: updated_at, ...}, got str"),
        ({"request_name": "since"}, {}, "incremental.record_field", "is required"),
        ({"record_field": "u"}, {}, "incremental.request_name", "is required"),
        (
            {"record_field": "$.u", "request_name": "s"},
            {},
            "incremental.record_field",
            "expected a dot path such as 'updated_at', got '$.u'",
        ),
        (
            {"record_field": "u", "request_name": "s", "lookbak": "5m"},
            {},
            "incremental.lookbak",
            "unknown incremental field; did you mean 'lookback'?",
        ),
        (
            {"record_field": "u", "request_name": "s", "lookback": "soon"},
            {},
            "incremental.lookback",
            "expected a duration such as '10m', '1h' or '2 days' (at most 36600 days), got 'soon'",
        ),
        (
            {"record_field": "u", "request_name": "s", "initial_value": [1]},
            {},
            "incremental.initial_value",
            "expected a string or a number, got list",
        ),
        ({"record_field": "u", "request_name": "s"}, {"unique_key": None}, "incremental", "needs unique_key"),
        (
            {"record_field": "u", "request_name": "s"},
            {"query_params": {"s": 1}},
            "query_params",
            "'s' is also incremental.request_name: set it in one place",
        ),
    ],
)
def test_refused_incremental(incremental: Any, fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(SyncDefinitionError) as info:
        build(incremental, **fields)
    assert info.value.field == field
    assert message in str(info.value)


def test_the_value_goes_into_the_first_request_and_every_resumed_one() -> None:
    definition = build(
        {"record_field": "updated_at", "request_name": "filter.since"},
        method="POST",
        body={"filter": {"open": True}},
        paging_request_path="cursor",
        paging_response_path="next",
    )
    first = first_request(definition, "2025-01-01T00:00:00Z")
    assert first.body == {"filter": {"open": True, "since": "2025-01-01T00:00:00Z"}}
    assert first_request(definition).body == {"filter": {"open": True}}
    resumed = request_from_checkpoint(definition, {"cursor": "c2"}, "2025-01-01T00:00:00Z")
    assert resumed.body == {"filter": {"open": True, "since": "2025-01-01T00:00:00Z"}, "cursor": "c2"}


# --- marks --------------------------------------------------------------------------------------------------


def test_timestamps_compare_by_instant_not_by_text() -> None:
    assert highest(["2025-01-01T00:00:00Z", "2025-01-01T00:00:00.500Z", None]) == "2025-01-01T00:00:00.500Z"
    assert highest(["2025-01-01T01:00:00+01:00", "2025-01-01T00:30:00Z"]) == "2025-01-01T00:30:00Z"
    assert highest([3, 20, 7.5]) == 20
    assert highest([None, None]) is None


def test_the_highest_value_of_a_page_skips_records_without_it() -> None:
    records = [{"u": "2024-05-01T00:00:00Z"}, {"x": 1}, {"u": None}, {"u": "2024-06-01T00:00:00Z"}, "text"]
    assert page_high(records, compile_path("u"), "demo", 1) == "2024-06-01T00:00:00Z"
    with pytest.raises(SyncRunError, match=r"page 2, record 1: incremental.record_field 'u' holds dict"):
        page_high([{"u": {"a": 1}}], compile_path("u"), "demo", 2)


@pytest.mark.parametrize(
    ("mark", "lookback", "sent"),
    [
        (None, None, None),
        ("2025-01-01T00:10:00.000Z", None, "2025-01-01T00:10:00.000Z"),
        ("2025-01-01T00:10:00.000Z", timedelta(minutes=15), "2024-12-31T23:55:00Z"),
        ("2025-01-01T00:10:00+02:00", timedelta(minutes=10), "2025-01-01T00:00:00+02:00"),
        (1_735_689_600, timedelta(minutes=1), 1_735_689_540),
    ],
)
def test_the_value_sent_is_the_mark_less_the_lookback(mark: Any, lookback: timedelta | None, sent: Any) -> None:
    assert value_to_send(Incremental("u", "s", lookback), mark, "demo") == sent


def test_a_lookback_needs_a_timestamp_or_number_mark() -> None:
    with pytest.raises(SyncRunError, match=r"incremental\.lookback needs a timestamp or a number as the mark"):
        value_to_send(Incremental("u", "s", timedelta(minutes=1)), "v42", "demo")
    assert value_to_send(Incremental("u", "s", initial_value=0), None, "demo") == 0


# --- runs against the demo API ------------------------------------------------------------------------------


def contacts(api: DemoApi, **incremental: Any) -> dict[str, Any]:
    return {
        "url": f"{api.url}/crm/v3/objects/contacts",
        "query_params": {"limit": 100},
        "unique_key": "id",
        "paging_request_path": "after",
        "paging_response_path": "paging.next.after",
        "incremental": {"record_field": "updatedAt", "request_name": "updated_since", **incremental},
        "table": "nango.items",
    }


def mark(db: str) -> Any:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT value FROM nango._nango_marks WHERE target_table = 'nango.items'").fetchone()
    return None if row is None else row[0]


def latest_update(api: DemoApi) -> str:
    status, body = api.handle("GET", "/crm/v3/objects/contacts?limit=1000")
    assert status == 200
    return str(highest([record["updatedAt"] for record in json.loads(body)["results"]]))


@pytest.mark.integration
def test_first_run_is_full_later_runs_fetch_only_the_changes(demo_api: DemoApi, db: str) -> None:
    first = sync(db, "items", contacts(demo_api))
    assert (first["fetched"], first["added"]) == (600, 600)
    assert mark(db) == latest_update(demo_api)

    demo_api.mutate(changed=7, removed=3, added=4)
    second = sync(db, "items", contacts(demo_api), run_id="run-2")
    # the API's filter is inclusive: the record holding the mark comes back once more, unchanged
    assert second == {"pages": 1, "fetched": 12, "added": 4, "updated": 7, "unchanged": 1, "deleted": 0}
    assert mark(db) == latest_update(demo_api)
    assert len(rows(db, where="_nango_deleted_at IS NULL")) == 604  # removed upstream, not marked by an incremental run

    third = sync(db, "items", contacts(demo_api), run_id="run-3")
    assert (third["fetched"], third["unchanged"]) == (1, 1)  # nothing changed since the mark

    full = sync(db, "items", contacts(demo_api), run_id="run-4", full_refresh=True)
    assert (full["fetched"], full["unchanged"], full["deleted"]) == (601, 601, 3)


@pytest.mark.integration
def test_the_lookback_asks_from_before_the_mark(demo_api: DemoApi, db: str) -> None:
    sync(db, "items", contacts(demo_api, lookback="3650 days"))
    again = sync(db, "items", contacts(demo_api, lookback="3650 days"), run_id="run-2")
    assert (again["fetched"], again["unchanged"], again["deleted"]) == (600, 600, 0)


@pytest.mark.integration
def test_a_failed_or_cut_run_never_moves_the_mark(api: FixtureServer, db: str) -> None:
    records = [{"id": n, "updated_at": f"2025-01-{n:02d}T00:00:00Z"} for n in range(1, 21)]
    state = {"fail": False}

    def handler(request: Request) -> Reply:
        since = request.query.get("since", "")
        page = int(request.query.get("page", 1))
        if state["fail"] and page == 2:
            return Reply(400, {"error": "bad"})
        fresh = [record for record in records if record["updated_at"] >= since]
        chunk = fresh[(page - 1) * 5 : page * 5]
        return Reply(json={"results": chunk, "next_page": page + 1 if page * 5 < len(fresh) else None})

    api.route("GET", "/items", handler)
    fields = {
        "url": f"{api.url}/items",
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "next_page",
        "incremental": {"record_field": "updated_at", "request_name": "since"},
        "request_retries": 0,
        "table": "nango.items",
    }
    sync(db, "items", fields)
    assert mark(db) == "2025-01-20T00:00:00Z"
    records.extend({"id": n, "updated_at": f"2025-02-{n - 20:02d}T00:00:00Z"} for n in range(21, 33))

    state["fail"] = True
    with pytest.raises(HttpError):
        sync(db, "items", fields, run_id="run-2")
    assert mark(db) == "2025-01-20T00:00:00Z"  # page 1 was written, but the run did not end

    cut = sync(db, "items", {**fields, "max_total": 3}, run_id="run-3")
    assert cut["fetched"] == 3
    assert mark(db) == "2025-01-20T00:00:00Z"

    state["fail"] = False
    resumed = sync(db, "items", fields, run_id="run-2", try_number=2)  # the failed run's retry, from page 2
    assert resumed["fetched"] == 13  # 1 (the mark's own record, since is inclusive) + 12 new, over both tries
    assert mark(db) == "2025-02-12T00:00:00Z"
    assert all(request.query.get("since") == "2025-01-20T00:00:00Z" for request in api.requests[-2:])
    assert [job["status"] for job in jobs(db)] == ["success", "failed", "success", "success"]
