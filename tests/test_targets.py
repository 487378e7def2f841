"""A connection's secrets go only to its own host, and no sync reaches a cloud metadata service or Airflow itself.

Checked when a definition is read (a template may read only the sync's own connection, by literal id; a metadata
address is refused), through the REST API of a live Airflow (422 for the reproductions, 403 for a connection the
user may not read), and before every request of a run, after rendering (:class:`HostGuard`): a refused request is
never sent."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.airflow_server import AirflowServer
from nango_provider.definition import SyncDefinition, connection_ids
from nango_provider.exceptions import ForbiddenTargetError, SyncDefinitionError
from nango_provider.hooks.nango import NangoHook
from nango_provider.targets import (
    ConnectionSecrets,
    Host,
    HostGuard,
    is_metadata_host,
    parse_allowed_hosts,
    refused_target,
    template_connection_ids,
)
from tests.fixture_server import FixtureServer, Reply
from tests.helpers import AirflowRunner
from tests.live_airflow import live_airflow
from tests.test_operator import dag_file, serve_items

__all__ = ["dag_file", "live_airflow"]  # fixtures, imported for pytest

URL = "https://api.example.com/v1/items"
LEAK = "{{ conn.postgres_default.get_uri() }}"
WAREHOUSE = {
    "conn_type": "postgres",
    "host": "db.internal",
    "port": 5432,
    "login": "loader",
    "password": "warehouse-pw-77",
    "schema": "dw",
}


def refused(fields: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(SyncDefinitionError) as raised:
        SyncDefinition.from_mapping("s", {"unique_key": "id", **fields})
    assert raised.value.field == field and message in str(raised.value), str(raised.value)


# -- read time: templates and literal URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer {{ conn.my_api.password }}", {"my_api"}),
        ("{{ conn['my_api'].extra_dejson.token }}", {"my_api"}),
        ('{{ conn.get("my_api").login }}:{{ conn.other.password }}', {"my_api", "other"}),
        ("{{ var.value.token }}", set()),
        ("no template: conn.my_api.password", set()),
    ],
)
def test_template_connection_ids_finds_literal_reads(text: str, expected: set[str]) -> None:
    assert template_connection_ids(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "{{ conn[var.value.name].password }}",
        "{% set c = conn %}{{ c.my_api.password }}",
        "{{ conn | attr('my_api') }}",
        "{{ conn.get(name).password }}",
        "{{ conn.my_api.password",
    ],
)
def test_a_connection_read_no_check_can_follow_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="connection"):
        template_connection_ids(text)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": URL, "headers": {"X-Conn": LEAK}}, "headers"),  # the reproduction
        ({"url": URL, "query_params": {"q": LEAK}}, "query_params"),
        ({"url": URL, "method": "POST", "body": {"data": [{"uri": LEAK}]}}, "body"),
        ({"url": URL + "?uri=" + LEAK}, "url"),
        ({"url": URL, "http_conn_id": "my_api", "headers": {"X-Conn": LEAK}}, "headers"),
    ],
)
def test_a_template_reading_another_connection_is_refused_when_read(fields: dict[str, Any], field: str) -> None:
    refused(fields, field, "reads connection 'postgres_default', which is not the sync's connection")


def test_a_template_may_read_the_syncs_own_connection() -> None:
    definition = SyncDefinition.from_mapping(
        "s",
        {"url": "/items", "http_conn_id": "my_api", "headers": {"Authorization": "Bearer {{ conn.my_api.password }}"}},
    )
    assert definition.headers["Authorization"] == "Bearer {{ conn.my_api.password }}"


def test_with_connections_a_template_may_read_each_listed_connection_only() -> None:
    fields = {"url": "/items", "unique_key": "id", "connections": ["tenant_a", "tenant_b"]}
    definition = SyncDefinition.from_mapping("s", {**fields, "headers": {"X-A": "{{ conn.tenant_b.password }}"}})
    assert connection_ids(definition) == {"tenant_a", "tenant_b", "postgres_default"}
    refused({**fields, "headers": {"X-A": "{{ conn.tenant_c.password }}"}}, "headers", "reads connection 'tenant_c'")
    templated = {**fields, "connections": "{{ var.json.tenants }}", "headers": {"X-A": "{{ conn.tenant_a.password }}"}}
    refused(templated, "headers", "it names no connection")  # a rendered list cannot be checked when read


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://[fd00:ec2::254]/latest",
        "http://metadata.google.internal/",
    ],
)
def test_a_cloud_metadata_url_is_refused_when_read(url: str) -> None:
    refused({"url": url}, "url", "cloud metadata or link-local address")


def test_refused_targets() -> None:
    assert refused_target("http://169.254.1.2/x", (), None) is not None  # link-local
    assert "Airflow's own API server" in str(
        refused_target("http://localhost:8080/api/v2/dags", (), "http://127.0.0.1:8080")
    )
    assert refused_target("http://127.0.0.1:9000/x", (), "http://127.0.0.1:8080") is None  # another port
    allowed = parse_allowed_hosts("api.example.com, *.hubapi.com  169.254.169.254 internal:8443")
    assert refused_target("https://api.example.com/x", allowed, None) is None
    assert refused_target("https://api.hubapi.com/x", allowed, None) is None
    assert refused_target("http://169.254.169.254/x", allowed, None) is None  # only the allow-list admits it
    assert refused_target("https://internal:8443/x", allowed, None) is None
    assert "not in [nango] allowed_hosts" in str(refused_target("https://internal/x", allowed, None))
    assert "not in [nango] allowed_hosts" in str(refused_target("https://example.org/x", allowed, None))
    assert is_metadata_host("[FE80::1]") and not is_metadata_host("10.0.0.1")


# -- the guard of a run (unit) ------------------------------------------------------------------------------------


def test_the_guard_keeps_each_connections_credentials_and_secrets_on_its_host() -> None:
    api = ConnectionSecrets("my_api", Host.of_connection("https://api.example.com", None), ("tok-123",), True)
    other = ConnectionSecrets("other", Host("other.example.com"), ("other-secret",))
    warehouse = ConnectionSecrets("warehouse", None, ("warehouse-pw-77",), never_sent=True)
    guard = HostGuard("s", connections=(api, other, warehouse))
    guard.check("https://api.example.com/items", [{"Authorization": "Bearer tok-123"}])
    with pytest.raises(ForbiddenTargetError, match=r"connection 'my_api' is for host api\.example\.com"):
        guard.check("https://evil.example.net/items", [])
    with pytest.raises(ForbiddenTargetError, match=r"goes to host api\.example\.com:8443"):  # a host is its port too
        guard.check("https://api.example.com:8443/items", [])
    guard.check("https://api.example.com/items?page=2", [{"Authorization": "Bearer tok-123"}])
    lone = HostGuard("s", connections=(other, warehouse))
    lone.check("https://other.example.com/x", [{"X-Key": "other-secret"}])
    with pytest.raises(ForbiddenTargetError, match="secret of connection 'other'") as raised:
        lone.check("https://evil.example.net/x", [None, {"q": "other-secret"}])
    assert "other-secret" not in str(raised.value)
    with pytest.raises(ForbiddenTargetError, match="secret of connection 'warehouse'"):
        lone.check("https://other.example.com/x", ["postgres://loader:warehouse-pw-77@db.internal/dw"])


# -- run time: the hook refuses before sending ----------------------------------------------------------------------


@pytest.fixture
def other_host_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``other_api``: a connection of another host, with a password."""
    conn = {"conn_type": "nango", "host": "https://api.example.com", "login": "u", "password": "other-pass-1"}
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_API", json.dumps(conn))
    yield "other_api"


def pages_of(definition: SyncDefinition, **hook_args: Any) -> list[Any]:
    return list(NangoHook(definition.http_conn_id, **hook_args).pages(definition))


@pytest.mark.integration
def test_the_syncs_connection_is_never_sent_to_another_host(
    api: FixtureServer, db: str, other_host_connection: str
) -> None:
    serve_items(api)
    definition = SyncDefinition.from_mapping("s", {"url": f"{api.url}/items", "http_conn_id": other_host_connection})
    with pytest.raises(ForbiddenTargetError, match=r"connection 'other_api' is for host api\.example\.com"):
        pages_of(definition)
    assert api.requests == []


@pytest.mark.integration
def test_a_rendered_request_with_another_hosts_secret_is_never_sent(
    api: FixtureServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_items(api)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(WAREHOUSE))
    rendered = SyncDefinition.from_mapping(
        "s", {"url": f"{api.url}/items", "headers": {"X-Conn": "postgres://loader:warehouse-pw-77@db.internal:5432/dw"}}
    )
    with pytest.raises(ForbiddenTargetError, match="secret of connection 'warehouse'") as raised:
        pages_of(rendered, template_connections={"warehouse"})
    assert "warehouse-pw-77" not in str(raised.value)
    assert api.requests == []


@pytest.mark.integration
def test_a_rendered_metadata_url_is_refused_before_any_request(api: FixtureServer, db: str) -> None:
    definition = SyncDefinition.from_mapping("s", {"url": f"{api.url}/items"})
    rendered = dataclasses.replace(definition, url="http://169.254.169.254/latest/meta-data/iam/")
    with pytest.raises(ForbiddenTargetError, match="cloud metadata"):
        pages_of(rendered)


@pytest.mark.integration
def test_a_refused_next_request_fails_after_the_page_before_is_handed_on(
    api: FixtureServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next request is checked when it is prepared, before its page is handed on, and the refusal is raised
    in the request's own turn: the page whose response named it still reaches the writer."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(WAREHOUSE))
    leaking = f"{api.url}/items?page=2&dsn=warehouse-pw-77"
    api.route("GET", "/items", lambda request: Reply(json={"results": [{"id": 1}], "next": leaking}))
    definition = SyncDefinition.from_mapping("s", {"url": f"{api.url}/items", "paging_response_path": "next"})
    handed_on = []
    with pytest.raises(ForbiddenTargetError, match="secret of connection 'warehouse'"):
        for page in NangoHook(template_connections={"warehouse"}).pages(definition):
            handed_on.append(page.records)
    assert handed_on == [[{"id": 1}]]
    assert len(api.requests) == 1


@pytest.mark.integration
def test_the_allow_list_and_airflows_own_api_server(
    api: FixtureServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_items(api)
    definition = SyncDefinition.from_mapping("s", {"url": f"{api.url}/items", "unique_key": "id"})
    monkeypatch.setenv("AIRFLOW__NANGO__ALLOWED_HOSTS", "api.example.com, *.example.org")
    with pytest.raises(ForbiddenTargetError, match="not in \\[nango\\] allowed_hosts"):
        pages_of(definition)
    monkeypatch.delenv("AIRFLOW__NANGO__ALLOWED_HOSTS")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", api.url)
    with pytest.raises(ForbiddenTargetError, match="Airflow's own API server"):
        pages_of(definition)
    assert api.requests == []
    monkeypatch.setenv("AIRFLOW__NANGO__ALLOWED_HOSTS", "127.0.0.1")  # an explicit allow admits it
    assert [len(page.records) for page in pages_of(definition)] == [3]


@pytest.mark.integration
def test_an_operator_templating_another_hosts_connection_fails_without_sending(
    airflow: AirflowRunner,
    api: FixtureServer,
    dag_file: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The reproduction, through a DAG file's operator (no definition is read before the run): the rendered
    header holds the warehouse connection's URI, password included, for the API's host."""
    requests = serve_items(api)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps(WAREHOUSE))
    dag_file(
        "leak",
        f"""
        NangoSyncOperator(
            task_id="sync",
            url="{api.url}/items",
            unique_key="id",
            sync_name="leak",
            headers={{"X-Conn": "{{{{ conn.warehouse.get_uri() }}}}"}},
        )
        """,
    )
    dag_run = airflow.run("leak")
    assert dag_run.state == "failed"
    output = capfd.readouterr()
    assert "ForbiddenTargetError" in output.out + output.err
    assert "secret of connection 'warehouse'" in output.out + output.err
    assert requests == []


# -- the REST API of a live Airflow -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest(live_airflow: AirflowServer) -> Iterator[tuple[AirflowServer, Any]]:
    yield live_airflow, live_airflow.client("admin")


def post(server: AirflowServer, http: Any, name: str, **fields: Any) -> Any:
    body = {"name": name, "url": f"{server.environment.api.url}/api/v2/pokemon", "frequency": None, **fields}
    return http.post(f"{server.url}/nango/v1/syncs", json=body, timeout=60)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"headers": {"X-Conn": LEAK}}, "headers", "reads connection 'postgres_default'"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url", "cloud metadata"),
        ({"url": "AIRFLOW/api/v2/dags"}, "url", "Airflow's own API server"),
        ({"url": "https://example.com/x", "http_conn_id": "nango_demo_api"}, "url", "not the host of connection"),
    ],
    ids=["conn_uri_in_header", "metadata", "airflow_itself", "connection_to_other_host"],
)
def test_rest_refuses_each_target_with_a_422(
    rest: tuple[AirflowServer, Any], fields: dict[str, Any], field: str, message: str
) -> None:
    server, http = rest
    fields = {key: value.replace("AIRFLOW", server.url) if key == "url" else value for key, value in fields.items()}
    response = post(server, http, "target_refused", **fields)
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["code"], error["sync"], error["field"]) == ("invalid_definition", "target_refused", field)
    assert message in error["detail"]


@pytest.mark.integration
def test_rest_syncs_may_use_only_connections_the_user_may_read(rest: tuple[AirflowServer, Any]) -> None:
    server, admin = rest
    editor = server.client("editor")  # may create and run DAGs, may not read connections
    response = post(server, editor, "editor_sync")
    assert response.status_code == 403, response.text
    error = response.json()
    assert error["code"] == "forbidden" and "connection 'postgres_default'" in error["detail"]
    listed = admin.get(f"{server.url}/nango/v1/syncs", timeout=60).json()
    assert "editor_sync" not in {sync["id"] for sync in listed["syncs"]}
    created = post(server, admin, "editor_sync")
    assert created.status_code == 201, created.text
    assert admin.delete(f"{server.url}/nango/v1/syncs/editor_sync", timeout=60).status_code == 200


@pytest.mark.integration
def test_the_hook_answers_with_the_page_when_allowed(api: FixtureServer) -> None:
    """Guard plumbing without Airflow config: a plain request to the loopback server passes."""
    api.route("GET", "/one", lambda request: Reply(json={"results": [{"id": 1}]}))
    definition = SyncDefinition.from_mapping("s", {"url": f"{api.url}/one"})
    assert [page.records for page in NangoHook().pages(definition)] == [[{"id": 1}]]


def test_the_allow_list_is_a_documented_option_of_the_provider() -> None:
    from nango_provider.get_provider_info import get_provider_info

    option = get_provider_info()["config"]["nango"]["options"]["allowed_hosts"]
    assert option["default"] == "" and option["type"] == "string" and "*.example.com" in option["description"]
