"""``NangoSyncOperator`` follows Airflow's templating rules: ``__init__`` only stores its arguments, an
``XComArg`` or a template rendering to JSON works, a bad rendered value fails the run naming the field, and
the rendered secrets are masked before Airflow stores the rendered fields. Run with ``dag.test()``."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nango_provider.exceptions import SyncDefinitionError
from nango_provider.operators.sync import NangoSyncOperator
from tests.fixture_server import FixtureServer, Reply, Request
from tests.helpers import AirflowRunner, rows

pytestmark = pytest.mark.integration

SECRETS = {
    "Cookie": "session=cookie-secret-1",
    "X-Signature": "signature-secret-2",
    "client_id": "client-secret-3",
    "sig": "query-sig-secret-4",
    "password": "url-password-5",
    "client_secret": "body-secret-6",
}
RECORDS = [{"id": index, "name": f"item {index}"} for index in range(3)]
DAG_HEADER = """
from datetime import UTC, datetime
from airflow.sdk import DAG, task
from nango_provider.operators.sync import NangoSyncOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=UTC)):
"""


@pytest.fixture
def dag_file(airflow: AirflowRunner) -> Iterator[Any]:
    """Writes a DAG file ``operator_<dag_id>.py`` into the test DAG folder (``DAG_HEADER`` + body); removes it."""
    written: list[Path] = []

    def write(dag_id: str, body: str) -> None:
        path = airflow.dags / f"operator_{dag_id}.py"
        path.write_text(DAG_HEADER.format(dag_id=dag_id) + textwrap.indent(textwrap.dedent(body), "    "))
        written.append(path)

    yield write
    for path in written:
        path.unlink(missing_ok=True)


def serve_items(api: FixtureServer) -> list[Request]:
    """``GET /items`` answers three records on one page; the requests it got."""
    api.route("GET", "/items", lambda request: Reply(json={"results": RECORDS}))
    return api.requests


def task_instance(dag_run: Any, task_id: str = "sync") -> Any:
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return ti


def test_init_only_stores_its_arguments_and_validation_waits_for_the_run() -> None:
    operator = NangoSyncOperator(
        task_id="Load-Items", url="{{ var.value.base }}/x", method="FETCH", headers="{{ var.json.h }}", max_total=0
    )
    assert (operator.sync_name, operator.method, operator.headers) == ("load_items", "FETCH", "{{ var.json.h }}")
    assert operator.request_retries is None and operator.postgres_conn_id is None  # the definition's defaults
    with pytest.raises(SyncDefinitionError, match="sync 'load_items', field 'headers': expected a mapping"):
        operator.build_definition()
    operator.headers = '{"Accept": "application/json"}'  # as a rendered template: the text of a JSON object
    with pytest.raises(SyncDefinitionError, match="sync 'load_items', field 'method'"):
        operator.build_definition()


def test_unset_arguments_take_the_definitions_defaults() -> None:
    definition = NangoSyncOperator(task_id="sync", url="https://api.example.com/x").build_definition()
    assert (definition.method, definition.postgres_conn_id, definition.request_retries, definition.max_pages) == (
        "GET",
        "postgres_default",
        5,
        100_000,
    )


def test_url_from_an_upstream_task_xcom(airflow: AirflowRunner, db: str, api: FixtureServer, dag_file: Any) -> None:
    serve_items(api)
    dag_file(
        "xcom_url",
        f"""
        @task
        def api_url() -> str:
            return "{api.url}/items"

        NangoSyncOperator(task_id="sync", url=api_url(), unique_key="id", sync_name="items")
        """,
    )
    dag_run = airflow.run("xcom_url")
    assert dag_run.state == "success"
    assert sorted(rows(db)) == ["0", "1", "2"]


def test_headers_from_a_json_variable(
    airflow: AirflowRunner, db: str, api: FixtureServer, dag_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = serve_items(api)
    monkeypatch.setenv("AIRFLOW_VAR_ITEM_HEADERS", json.dumps({"Accept": "application/json", "X-Team": "crm"}))
    monkeypatch.setenv("AIRFLOW_VAR_ITEM_PARAMS", json.dumps({"limit": 50, "archived": False}))
    dag_file(
        "json_headers",
        f"""
        NangoSyncOperator(
            task_id="sync",
            url="{api.url}/items",
            headers="{{{{ var.json.item_headers }}}}",
            query_params="{{{{ var.value.item_params }}}}",
            unique_key="id",
            sync_name="items",
        )
        """,
    )
    dag_run = airflow.run("json_headers")
    assert dag_run.state == "success"
    (request,) = requests
    assert (request.headers["X-Team"], request.headers["Accept"]) == ("crm", "application/json")
    assert request.query == {"limit": "50", "archived": "false"}
    assert len(rows(db)) == 3


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ({"X-Object": {"nested": 1}}, "field 'headers': header 'X-Object': expected a string value, got dict"),
        ("Authorization: Bearer abc", "field 'headers': expected a mapping, or a template rendering to the text"),
    ],
)
def test_a_bad_rendered_header_fails_the_run_naming_sync_and_field(
    *,
    airflow: AirflowRunner,
    api: FixtureServer,
    dag_file: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    variable: Any,
    message: str,
) -> None:
    requests = serve_items(api)
    monkeypatch.setenv("AIRFLOW_VAR_BAD_HEADERS", variable if isinstance(variable, str) else json.dumps(variable))
    dag_file(
        "bad_headers",
        f"""
        NangoSyncOperator(task_id="sync", url="{api.url}/items", headers="{{{{ var.value.bad_headers }}}}")
        """,
    )
    dag_run = airflow.run("bad_headers")
    assert dag_run.state == "failed"
    assert task_instance(dag_run).state == "failed"
    output = capfd.readouterr()
    assert f"SyncDefinitionError: task 'sync': sync 'sync', {message}" in output.out + output.err
    assert requests == []


def test_rendered_fields_stored_by_airflow_hold_no_secret(
    airflow: AirflowRunner, db: str, api: FixtureServer, dag_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow's own redaction hides ``Authorization``-like names only; every name the project treats as secret
    is hidden in the rendered fields too, whether it came from a template or was written literally."""
    api.route("POST", "/items", lambda request: Reply(json={"results": RECORDS}))
    headers = {"Cookie": SECRETS["Cookie"], "X-Signature": SECRETS["X-Signature"], "Accept": "application/json"}
    monkeypatch.setenv("AIRFLOW_VAR_SIGNED_HEADERS", json.dumps(headers))
    base = api.url.replace("http://", f"http://me:{SECRETS['password']}@")
    dag_file(
        "rendered_secrets",
        f"""
        NangoSyncOperator(
            task_id="sync",
            url="{base}/items?client_id={{{{ var.value.get('missing', '{SECRETS["client_id"]}') }}}}",
            method="POST",
            headers="{{{{ var.json.signed_headers }}}}",
            query_params={{"sig": "{SECRETS["sig"]}", "limit": 10}},
            body={{"client_secret": "{SECRETS["client_secret"]}", "filters": []}},
            unique_key="id",
            sync_name="items",
        )
        """,
    )
    dag_run = airflow.run("rendered_secrets")
    assert dag_run.state == "success"
    rendered = rendered_fields("rendered_secrets")
    assert rendered["headers"] == {"Accept": "application/json", "Cookie": "***", "X-Signature": "***"}
    assert rendered["query_params"] == {"sig": "***", "limit": 10}
    assert rendered["body"] == {"client_secret": "***", "filters": []}
    assert rendered["url"].endswith("/items?client_id=***")
    assert not [secret for secret in SECRETS.values() if secret in json.dumps(rendered)]


def test_mapped_tasks_render_and_mask_the_same_way(
    airflow: AirflowRunner, db: str, api: FixtureServer, dag_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = serve_items(api)
    monkeypatch.setenv("AIRFLOW_VAR_SIGNED_HEADERS", json.dumps({"X-Signature": SECRETS["X-Signature"]}))
    dag_file(
        "mapped",
        f"""
        NangoSyncOperator.partial(
            task_id="sync", url="{api.url}/items", headers="{{{{ var.json.signed_headers }}}}", unique_key="id"
        ).expand(sync_name=["mapped_a", "mapped_b"])
        """,
    )
    dag_run = airflow.run("mapped")
    assert dag_run.state == "success"
    assert [request.headers["X-Signature"] for request in requests] == [SECRETS["X-Signature"]] * 2
    assert (len(rows(db, "nango.mapped_a")), len(rows(db, "nango.mapped_b"))) == (3, 3)
    stored = all_rendered_fields("mapped")
    assert [fields["headers"] for fields in stored] == [{"X-Signature": "***"}] * 2


def rendered_fields(dag_id: str) -> dict[str, Any]:
    """The rendered fields Airflow stored for task ``sync`` of ``dag_id``'s latest run."""
    return all_rendered_fields(dag_id)[-1]


def all_rendered_fields(dag_id: str) -> list[dict[str, Any]]:
    """The rendered fields Airflow stored for each task instance of task ``sync`` of ``dag_id``."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag_id, task_id="sync").all()
        return [dict(fields.rendered_fields) for fields in stored]
