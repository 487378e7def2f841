"""One definition, many connections: one mapped task per connection, rows keyed by (connection, unique key), and
everything a run keeps (deletions, checkpoints, marks, counts, job rows) kept per connection."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from devtools.demo_api import TENANT_ACCOUNTS, DemoApi
from tests.helpers import EXAMPLES, AirflowRunner, jobs

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


def test_three_tenants_land_side_by_side_through_airflow_dags_test(
    airflow: AirflowRunner, db: str, demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANGO_SYNCS_PATH", str(EXAMPLES / "syncs"))
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "nango_sync_tenant_accounts"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
        timeout=300,
    )
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
