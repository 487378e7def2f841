"""The ``connections`` field of a definition: a list of distinct Airflow connection ids, or a template rendering to
one; never with ``http_conn_id``; rows keyed by (connection, unique key) need a unique key. No network, no database."""

from __future__ import annotations

from typing import Any

import pytest

from nango_provider.definition import MAX_CONNECTIONS, SyncDefinition, parse_connections
from nango_provider.exceptions import SyncDefinitionError

KEYED = {"url": "/v1/accounts", "unique_key": "id"}


def build(**fields: Any) -> SyncDefinition:
    return SyncDefinition.from_mapping("accounts", {**KEYED, **fields}, source="syncs.yaml")


def test_a_list_of_connections_is_kept_in_order_and_makes_a_relative_url_valid() -> None:
    definition = build(connections=["tenant_b", "tenant_a", "tenant.c-1"])
    assert definition.connections == ("tenant_b", "tenant_a", "tenant.c-1")
    assert definition.http_conn_id is None
    assert definition.redacted()["connections"] == ("tenant_b", "tenant_a", "tenant.c-1")


def test_a_template_is_kept_for_airflow_to_render() -> None:
    assert build(connections="{{ var.json.tenants }}").connections == "{{ var.json.tenants }}"


def test_without_connections_nothing_changes() -> None:
    assert build(http_conn_id="api").connections is None


@pytest.mark.parametrize(
    ("connections", "message"),
    [
        ([], "at least one connection id"),
        (["a", "b", "a"], "connection 'a' is listed twice"),
        (["with space"], "expected Airflow connection ids"),
        (["x" * 251], "expected Airflow connection ids"),
        ([""], "expected Airflow connection ids"),
        ([7], "expected Airflow connection ids"),
        ("tenant_a", "or a template rendering to one"),
        ({"a": 1}, "expected a list of connection ids, got dict"),
        ([f"c{n}" for n in range(MAX_CONNECTIONS + 1)], f"at most {MAX_CONNECTIONS} connections"),
    ],
)
def test_connections_refused(connections: Any, message: str) -> None:
    with pytest.raises(SyncDefinitionError, match=message) as refused:
        build(connections=connections)
    assert refused.value.field == "connections"
    assert refused.value.sync == "accounts"
    assert str(refused.value).startswith("syncs.yaml: sync 'accounts', field 'connections'")


def test_the_most_connections_are_accepted() -> None:
    assert len(build(connections=[f"c{n}" for n in range(MAX_CONNECTIONS)]).connections or ()) == MAX_CONNECTIONS


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"connections": ["a"], "http_conn_id": "b"}, "either http_conn_id .* or connections"),
        ({"connections": ["a"], "unique_key": None}, "needs unique_key"),
        ({"connections": ["a"], "auto_mapping": True}, "auto_mapping"),
    ],
)
def test_connections_with_fields_they_exclude(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SyncDefinitionError, match=message) as refused:
        build(**fields)
    assert refused.value.field == "connections"


def test_a_relative_url_still_needs_a_connection() -> None:
    with pytest.raises(SyncDefinitionError, match=r"set http_conn_id \(or connections\)"):
        build()


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [('["a", "b"]', ("a", "b")), (["a"], ("a",)), (("a", "b"), ("a", "b"))],
)
def test_a_rendered_list_is_read_from_json_text(rendered: Any, expected: tuple[str, ...]) -> None:
    assert parse_connections(rendered, lambda message: SyncDefinitionError("s", "connections", message)) == expected


def test_rendered_text_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(SyncDefinitionError, match="JSON text of a list"):
        parse_connections("a, b", lambda message: SyncDefinitionError("s", "connections", message))
