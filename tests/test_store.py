"""The write path against a real Postgres: upsert counts, change detection, soft deletes, duplicates,
replacement without a unique key, awkward and hostile values, and bookkeeping in ``nango._nango_jobs``."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from nango_provider.definition import SyncDefinition
from nango_provider.engine import run_sync
from nango_provider.exceptions import RecordError, ResponseError
from nango_provider.hooks.nango import NangoHook
from nango_provider.store import pages as store_pages
from nango_provider.store.postgres import PostgresStore, RunIdentity, RunState
from nango_provider.store.records import PreparedPage
from tests.fixture_server import FixtureServer, Reply, Request, paged
from tests.helpers import items_sync, jobs, rows, sync

pytestmark = pytest.mark.integration


def serve(api: FixtureServer, records: list[Any], size: int = 3, path: str = "/items") -> None:
    """Serve ``records`` in pages of ``size`` with a page-number cursor in ``next_page``."""
    pages = paged(records, size)

    def handler(request: Request) -> Reply:
        number = int(request.query.get("page", "1"))
        following = number + 1 if number < len(pages) else None
        return Reply(json={"results": pages[number - 1], "next_page": following})

    api.route("GET", path, handler)


def items(count: int, **changes: Any) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"item {i}", **changes.get(str(i), {})} for i in range(1, count + 1)]


def test_first_run_inserts_every_record_and_counts_pages(db: str, api: FixtureServer) -> None:
    serve(api, items(10))
    counts = sync(db, "items", items_sync(api.url))
    assert counts == {"pages": 4, "fetched": 10, "added": 10, "updated": 0, "unchanged": 0, "deleted": 0}
    stored = rows(db)
    assert sorted(stored) == sorted(str(i) for i in range(1, 11))
    assert stored["7"]["data"] == {"id": 7, "name": "item 7"}


def test_unchanged_records_are_not_rewritten(db: str, api: FixtureServer) -> None:
    serve(api, items(10))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    before = rows(db)
    counts = sync(db, "items", items_sync(api.url), run_id="run-2")
    assert counts == {"pages": 4, "fetched": 10, "added": 0, "updated": 0, "unchanged": 10, "deleted": 0}
    after = rows(db)
    assert {key: row["xmin"] for key, row in after.items()} == {key: row["xmin"] for key, row in before.items()}


def test_changed_records_are_updated_and_missing_ones_soft_deleted(db: str, api: FixtureServer) -> None:
    serve(api, items(10))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    before = rows(db)
    changed = [r for r in items(10, **{"3": {"name": "renamed"}}) if r["id"] != 5] + [{"id": 11, "name": "new"}]
    serve(api, changed)
    counts = sync(db, "items", items_sync(api.url), run_id="run-2")
    assert counts == {"pages": 4, "fetched": 10, "added": 1, "updated": 1, "unchanged": 8, "deleted": 1}
    after = rows(db)
    assert after["3"]["data"] == {"id": 3, "name": "renamed"}
    assert after["3"]["updated_at"] > before["3"]["updated_at"]
    assert after["3"]["first_seen_at"] == before["3"]["first_seen_at"]
    assert after["5"]["deleted_at"] is not None and after["5"]["data"] == {"id": 5, "name": "item 5"}
    assert after["4"]["xmin"] == before["4"]["xmin"]

    serve(api, items(10))  # 5 comes back, 11 goes away, 3 is renamed back
    counts = sync(db, "items", items_sync(api.url), run_id="run-3")
    assert counts["updated"] == 2 and counts["deleted"] == 1 and counts["added"] == 0
    assert rows(db)["5"]["deleted_at"] is None
    assert rows(db)["11"]["deleted_at"] is not None


def test_a_resync_sends_postgres_only_the_rows_that_are_new_or_changed(
    db: str, api: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged record costs a re-sync its key and hash over the wire, not its JSON."""
    serve(api, items(10))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    sent: list[str] = []
    upsert = store_pages.upsert_page

    def recording_upsert(cursor: Any, table: Any, prepared: PreparedPage, **kwargs: Any) -> tuple[int, int]:
        sent.extend(prepared.keys)
        return upsert(cursor, table, prepared, **kwargs)

    monkeypatch.setattr(store_pages, "upsert_page", recording_upsert)
    assert sync(db, "items", items_sync(api.url), run_id="run-2")["unchanged"] == 10
    assert sent == []
    serve(api, [*items(10, **{"3": {"name": "renamed"}}), {"id": 11, "name": "new"}])
    counts = sync(db, "items", items_sync(api.url), run_id="run-3")
    assert (counts["added"], counts["updated"], counts["unchanged"]) == (1, 1, 9)
    assert sorted(sent) == ["11", "3"]
    assert rows(db)["3"]["data"] == {"id": 3, "name": "renamed"} and rows(db)["11"]["deleted_at"] is None


@pytest.mark.parametrize("changed", [2, store_pages.ROWS_AS_PARAMETERS + 1])
def test_a_resync_writes_few_changed_rows_as_parameters_and_many_through_the_stage(
    db: str, api: FixtureServer, monkeypatch: pytest.MonkeyPatch, changed: int
) -> None:
    """Up to ``ROWS_AS_PARAMETERS`` changed rows of a page go as parameters of the upsert, more by COPY into the
    stage; both write the same rows, with the same counts and marks, and leave the other rows untouched."""
    count = store_pages.ROWS_AS_PARAMETERS + 20
    serve(api, items(count), size=count)
    sync(db, "items", items_sync(api.url), run_id="run-1")
    before = rows(db)
    copies: list[bytes] = []
    write = psycopg.Copy.write

    def recording_write(self: psycopg.Copy, buffer: Any) -> None:
        copies.append(bytes(buffer))
        write(self, buffer)

    monkeypatch.setattr(psycopg.Copy, "write", recording_write)
    renamed = {str(number): {"name": f"renamed {number}"} for number in range(1, changed + 1)}
    serve(api, [*items(count, **renamed), {"id": count + 1, "name": "new"}], size=count + 1)
    counts = sync(db, "items", items_sync(api.url), run_id="run-2")
    assert (counts["added"], counts["updated"], counts["unchanged"]) == (1, changed, count - changed)
    assert bool(copies) == (changed + 1 > store_pages.ROWS_AS_PARAMETERS)
    after = rows(db)
    assert after["1"]["data"] == {"id": 1, "name": "renamed 1"} and after["1"]["updated_at"] > before["1"]["updated_at"]
    assert after[str(count + 1)]["data"] == {"id": count + 1, "name": "new"}
    assert after[str(count)]["xmin"] == before[str(count)]["xmin"]


def test_duplicate_keys_within_and_across_pages_last_one_wins(db: str, api: FixtureServer) -> None:
    records = [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "a"},
        {"id": 1, "v": "b"},  # same page as the first id 1
        {"id": 2, "v": "c"},  # next page
        {"id": 3, "v": "a"},
    ]
    serve(api, records)
    counts = sync(db, "items", items_sync(api.url))
    assert counts == {"pages": 2, "fetched": 5, "added": 3, "updated": 1, "unchanged": 0, "deleted": 0}
    assert {key: row["data"]["v"] for key, row in rows(db).items()} == {"1": "b", "2": "c", "3": "a"}


def test_nested_unique_key_and_string_keys(db: str, api: FixtureServer) -> None:
    serve(api, [{"meta": {"uid": f"u-{i}"}, "n": i} for i in range(4)])
    sync(db, "items", items_sync(api.url, unique_key="meta.uid"))
    assert sorted(rows(db)) == ["u-0", "u-1", "u-2", "u-3"]


def test_without_unique_key_the_table_holds_exactly_the_latest_run(db: str, api: FixtureServer) -> None:
    fields = items_sync(api.url)
    del fields["unique_key"]
    serve(api, [{"v": 1}, {"v": 2}, {"v": 2}, {"v": 3}])
    first = sync(db, "items", fields, run_id="run-1")
    assert first == {"pages": 2, "fetched": 4, "added": 4, "updated": 0, "unchanged": 0, "deleted": 0}
    serve(api, [{"v": 2}, {"v": 3}, {"v": 4}])
    second = sync(db, "items", fields, run_id="run-2")
    assert second == {"pages": 1, "fetched": 3, "added": 1, "updated": 0, "unchanged": 2, "deleted": 2}
    assert sorted(row["data"]["v"] for row in rows(db).values()) == [2, 3, 4]


def test_custom_table_creates_its_schema(db: str, api: FixtureServer) -> None:
    serve(api, items(2))
    sync(db, "items", items_sync(api.url, table="test_crm.things"))
    assert sorted(rows(db, "test_crm.things")) == ["1", "2"]


def test_awkward_values_are_stored_exactly(db: str, api: FixtureServer) -> None:
    awkward = [
        {"id": "o'brien", "name": 'O\'Brien "quoted"', "emoji": "Zoë 🚀", "big": 2**62, "neg": -(2**62)},
        {"id": "tab\tand\nnewline", "path": "C:\\temp\\new", "nested": {"deep": [1, [2, [3]]]}, "none": None},
        {"id": "'); DROP TABLE nango.items; --", "sql": "'; DELETE FROM nango._nango_jobs; --"},
        {"id": 1.5, "float": 0.1, "exp": 1e300, "bool": True},
    ]
    serve(api, awkward)
    sync(db, "items", items_sync(api.url))
    stored = rows(db)
    assert stored["o'brien"]["data"] == awkward[0]
    assert stored["tab\tand\nnewline"]["data"] == awkward[1]
    assert stored["'); DROP TABLE nango.items; --"]["data"] == awkward[2]
    stored_numbers = stored["1.5"]["data"]
    assert float(stored_numbers.pop("exp")) == 1e300  # jsonb keeps numbers as numeric: same value, new spelling
    assert stored_numbers == {key: value for key, value in awkward[3].items() if key != "exp"}
    assert len(jobs(db)) == 1


def test_a_record_without_the_unique_key_fails_the_run_naming_key_page_and_position(
    db: str, api: FixtureServer
) -> None:
    serve(api, [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}, {"name": "no id"}])
    with pytest.raises(RecordError, match=r"page 2, record 1: no value at unique_key 'id'") as error:
        sync(db, "items", items_sync(api.url))
    assert error.value.sync == "items"
    assert sorted(rows(db)) == ["1", "2", "3"]  # page 1 committed, page 2 not half-written
    job = jobs(db)[-1]
    assert job["status"] == "failed" and "unique_key 'id'" in job["error"] and job["pages"] == 1


class RecordingStore(PostgresStore):
    """A store that records which page is being written whenever a page is turned into rows; each write first
    waits a little, so that the next page is fetched by then."""

    def __init__(self, db: str, definition: SyncDefinition) -> None:
        super().__init__(lambda: psycopg.connect(db), definition)
        self.writing: int | None = None
        self.prepared_during: dict[int, int | None] = {}
        self.prepared_in: set[str] = set()
        self.prepared_in_a_transaction: dict[int, bool] = {}

    def prepare_page(self, records: list[Any], page: int, fetched_before: int) -> PreparedPage:
        self.prepared_during[page] = self.writing
        status = self.conn.pgconn.transaction_status
        self.prepared_in_a_transaction[page] = status != psycopg.pq.TransactionStatus.IDLE
        self.prepared_in.add(threading.current_thread().name)
        return super().prepare_page(records, page, fetched_before)

    def write_page(self, run: RunIdentity, state: RunState, prepared: PreparedPage, page: int, *args: Any, **kw: Any):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        self.writing = page
        try:
            return super().write_page(run, state, prepared, page, *args, **kw)
        finally:
            self.writing = None


def test_an_initial_sync_turns_the_next_page_into_rows_while_postgres_stores_the_page_before(
    db: str, api: FixtureServer
) -> None:
    serve(api, items(12))
    definition = SyncDefinition.from_mapping("items", items_sync(api.url))
    store = RecordingStore(db, definition)
    run = RunIdentity("items", "nango_sync_items", "sync", "run-1")
    counts = run_sync(NangoHook(sleep=lambda _: None), store, definition, run, log=lambda _: None)
    assert counts == {"pages": 4, "fetched": 12, "added": 12, "updated": 0, "unchanged": 0, "deleted": 0}
    # page 1, which the writer waited for, is turned into rows once its own transaction has begun
    assert store.prepared_during == {1: 1, 2: 1, 3: 2, 4: 3}
    assert store.prepared_in_a_transaction == {1: True, 2: True, 3: True, 4: True}
    assert store.prepared_in == {threading.current_thread().name}


def test_a_resync_turns_pages_into_rows_in_a_thread_of_its_own(db: str, api: FixtureServer) -> None:
    """A re-sync's writes are short lookups: the pages are turned into rows as soon as they are fetched."""
    serve(api, items(12))
    sync(db, "items", items_sync(api.url), run_id="run-0")
    definition = SyncDefinition.from_mapping("items", items_sync(api.url))
    store = RecordingStore(db, definition)
    run = RunIdentity("items", "nango_sync_items", "sync", "run-1")
    counts = run_sync(NangoHook(sleep=lambda _: None), store, definition, run, log=lambda _: None)
    assert counts == {"pages": 4, "fetched": 12, "added": 0, "updated": 0, "unchanged": 12, "deleted": 0}
    assert store.prepared_in == {"nango-prefetch"}
    assert store.prepared_during[2] is None  # ready before the first page's write began


def test_an_error_in_a_page_turned_into_rows_ahead_waits_until_the_pages_before_are_written(
    db: str, api: FixtureServer
) -> None:
    serve(api, [*items(6), {"name": "no id"}])
    definition = SyncDefinition.from_mapping("items", items_sync(api.url))
    store = RecordingStore(db, definition)
    run = RunIdentity("items", "nango_sync_items", "sync", "run-1")
    with pytest.raises(RecordError, match=r"page 3, record 0: no value at unique_key 'id'"):
        run_sync(NangoHook(sleep=lambda _: None), store, definition, run, log=lambda _: None)
    assert store.prepared_during[3] == 2  # prepared ahead, while page 2 was written: page 2 was still committed
    assert sorted(rows(db), key=int) == [str(i) for i in range(1, 7)]
    assert jobs(db)[-1]["pages"] == 2


def test_a_nul_character_is_refused_clearly_and_nothing_of_the_page_is_written(db: str, api: FixtureServer) -> None:
    serve(api, [{"id": 1}, {"id": 2, "text": "bad\u0000value"}, {"id": 3}])
    with pytest.raises(RecordError, match=r"NUL character"):
        sync(db, "items", items_sync(api.url))
    assert rows(db) == {}


def test_a_run_into_a_table_of_only_deleted_rows_brings_them_back_as_updates(db: str, api: FixtureServer) -> None:
    # With no live row at the start a run writes new rows by COPY straight into the table; a key stored before
    # (here soft-deleted) makes it fall back to the upsert for that page, which revives the row.
    serve(api, items(6))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    serve(api, [])
    assert sync(db, "items", items_sync(api.url), run_id="run-2")["deleted"] == 6
    before = rows(db)
    serve(api, items(7, **{"2": {"name": "renamed"}}))
    counts = sync(db, "items", items_sync(api.url), run_id="run-3")
    assert counts == {"pages": 3, "fetched": 7, "added": 1, "updated": 6, "unchanged": 0, "deleted": 0}
    after = rows(db)
    assert all(row["deleted_at"] is None for row in after.values())
    assert after["2"]["data"] == {"id": 2, "name": "renamed"}
    assert after["1"]["first_seen_at"] == before["1"]["first_seen_at"]


def test_max_total_stops_early_and_marks_nothing_deleted(db: str, api: FixtureServer) -> None:
    serve(api, items(10))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    counts = sync(db, "items", items_sync(api.url, max_total=4), run_id="run-2")
    assert counts == {"pages": 2, "fetched": 4, "added": 0, "updated": 0, "unchanged": 4, "deleted": 0}
    assert len(api.requests) == 4 + 2
    assert all(row["deleted_at"] is None for row in rows(db).values())


def test_jobs_table_records_every_run(db: str, api: FixtureServer) -> None:
    serve(api, items(4))
    sync(db, "items", items_sync(api.url), run_id="run-a")
    job = jobs(db)[0]
    assert {key: job[key] for key in ("sync_name", "dag_id", "task_id", "run_id", "try_number", "status")} == {
        "sync_name": "items",
        "dag_id": "nango_sync_items",
        "task_id": "sync",
        "run_id": "run-a",
        "try_number": 1,
        "status": "success",
    }
    assert (job["pages"], job["fetched"], job["added"], job["error"]) == (2, 4, 4, None)
    assert job["ended_at"] >= job["started_at"]
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM nango._nango_checkpoints").fetchone() == (0,)


def test_deep_nesting_and_huge_strings_are_stored_whole(db: str, api: FixtureServer) -> None:
    deep: Any = "bottom"
    for _ in range(400):
        deep = {"d": [deep]}
    huge = "x" * 5_000_000 + "🚀"
    serve(api, [{"id": 1, "deep": deep}, {"id": 2, "huge": huge}])
    sync(db, "items", items_sync(api.url))
    stored = rows(db)
    assert stored["1"]["data"]["deep"] == deep
    assert stored["2"]["data"]["huge"] == huge


def test_json_nested_too_deeply_to_decode_is_refused_clearly(db: str, api: FixtureServer) -> None:
    depth = 20_000
    body = b'{"results": [{"id": 1, "deep": ' + b"[" * depth + b"]" * depth + b"}]}"
    api.route("GET", "/items", lambda request: Reply(body=body))
    with pytest.raises(ResponseError, match="nested too deeply"):
        sync(db, "items", items_sync(api.url))
    assert rows(db) == {}
