"""One definition, many connections: one mapped task per connection, rows keyed by (connection, unique key), and
everything a run keeps (deletions, checkpoints, marks, counts, job rows) kept per connection."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import psycopg
import pytest

from devtools.demo_api import TENANT_ACCOUNTS, DemoApi, tenant_token
from nango_provider.dag_factory import sync_asset
from nango_provider.definition import SyncDefinition
from nango_provider.exceptions import SyncDefinitionError
from nango_provider.operators.sync import NangoSyncOperator
from nango_provider.store import marks, schema
from nango_provider.store.postgres import PostgresStore
from tests.helpers import EXAMPLES, AirflowRunner, airflow_dags_test, jobs, rows, sync

pytestmark = pytest.mark.integration

TENANTS = ("acme", "globex", "initech")
CONNECTIONS = [f"demo_tenant_{tenant}" for tenant in TENANTS]


def tenant_rows(db: str, table: str = "nango.tenant_accounts") -> dict[tuple[str, str], dict[str, Any]]:
    """``{(connection, key): row}`` of a table keyed by connection."""
    schema, name = table.split(".")
    with psycopg.connect(db) as conn:
        found = conn.execute(
            psycopg.sql.SQL(
                "SELECT _nango_connection_id, _nango_unique_key, _nango_data, _nango_deleted_at FROM {}"
            ).format(psycopg.sql.Identifier(schema, name))
        ).fetchall()
    return {(conn_id, key): {"data": data, "deleted_at": deleted} for conn_id, key, data, deleted in found}


def task_states(dag_run: Any) -> dict[str, str]:
    """``{rendered map index (the connection): state}`` of the mapped sync task."""
    return {ti.rendered_map_index or str(ti.map_index): ti.state for ti in dag_run.get_task_instances()
            if ti.task_id == "sync"}  # fmt: skip


def latest_dag_run(dag_id: str) -> Any:
    """The newest run of ``dag_id`` in Airflow's metadata database (as ``airflow dags test`` left it)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dag_run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())).first()
        session.expunge_all()
    return dag_run


def test_three_tenants_land_side_by_side_through_airflow_dags_test(
    airflow: AirflowRunner, db: str, demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANGO_SYNCS_PATH", str(EXAMPLES / "syncs"))
    result = airflow_dags_test("nango_sync_tenant_accounts")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stored = tenant_rows(db)
    for tenant, connection in zip(TENANTS, CONNECTIONS, strict=True):
        keys = sorted(int(key) for conn_id, key in stored if conn_id == connection)
        assert keys == list(range(1, TENANT_ACCOUNTS[tenant] + 1))
        assert stored[(connection, "1")]["data"]["tenant"] == tenant
    assert len(stored) == sum(TENANT_ACCOUNTS.values())
    by_connection = {job["connection_id"]: job for job in jobs(db)}
    assert {conn: (job["status"], job["added"]) for conn, job in by_connection.items()} == {
        connection: ("success", TENANT_ACCOUNTS[tenant])
        for tenant, connection in zip(TENANTS, CONNECTIONS, strict=True)
    }


TENANTS_YAML = """
syncs:
  tenant_accounts:
    url: /v1/accounts
    connections: {connections}
    query_params: {{per_page: 10}}
    response_path: accounts
    unique_key: id
    paging_request_path: page
    paging_response_path: next_page
"""


def write_tenants_sync(airflow: AirflowRunner, connections: Any) -> None:
    airflow.write_syncs(TENANTS_YAML.format(connections=json.dumps(connections)))


def counts_by_connection(dag_run: Any) -> dict[str, dict[str, Any]]:
    """Each mapped task's XCom (its counts and its connection), by connection."""
    found = {}
    for ti in dag_run.get_task_instances():
        if ti.task_id == "sync" and ti.state == "success":
            value = ti.xcom_pull(task_ids="sync", map_indexes=ti.map_index)
            found[value["connection_id"]] = value
    return found


def test_one_tenant_refused_fails_alone_and_the_others_commit(
    airflow: AirflowRunner, db: str, demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    intruder = {"conn_type": "nango", "host": f"{demo_api.url}/tenants/initech", "login": "initech", "password": "x"}
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_TENANT_INTRUDER", json.dumps(intruder))
    write_tenants_sync(airflow, ["demo_tenant_acme", "demo_tenant_intruder", "demo_tenant_globex"])

    result = airflow_dags_test("nango_sync_tenant_accounts")

    assert result.returncode != 0
    dag_run = latest_dag_run("nango_sync_tenant_accounts")
    assert dag_run.state == "failed"
    assert task_states(dag_run) == {
        "demo_tenant_acme": "success",
        "demo_tenant_intruder": "failed",
        "demo_tenant_globex": "success",
    }
    stored = tenant_rows(db)
    assert {conn for conn, _ in stored} == {"demo_tenant_acme", "demo_tenant_globex"}
    assert len(stored) == TENANT_ACCOUNTS["acme"] + TENANT_ACCOUNTS["globex"]
    by_connection = {job["connection_id"]: job for job in jobs(db)}
    assert by_connection["demo_tenant_intruder"]["status"] == "failed"
    assert "401" in by_connection["demo_tenant_intruder"]["error"]
    assert by_connection["demo_tenant_intruder"]["try_number"] == 1  # a refusal is not retried
    assert {by_connection[conn]["status"] for conn in ("demo_tenant_acme", "demo_tenant_globex")} == {"success"}
    counts = counts_by_connection(dag_run)
    assert {conn: value["added"] for conn, value in counts.items()} == {
        "demo_tenant_acme": TENANT_ACCOUNTS["acme"],
        "demo_tenant_globex": TENANT_ACCOUNTS["globex"],
    }


def test_deletions_and_counts_are_per_connection(airflow: AirflowRunner, db: str, demo_api: DemoApi) -> None:
    write_tenants_sync(airflow, CONNECTIONS)
    airflow.run("nango_sync_tenant_accounts")
    demo_api.remove_tenant_accounts("acme", [3, 4])

    dag_run = airflow.run("nango_sync_tenant_accounts")

    assert dag_run.state == "success"
    counts = counts_by_connection(dag_run)
    assert {conn: (value["deleted"], value["unchanged"]) for conn, value in counts.items()} == {
        "demo_tenant_acme": (2, TENANT_ACCOUNTS["acme"] - 2),
        "demo_tenant_globex": (0, TENANT_ACCOUNTS["globex"]),
        "demo_tenant_initech": (0, TENANT_ACCOUNTS["initech"]),
    }
    stored = tenant_rows(db)
    deleted = sorted(key for key, row in stored.items() if row["deleted_at"] is not None)
    assert deleted == [("demo_tenant_acme", "3"), ("demo_tenant_acme", "4")]
    assert stored[("demo_tenant_globex", "3")]["deleted_at"] is None  # same key, another tenant: kept
    events = asset_event_extras(sync_asset("nango.tenant_accounts").uri)
    assert sorted((extra["connection_id"], extra["counts"]["deleted"]) for extra in events[-3:]) == [
        ("demo_tenant_acme", 2),
        ("demo_tenant_globex", 0),
        ("demo_tenant_initech", 0),
    ]


def asset_event_extras(asset_uri: str) -> list[dict[str, Any]]:
    """The extras of every event of the Asset, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == asset_uri)
            .order_by(AssetEvent.id)
        )
        return [dict(event.extra) for event in session.scalars(query)]


FAST_RETRY_DAG_FILE = """# An Airflow DAG file: a sync over three tenants, retried one second apart instead of 30.
from datetime import timedelta

from nango_provider.dag_factory import DEFAULT_TASK_ARGS, nango_sync

fast_retries = {**DEFAULT_TASK_ARGS, "retry_delay": timedelta(seconds=1), "retry_exponential_backoff": False}
tenants_retried = nango_sync(
    "tenants_retried",
    "/v1/accounts",
    connections=["demo_tenant_acme", "demo_tenant_globex", "demo_tenant_initech"],
    query_params={"per_page": 10},
    response_path="accounts",
    unique_key="id",
    paging_request_path="page",
    paging_response_path="next_page",
    request_retries=0,
    dag_kwargs={"default_args": fast_retries},
)
"""


def test_a_retry_resumes_its_own_connection_from_its_checkpoint(
    airflow: AirflowRunner, db: str, demo_api: DemoApi
) -> None:
    dag_file = airflow.dags / "tenants_retried.py"
    dag_file.write_text(FAST_RETRY_DAG_FILE, encoding="utf-8")
    demo_api.fail_tenant_page("globex", 3)
    try:
        dag_run = airflow.run("nango_sync_tenants_retried")
    finally:
        dag_file.unlink()

    assert dag_run.state == "success"
    tries = [(job["connection_id"], job["try_number"], job["status"], job["resumed_from_page"]) for job in jobs(db)]
    assert sorted(tries) == [
        ("demo_tenant_acme", 1, "success", None),
        ("demo_tenant_globex", 1, "failed", None),
        ("demo_tenant_globex", 2, "success", 3),
        ("demo_tenant_initech", 1, "success", None),
    ]
    stored = tenant_rows(db, "nango.tenants_retried")
    assert len(stored) == sum(TENANT_ACCOUNTS.values())


def test_connections_from_a_variable_change_without_touching_a_file(
    airflow: AirflowRunner, db: str, demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.write_syncs(TENANTS_YAML.format(connections='"{{ var.json.nango_tenants }}"'))
    monkeypatch.setenv("AIRFLOW_VAR_NANGO_TENANTS", json.dumps(["demo_tenant_initech", "demo_tenant_acme"]))
    first = airflow.run("nango_sync_tenant_accounts")
    monkeypatch.setenv("AIRFLOW_VAR_NANGO_TENANTS", json.dumps(CONNECTIONS))
    second = airflow.run("nango_sync_tenant_accounts")

    assert task_states(first) == {"demo_tenant_initech": "success", "demo_tenant_acme": "success"}
    assert task_states(second) == dict.fromkeys(CONNECTIONS, "success")
    assert len(tenant_rows(db)) == sum(TENANT_ACCOUNTS.values())


def test_a_variable_that_is_not_a_list_of_connections_fails_the_listing_task(
    airflow: AirflowRunner, db: str, demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    airflow.write_syncs(TENANTS_YAML.format(connections='"{{ var.json.nango_tenants }}"'))
    monkeypatch.setenv("AIRFLOW_VAR_NANGO_TENANTS", json.dumps(["demo_tenant_acme", "demo_tenant_acme"]))
    dag_run = airflow.run("nango_sync_tenant_accounts")
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "failed"
    assert states["connections"] == "failed"


# -- the store, without Airflow ------------------------------------------------------------------------------


def tenant_fields(demo_api: DemoApi, tenant: str, **extra: Any) -> dict[str, Any]:
    """A sync of one tenant's accounts by absolute URL and its credentials as a header (no Airflow connection)."""
    credentials = base64.b64encode(f"{tenant}:{tenant_token(tenant)}".encode()).decode()
    return {
        "url": f"{demo_api.url}/tenants/{tenant}/v1/accounts",
        "headers": {"Authorization": f"Basic {credentials}"},
        "connections": CONNECTIONS,
        "query_params": {"per_page": 10},
        "response_path": "accounts",
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "next_page",
        "table": "test_tenants.accounts",
        **extra,
    }


def test_a_table_keyed_by_unique_key_alone_is_not_rewritten_by_a_sync_with_connections(
    db: str, demo_api: DemoApi
) -> None:
    single = {key: value for key, value in tenant_fields(demo_api, "acme").items() if key != "connections"}
    sync(db, "accounts", single)
    with pytest.raises(SyncDefinitionError, match="keys its rows by unique key alone") as refused:
        sync(db, "accounts", tenant_fields(demo_api, "acme"), run_id="run-2", connection_id="demo_tenant_acme")
    assert refused.value.field == "connections"
    with psycopg.connect(db) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'test_tenants'"
        ).fetchall()
    assert ("_nango_connection_id",) not in columns
    assert len(rows(db, "test_tenants.accounts")) == TENANT_ACCOUNTS["acme"]
    assert [job["status"] for job in jobs(db)] == ["success", "failed"]


def test_a_running_job_of_one_connection_is_not_abandoned_by_another_connection(db: str, demo_api: DemoApi) -> None:
    sync(db, "accounts", tenant_fields(demo_api, "acme"), connection_id="demo_tenant_acme")
    with psycopg.connect(db) as conn:  # acme's next run, still going (its task holds acme's lock)
        conn.execute(
            """INSERT INTO nango._nango_jobs (sync_name, target_table, connection_id, status)
               VALUES ('accounts', 'test_tenants.accounts', 'demo_tenant_acme', 'running')"""
        )
    sync(db, "accounts", tenant_fields(demo_api, "globex"), connection_id="demo_tenant_globex")
    statuses = [(job["connection_id"], job["status"]) for job in jobs(db)]
    assert statuses == [
        ("demo_tenant_acme", "success"),
        ("demo_tenant_acme", "running"),
        ("demo_tenant_globex", "success"),
    ]


def test_incremental_marks_are_kept_per_connection(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn, conn.cursor() as cursor:
        schema.create_bookkeeping(cursor)
        marks.save_mark(cursor, "nango.t", "t", "updated_at", "2025-01-01", connection_id="a")
        marks.save_mark(cursor, "nango.t", "t", "updated_at", "2025-02-01", connection_id="b")
        marks.save_mark(cursor, "nango.t", "t", "updated_at", "2025-03-01")
        found = [marks.load_mark(cursor, "nango.t", "updated_at", connection) for connection in ("a", "b", None)]
    assert found == ["2025-01-01", "2025-02-01", "2025-03-01"]


def test_a_table_keyed_by_connection_is_not_rewritten_by_a_sync_with_one_connection(db: str, demo_api: DemoApi) -> None:
    sync(db, "accounts", tenant_fields(demo_api, "acme"), connection_id="demo_tenant_acme")
    single = {key: value for key, value in tenant_fields(demo_api, "acme").items() if key != "connections"}
    with pytest.raises(SyncDefinitionError, match=r"keys its rows by \(connection, unique key\)"):
        sync(db, "accounts", single, run_id="run-2")
    assert len(tenant_rows(db, "test_tenants.accounts")) == TENANT_ACCOUNTS["acme"]


def test_the_operator_of_a_sync_with_connections_runs_one_connection_of_them() -> None:
    fields = {"url": "/v1/accounts", "unique_key": "id", "connections": CONNECTIONS}
    unmapped = NangoSyncOperator(task_id="accounts", **fields)
    with pytest.raises(SyncDefinitionError, match=r"expand\(connection=") as refused:
        unmapped.build_definition()
    assert refused.value.field == "connections"
    stranger = NangoSyncOperator(task_id="accounts", connection="demo_tenant_other", **fields)
    with pytest.raises(SyncDefinitionError, match="is not one of the sync's connections"):
        stranger.build_definition()
    alone = NangoSyncOperator(task_id="accounts", connection="demo_tenant_acme", url="/v1/a", unique_key="id")
    assert alone.build_definition().connections == ("demo_tenant_acme",)


def test_an_incremental_sync_keeps_one_mark_per_connection(db: str, demo_api: DemoApi) -> None:
    incremental = {"record_field": "seats", "request_name": "min_seats"}
    highest = {}
    for tenant in ("acme", "globex"):
        sync(
            db,
            "accounts",
            tenant_fields(demo_api, tenant, incremental=incremental),
            connection_id=f"demo_tenant_{tenant}",
        )
        highest[f"demo_tenant_{tenant}"] = max(
            row["data"]["seats"]
            for (conn, _), row in tenant_rows(db, "test_tenants.accounts").items()
            if conn == f"demo_tenant_{tenant}"
        )
    with psycopg.connect(db) as conn:
        saved = dict(conn.execute("SELECT connection_id, value FROM nango._nango_connection_marks").fetchall())
        plain = conn.execute("SELECT count(*) FROM nango._nango_marks").fetchone()
    assert saved == highest
    assert len(set(highest.values())) == 2  # the tenants' data differ, and so do their marks
    assert plain == (0,)


def test_the_runs_of_two_connections_do_not_wait_for_each_other(db: str, demo_api: DemoApi) -> None:
    fields = tenant_fields(demo_api, "acme")
    definition = SyncDefinition.from_mapping("accounts", fields)
    acme = PostgresStore(lambda: psycopg.connect(db), definition, connection_id="demo_tenant_acme")
    with acme.connected():
        acme.lock_table(log=lambda _: None)  # acme's run is writing
        globex = threading.Thread(
            target=sync, args=(db, "accounts", tenant_fields(demo_api, "globex")),
            kwargs={"connection_id": "demo_tenant_globex"}, daemon=True,
        )  # fmt: skip
        globex.start()
        globex.join(timeout=30)
        assert not globex.is_alive(), "globex's run waited for acme's lock"
    assert {conn for conn, _ in tenant_rows(db, "test_tenants.accounts")} == {"demo_tenant_globex"}
