"""The original REST API (``/nango/v1/syncs``) on a real Airflow: create a sync with the body of the original
guide, see its DAG appear and run, trigger, pause, resume, cancel, delete; validation errors (one error shape),
conflicts, misspelled params, retrying runs, and authentication and authorization with Airflow's own users.
Also: the Airflow that ``make airflow`` starts is healthy and loads the plugin once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import requests

from devtools.airflow_server import HEALTH_PARTS, AirflowServer, wait_for
from devtools.environment import EXAMPLES
from tests.fixture_server import FixtureServer
from tests.live_airflow import job_rows, live_airflow, syncs_folder, wait_for_job, wait_until_idle
from tests.test_guide import guide_endpoint, only_guide_requests

pytestmark = pytest.mark.integration
__all__ = ["live_airflow"]  # the fixture, imported for pytest


class Api:
    """``/nango/v1/syncs`` of the live Airflow, as a given user."""

    def __init__(self, server: AirflowServer, user: str | None = "admin") -> None:
        self.server = server
        self.http = server.client(user)
        self.base = f"{server.url}/nango/v1/syncs"

    def create(self, body: dict[str, Any]) -> requests.Response:
        return self.http.post(self.base, json=body, timeout=60)

    def get(self, sync_id: str | None = None) -> requests.Response:
        return self.http.get(f"{self.base}/{sync_id}" if sync_id else self.base, timeout=60)

    def act(self, action: str, sync_id: str, **extra: Any) -> requests.Response:
        return self.http.put(self.base, json={"action": action, "sync_id": sync_id, **extra}, timeout=60)

    def delete(self, sync_id: str) -> requests.Response:
        return self.http.delete(f"{self.base}/{sync_id}", timeout=60)


def guide_body(server: AirflowServer, name: str) -> dict[str, Any]:
    """The curl body of the original "Adding a Sync" guide, pointed at the demo API's PokeAPI endpoint."""
    return {
        "name": name,
        "url": f"{server.environment.api.url}/api/v2/pokemon?limit=100",
        "method": "GET",
        "headers": {"Accept": "application/json"},
        "response_path": "results",
        "unique_key": "name",
        "paging_response_path": "next",
    }


def table_count(server: AirflowServer, table: str) -> int:
    schema, name = table.split(".")
    with psycopg.connect(server.environment.postgres.uri) as conn:
        query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(schema, name))
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def api(live_airflow: AirflowServer) -> Api:
    return Api(live_airflow)


@pytest.fixture(scope="module")
def pokedex(api: Api) -> str:
    """A sync created with the guide's body; its DAG is parsed and its first (scheduled) run is done."""
    response = api.create(guide_body(api.server, "pokedex"))
    assert response.status_code == 201, response.text
    assert response.json() == {"id": "pokedex", "dag_id": "nango_sync_pokedex", "reparse_requested": True}
    dag = api.server.wait_for_dag("nango_sync_pokedex", timeout=60)
    assert dag["is_paused"] is False and {tag["name"] for tag in dag["tags"]} == {"nango", "sync", "api"}
    wait_until_idle(api.server, "nango_sync_pokedex")
    return "pokedex"


def test_created_sync_runs_on_its_schedule_and_trigger_lands_rows(api: Api, pokedex: str) -> None:
    (first,) = job_rows(api.server, "nango_sync_pokedex")
    assert (first["status"], first["fetched"], first["added"]) == ("success", 600, 600)

    triggered = api.act("trigger", pokedex, conf={"full_refresh": True})
    assert triggered.status_code == 200, triggered.text
    run_id = triggered.json()["dag_run_id"]
    job = wait_for_job(api.server, "nango_sync_pokedex", run_id)
    assert api.server.wait_for_run("nango_sync_pokedex", run_id) == "success"
    assert (job["pages"], job["fetched"], job["added"], job["unchanged"], job["deleted"]) == (6, 600, 0, 600, 0)
    assert table_count(api.server, "nango.pokedex") == 600

    shown = api.get(pokedex).json()
    assert shown["source"] == "api" and shown["is_paused"] is False and shown["schedule"] == "every 1h"
    assert shown["definition"]["paging_response_path"] == "next" and shown["table"] == "nango.pokedex"
    last = shown["last_run"]
    assert (last["run_id"], last["status"], last["fetched"], last["unchanged"]) == (run_id, "success", 600, 600)
    assert [run["added"] for run in shown["history"]] == [600, 0]
    listed = {sync["id"]: sync for sync in api.get().json()["syncs"]}
    assert listed[pokedex]["last_run"] == last
    assert listed["pokemon"]["source"] == "yaml" and listed["pokemon"]["definition"]["unique_key"] == "name"


# The --data of each step's curl command in the original guide, as written there.
GUIDE_CURL_DATA = {
    "guide_curl_step_1": """
 {
"url": "https://api.example.com/my/endpoint?query=A+query",
"method": "GET",
"headers": { "Accept": "application/json"},
"body": { "mykey": "A great value"}
}""",
    "guide_curl_step_2": """
 {
"url": "https://api.example.com/my/endpoint?query=A+query",
"method": "GET",
"headers": { "Accept": "application/json"},
"body": { "mykey": "A great value"},
"response_path": "results"
}""",
    "guide_curl_step_3": """
 {
"url": "https://api.example.com/my/endpoint?query=A+query",
"method": "GET",
"headers": { "Accept": "application/json"},
"body": { "mykey": "A great value"},
"response_path": "results",
"unique_key": "name"
}""",
}


@pytest.fixture(scope="module")
def guide_server() -> Iterator[FixtureServer]:
    """A loopback API that answers only the guide's request (GET with its body, header and query)."""
    server = FixtureServer().start()
    yield server
    server.stop()


def test_the_guide_curl_examples_create_syncs_that_send_their_get_body(api: Api, guide_server: FixtureServer) -> None:
    endpoint = guide_endpoint(guide_server)
    for name, data in GUIDE_CURL_DATA.items():
        # Host aside, the body is the guide's; the API adds one field, the sync's name.
        body = {"name": name, **json.loads(data.replace("https://api.example.com/my/endpoint?query=A+query", endpoint))}
        response = api.create(body)
        assert response.status_code == 201, response.text
    for name in GUIDE_CURL_DATA:
        api.server.wait_for_dag(f"nango_sync_{name}", timeout=90)
        wait_until_idle(api.server, f"nango_sync_{name}")
        (job,) = job_rows(api.server, f"nango_sync_{name}")
        assert (job["status"], job["fetched"], job["error"]) == ("success", 3, None)
        assert table_count(api.server, f"nango.{name}") == 3
        assert api.get(name).json()["definition"]["body"] == {"mykey": "A great value"}
    assert len(guide_server.requests) == len(GUIDE_CURL_DATA)
    only_guide_requests(guide_server)


ERROR_KEYS = {"status", "code", "detail", "sync", "field"}


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an error of the one shape, with this status and code; its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and (body["status"], body["code"]) == (status, code), body
    assert isinstance(body["detail"], str) and body["detail"]
    return dict(body)


def test_a_fresh_airflow_is_healthy_and_loads_the_plugin_once(live_airflow: AirflowServer) -> None:
    health = requests.get(f"{live_airflow.url}/api/v2/monitor/health", timeout=30).json()
    assert {part: health[part]["status"] for part in HEALTH_PARTS} == dict.fromkeys(HEALTH_PARTS, "healthy")
    client = live_airflow.client()
    errors = client.get(f"{live_airflow.url}/api/v2/plugins/importErrors", timeout=30).json()
    assert errors == {"import_errors": [], "total_entries": 0}
    plugins = client.get(f"{live_airflow.url}/api/v2/plugins", timeout=30).json()["plugins"]
    # other installed plugins (dag-factory's, once `make bench` has installed it) may be listed too
    assert [plugin["name"] for plugin in plugins].count("nango") == 1


def test_trigger_conf_is_checked_by_the_dag_params(api: Api, pokedex: str) -> None:
    body = assert_error(api.act("trigger", pokedex, conf={"max_total": 0}), 422, "invalid_params")
    assert "max_total" in body["detail"] and (body["sync"], body["field"]) == (pokedex, "conf")


def test_a_misspelled_trigger_param_is_refused_with_the_nearest_name(api: Api, pokedex: str) -> None:
    runs_before = len(
        api.http.get(f"{api.server.url}/api/v2/dags/nango_sync_pokedex/dagRuns", timeout=30).json()["dag_runs"]
    )
    body = assert_error(api.act("trigger", pokedex, conf={"max_totl": 5}), 422, "invalid_params")
    assert (body["sync"], body["field"]) == (pokedex, "conf.max_totl")
    assert body["detail"] == "param 'max_totl' of nango_sync_pokedex: unknown param; did you mean 'max_total'?"
    other = assert_error(api.act("trigger", pokedex, conf={"colour": "red"}), 422, "invalid_params")
    assert other["detail"].endswith("valid params: full_refresh, max_total")
    runs_after = api.http.get(f"{api.server.url}/api/v2/dags/nango_sync_pokedex/dagRuns", timeout=30).json()
    assert len(runs_after["dag_runs"]) == runs_before  # nothing was triggered


@pytest.mark.parametrize(
    "case",
    [
        ("POST", "/v1/syncs", {"Content-Type": "application/json"}, '{"name": "x", "url": ', 400, "malformed_json"),
        ("PUT", "/v1/syncs", {"Content-Type": "application/json"}, "{'action': 'pause'}", 400, "malformed_json"),
        ("POST", "/v1/syncs", {}, '{"name": "x", "url": "https://example.com"}', 415, "unsupported_media_type"),
        ("POST", "/v1/syncs", {"Content-Type": "text/plain"}, '{"name": "x"}', 415, "unsupported_media_type"),
        (
            "PUT",
            "/v1/syncs",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "a=b",
            415,
            "unsupported_media_type",
        ),
        (
            "PUT",
            "/v1/syncs",
            {"Content-Type": "application/json"},
            '{"action": "explode", "sync_id": "pokemon"}',
            422,
            "invalid_request",
        ),
        ("PUT", "/v1/syncs", {"Content-Type": "application/json"}, '{"action": "pause"}', 422, "invalid_request"),
        ("POST", "/v1/syncs", {"Content-Type": "application/json"}, '["not", "an", "object"]', 422, "invalid_request"),
        (
            "POST",
            "/v1/syncs",
            {"Content-Type": "application/json"},
            '{"name": "x", "urll": "u"}',
            422,
            "invalid_definition",
        ),
        (
            "PUT",
            "/v1/syncs",
            {"Content-Type": "application/json"},
            '{"action": "pause", "sync_id": "nope"}',
            404,
            "sync_not_found",
        ),
        ("GET", "/v1/syncs/nope", {}, None, 404, "sync_not_found"),
        ("DELETE", "/v1/syncs/pokemon", {}, None, 409, "sync_state"),
        (
            "POST",
            "/v1/syncs",
            {"Content-Type": "application/json"},
            '{"name": "pokemon", "url": "https://e.com"}',
            409,
            "sync_exists",
        ),
        ("GET", "/v1/nothing-here", {}, None, 404, "not_found"),
        ("PATCH", "/v1/syncs", {"Content-Type": "application/json"}, "{}", 405, "method_not_allowed"),
    ],
)
def test_every_error_has_one_shape(api: Api, case: tuple[str, str, dict[str, str], str | None, int, str]) -> None:
    method, path, headers, data, status, code = case
    response = api.http.request(method, f"{api.server.url}/nango{path}", headers=headers, data=data, timeout=30)
    body = assert_error(response, status, code)
    if code == "invalid_request":
        assert body["field"] in ("action", "sync_id", None) and ":" in body["detail"]
    if code == "malformed_json":
        assert body["detail"].startswith("the body is not valid JSON")


def test_authentication_errors_have_the_same_shape(live_airflow: AirflowServer) -> None:
    anonymous = requests.get(f"{live_airflow.url}/nango/v1/syncs", timeout=30)
    assert_error(anonymous, 401, "unauthorized")
    bad_token = requests.get(
        f"{live_airflow.url}/nango/v1/syncs", headers={"Authorization": "Bearer not-a-token"}, timeout=30
    )
    assert_error(bad_token, 403, "forbidden")
    viewer = Api(live_airflow, "viewer").act("pause", "pokemon")
    assert "'viewer' is not allowed" in assert_error(viewer, 403, "forbidden")["detail"]


def test_defined_in_is_relative_and_frequencies_are_shown_as_written(api: Api) -> None:
    listed = {sync["id"]: sync for sync in api.get().json()["syncs"]}
    assert listed["pokemon"]["defined_in"] == "pokemon.yaml"
    contacts = listed["hubspot_contacts"]
    assert contacts["defined_in"] == "hubspot_contacts.yaml"
    assert contacts["schedule"] == "every 30 minutes" and contacts["definition"]["frequency"] == "30 minutes"
    assert listed["nested_objects"]["schedule"] == "0 */6 * * *"
    for sync in listed.values():
        assert sync["defined_in"] and not sync["defined_in"].startswith("/"), sync
    listing = api.get().text
    assert str(syncs_folder(api.server)) not in listing and str(EXAMPLES) not in listing


def test_pause_and_resume_change_is_paused(api: Api, pokedex: str) -> None:
    def airflow_is_paused() -> bool:
        return bool(api.http.get(f"{api.server.url}/api/v2/dags/nango_sync_pokedex", timeout=30).json()["is_paused"])

    paused = api.act("pause", pokedex)
    assert paused.status_code == 200 and paused.json()["is_paused"] is True
    assert airflow_is_paused() and api.get(pokedex).json()["is_paused"] is True
    resumed = api.act("resume", pokedex)
    assert resumed.status_code == 200 and resumed.json()["is_paused"] is False
    assert not airflow_is_paused() and api.get(pokedex).json()["is_paused"] is False


def test_cancel_fails_the_queued_run(api: Api, pokedex: str) -> None:
    wait_until_idle(api.server, "nango_sync_pokedex")
    assert api.act("pause", pokedex).status_code == 200  # a paused DAG's run stays queued
    run_id = api.act("trigger", pokedex).json()["dag_run_id"]
    cancelled = api.act("cancel", pokedex)
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] == [run_id]
    run = api.http.get(f"{api.server.url}/api/v2/dags/nango_sync_pokedex/dagRuns/{run_id}", timeout=30).json()
    assert run["state"] == "failed"
    assert api.act("cancel", pokedex).json()["cancelled"] == []
    assert api.act("resume", pokedex).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"paging_respone_path": "next"}, "paging_respone_path", "did you mean 'paging_response_path'?"),
        ({"url": "ftp://example.com"}, "url", "expected an http:// or https:// URL"),
        ({"name": "Bad-Name"}, None, "a sync name must match"),
        ({"name": None}, "name", "expected the sync's name"),
    ],
)
def test_an_invalid_body_is_a_422_naming_the_field(
    api: Api, change: dict[str, Any], field: str | None, message: str
) -> None:
    body = {**guide_body(api.server, "typo"), **change}
    response = api.create(body)
    detail = assert_error(response, 422, "invalid_definition")
    assert detail["field"] == field and message in detail["detail"]
    assert detail["sync"] == (body["name"] if isinstance(body["name"], str) else "?")
    assert api.get("typo").status_code == 404


def test_a_name_already_used_is_a_409(api: Api, pokedex: str) -> None:
    again = api.create(guide_body(api.server, pokedex))
    assert again.status_code == 409 and "already defined" in again.json()["detail"]
    yaml_name = api.create(guide_body(api.server, "pokemon"))
    assert yaml_name.status_code == 409 and "pokemon.yaml" in yaml_name.json()["detail"]


def test_delete_removes_the_sync_and_its_dag_but_keeps_the_table(api: Api) -> None:
    assert api.create(guide_body(api.server, "short_lived")).status_code == 201
    api.server.wait_for_dag("nango_sync_short_lived", timeout=60)
    wait_until_idle(api.server, "nango_sync_short_lived")
    assert table_count(api.server, "nango.short_lived") == 600

    deleted = api.delete("short_lived")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "id": "short_lived",
        "dag_id": "nango_sync_short_lived",
        "deleted": True,
        "table_kept": "nango.short_lived",
    }
    assert api.get("short_lived").status_code == 404 and api.delete("short_lived").status_code == 404
    dag = api.http.get(f"{api.server.url}/api/v2/dags/nango_sync_short_lived", timeout=30).json()
    assert dag["is_paused"] is True  # no new run while the DAG processor has not dropped it yet
    api.server.wait_for_dag("nango_sync_short_lived", timeout=90, present=False)
    assert table_count(api.server, "nango.short_lived") == 600
    assert table_count(api.server, "nango._nango_definitions") >= 1  # the registry table stays

    assert api.create(guide_body(api.server, "short_lived")).status_code == 201  # the name is free again
    assert api.server.wait_for_dag("nango_sync_short_lived", timeout=60)["is_paused"] is False


def test_a_yaml_sync_cannot_be_deleted_through_the_api(api: Api) -> None:
    response = api.delete("pokemon")
    assert response.status_code == 409 and "pokemon.yaml" in response.json()["detail"]
    assert "delete it from that YAML" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/syncs", None),
        ("GET", "/v1/syncs/pokemon", None),
        ("GET", "/v1/syncs/pokemon/runs", None),
        ("POST", "/v1/syncs", {"name": "anon", "url": "https://example.com"}),
        ("PUT", "/v1/syncs", {"action": "trigger", "sync_id": "pokemon"}),
        ("DELETE", "/v1/syncs/pokemon", None),
        ("GET", "/icon.svg", None),
        ("GET", "/icon-dark.svg", None),
    ],
)
def test_anonymous_requests_are_refused(
    live_airflow: AirflowServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = requests.request(method, f"{live_airflow.url}/nango{path}", json=body, timeout=30)
    assert response.status_code == 401


def test_the_page_sends_anonymous_visitors_to_the_login(live_airflow: AirflowServer) -> None:
    response = requests.get(f"{live_airflow.url}/nango/ui", allow_redirects=False, timeout=30)
    assert response.status_code == 307 and response.headers["location"].startswith("/auth/login?next=")
    page = live_airflow.client().get(f"{live_airflow.url}/nango/ui", timeout=30)
    assert page.status_code == 200 and "<title>Nango syncs</title>" in page.text


def test_a_bad_token_is_refused(live_airflow: AirflowServer) -> None:
    headers = {"Authorization": "Bearer not-a-token"}
    assert requests.get(f"{live_airflow.url}/nango/v1/syncs", headers=headers, timeout=30).status_code == 403


def test_the_viewer_role_reads_but_cannot_change(api: Api, pokedex: str) -> None:
    viewer = Api(api.server, "viewer")
    assert viewer.get().status_code == 200 and viewer.get(pokedex).status_code == 200
    for response in (
        viewer.act("trigger", pokedex),
        viewer.act("pause", pokedex),
        viewer.create(guide_body(api.server, "by_viewer")),
        viewer.delete(pokedex),
    ):
        assert response.status_code == 403, response.text
        assert "'viewer' is not allowed" in response.json()["detail"]
    assert api.get("by_viewer").status_code == 404 and api.get(pokedex).json()["is_paused"] is False


def test_the_registry_survives_an_api_server_restart(api: Api, pokedex: str) -> None:
    before = api.get(pokedex).json()
    api.server.restart("api-server")
    after = Api(api.server).get(pokedex)
    assert after.status_code == 200
    assert after.json()["source"] == "api" and after.json()["definition"] == before["definition"]
    assert after.json()["last_run"] == before["last_run"]


def test_a_run_waiting_for_its_retry_shows_as_retrying(api: Api) -> None:
    """A try that failed on a transient error (connection refused) waits for Airflow's retry: ``retrying``."""
    body = {"name": "unreachable", "url": "http://127.0.0.1:9/items", "request_retries": 0, "frequency": None}
    assert api.create(body).status_code == 201
    api.server.wait_for_dag("nango_sync_unreachable", timeout=60)
    run_id = api.act("trigger", "unreachable").json()["dag_run_id"]
    shown: dict[str, Any] = {}

    def retrying() -> bool:
        shown.update(api.get("unreachable").json())
        return bool(shown["last_run"]) and shown["last_run"]["status"] == "retrying"

    wait_for(retrying, 120, "the failed try to wait for its retry", lambda: str(shown))
    last = shown["last_run"]
    assert (last["run_id"], last["try_number"]) == (run_id, 1) and "Connection refused" in last["error"]
    assert shown["last_dag_run"]["state"] == "running" and shown["history"][-1]["status"] == "failed"

    assert api.act("cancel", "unreachable").json()["cancelled"] == [run_id]
    assert api.get("unreachable").json()["last_run"]["status"] == "failed"  # no retry will come
    assert api.delete("unreachable").status_code == 200


def test_a_misspelled_param_from_airflows_trigger_fails_the_run_at_once(api: Api, pokedex: str) -> None:
    """Airflow's trigger form and REST API keep unknown params: the task refuses them before it runs, once."""
    wait_until_idle(api.server, "nango_sync_pokedex")
    dag_runs = f"{api.server.url}/api/v2/dags/nango_sync_pokedex/dagRuns"
    created = api.http.post(dag_runs, json={"logical_date": None, "conf": {"max_totl": 5}}, timeout=30)
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    assert api.server.wait_for_run("nango_sync_pokedex", run_id) == "failed"
    (task,) = api.http.get(f"{dag_runs}/{run_id}/taskInstances", timeout=30).json()["task_instances"]
    assert (task["state"], task["try_number"]) == ("failed", 1)  # no retry of a hopeless error
    log = api.http.get(f"{dag_runs}/{run_id}/taskInstances/sync/logs/1", timeout=30).text
    assert "param 'max_totl' of nango_sync_pokedex: unknown param; did you mean 'max_total'?" in log
    assert all(row["run_id"] != run_id for row in job_rows(api.server, "nango_sync_pokedex"))


def test_a_sync_with_connections_shows_each_connections_last_run(api: Api) -> None:
    """Created through the API with three tenants' connections: one mapped task each, shown per connection."""
    connections = ["demo_tenant_acme", "demo_tenant_globex", "demo_tenant_initech"]
    body = {
        "name": "tenant_api",
        "url": "/v1/accounts",
        "connections": connections,
        "query_params": {"per_page": 10},
        "response_path": "accounts",
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "next_page",
    }
    created = api.create(body)
    assert created.status_code == 201, created.text
    api.server.wait_for_dag("nango_sync_tenant_api", timeout=60)
    (dag_run,) = wait_until_idle(api.server, "nango_sync_tenant_api")
    assert dag_run["state"] == "success", api.server.log_tail("scheduler")

    shown = api.get("tenant_api").json()
    assert shown["definition"]["connections"] == connections
    per_connection = shown["connections"]
    assert {conn: (run["status"], run["added"]) for conn, run in per_connection.items()} == {
        "demo_tenant_acme": ("success", 45),
        "demo_tenant_globex": ("success", 30),
        "demo_tenant_initech": ("success", 20),
    }
    assert shown["last_run"]["connection_id"] in connections
    assert {run["connection_id"] for run in shown["history"]} == set(connections)
    listed = {sync["id"]: sync for sync in api.get().json()["syncs"]}
    assert listed["tenant_api"]["connections"] == per_connection
    assert listed["pokemon"]["connections"] is None


def test_a_syncs_runs_come_newest_first_with_counts_duration_and_airflow_links(api: Api, pokedex: str) -> None:
    wait_until_idle(api.server, "nango_sync_pokedex")
    rows = job_rows(api.server, "nango_sync_pokedex")
    response = api.http.get(f"{api.base}/{pokedex}/runs", params={"limit": 2}, timeout=60)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert (shown["id"], shown["dag_id"]) == (pokedex, "nango_sync_pokedex")
    newest = list(reversed(rows))[:2]
    assert [run["run_id"] for run in shown["runs"]] == [row["run_id"] for row in newest]
    for run, row in zip(shown["runs"], newest, strict=True):
        for name in ("status", "try_number", "task_id", "pages", "fetched", "added", "updated", "unchanged", "deleted"):
            assert run[name] == row[name], name
        assert run["duration_seconds"] == pytest.approx((row["ended_at"] - row["started_at"]).total_seconds())
        run_path = f"dags/nango_sync_pokedex/runs/{quote(row['run_id'], safe='')}"
        assert run["links"] == {"dag_run": run_path, "task_log": f"{run_path}/tasks/sync?try_number=1"}
        assert "id" not in run
    page = api.http.get(f"{api.server.url}/{shown['runs'][0]['links']['dag_run']}", timeout=30)
    assert page.status_code == 200  # a page of Airflow's UI
    everything = api.http.get(f"{api.base}/{pokedex}/runs", timeout=60).json()["runs"]
    assert len(everything) == len(rows)


def test_the_runs_of_an_unknown_sync_are_a_404_and_the_limit_is_bounded(api: Api) -> None:
    assert_error(api.http.get(f"{api.base}/no_such_sync/runs", timeout=30), 404, "sync_not_found")
    too_many = api.http.get(f"{api.base}/pokemon/runs", params={"limit": 100_000}, timeout=30)
    assert assert_error(too_many, 422, "invalid_request")["field"] == "limit"


def test_each_sync_says_which_actions_the_user_may_take_and_why_not(api: Api, pokedex: str) -> None:
    admin = {sync["id"]: sync for sync in api.get().json()["syncs"]}
    assert api.get().json()["user"] == "admin"
    assert admin[pokedex]["actions"] == {
        action: {"allowed": True, "reason": None} for action in ("pause", "resume", "trigger", "cancel")
    }
    viewer = Api(api.server, "viewer")
    listing = viewer.get().json()
    assert listing["user"] == "viewer"
    for sync in (next(s for s in listing["syncs"] if s["id"] == pokedex), viewer.get(pokedex).json()):
        for action, permission in sync["actions"].items():
            assert permission["allowed"] is False, action
            assert "user 'viewer' may not change the DAG nango_sync_pokedex" in permission["reason"]
    # what the page disables, the API refuses; what it shows, the viewer may read
    assert viewer.act("pause", pokedex).status_code == 403
    assert viewer.http.get(f"{viewer.base}/{pokedex}/runs", timeout=30).status_code == 200
