"""Typed columns, the pure part (no database): the type of each JSON value, widening, flattening, column names."""

from __future__ import annotations

from typing import Any

import pytest

from nango_provider.store.inference import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    JSONB,
    NUMERIC,
    OBJECT,
    TEXT,
    TIMESTAMPTZ,
    TYPES,
    column_name,
    shape_of,
    value_type,
    widen,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, BIGINT),
        (2**62, BIGINT),
        (2**63 - 1, BIGINT),
        (-(2**63), BIGINT),
        (2**63, NUMERIC),
        (-(2**63) - 1, NUMERIC),
        (10**30, NUMERIC),
        (0.1, NUMERIC),
        (2.0, NUMERIC),
        (1e300, DOUBLE),
        (6.02e23, DOUBLE),
        (True, BOOLEAN),
        (False, BOOLEAN),
        ("007", TEXT),
        ("", TEXT),
        ("12", TEXT),
        ("2024-01-31", DATE),
        ("2024-02-30", TEXT),
        ("2024-1-31", TEXT),
        ("2024-01-31T10:00:00Z", TIMESTAMPTZ),
        ("2024-01-31T10:00Z", TIMESTAMPTZ),
        ("2024-01-31 10:00:00.123456+05:30", TIMESTAMPTZ),
        ("2024-01-31T10:00:00-0800", TIMESTAMPTZ),
        ("2024-01-31T10:00:00+02", TIMESTAMPTZ),
        ("2024-01-31T10:00:00", TEXT),  # no offset: which instant is it?
        ("2024-01-31T10:00:00.1234567Z", TEXT),  # more than microseconds would be rounded
        ("2024-01-31T25:00:00Z", TEXT),
        ("2024-01-31T10:00:00+16:00", TEXT),
        ("2024-01-31T10:00:00Zulu", TEXT),
        ([1, 2], JSONB),
        ([], JSONB),
        ({"a": 1}, OBJECT),
        (None, None),
    ],
)
def test_value_type_never_loses_anything(value: Any, expected: str | None) -> None:
    assert value_type(value) == expected


def test_widening_every_pair_of_types() -> None:
    numbers = {BIGINT, NUMERIC, DOUBLE}
    for first in (*TYPES, OBJECT):
        assert widen(None, first) == first and widen(first, None) == first and widen(first, first) == first
        for second in (*TYPES, OBJECT):
            if first == second:
                continue
            expected = JSONB if {first, second} & {JSONB, OBJECT} else NUMERIC if {first, second} <= numbers else TEXT
            assert widen(first, second) == expected == widen(second, first), (first, second)


def test_nested_objects_flatten_and_every_path_keeps_its_widest_type() -> None:
    shape = shape_of(
        [
            {"id": 1, "stats": {"hp": 5, "moves": {"first": "tackle"}}, "tags": ["a"], "gone": None},
            {"id": "x", "stats": {"hp": 7.5}, "extra": True},
            "not an object",
        ]
    )
    assert shape == {
        ("id",): TEXT,
        ("stats",): OBJECT,
        ("stats", "hp"): NUMERIC,
        ("stats", "moves"): OBJECT,
        ("stats", "moves", "first"): TEXT,
        ("tags",): JSONB,
        ("extra",): BOOLEAN,
    }


def test_a_path_holding_objects_and_values_becomes_jsonb() -> None:
    assert shape_of([{"a": {"b": 1}}, {"a": 5}])[("a",)] == JSONB


def test_column_names_are_lowercase_and_flattened() -> None:
    assert column_name(("Stats", "Base HP"), "record", set()) == "stats__base_hp"
    assert column_name(("1st",), "record", set()) == "_1st"
    assert column_name(("",), "record", set()) == "_"


def test_names_that_differ_only_by_case_or_punctuation_get_names_of_their_own() -> None:
    taken = {column_name(("amount",), "record", set())}
    first = set(taken)
    for written in ("Amount", "AMOUNT", "a-mount", "a mount"):
        taken.add(column_name((written,), "record", taken))
    assert len(taken) == 5
    assert sorted(taken)[:2] == ["a_mount", "a_mount_" + sorted(taken)[1][8:]]
    assert column_name(("Amount",), "record", first) == column_name(("Amount",), "record", first)  # deterministic


def test_long_names_are_cut_deterministically_without_collisions() -> None:
    first = column_name(("x" * 100,), "record", set())
    second = column_name(("x" * 99 + "y",), "record", set())
    assert len(first) <= 63 and len(second) <= 63 and first != second
    assert first == column_name(("x" * 100,), "record", set())


def test_reserved_and_system_names_are_never_used() -> None:
    assert column_name(("_nango_data",), "record", set()) != "_nango_data"
    assert column_name(("xmin",), "record", set()) != "xmin"
    assert column_name(("ctid",), "record", set()).startswith("ctid_")


def test_metadata_and_record_paths_of_one_name_get_different_names() -> None:
    record = column_name(("tenant",), "record", set())
    assert column_name(("tenant",), "metadata", {record}) != record
