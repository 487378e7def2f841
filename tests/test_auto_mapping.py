"""Typed columns (``auto_mapping: true``) against a real Postgres: inference and widening of every pair of types,
flattening, long and colliding names, new fields mid-sync and mid-page, precision at the edges, metadata columns,
and what a re-sync leaves alone."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from nango_provider.store.inference import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    JSONB,
    NUMERIC,
    TEXT,
    TIMESTAMPTZ,
    TYPES,
    widen,
)
from tests.fixture_server import FixtureServer
from tests.helpers import items_sync, rows, sync
from tests.test_store import items, serve

pytestmark = pytest.mark.integration

BOOKKEEPING = ("_nango_unique_key", "_nango_data", "_nango_hash", "_nango_first_seen_at", "_nango_updated_at",
               "_nango_last_seen_at", "_nango_deleted_at", "_nango_metadata")  # fmt: skip
SAMPLES: dict[str, Any] = {
    BIGINT: 2**62 + 1,
    NUMERIC: 0.1,
    DOUBLE: 1.5e20,
    BOOLEAN: True,
    TIMESTAMPTZ: "2024-03-01T10:30:00.123456+05:30",
    DATE: "2024-02-29",
    TEXT: "007",
    JSONB: [1, "two", {"three": 3}],
}


def columns(db: str, table: str = "nango.items") -> dict[str, str]:
    """``{column: type}`` of a table, bookkeeping columns left out."""
    schema, name = table.split(".")
    with psycopg.connect(db) as conn:
        found = conn.execute(
            """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attname <> ALL(%s)""",
            (f'"{schema}"."{name}"', list(BOOKKEEPING)),
        ).fetchall()
    return {column: kind.replace("timestamp with time zone", TIMESTAMPTZ) for column, kind in found}


def typed_rows(db: str, table: str = "nango.items") -> dict[str, dict[str, Any]]:
    """``{unique key: {column: value}}`` of the typed columns."""
    schema, name = table.split(".")
    names = list(columns(db, table))
    query = sql.SQL("SELECT _nango_unique_key, {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(schema, name)
    )
    with psycopg.connect(db) as conn:
        return {row[0]: dict(zip(names, row[1:], strict=True)) for row in conn.execute(query)}


def expected(value: Any, column_type: str) -> Any:
    """What a column of ``column_type`` holds for the JSON ``value`` (Postgres's own text of it, for text)."""
    if column_type == JSONB:
        return value
    if column_type == TEXT:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return format(Decimal(repr(value)), "f") if isinstance(value, float) else str(value)
    if column_type == NUMERIC:
        return Decimal(repr(value))
    if column_type == DOUBLE:
        return float(value)
    if column_type == TIMESTAMPTZ:
        return datetime.fromisoformat(value)
    if column_type == DATE:
        return date.fromisoformat(value)
    return value


def pair_records(first_ids: tuple[int, int]) -> list[dict[str, Any]]:
    """Two records: one with a value of the first type of each pair, the other with one of the second type."""
    pairs = list(itertools.product(TYPES, TYPES))
    return [
        {"id": first_ids[0], **{f"{a}_{b}".replace(" ", ""): SAMPLES[a] for a, b in pairs}},
        {"id": first_ids[1], **{f"{a}_{b}".replace(" ", ""): SAMPLES[b] for a, b in pairs}},
    ]


@pytest.mark.parametrize("page_size", [1, 2], ids=["across pages", "within a page"])
def test_every_pair_of_types_widens_to_a_column_that_holds_both_values_exactly(
    db: str, api: FixtureServer, page_size: int
) -> None:
    serve(api, pair_records((1, 2)), size=page_size)
    sync(db, "items", items_sync(api.url, auto_mapping=True))
    found = columns(db)
    stored = typed_rows(db)
    for a, b in itertools.product(TYPES, TYPES):
        name = f"{a}_{b}".replace(" ", "")
        kind = widen(a, b)
        assert found[name] == kind, (a, b)
        assert stored["1"][name] == expected(SAMPLES[a], kind), (a, b)
        assert stored["2"][name] == expected(SAMPLES[b], kind), (a, b)


def test_precision_at_the_edges(db: str, api: FixtureServer) -> None:
    record = {
        "id": 1,
        "big": 2**62,
        "max": 2**63 - 1,
        "min": -(2**63),
        "beyond": 2**63,
        "huge": 123456789012345678901234567890,
        "tenth": 0.1,
        "price": 19.99,
        "zero_padded": "007",
        "empty": "",
        "tiny": 5e-324,
        "micro": "2024-01-01T00:00:00.000001Z",
    }
    serve(api, [record])
    sync(db, "items", items_sync(api.url, auto_mapping=True))
    assert columns(db) == {
        "id": BIGINT, "big": BIGINT, "max": BIGINT, "min": BIGINT, "beyond": NUMERIC, "huge": NUMERIC,
        "tenth": NUMERIC, "price": NUMERIC, "zero_padded": TEXT, "empty": TEXT, "tiny": DOUBLE, "micro": TIMESTAMPTZ,
    }  # fmt: skip
    stored = typed_rows(db)["1"]
    assert stored["big"] == 2**62 and stored["max"] == 2**63 - 1 and stored["min"] == -(2**63)
    assert stored["beyond"] == 2**63 and stored["huge"] == 123456789012345678901234567890
    assert str(stored["tenth"]) == "0.1" and str(stored["price"]) == "19.99"
    assert stored["zero_padded"] == "007" and stored["empty"] == ""
    assert stored["tiny"] == 5e-324 and stored["micro"].microsecond == 1


def test_nested_objects_flatten_arrays_stay_jsonb_and_sql_can_filter_by_them(db: str, api: FixtureServer) -> None:
    serve(
        api,
        [
            {"id": 1, "stats": {"hp": 45, "moves": {"first": "tackle"}}, "types": ["grass"]},
            {"id": 2, "stats": {"hp": 39, "moves": {"first": "scratch"}}, "types": ["fire", "flying"]},
        ],
    )
    sync(db, "items", items_sync(api.url, auto_mapping=True))
    assert columns(db) == {"id": BIGINT, "stats__hp": BIGINT, "stats__moves__first": TEXT, "types": JSONB}
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT stats__moves__first FROM nango.items WHERE stats__hp > 40").fetchall() == [
            ("tackle",)
        ]
        assert conn.execute("SELECT sum(stats__hp) FROM nango.items WHERE types ? 'fire'").fetchone() == (39,)


def test_new_fields_mid_page_and_mid_sync_add_columns_and_earlier_rows_keep_null(db: str, api: FixtureServer) -> None:
    serve(api, [{"id": 1}, {"id": 2, "a": 1}, {"id": 3, "a": 2, "b": "x"}, {"id": 4, "c": {"d": True}}], size=3)
    sync(db, "items", items_sync(api.url, auto_mapping=True))
    assert columns(db) == {"id": BIGINT, "a": BIGINT, "b": TEXT, "c__d": BOOLEAN}
    stored = typed_rows(db)
    assert stored["1"] == {"id": 1, "a": None, "b": None, "c__d": None}
    assert stored["3"] == {"id": 3, "a": 2, "b": "x", "c__d": None}
    assert stored["4"]["c__d"] is True


def test_later_runs_widen_columns_from_the_json_and_a_vanished_field_leaves_null(db: str, api: FixtureServer) -> None:
    serve(api, [{"id": 1, "n": 5, "gone": "x"}, {"id": 2, "n": 6, "gone": "y"}])
    sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-1")
    before = rows(db)
    serve(api, [{"id": 1, "n": 5, "gone": "x"}, {"id": 2, "n": 6.5}])
    counts = sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-2")
    assert counts["updated"] == 1 and counts["unchanged"] == 1
    assert columns(db) == {"id": BIGINT, "n": NUMERIC, "gone": TEXT}
    stored = typed_rows(db)
    assert stored["1"] == {"id": 1, "n": Decimal(5), "gone": "x"}
    assert stored["2"] == {"id": 2, "n": Decimal("6.5"), "gone": None}
    after = rows(db)
    assert after["1"]["updated_at"] == before["1"]["updated_at"]  # a widened column is no change of the row
    serve(api, [{"id": 1, "n": "five"}])
    sync(db, "items", items_sync(api.url, auto_mapping=True, deletes="keep"), run_id="run-3")
    assert columns(db)["n"] == TEXT and typed_rows(db)["2"]["n"] == "6.5"
    serve(api, [{"id": 1, "n": {"value": 5}}])
    sync(db, "items", items_sync(api.url, auto_mapping=True, deletes="keep"), run_id="run-4")
    assert columns(db)["n"] == JSONB and columns(db)["n__value"] == BIGINT
    stored = typed_rows(db)
    assert stored["1"]["n"] == {"value": 5} and stored["1"]["n__value"] == 5 and stored["2"]["n"] == 6.5


def test_a_scalar_where_objects_were_stored_makes_a_jsonb_column_filled_from_the_stored_objects(
    db: str, api: FixtureServer
) -> None:
    serve(api, [{"id": 1, "owner": {"name": "ann"}}])
    sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-1")
    serve(api, [{"id": 1, "owner": {"name": "ann"}}, {"id": 2, "owner": "bob"}])
    sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-2")
    assert columns(db) == {"id": BIGINT, "owner__name": TEXT, "owner": JSONB}
    stored = typed_rows(db)
    assert stored["1"]["owner"] == {"name": "ann"} and stored["2"]["owner"] == "bob"


def test_long_and_colliding_names_never_overwrite_each_other(db: str, api: FixtureServer) -> None:
    long_a, long_b = "field_" + "x" * 80 + "_a", "field_" + "x" * 80 + "_b"
    record = {"id": 1, "Amount": 1, "amount": 2, "a-mount": 3, "a mount": 4, long_a: 5, long_b: 6, "a__b": 7,
              "a": {"b": 8}, "_nango_data": 9, "xmin": 10}  # fmt: skip
    serve(api, [record])
    sync(db, "items", items_sync(api.url, auto_mapping=True))
    stored = typed_rows(db)["1"]
    assert sorted(value for name, value in stored.items() if name != "id") == list(range(1, 11))
    assert all(len(name) <= 63 for name in stored)
    with psycopg.connect(db) as conn:
        found = conn.execute("SELECT path, column_name FROM nango._nango_columns WHERE origin = 'record'").fetchall()
    mapping = {"/".join(path): name for path, name in found}
    assert stored[mapping[long_a]] == 5 and stored[mapping[long_b]] == 6
    assert stored[mapping["a/b"]] == 8 and stored[mapping["a__b"]] == 7
    assert stored[mapping["_nango_data"]] == 9 and mapping["_nango_data"].startswith("_nango_data_")
    assert stored[mapping["xmin"]] == 10 and mapping["xmin"] != "xmin"


def test_an_unchanged_resync_rewrites_nothing(db: str, api: FixtureServer) -> None:
    serve(api, [{"id": i, "stats": {"hp": i}, "when": "2024-01-01"} for i in range(1, 8)])
    sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-1")
    before = rows(db)
    counts = sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-2")
    assert counts["unchanged"] == 7 and counts["updated"] == 0
    assert {key: row["xmin"] for key, row in rows(db).items()} == {key: row["xmin"] for key, row in before.items()}


def test_auto_mapping_switched_on_for_a_table_with_rows_types_and_fills_them(db: str, api: FixtureServer) -> None:
    serve(api, [{"id": 1, "n": 1}, {"id": 2, "n": "two", "x": {"y": 2.5}}])
    sync(db, "items", items_sync(api.url), run_id="run-1")
    counts = sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-2")
    assert counts["unchanged"] == 2
    assert columns(db) == {"id": BIGINT, "n": TEXT, "x__y": NUMERIC}
    assert typed_rows(db) == {
        "1": {"id": 1, "n": "1", "x__y": None},
        "2": {"id": 2, "n": "two", "x__y": Decimal("2.5")},
    }


def test_metadata_gets_typed_columns_and_a_change_updates_them(db: str, api: FixtureServer) -> None:
    serve(api, items(2))
    metadata = {"tenant": "acme", "source": {"region": 3}}
    sync(db, "items", items_sync(api.url, auto_mapping=True, metadata=metadata), run_id="run-1")
    assert columns(db) == {"id": BIGINT, "name": TEXT, "tenant": TEXT, "source__region": BIGINT}
    assert typed_rows(db)["1"] == {"id": 1, "name": "item 1", "tenant": "acme", "source__region": 3}
    metadata = {"tenant": "globex", "source": {"region": "eu"}}
    counts = sync(db, "items", items_sync(api.url, auto_mapping=True, metadata=metadata), run_id="run-2")
    assert counts["updated"] == 2
    assert columns(db)["source__region"] == TEXT
    assert typed_rows(db)["2"] == {"id": 2, "name": "item 2", "tenant": "globex", "source__region": "eu"}


def test_a_record_field_named_like_the_metadata_keeps_its_own_column(db: str, api: FixtureServer) -> None:
    serve(api, [{"id": 1, "tenant": "from the record"}])
    sync(db, "items", items_sync(api.url, auto_mapping=True, metadata={"tenant": "acme"}))
    values = set(typed_rows(db)["1"].values())
    assert {"from the record", "acme"} <= values


def test_unkeyed_tables_get_typed_columns_too(db: str, api: FixtureServer) -> None:
    fields = {"url": f"{api.url}/items", "paging_request_path": "page", "paging_response_path": "next_page"}
    serve(api, [{"n": 1}, {"n": 2.5}, {"n": 3}])
    sync(db, "plain", {**fields, "auto_mapping": True})
    assert columns(db, "nango.plain") == {"n": NUMERIC}
    assert sorted(row["n"] for row in typed_rows(db, "nango.plain").values()) == [1, Decimal("2.5"), 3]


def test_the_json_stays_the_source_of_truth(db: str, api: FixtureServer) -> None:
    record = {"id": 1, "when": "2024-03-01T10:30:00+05:30", "n": 2.0}
    serve(api, [record])
    sync(db, "items", items_sync(api.url, auto_mapping=True))
    assert rows(db)["1"]["data"] == record
    assert json.dumps(rows(db)["1"]["data"]["n"]) == "2.0"


def test_paths_beyond_the_column_limit_stay_in_the_json(
    db: str, api: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nango_provider.store import columns as table_columns

    monkeypatch.setattr(table_columns, "MAX_TYPED_COLUMNS", 3)
    serve(api, [{"id": 1, "scores": {"u1": 1, "u2": 2}}, {"id": 2, "scores": {"u3": 3, "u4": 4}}])
    sync(db, "items", items_sync(api.url, auto_mapping=True))
    assert columns(db) == {"id": BIGINT, "scores__u1": BIGINT, "scores__u2": BIGINT}
    assert rows(db)["2"]["data"] == {"id": 2, "scores": {"u3": 3, "u4": 4}}


def test_auto_mapping_switched_off_and_on_again_retypes_the_rows_written_meanwhile(db: str, api: FixtureServer) -> None:
    serve(api, [{"id": 1, "n": 1}, {"id": 2, "n": 2}])
    sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-1")
    serve(api, [{"id": 1, "n": 1}, {"id": 2, "n": "two"}, {"id": 3, "n": 3.5}])
    sync(db, "items", items_sync(api.url), run_id="run-2")
    assert typed_rows(db)["2"]["n"] == 2  # not written while off
    counts = sync(db, "items", items_sync(api.url, auto_mapping=True), run_id="run-3")
    assert counts["unchanged"] == 3
    assert columns(db)["n"] == TEXT
    assert {key: row["n"] for key, row in typed_rows(db).items()} == {"1": "1", "2": "two", "3": "3.5"}
