"""Unit and property tests of nango_provider/paths.py (and the no-crash property of SyncDefinition.from_mapping)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nango_provider.definition import FIELD_NAMES, SyncDefinition
from nango_provider.exceptions import PathError, SyncDefinitionError
from nango_provider.paths import MISSING, compile_path, set_dot_path

DOC: dict[str, Any] = {
    "a": {"b": {"c": 3}},
    "items": [{"id": 7, "active": True}, {"id": 8, "active": False}, {"id": 9, "active": True}],
    "none": None,
    "n": 5,
    "s": "text",
    "0": "zero",
}


# --- dot paths ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a", {"b": {"c": 3}}),
        ("a.b.c", 3),
        ("items.0.id", 7),
        ("items.2.id", 9),
        ("items.-1.id", 9),
        ("none", None),
        ("0", "zero"),
    ],
)
def test_dot_path(expression: str, expected: Any) -> None:
    path = compile_path(expression)
    assert path.is_jsonpath is False
    assert path.may_match_many is False
    assert path.segments == tuple(expression.split("."))
    assert path.get(DOC) == expected


@pytest.mark.parametrize(
    "expression", ["missing", "a.x", "a.b.c.d", "items.3.id", "items.-4.id", "items.x", "n.b", "s.0", "none.a"]
)
def test_dot_path_missing(expression: str) -> None:
    assert compile_path(expression).get(DOC) is MISSING


def test_dot_path_on_a_list_document() -> None:
    assert compile_path("1.id").get([{"id": 1}, {"id": 2}]) == 2
    assert compile_path("id").get([{"id": 1}]) is MISSING
    assert compile_path("id").get("a string") is MISSING


# --- JSONPath -----------------------------------------------------------------------------------------------


def test_jsonpath_root_on_a_top_level_list_returns_the_list() -> None:
    path = compile_path("$")
    assert path.is_jsonpath is True
    assert path.segments is None
    assert path.may_match_many is False
    assert path.get([{"id": 1}, {"id": 2}]) == [{"id": 1}, {"id": 2}]
    assert path.get([{"id": 1}]) == [{"id": 1}]


@pytest.mark.parametrize(
    ("data", "expected"),
    [([{"id": 1}, {"id": 2}], [{"id": 1}, {"id": 2}]), ([{"id": 1}], [{"id": 1}]), ([5], [5])],
)
def test_jsonpath_wildcard_returns_a_list_of_matches(data: list[Any], expected: list[Any]) -> None:
    path = compile_path("$.data[*]")
    assert path.may_match_many is True
    assert path.get({"data": data}) == expected


def test_jsonpath_without_wildcard_returns_the_value() -> None:
    assert compile_path("$.data").get({"data": [1, 2]}) == [1, 2]
    assert compile_path("$.data").get({"data": {"x": 1}}) == {"x": 1}
    assert compile_path("$.a.b.c").get(DOC) == 3
    assert compile_path("$.missing").get(DOC) is MISSING


def test_jsonpath_recursive_descent() -> None:
    document = {"a": {"id": 1, "b": [{"id": 2}, {"c": {"id": 3}}]}}
    assert sorted(compile_path("$..id").get(document)) == [1, 2, 3]
    assert compile_path("$..id").get({"x": {"id": 1}}) == [1]
    assert compile_path("$..id").get({"x": 1}) is MISSING


def test_jsonpath_filter() -> None:
    path = compile_path("$.items[?(@.active == true)]")
    assert path.may_match_many is True
    assert path.get(DOC) == [{"id": 7, "active": True}, {"id": 9, "active": True}]
    assert path.get({"items": [{"id": 1, "active": True}]}) == [{"id": 1, "active": True}]
    assert path.get({"items": [{"id": 1, "active": False}]}) is MISSING


def test_jsonpath_slice() -> None:
    assert compile_path("$.items[0:2].id").get(DOC) == [7, 8]


def test_jsonpath_wildcard_on_an_empty_list_returns_an_empty_list() -> None:
    # an API's empty last page is an empty page, not a missing response_path
    assert compile_path("$.data[*]").get({"data": []}) == []
    assert compile_path("$.a.data[*]").get({"a": {"data": []}}) == []
    assert compile_path("$.data[*]").get({"other": []}) is MISSING
    assert compile_path("$.data[*]").get({"data": {}}) is MISSING


# --- invalid expressions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "a path must be a non-empty string, got ''"),
        ("   ", "a path must be a non-empty string, got '   '"),
        (15, "a path must be a non-empty string, got 15"),
        (None, "a path must be a non-empty string, got None"),
        ("a..b", "'a..b' is not a dot path: segments must be non-empty and without spaces"),
        ("a. b", "'a. b' is not a dot path"),
        (".a", "'.a' is not a dot path"),
        ("a.", "'a.' is not a dot path"),
        ("a\tb", "'a\\tb' is not a dot path"),
        ("$[", "'$[' is not valid JSONPath"),
        ("$.a[?(@.b ==", "'$.a[?(@.b ==' is not valid JSONPath"),
    ],
)
def test_invalid_expression(expression: Any, message: str) -> None:
    with pytest.raises(PathError) as info:
        compile_path(expression)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unhashable_expression_is_a_path_error() -> None:
    with pytest.raises(PathError):
        compile_path(["a"])  # type: ignore[arg-type]


def test_dot_path_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(PathError):
        compile_path("id\n")


# --- set_dot_path -------------------------------------------------------------------------------------------


def test_set_dot_path_creates_nested_objects() -> None:
    document: dict[str, Any] = {"keep": 1}
    set_dot_path(document, "a.b.c", "x")
    assert document == {"keep": 1, "a": {"b": {"c": "x"}}}
    set_dot_path(document, "a.b.d", 2)
    assert document == {"keep": 1, "a": {"b": {"c": "x", "d": 2}}}
    set_dot_path(document, "top", None)
    assert document == {"keep": 1, "a": {"b": {"c": "x", "d": 2}}, "top": None}


@pytest.mark.parametrize("intermediate", [5, "text", [1, 2], None])
def test_set_dot_path_overwrites_non_dict_intermediates(intermediate: Any) -> None:
    document: dict[str, Any] = {"a": intermediate, "z": 0}
    set_dot_path(document, "a.b", 1)
    assert document == {"a": {"b": 1}, "z": 0}


def test_set_dot_path_overwrites_a_leaf() -> None:
    document: dict[str, Any] = {"a": {"b": {"old": 1}}}
    set_dot_path(document, "a.b", "new")
    assert document == {"a": {"b": "new"}}


def test_set_dot_path_refuses_jsonpath() -> None:
    document: dict[str, Any] = {}
    with pytest.raises(PathError) as info:
        set_dot_path(document, "$.a", 1)
    assert str(info.value) == "'$.a': only dot paths can be written to, not JSONPath"
    assert document == {}


def test_set_dot_path_refuses_an_invalid_path() -> None:
    with pytest.raises(PathError):
        set_dot_path({}, "a..b", 1)


# --- properties ---------------------------------------------------------------------------------------------

SAFE_KEY = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=6)
JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
JSON = st.recursive(
    JSON_SCALAR,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
NESTED = st.recursive(JSON_SCALAR, lambda children: st.dictionaries(SAFE_KEY, children, max_size=4), max_leaves=12)
PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(
    document=st.dictionaries(SAFE_KEY, NESTED, max_size=4), keys=st.lists(SAFE_KEY, min_size=1, max_size=5), value=JSON
)
def test_property_get_returns_what_set_put(document: dict[str, Any], keys: list[str], value: Any) -> None:
    expression = ".".join(keys)
    set_dot_path(document, expression, value)
    assert compile_path(expression).get(document) is value


@PROPERTY_SETTINGS
@given(keys=st.lists(SAFE_KEY, min_size=1, max_size=5), value=JSON)
def test_property_get_reads_a_hand_built_document(keys: list[str], value: Any) -> None:
    document: Any = value
    for key in reversed(keys):
        document = {key: document}
    assert compile_path(".".join(keys)).get(document) is value
    assert compile_path(".".join([*keys, "__absent__"])).get(document) is MISSING


JSONPATH_TEXT = st.text(alphabet="$.[]*?@()=<>!'\"0123456789abc:,&|~-+ ", max_size=20)


@PROPERTY_SETTINGS
@given(expression=st.text() | st.text().map(lambda text: "$" + text) | JSONPATH_TEXT.map(lambda text: "$" + text))
def test_property_compile_path_raises_only_path_error(expression: str) -> None:
    try:
        compiled = compile_path(expression)
    except PathError:
        return
    assert compiled.expression == expression
    assert compiled.is_jsonpath == expression.startswith("$")


URLS = st.sampled_from(
    ["https://api.example.com/v1", "/relative/path", "ftp://x.example.com", "{{ url }}", "http://", "a b", ""]
)


def _fields_strategy() -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from([*FIELD_NAMES, "urll", "bogus"])
    fields = st.dictionaries(names, JSON, max_size=8)
    with_url = st.tuples(fields, URLS | JSON).map(lambda pair: {**pair[0], "url": pair[1]})
    return fields | with_url


@PROPERTY_SETTINGS
@given(fields=_fields_strategy())
def test_property_from_mapping_raises_only_definition_errors(fields: dict[str, Any]) -> None:
    try:
        definition = SyncDefinition.from_mapping("demo", fields)
    except SyncDefinitionError as error:
        assert error.sync == "demo"
        assert error.field is None or error.field.split(".")[0] in {*fields, *FIELD_NAMES}
        return
    assert definition.name == "demo"
    assert definition.url == fields["url"]
    assert definition.method in ("GET", "POST", "PUT", "PATCH", "DELETE")
