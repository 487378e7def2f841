"""Unit tests of nango_provider/store/records.py: keys, dedupe, COPY text escaping, hashes, NUL refusal."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from nango_provider.exceptions import RecordError
from nango_provider.paths import compile_path
from nango_provider.store.records import PreparedPage, prepare_keyed, prepare_positional

ID = compile_path("id")
_COPY_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}


def copy_unescape(field: str) -> str:
    """Decode one field of Postgres COPY text format (no NULLs expected)."""
    assert field != "\\N"
    return re.sub(r"\\(.)", lambda match: _COPY_UNESCAPES[match.group(1)], field, flags=re.DOTALL)


def parse(page: PreparedPage) -> list[tuple[str, Any, str]]:
    """The ``(key, record, hash)`` rows of a page's COPY text, checking its framing on the way."""
    text = page.copy_text.decode("utf-8")
    if not text:
        return []
    assert text.endswith("\n")
    rows = []
    for line in text[:-1].split("\n"):
        assert "\r" not in line
        fields = line.split("\t")
        assert len(fields) == 3, line
        key, data, digest = (copy_unescape(field) for field in fields)
        assert re.fullmatch(r"[0-9a-f]{32}", digest), digest
        rows.append((key, json.loads(data), digest))
    assert len(rows) == page.rows
    return rows


def keyed(records: list[Any], key: str = "id", page: int = 1) -> list[tuple[str, Any, str]]:
    return parse(prepare_keyed(records, compile_path(key), "demo", page))


def record_error(records: list[Any], key: str = "id", page: int = 1) -> RecordError:
    with pytest.raises(RecordError) as info:
        prepare_keyed(records, compile_path(key), "demo", page)
    assert info.value.sync == "demo"
    return info.value


# --- keys and dedupe ----------------------------------------------------------------------------------------


def test_dedupe_by_key_last_wins() -> None:
    page = prepare_keyed(
        [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 1, "v": "c"}, {"id": 2, "v": "d"}, {"id": 3}],
        ID,
        "demo",
        1,
    )
    assert page.rows == 3
    rows = parse(page)
    assert [(key, record) for key, record, _ in rows] == [
        ("1", {"id": 1, "v": "c"}),
        ("2", {"id": 2, "v": "d"}),
        ("3", {"id": 3}),
    ]


def test_key_from_a_nested_dot_path() -> None:
    rows = keyed([{"meta": {"id": "m1"}, "x": 1}, {"meta": {"id": "m2"}}], key="meta.id")
    assert [(key, record) for key, record, _ in rows] == [
        ("m1", {"meta": {"id": "m1"}, "x": 1}),
        ("m2", {"meta": {"id": "m2"}}),
    ]


def test_key_from_a_list_index() -> None:
    rows = keyed([{"ids": ["a", "b"]}], key="ids.1")
    assert rows[0][0] == "b"


@pytest.mark.parametrize(
    ("value", "key"), [(5, "5"), (-12, "-12"), ("abc", "abc"), ("", ""), (1.5, "1.5"), (10**30, str(10**30))]
)
def test_int_and_str_keys(value: Any, key: str) -> None:
    [(written, record, _)] = keyed([{"id": value}])
    assert written == key
    assert record == {"id": value}


def test_int_and_str_keys_are_the_same_text_key() -> None:
    rows = keyed([{"id": 5, "v": "int"}, {"id": "5", "v": "str"}])
    assert [(key, record) for key, record, _ in rows] == [("5", {"id": "5", "v": "str"})]


def test_empty_page() -> None:
    page = prepare_keyed([], ID, "demo", 1)
    assert page == PreparedPage(0, 0)


# --- refusals -----------------------------------------------------------------------------------------------


def test_record_without_the_key() -> None:
    error = record_error([{"id": 1}, {"id": 2}, {"name": "x", "other": 1}], page=4)
    assert str(error) == (
        "sync 'demo': page 4, record 2: no value at unique_key 'id' (the record has ['name', 'other'])"
    )


def test_record_with_a_null_key() -> None:
    error = record_error([{"id": None}], page=2)
    assert "page 2, record 0: no value at unique_key 'id'" in str(error)


def test_record_without_the_nested_key() -> None:
    error = record_error([{"meta": {}}], key="meta.id", page=1)
    assert "page 1, record 0: no value at unique_key 'meta.id'" in str(error)


@pytest.mark.parametrize(("record", "type_name"), [("text", "str"), (5, "int"), (None, "NoneType")])
def test_record_that_is_not_an_object(record: Any, type_name: str) -> None:
    error = record_error([record])
    assert str(error) == f"sync 'demo': page 1, record 0: no value at unique_key 'id' (the record has {type_name})"


@pytest.mark.parametrize(("value", "kind"), [({"a": 1}, "an object"), ([1, 2], "a list")])
def test_key_holding_an_object_or_list(value: Any, kind: str) -> None:
    error = record_error([{"id": 1}, {"id": value}], page=3)
    assert str(error) == (f"sync 'demo': page 3, record 1: unique_key 'id' holds {kind}; expected a string or number")


@pytest.mark.parametrize(
    "record", [{"id": 1, "v": "a\u0000b"}, {"id": 1, "nested": {"deep": ["\u0000"]}}, {"id": 1, "k\u0000": 1}]
)
def test_nul_in_a_value_is_refused(record: dict[str, Any]) -> None:
    error = record_error([{"id": 0}, record], page=5)
    assert str(error).startswith("sync 'demo': page 5, record 1: contains a NUL character (\\u0000)")


def test_nul_in_the_key_is_refused() -> None:
    error = record_error([{"id": "a\u0000b"}], page=1)
    assert str(error) == "sync 'demo': page 1, record 0: the unique key contains a NUL character"


def test_escaped_backslash_u0000_text_is_not_a_nul() -> None:
    record = {"id": 1, "path": "C:\\u0000dir", "doc": "NUL is written \\u0000 in JSON"}
    [(key, stored, _)] = keyed([record])
    assert (key, stored) == ("1", record)


# --- COPY text escaping -------------------------------------------------------------------------------------


def test_copy_escaping_of_backslash_tab_newline_in_keys_and_values() -> None:
    nasty = "a\\b\tc\nd\re\\\\n\\t\\N"
    records = [
        {"id": nasty, "value": nasty, "nested": {nasty: [nasty, 1]}},
        {"id": "plain", "value": "é ☃ 🎉 \u2028 \x7f \x01 \\."},
        {"id": "\\N", "value": None},
    ]
    page = prepare_keyed(records, ID, "demo", 1)
    assert page.copy_text.count(b"\n") == 3
    assert page.copy_text.count(b"\t") == 6
    rows = parse(page)
    assert [(key, record) for key, record, _ in rows] == [
        (nasty, records[0]),
        ("plain", records[1]),
        ("\\N", records[2]),
    ]


def test_positional_copy_escaping() -> None:
    record = {"v": "tab\there\\ and\nnewline"}
    [(key, stored, _)] = parse(prepare_positional([record], 1, "demo", 1))
    assert (key, stored) == ("1", record)


# --- hashes -------------------------------------------------------------------------------------------------


def test_hash_is_stable_under_dict_key_order() -> None:
    one = {"id": 1, "a": {"x": 1, "y": [{"p": 1, "q": 2}]}, "b": 2}
    two = {"b": 2, "a": {"y": [{"q": 2, "p": 1}], "x": 1}, "id": 1}
    page_one = prepare_keyed([one], ID, "demo", 1)
    page_two = prepare_keyed([two], ID, "demo", 1)
    assert page_one.copy_text == page_two.copy_text
    assert parse(page_one)[0][2] == parse(page_two)[0][2]


def test_hash_changes_with_the_content() -> None:
    hashes = {
        parse(prepare_keyed([record], ID, "demo", 1))[0][2]
        for record in [{"id": 1, "v": 1}, {"id": 1, "v": 2}, {"id": 1, "v": "1"}, {"id": 1}]
    }
    assert len(hashes) == 4


def test_hash_does_not_depend_on_the_page_or_position() -> None:
    record = {"id": 1, "v": "x"}
    first = parse(prepare_keyed([record], ID, "demo", 1))[0][2]
    later = parse(prepare_keyed([{"id": 0}, record], ID, "other", 9))[1][2]
    positional = parse(prepare_positional([record], 100, "demo", 3))[0][2]
    assert first == later == positional


# --- positional ---------------------------------------------------------------------------------------------


def test_positional_numbering_from_first_position() -> None:
    records = [{"a": 1}, {"a": 1}, [1, 2], "text", None]
    page = prepare_positional(records, 10, "demo", 2)
    assert page.rows == 5
    assert [(key, record) for key, record, _ in parse(page)] == [
        ("10", {"a": 1}),
        ("11", {"a": 1}),
        ("12", [1, 2]),
        ("13", "text"),
        ("14", None),
    ]


def test_positional_from_zero_and_empty() -> None:
    assert [key for key, _, _ in parse(prepare_positional([{}, {}], 0, "demo", 1))] == ["0", "1"]
    assert prepare_positional([], 7, "demo", 1) == PreparedPage(0, 0)


def test_positional_nul_is_refused() -> None:
    with pytest.raises(RecordError) as info:
        prepare_positional([{"a": 1}, {"a": "\u0000"}], 50, "demo", 4)
    assert str(info.value).startswith("sync 'demo': page 4, record 1: contains a NUL character")
