"""Hostile and careless input: every definition is either refused when it is read (a ``SyncDefinitionError``
naming the field, a 422 through the REST API) or survives everything that carries it afterwards (JSON,
Airflow's DAG serialization, Postgres ``jsonb``). No definition can stop other syncs, break the API, or take
another sync's table."""

from __future__ import annotations

import json
import math
import re
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from devtools.airflow_server import AirflowServer
from nango_provider.dag_factory import ERRORS_FILE_NAME, build_dag, find_syncs, load_sync_dags
from nango_provider.definition import (
    MAX_BIGINT,
    MAX_JSON_DEPTH,
    MAX_SYNC_NAME_LENGTH,
    SyncDefinition,
    iter_definitions_file,
)
from nango_provider.exceptions import SyncDefinitionError
from nango_provider.store.registry import SyncRegistry
from tests.live_airflow import live_airflow

__all__ = ["live_airflow"]  # the fixture, imported for pytest

URL = "https://api.example.com/v1/items"


def fields_of(**extra: Any) -> dict[str, Any]:
    return {"url": URL, "unique_key": "id", **extra}


def refused(name: str, fields: dict[str, Any], field: str | None, message: str) -> SyncDefinitionError:
    with pytest.raises(SyncDefinitionError) as raised:
        SyncDefinition.from_mapping(name, fields)
    assert raised.value.field == field and message in str(raised.value), str(raised.value)
    return raised.value


def found_errors(folder: Path, *, registry: bool = True) -> str:
    """The errors the DAG factory reports for ``folder`` (and the registry), one per line."""
    return "\n".join(find_syncs(folder, registry=registry).errors)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def airflow_serialized(definition: SyncDefinition) -> dict[str, Any]:
    """The DAG of ``definition`` as the DAG processor serializes it: JSON for the database, msgpack for its
    messages (which refuse integers beyond 2**64), and back."""
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(build_dag(definition))
    json.dumps(data, allow_nan=False)
    msgspec.msgpack.encode(data)
    DagSerialization.from_dict(data)
    return data


# -- the reproductions, at the definition ---------------------------------------------------------------------

REPRODUCTIONS: list[tuple[str, str, dict[str, Any], str | None, str]] = [
    (
        "max_total_beyond_64_bits",
        "x",
        fields_of(max_total=18446744073709551616),
        "max_total",
        "beyond a Postgres bigint",
    ),
    ("frequency_100000000h", "x", fields_of(frequency="100000000h"), "frequency", "at most 366 days"),
    ("frequency_2000000_weeks", "x", fields_of(frequency="2000000 weeks"), "frequency", "at most 366 days"),
    ("frequency_50000000_days", "x", fields_of(frequency="50000000 days"), "frequency", "at most 366 days"),
    ("name_of_240_characters", "n" * 240, fields_of(), None, "at most 63 characters"),
    ("name_of_64_characters", "n" * 64, fields_of(), None, "at most 63 characters"),
    ("body_nested_300_levels", "x", fields_of(method="POST", body=nested(300)), "body", "more than 32 levels"),
    ("nan_in_body", "x", fields_of(method="POST", body={"a": math.nan}), "body", "NaN and infinities"),
    ("infinity_in_body", "x", fields_of(method="POST", body=[math.inf]), "body", "NaN and infinities"),
    ("nul_in_body", "x", fields_of(method="POST", body={"a": "x\x00y"}), "body", "NUL character"),
    ("nul_in_body_key", "x", fields_of(method="POST", body={"a\x00": 1}), "body", "NUL character"),
    ("nan_in_headers", "x", fields_of(headers={"X-A": math.nan}), "headers", "NaN and infinities"),
    ("nul_in_headers", "x", fields_of(headers={"X-A": "a\x00"}), "headers", "NUL character"),
    ("crlf_in_header_value", "x", fields_of(headers={"X-A": "a\r\nX-Evil: 1"}), "headers", "control characters"),
    ("crlf_in_header_name", "x", fields_of(headers={"X-A\r\nX-Evil": "1"}), "headers", "a header name is"),
    ("infinity_in_query", "x", fields_of(query_params={"a": -math.inf}), "query_params", "NaN and infinities"),
    ("nul_in_query", "x", fields_of(query_params={"a": ["x\x00"]}), "query_params", "NUL character"),
    ("crlf_in_query", "x", fields_of(query_params={"a\r\n": "1"}), "query_params", "control characters"),
    ("nul_in_url", "x", fields_of(url=URL + "?a=\x00"), "url", "NUL character"),
    ("crlf_in_templated_url", "x", fields_of(url=URL + "/{{ ds }}\r\n"), "url", "control characters"),
    ("table_in_information_schema", "x", fields_of(table="information_schema.x"), "table", "belongs to Postgres"),
    ("table_in_pg_catalog", "x", fields_of(table="pg_catalog.x"), "table", "belongs to Postgres"),
    ("table_in_a_pg_schema", "x", fields_of(table="PG_temp_3.x"), "table", "belongs to Postgres"),
    ("table_of_another_sync", "x", fields_of(table="nango.pokemon"), "table", "default table of the sync named"),
    ("bare_table_of_another_sync", "x", fields_of(table="pokemon"), "table", "default table of the sync named"),
]


@pytest.mark.parametrize(
    ("name", "fields", "field", "message"),
    [case[1:] for case in REPRODUCTIONS],
    ids=[case[0] for case in REPRODUCTIONS],
)
def test_each_reproduction_is_refused_naming_the_field(
    name: str, fields: dict[str, Any], field: str | None, message: str
) -> None:
    refused(name, fields, field, message)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("request_retries", 101, "<= 100"),
        ("max_pages", 100_000_001, "<= 100_000_000"),
        ("request_timeout", 3601, "<= 3600"),
        ("request_backoff_seconds", 61, "<= 60"),
        ("request_retry_max_seconds", 86_401, "<= 86400"),
        ("http_conn_id", "a" * 251, "at most 250"),
        ("postgres_conn_id", "bad id", "expected an Airflow connection id"),
        ("response_path", "a." * 600, "at most 1024 characters"),
        ("unique_key", "id\n", "control characters"),
        ("frequency", "1" * 101 + "m", "at most 100 characters"),
    ],
)
def test_every_field_has_an_upper_bound(field: str, value: Any, message: str) -> None:
    refused("x", fields_of(**{field: value}), field, message)


def test_the_largest_accepted_values_survive_airflow_and_postgres_types() -> None:
    definition = SyncDefinition.from_mapping(
        "n" * MAX_SYNC_NAME_LENGTH,
        fields_of(
            method="POST",
            max_total=MAX_BIGINT,
            max_pages=100_000_000,
            request_retries=100,
            frequency="366 days",
            body=nested(MAX_JSON_DEPTH, leaf=-MAX_BIGINT - 1),
        ),
    )
    data = airflow_serialized(definition)
    assert len(data["dag"]["dag_id"]) == 74
    assert definition.qualified_table == ("nango", "n" * 63)


def test_sizes_are_bounded() -> None:
    refused("x", fields_of(method="POST", body={"a": "x" * 70_000}), "body", "more than the limit of 65_536")
    refused("x", fields_of(method="POST", body=list(range(20_001))), "body", "more than 20_000 values")
    refused("x", fields_of(headers={"X-A": "x" * 17_000}), "headers", "more than the limit of 16_384")
    refused("x", fields_of(query_params={"q": "x" * 17_000}), "query_params", "more than the limit of 16_384")
    refused("x", fields_of(url=URL + "?q=" + "x" * 8_200), "url", "at most 8192 characters")


def test_checking_a_field_takes_memory_in_proportion_to_the_field() -> None:
    body = {"k" * 10_000: [0] * 19_000}  # 19,000 values under one long key: about 0.2 MB
    tracemalloc.start()
    try:
        refused("x", fields_of(method="POST", body=body), "body", "more than the limit of 65_536")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, peak


def test_numbers_jsonb_would_change_are_refused() -> None:
    refused("x", fields_of(method="POST", body={"a": 1e16}), "body", "write numbers of 1e16 or more")
    refused("x", fields_of(method="POST", body={"a": 2**63}), "body", "beyond a Postgres bigint")
    assert SyncDefinition.from_mapping("x", fields_of(method="POST", body=[9.99e15, -(2**63)])).body


def test_unpaired_surrogates_are_refused() -> None:
    refused("x", fields_of(method="POST", body={"a": "\ud800"}), "body", "unpaired surrogate")
    refused("x", fields_of(headers={"X-A": "\udfff"}), "headers", "unpaired surrogate")


def test_a_header_value_cannot_start_with_a_space_but_templates_are_fine() -> None:
    refused("x", fields_of(headers={"X-A": " token"}), "headers", "cannot start with a space")
    templated = fields_of(http_conn_id="a", headers={"Authorization": "Bearer {{ conn.a.password }}"})
    definition = SyncDefinition.from_mapping("x", templated)
    assert definition.headers["Authorization"].startswith("Bearer ")


# -- frequency: a minimum unless allowed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "frequency", ["30s", "59 seconds", "@continuous", "* * * * * */10", "* * * * * *", timedelta(seconds=59)]
)
def test_schedules_more_often_than_once_a_minute_need_allow_short_frequency(frequency: Any) -> None:
    refused("x", fields_of(frequency=frequency), "frequency", "set allow_short_frequency: true")
    allowed = SyncDefinition.from_mapping("x", fields_of(frequency=frequency, allow_short_frequency=True))
    assert allowed.allow_short_frequency is True


@pytest.mark.parametrize("frequency", ["1m", "60s", "*/1 * * * *", "* * * * * 30", "@hourly", None])
def test_once_a_minute_or_less_is_fine(frequency: Any) -> None:
    assert SyncDefinition.from_mapping("x", fields_of(frequency=frequency)).allow_short_frequency is False


def test_allow_short_frequency_is_a_boolean_and_not_an_operator_argument() -> None:
    refused("x", fields_of(allow_short_frequency="yes"), "allow_short_frequency", "expected true or false")
    definition = SyncDefinition.from_mapping("x", fields_of(frequency="30s", allow_short_frequency=True))
    dag = build_dag(definition)
    assert dag.schedule == timedelta(seconds=30) and not hasattr(dag.get_task("sync"), "allow_short_frequency")


# -- YAML files -----------------------------------------------------------------------------------------------

ALIAS_BOMB = """\
x1: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
x2: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
x3: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
x4: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
x5: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
x6: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
x7: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
syncs:
  bomb:
    url: https://api.example.com/x
    method: POST
    body: *g
"""


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    with pytest.raises(SyncDefinitionError, match=r"the alias \*a \(line 2, column 9\): anchors and aliases") as raised:
        list(iter_definitions_file(path))
    assert raised.value.source == str(path)


def test_a_yaml_merge_key_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "syncs:\n  a: &base\n    url: https://api.example.com/a\n  b:\n    <<: *base\n    unique_key: id\n",
        encoding="utf-8",
    )
    with pytest.raises(SyncDefinitionError, match=r"the alias \*base"):
        list(iter_definitions_file(path))


def test_an_ampersand_in_a_value_is_no_alias(tmp_path: Path) -> None:
    path = tmp_path / "fine.yaml"
    path.write_text("syncs:\n  a:\n    url: https://api.example.com/a?x=1&y=2\n", encoding="utf-8")
    (definition,) = iter_definitions_file(path)
    assert isinstance(definition, SyncDefinition) and definition.url.endswith("&y=2")


def test_a_file_that_is_not_utf8_is_a_definition_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "good.yaml").write_text("syncs:\n  good:\n    url: https://api.example.com/a\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("syncs:\n  bad:\n    url: https://api.example.com/caf\xe9\n".encode("latin-1"))
    assert list(load_sync_dags(tmp_path, registry=False)) == ["nango_sync_good"]
    assert re.search(rf"{latin1}: sync '\?': not UTF-8 text", found_errors(tmp_path, registry=False))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "nango_sync_good")  # a worker running good's task
    assert list(load_sync_dags(tmp_path, registry=False)) == ["nango_sync_good"]


def test_a_number_python_cannot_read_is_a_definition_error(tmp_path: Path) -> None:
    path = tmp_path / "digits.yaml"
    path.write_text(f"syncs:\n  a:\n    url: https://api.example.com/a\n    max_total: {'9' * 5000}\n")
    with pytest.raises(SyncDefinitionError, match="not readable YAML: Exceeds the limit"):
        list(iter_definitions_file(path))


def test_yaml_numbers_and_strings_are_bounded_like_json(tmp_path: Path) -> None:
    path = tmp_path / "numbers.yaml"
    path.write_text(
        "syncs:\n"
        "  big:\n    url: https://api.example.com/a\n    max_total: 18446744073709551616\n"
        "  nan:\n    url: https://api.example.com/a\n    headers: {X-A: .nan}\n"
        '  nul:\n    url: https://api.example.com/a\n    query_params: {q: "a\\0b"}\n'
        "  often:\n    url: https://api.example.com/a\n    frequency: 10s\n",
        encoding="utf-8",
    )
    errors = {error.sync: error.field for error in iter_definitions_file(path) if isinstance(error, Exception)}
    assert errors == {"big": "max_total", "nan": "headers", "nul": "query_params", "often": "frequency"}


def test_the_dag_processor_parses_every_other_sync_and_names_each_bad_file(
    airflow_dag_folder: Path, tmp_path: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "good.yaml").write_text("syncs:\n  good:\n    url: https://api.example.com/a\n", encoding="utf-8")
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB, encoding="utf-8")
    (tmp_path / "latin1.yaml").write_bytes(b"syncs:\n  caf\xe9:\n    url: https://api.example.com/a\n")
    (tmp_path / "huge.yaml").write_text(
        "syncs:\n"
        f"  huge:\n    url: https://api.example.com/a\n    max_total: {2**64}\n"
        "  rare:\n    url: https://api.example.com/a\n    frequency: 100000000h\n"
        f"  {'n' * 240}:\n    url: https://api.example.com/a\n",
        encoding="utf-8",
    )
    bag = DagBag(str(airflow_dag_folder))
    sync_dags = sorted(dag_id for dag_id in bag.dag_ids if dag_id.startswith("nango_sync_"))
    assert sync_dags == ["nango_sync_good"]
    ((failed_file, error),) = bag.import_errors.items()
    assert Path(failed_file).name == ERRORS_FILE_NAME and "5 invalid sync definitions" in error, error
    for expected in ("bomb.yaml", "latin1.yaml: sync '?': not UTF-8", "'huge', field 'max_total'", "'rare', field"):
        assert expected in error
    from airflow.serialization.serialized_objects import DagSerialization

    msgspec.msgpack.encode(DagSerialization.to_dict(bag.dags["nango_sync_good"]))


# -- tables: one sync each ------------------------------------------------------------------------------------

CONTACTS = "    url: https://api.example.com/contacts\n    unique_key: id\n    table: crm.contacts\n"


def test_two_yaml_syncs_with_one_table_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"syncs:\n  contacts:\n{CONTACTS}", encoding="utf-8")
    (tmp_path / "b.yaml").write_text(f"syncs:\n  people:\n{CONTACTS}", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        f"syncs:\n  elsewhere:\n{CONTACTS}    postgres_conn_id: warehouse\n", encoding="utf-8"
    )
    dags = load_sync_dags(tmp_path, registry=False)
    assert sorted(dags) == ["nango_sync_contacts", "nango_sync_elsewhere"]  # another database is another table
    expected = (
        rf"{tmp_path / 'b.yaml'}: sync 'people' writes to crm.contacts \(postgres_default\), which is the table of "
        rf"sync 'contacts' in {tmp_path / 'a.yaml'}"
    )
    assert re.search(expected, found_errors(tmp_path, registry=False))


def test_two_syncs_in_one_file_with_one_table_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"syncs:\n  contacts:\n{CONTACTS}  people:\n{CONTACTS}", encoding="utf-8")
    assert list(load_sync_dags(tmp_path, registry=False)) == ["nango_sync_contacts"]
    assert re.search(r"sync 'people' writes to crm\.contacts", found_errors(tmp_path, registry=False))


@pytest.mark.integration
def test_a_registry_sync_with_a_yaml_syncs_table_is_an_error_naming_both(db: str, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(f"syncs:\n  contacts:\n{CONTACTS}", encoding="utf-8")
    SyncRegistry().save("people", {"url": "https://api.example.com/people", "table": "crm.contacts"})
    assert list(load_sync_dags(tmp_path)) == ["nango_sync_contacts"]
    assert re.search(
        r"nango\._nango_definitions: sync 'people' writes to crm\.contacts .*a\.yaml",
        found_errors(tmp_path),
    )


@pytest.mark.integration
def test_a_definition_stored_before_these_limits_is_reported_not_served(db: str, tmp_path: Path) -> None:
    SyncRegistry().save("good", {"url": URL})
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO nango._nango_definitions (name, fields) VALUES ('deep', %s)",
            (Jsonb({"url": URL, "method": "POST", "body": nested(300)}),),
        )
    errors = [item for item in SyncRegistry().iter_definitions() if isinstance(item, SyncDefinitionError)]
    assert [(error.sync, error.field) for error in errors] == [("deep", "body")]
    assert list(load_sync_dags(tmp_path)) == ["nango_sync_good"]
    assert re.search(r"sync 'deep', field 'body': is nested more than 32 levels deep", found_errors(tmp_path))


# -- properties: any JSON is refused cleanly or survives everything -------------------------------------------

_CHARACTERS = st.one_of(st.characters(), st.sampled_from(["\x00", "\r", "\n", "\ud800", "\udfff", "{", "é"]))
_TEXT = st.one_of(st.text(_CHARACTERS, max_size=12), st.sampled_from(["{{ ds }}", "Bearer {{ conn.a.password }}"]))
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(),
    _TEXT,
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=30,
)
ANY_JSON = st.one_of(_JSON, st.tuples(st.integers(0, 40), _JSON).map(lambda pair: nested(*pair)))
JSON_FIELDS = ("body", "headers", "query_params")
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _validate(field: str, value: Any) -> tuple[dict[str, Any], SyncDefinition | None]:
    fields = fields_of(method="POST", **{field: value})
    try:
        return fields, SyncDefinition.from_mapping("prop", fields)
    except SyncDefinitionError as error:
        assert error.sync == "prop" and error.field == field, str(error)
        return fields, None


@pytest.mark.parametrize("field", JSON_FIELDS)
@PROPERTY_SETTINGS
@given(value=ANY_JSON)
def test_any_json_validates_or_is_a_definition_error_naming_the_field(field: str, value: Any) -> None:
    _, definition = _validate(field, value)
    if definition is not None:
        json.dumps(definition.redacted(), allow_nan=False)


@pytest.mark.parametrize("field", JSON_FIELDS)
@PROPERTY_SETTINGS
@given(value=ANY_JSON)
def test_a_valid_definition_survives_airflow_serialization(field: str, value: Any) -> None:
    _, definition = _validate(field, value)
    if definition is not None:
        airflow_serialized(definition)


@pytest.fixture(scope="module")
def jsonb(postgres_uri: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        yield conn


@pytest.mark.integration
@pytest.mark.parametrize("field", JSON_FIELDS)
@PROPERTY_SETTINGS
@given(value=ANY_JSON)
def test_a_valid_definition_survives_a_jsonb_round_trip_unchanged(
    jsonb: psycopg.Connection[Any], field: str, value: Any
) -> None:
    fields, definition = _validate(field, value)
    if definition is None:
        return
    row = jsonb.execute("SELECT %s::jsonb", (Jsonb(fields),)).fetchone()
    assert row is not None
    assert SyncDefinition.from_mapping("prop", row[0]) == definition  # what the registry gives back


# -- the reproductions through the REST API of a live Airflow ---------------------------------------------------


@pytest.fixture(scope="module")
def rest(live_airflow: AirflowServer) -> Iterator[RestApi]:
    yield RestApi(live_airflow)


class RestApi:
    """``POST`` and ``GET /nango/v1/syncs`` of the live Airflow as its admin."""

    def __init__(self, server: AirflowServer) -> None:
        self.server = server
        self.http = server.client("admin")
        self.base = f"{server.url}/nango/v1/syncs"

    def create(self, name: str, fields: dict[str, Any]) -> Any:
        # requests' json= would refuse NaN; a careless client sends it, as Python's json does by default
        data = json.dumps({"name": name, **fields})
        return self.http.post(self.base, data=data, headers={"Content-Type": "application/json"}, timeout=60)


def _rest_fields(server: AirflowServer, fields: dict[str, Any]) -> dict[str, Any]:
    """The reproduction's fields pointed at the demo API, and never scheduled."""
    return {**fields, "url": fields["url"].replace(URL, f"{server.environment.api.url}/api/v2/pokemon")}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "fields", "field", "message"),
    [case[1:] for case in REPRODUCTIONS],
    ids=[case[0] for case in REPRODUCTIONS],
)
def test_each_reproduction_is_a_422_naming_the_field(
    rest: RestApi, name: str, fields: dict[str, Any], field: str | None, message: str
) -> None:
    response = rest.create(name, _rest_fields(rest.server, fields))
    assert response.status_code == 422, response.text
    error = response.json()  # the API's one error shape
    assert (error["code"], error["sync"], error["field"]) == ("invalid_definition", name, field)
    assert message in error["detail"]
    listed = rest.http.get(rest.base, timeout=60)
    assert listed.status_code == 200 and name not in {sync["id"] for sync in listed.json()["syncs"]}


@pytest.mark.integration
def test_a_table_taken_by_another_sync_is_a_422_naming_it(rest: RestApi) -> None:
    url = f"{rest.server.environment.api.url}/api/v2/pokemon"
    first = rest.create("hostile_first", {"url": url, "table": "hostile.things", "frequency": None})
    assert first.status_code == 201, first.text
    try:
        second = rest.create("hostile_second", {"url": url, "table": "hostile.things", "frequency": None})
        assert second.status_code == 422, second.text
        error = second.json()
        assert error["field"] == "table" and "is the table of sync 'hostile_first'" in error["detail"]
        yaml_table = rest.create("hostile_third", {"url": url, "table": "nango.pokemon", "frequency": None})
        assert yaml_table.status_code == 422 and yaml_table.json()["field"] == "table"
    finally:
        assert rest.http.delete(f"{rest.base}/hostile_first", timeout=60).status_code == 200


@pytest.mark.integration
def test_a_body_nested_too_deep_for_json_parsers_is_a_4xx_not_a_500(rest: RestApi) -> None:
    url = f"{rest.server.environment.api.url}/api/v2/pokemon"
    deep = "[" * 5000 + "]" * 5000
    data = f'{{"name": "deep", "url": "{url}", "method": "POST", "body": {deep}}}'
    response = rest.http.post(rest.base, data=data, headers={"Content-Type": "application/json"}, timeout=60)
    assert 400 <= response.status_code < 500, response.text
    assert rest.http.get(rest.base, timeout=60).status_code == 200


@pytest.mark.integration
def test_a_trigger_with_max_total_beyond_a_bigint_is_a_422(rest: RestApi) -> None:
    body = {"action": "trigger", "sync_id": "pokemon", "conf": {"max_total": 2**64}}
    response = rest.http.put(rest.base, json=body, timeout=60)
    assert response.status_code == 422 and "max_total" in response.json()["detail"], response.text
