"""A real Airflow (API server, scheduler, DAG processor) shared by the REST API and the browser tests.

Import the fixture ``live_airflow`` into a test module. However many modules use it, one Airflow runs per
pytest session: it starts on first use and stops when the last module using it is done.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from psycopg.rows import dict_row

from devtools.airflow_server import AirflowServer, airflow_server, wait_for
from devtools.environment import EXAMPLES


class _Shared:
    """The one server of the session and how many fixtures hold it."""

    stack: ExitStack | None = None
    server: AirflowServer | None = None
    users = 0


@pytest.fixture(scope="session")
def live_airflow() -> Iterator[AirflowServer]:
    """Airflow on a free port over the embedded Postgres and the demo API (600 records per data set), reading
    sync files from a copy of the examples' ``syncs`` folder that tests may change (:func:`syncs_folder`)."""
    if _Shared.server is None:
        stack = ExitStack()
        started = time.monotonic()
        syncs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nango-syncs-"))) / "syncs"
        shutil.copytree(EXAMPLES / "syncs", syncs)
        extra_env = {"NANGO_SYNCS_PATH": str(syncs)}
        _Shared.server = stack.enter_context(airflow_server(api_records=600, extra_env=extra_env))
        _Shared.stack = stack
        print(f"\nAirflow started in {time.monotonic() - started:.1f} s at {_Shared.server.url}")
    _Shared.users += 1
    try:
        yield _Shared.server
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.stack is not None:
            _Shared.stack.close()
            _Shared.stack = _Shared.server = None


def syncs_folder(server: AirflowServer) -> Path:
    """The folder of sync files the live Airflow reads (a copy of the examples' ``syncs``)."""
    return Path(server.env["NANGO_SYNCS_PATH"])


def job_rows(server: AirflowServer, dag_id: str) -> list[dict[str, Any]]:
    """Rows of ``nango._nango_jobs`` of one DAG, oldest first (none before the table exists)."""
    with psycopg.connect(server.environment.postgres.uri) as conn, conn.cursor(row_factory=dict_row) as cursor:
        exists = cursor.execute("SELECT to_regclass('nango._nango_jobs') IS NOT NULL AS found").fetchone()
        if not exists or not exists["found"]:
            return []
        return cursor.execute("SELECT * FROM nango._nango_jobs WHERE dag_id = %s ORDER BY id", (dag_id,)).fetchall()


def wait_for_job(server: AirflowServer, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
    """Poll ``nango._nango_jobs`` until the run ``run_id`` has a successful row; that row."""
    found: list[dict[str, Any]] = []

    def landed() -> bool:
        found[:] = [row for row in job_rows(server, dag_id) if row["run_id"] == run_id and row["status"] == "success"]
        return bool(found)

    wait_for(landed, timeout, f"a successful job row of {run_id}", lambda: server.log_tail("scheduler"))
    return found[-1]


def wait_until_idle(server: AirflowServer, dag_id: str, timeout: float = 180) -> list[dict[str, Any]]:
    """Wait until the DAG has runs and none is queued or running; its runs, newest first."""
    client = server.client()
    runs: list[dict[str, Any]] = []

    def idle() -> bool:
        response = client.get(f"{server.url}/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "-id"}, timeout=30)
        response.raise_for_status()
        runs[:] = response.json()["dag_runs"]
        return bool(runs) and all(run["state"] in ("success", "failed") for run in runs)

    wait_for(idle, timeout, f"every run of {dag_id} to finish", lambda: server.log_tail("scheduler"))
    return runs


SIGNED_SECRETS: Final = {
    "Cookie": "session=cookie-secret-value",
    "X-Signature": "signature-secret-value",
    "X-Session": "templated-session-secret",
    "client_id": "client-id-secret-value",
    "sig": "query-sig-secret-value",
}
"""Values a sync sends that this project treats as secret, and Airflow's own redaction does not know of."""


def run_signed_sync(server: AirflowServer, name: str) -> tuple[str, str]:
    """Create (through ``/nango/v1/syncs``) a sync of the demo pokemon API sending ``SIGNED_SECRETS``, one of
    them from a template; wait for its first run to succeed. Its DAG id and run id."""
    secrets = SIGNED_SECRETS
    body = {
        "name": name,
        "url": f"{server.environment.api.url}/api/v2/pokemon",
        "headers": {
            "Accept": "application/json",
            "Cookie": secrets["Cookie"],
            "X-Signature": secrets["X-Signature"],
            "X-Session": "{{ 'templated-session' ~ '-secret' }}",
        },
        "query_params": {"limit": 100, "client_id": secrets["client_id"], "sig": secrets["sig"]},
        "response_path": "results",
        "unique_key": "name",
        "paging_response_path": "next",
        "table": f"test_live.{name}",
    }
    response = server.client().post(f"{server.url}/nango/v1/syncs", json=body, timeout=60)
    assert response.status_code == 201, response.text
    dag_id = response.json()["dag_id"]
    server.wait_for_dag(dag_id, timeout=90)
    (run,) = wait_until_idle(server, dag_id)
    assert run["state"] == "success", server.log_tail("scheduler")
    return dag_id, run["dag_run_id"]
