"""Deletion modes across runs against a real Postgres: ``deletes: soft`` marks, ``hard`` removes, ``keep`` leaves
rows alone; only a complete run decides, records that come back are live again, and the counts say so."""

from __future__ import annotations

from typing import Any

import pytest

from nango_provider.exceptions import NangoError
from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import items_sync, jobs, rows, sync
from tests.test_store import items, serve

pytestmark = pytest.mark.integration


def without(records: list[dict[str, Any]], *ids: int) -> list[dict[str, Any]]:
    return [record for record in records if record["id"] not in ids]


def test_soft_marks_records_gone_upstream_and_a_record_that_comes_back_is_live_again(
    db: str, api: FixtureServer
) -> None:
    serve(api, items(6))
    sync(db, "items", items_sync(api.url, deletes="soft"), run_id="run-1")
    serve(api, without(items(6), 2, 5))
    counts = sync(db, "items", items_sync(api.url, deletes="soft"), run_id="run-2")
    assert counts["deleted"] == 2
    stored = rows(db)
    assert len(stored) == 6 and stored["2"]["deleted_at"] is not None and stored["5"]["deleted_at"] is not None
    serve(api, without(items(6), 5))
    counts = sync(db, "items", items_sync(api.url, deletes="soft"), run_id="run-3")
    assert counts["updated"] == 1 and counts["deleted"] == 0
    assert rows(db)["2"]["deleted_at"] is None and rows(db)["5"]["deleted_at"] is not None
    assert [job["deleted"] for job in jobs(db)] == [0, 2, 0]


def test_hard_removes_rows_a_complete_run_did_not_see_and_a_record_that_comes_back_is_added(
    db: str, api: FixtureServer
) -> None:
    serve(api, items(6))
    sync(db, "items", items_sync(api.url, deletes="hard"), run_id="run-1")
    serve(api, without(items(6), 2, 5))
    counts = sync(db, "items", items_sync(api.url, deletes="hard"), run_id="run-2")
    assert counts == {"pages": 2, "fetched": 4, "added": 0, "updated": 0, "unchanged": 4, "deleted": 2}
    assert sorted(rows(db)) == ["1", "3", "4", "6"]
    serve(api, items(6))
    counts = sync(db, "items", items_sync(api.url, deletes="hard"), run_id="run-3")
    assert counts["added"] == 2 and counts["deleted"] == 0
    assert sorted(rows(db)) == ["1", "2", "3", "4", "5", "6"]
    assert [job["deleted"] for job in jobs(db)] == [0, 2, 0]


def test_hard_after_soft_also_removes_rows_soft_deleted_before_but_counts_only_live_ones(
    db: str, api: FixtureServer
) -> None:
    serve(api, items(6))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    serve(api, without(items(6), 2))
    sync(db, "items", items_sync(api.url), run_id="run-2")
    serve(api, without(items(6), 2, 3))
    counts = sync(db, "items", items_sync(api.url, deletes="hard"), run_id="run-3")
    assert counts["deleted"] == 1
    assert sorted(rows(db)) == ["1", "4", "5", "6"]


def test_hard_removes_soft_deleted_rows_even_when_the_table_held_no_live_row(db: str, api: FixtureServer) -> None:
    serve(api, items(3))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    serve(api, [])
    sync(db, "items", items_sync(api.url), run_id="run-2")
    assert all(row["deleted_at"] is not None for row in rows(db).values())
    serve(api, [{"id": 9, "name": "new"}])
    counts = sync(db, "items", items_sync(api.url, deletes="hard"), run_id="run-3")
    assert sorted(rows(db)) == ["9"] and counts["deleted"] == 0


def test_keep_never_marks_nor_removes(db: str, api: FixtureServer) -> None:
    serve(api, items(6))
    sync(db, "items", items_sync(api.url, deletes="keep"), run_id="run-1")
    serve(api, without(items(6), 2, 5))
    counts = sync(db, "items", items_sync(api.url, deletes="keep"), run_id="run-2")
    assert counts["deleted"] == 0
    assert len(rows(db)) == 6 and all(row["deleted_at"] is None for row in rows(db).values())


def test_soft_delete_false_is_keep_and_true_is_soft(db: str, api: FixtureServer) -> None:
    serve(api, items(4))
    sync(db, "items", items_sync(api.url, soft_delete=False), run_id="run-1")
    serve(api, without(items(4), 1))
    assert sync(db, "items", items_sync(api.url, soft_delete=False), run_id="run-2")["deleted"] == 0
    assert rows(db)["1"]["deleted_at"] is None
    assert sync(db, "items", items_sync(api.url, soft_delete=True), run_id="run-3")["deleted"] == 1
    assert rows(db)["1"]["deleted_at"] is not None


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_run_cut_by_max_total_decides_no_deletion(db: str, api: FixtureServer, mode: str) -> None:
    serve(api, items(9))
    sync(db, "items", items_sync(api.url, deletes=mode), run_id="run-1")
    counts = sync(db, "items", items_sync(api.url, deletes=mode, max_total=3), run_id="run-2")
    assert counts["deleted"] == 0
    stored = rows(db)
    assert len(stored) == 9 and all(row["deleted_at"] is None for row in stored.values())


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_failed_run_decides_no_deletion_and_its_completed_retry_does(db: str, api: FixtureServer, mode: str) -> None:
    serve(api, items(9))
    sync(db, "items", items_sync(api.url, deletes=mode), run_id="run-1")
    remaining = without(items(9), 1, 8)
    pages = [remaining[:3], remaining[3:6], remaining[6:]]
    failing = {"on": True}

    def handler(request: Request) -> Reply:
        number = int(request.query.get("page", "1"))
        if number == 2 and failing["on"]:
            return Reply(status=404, json={"error": "gone"})
        return Reply(json={"results": pages[number - 1], "next_page": number + 1 if number < 3 else None})

    api.route("GET", "/items", handler)
    fields = items_sync(api.url, deletes=mode, request_retries=0)
    with pytest.raises(NangoError):
        sync(db, "items", fields, run_id="run-2")
    assert len(rows(db)) == 9 and all(row["deleted_at"] is None for row in rows(db).values())
    failing["on"] = False
    counts = sync(db, "items", fields, run_id="run-2", try_number=2)
    assert counts["deleted"] == 2
    stored = rows(db)
    if mode == "hard":
        assert sorted(stored) == ["2", "3", "4", "5", "6", "7", "9"]
    else:
        assert {key for key, row in stored.items() if row["deleted_at"] is not None} == {"1", "8"}


def test_unkeyed_table_with_keep_only_adds_and_with_hard_is_replaced(db: str, api: FixtureServer) -> None:
    fields = {"url": f"{api.url}/items", "paging_request_path": "page", "paging_response_path": "next_page"}
    serve(api, items(4))
    sync(db, "plain", {**fields, "deletes": "keep"}, run_id="run-1")
    serve(api, without(items(4), 1))
    counts = sync(db, "plain", {**fields, "deletes": "keep"}, run_id="run-2")
    assert counts["deleted"] == 0 and len(rows(db, "nango.plain")) == 4
    counts = sync(db, "plain", {**fields, "deletes": "hard"}, run_id="run-3")
    assert counts["deleted"] == 1 and len(rows(db, "nango.plain")) == 3


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_an_incremental_run_decides_no_deletion_and_a_full_refresh_does(db: str, api: FixtureServer, mode: str) -> None:
    records = [{"id": n, "updated_at": f"2025-01-{n:02d}T00:00:00Z"} for n in range(1, 7)]

    def handler(request: Request) -> Reply:
        since = request.query.get("since", "")
        return Reply(json={"results": [record for record in records if record["updated_at"] >= since]})

    api.route("GET", "/items", handler)
    fields = {
        "url": f"{api.url}/items",
        "unique_key": "id",
        "incremental": {"record_field": "updated_at", "request_name": "since"},
        "table": "nango.items",
        "deletes": mode,
    }
    sync(db, "items", fields, run_id="run-1")
    del records[1]  # id 2 is gone upstream
    incremental = sync(db, "items", fields, run_id="run-2")
    assert incremental["fetched"] == 1 and incremental["deleted"] == 0
    assert len(rows(db)) == 6 and all(row["deleted_at"] is None for row in rows(db).values())
    full = sync(db, "items", fields, run_id="run-3", full_refresh=True)
    assert full["deleted"] == 1
    assert ("2" not in rows(db)) if mode == "hard" else (rows(db)["2"]["deleted_at"] is not None)
