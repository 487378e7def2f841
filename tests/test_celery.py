"""Syncs on Celery workers that share nothing but the DAGs folder and the databases, through the real scheduler
(CeleryExecutor, a private Redis as the broker, the metadata DB in Postgres): 20 syncs complete; one worker is
killed with SIGKILL in the middle of a slow sync; the other worker runs the retry, which resumes from the
checkpoint in Postgres, and every table ends as an uninterrupted run leaves it.

Deselect with ``-m "not celery"`` (needs Debian's ``redis-server``; ``make test`` installs it when missing).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml
from psycopg import sql

from devtools.airflow_server import AirflowServer, CeleryWorker, airflow_server, wait_for
from devtools.demo_api import DemoApi
from tests.helpers import EXAMPLES
from tests.live_airflow import job_rows

pytestmark = [pytest.mark.integration, pytest.mark.celery, pytest.mark.timeout(900)]

RECORDS = 600
KILLED = "slow_pokemon"
"""The sync whose worker is killed: 30 pages of 20 records from the slow API, 0.4 s each."""
TWIN = "slow_pokemon_twin"
"""The same definition into another table, never interrupted: what the killed sync's table must equal."""
SLOW = {
    "http_conn_id": "slow_demo_api",
    "url": "/api/v2/pokemon",
    "query_params": {"limit": 20},
    "response_path": "results",
    "unique_key": "name",
    "paging_response_path": "next",
    "frequency": None,
}
DATASETS: dict[str, dict[str, Any]] = {
    "pokemon": {
        "url": "/api/v2/pokemon",
        "page_size": "limit",
        "response_path": "results",
        "unique_key": "name",
        "paging_response_path": "next",
    },
    "contacts": {
        "url": "/crm/v3/objects/contacts",
        "page_size": "limit",
        "response_path": "results",
        "unique_key": "id",
        "paging_request_path": "after",
        "paging_response_path": "paging.next.after",
    },
    "objects": {
        "url": "/v1/objects",
        "page_size": "per_page",
        "response_path": "returned.data.objects",
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "meta.next_page",
    },
}
PAGE_SIZES = (50, 100, 150, 200, 300, 600)


def fast_syncs() -> dict[str, dict[str, Any]]:
    """18 syncs over the fast demo API: each data set with six page sizes."""
    syncs = {}
    for dataset, shape in DATASETS.items():
        for size in PAGE_SIZES:
            fields = {key: value for key, value in shape.items() if key != "page_size"}
            fields |= {"http_conn_id": "nango_demo_api", "query_params": {shape["page_size"]: size}}
            syncs[f"{dataset}_{size}"] = {**fields, "frequency": None}
    return syncs


def all_syncs() -> dict[str, dict[str, Any]]:
    return {KILLED: SLOW, TWIN: SLOW, **fast_syncs()}


@pytest.fixture(scope="module")
def slow_api() -> Iterator[DemoApi]:
    with DemoApi(records=RECORDS, latency=0.4) as api:
        yield api


@pytest.fixture(scope="module")
def dags_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The only folder the workers share: the project's DAG files and a YAML file of 20 syncs."""
    folder = tmp_path_factory.mktemp("dags")
    for dag_file in ("nango_syncs.py", "nango_sync_errors.py"):
        shutil.copy(EXAMPLES / dag_file, folder)
    (folder / "syncs").mkdir()
    syncs = json.loads(json.dumps(all_syncs()))  # no shared objects: sync files refuse YAML aliases
    (folder / "syncs" / "celery.yaml").write_text(yaml.safe_dump({"syncs": syncs}))
    return folder


@pytest.fixture(scope="module")
def celery_airflow(slow_api: DemoApi, dags_folder: Path) -> Iterator[AirflowServer]:
    """Airflow with the CeleryExecutor and two workers, every sync DAG parsed and unpaused."""
    settings = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "NANGO_SYNCS_PATH": str(dags_folder / "syncs"),
        "AIRFLOW_CONN_SLOW_DEMO_API": json.dumps({"conn_type": "nango", "host": slow_api.url}),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    with airflow_server(api_records=RECORDS, extra_env=settings, executor="celery", workers=2) as server:
        for name in all_syncs():
            server.wait_for_dag(f"nango_sync_{name}", timeout=120)
        yield server


def trigger(server: AirflowServer, client: requests.Session, sync: str) -> str:
    url = f"{server.url}/api/v2/dags/nango_sync_{sync}/dagRuns"
    response = client.post(url, json={"logical_date": None}, timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["dag_run_id"])


def wait_until_mid_sync(server: AirflowServer, run_id: str) -> dict[str, Any]:
    """The killed sync's running job row once it committed two pages (of 30)."""
    found: list[dict[str, Any]] = []

    def in_the_middle() -> bool:
        found[:] = [row for row in job_rows(server, f"nango_sync_{KILLED}") if row["run_id"] == run_id]
        return bool(found) and found[-1]["status"] == "running" and found[-1]["pages"] >= 2

    wait_for(in_the_middle, 120, f"{KILLED} to be in the middle of its sync", server.diagnostics)
    return found[-1]


def worker_running(server: AirflowServer, run_id: str) -> CeleryWorker:
    """The worker whose home holds the task log of the run's first try."""
    holders = [w for w in server.workers.values() if w.task_logs(f"nango_sync_{KILLED}", run_id)]
    assert len(holders) == 1, f"the first try's log is in {len(holders)} worker homes"
    return holders[0]


def expected_records(api: DemoApi, shape: dict[str, Any]) -> dict[str, Any]:
    """Every record of a data set, straight from the API in one page, by unique key."""
    response = requests.get(f"{api.url}{shape['url']}", params={shape["page_size"]: 1000}, timeout=30)
    records: Any = response.json()
    for part in shape["response_path"].split("."):
        records = records[part]
    return {str(record[shape["unique_key"]]): record for record in records}


def table_rows(uri: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``nango.<table>`` but its timestamps of when it was written, by key."""
    query = sql.SQL(
        "SELECT _nango_unique_key, _nango_data, _nango_hash, _nango_deleted_at IS NOT NULL FROM {} ORDER BY 1"
    ).format(sql.Identifier("nango", table))
    with psycopg.connect(uri) as conn:
        return conn.execute(query).fetchall()


def test_a_sync_killed_with_its_worker_resumes_on_the_other_worker(
    celery_airflow: AirflowServer, slow_api: DemoApi
) -> None:
    server, client = celery_airflow, celery_airflow.client()
    killed_run = trigger(server, client, KILLED)
    runs = {KILLED: killed_run} | {sync: trigger(server, client, sync) for sync in all_syncs() if sync != KILLED}
    mid_sync = wait_until_mid_sync(server, killed_run)
    victim = worker_running(server, killed_run)
    survivor = next(worker for worker in server.workers.values() if worker is not victim)

    server.kill_worker(victim.name)

    # One deadline for all the runs: 4 worker slots work through 20+ syncs, slowly on a busy machine.
    deadline = time.monotonic() + 600
    for sync, run_id in runs.items():
        remaining = max(deadline - time.monotonic(), 1)
        assert server.wait_for_run(f"nango_sync_{sync}", run_id, timeout=remaining) == "success", sync
    tries = [row for row in job_rows(server, f"nango_sync_{KILLED}") if row["run_id"] == killed_run]
    assert [(row["try_number"], row["status"]) for row in tries] == [(1, "abandoned"), (2, "success")]
    assert tries[0]["pages"] >= mid_sync["pages"] and tries[0]["pages"] < RECORDS // 20
    assert tries[1]["resumed_from_page"] == tries[0]["pages"] + 1 > 1
    assert (tries[1]["pages"], tries[1]["fetched"], tries[1]["added"]) == (RECORDS // 20, RECORDS, RECORDS)
    assert [path.name for path in victim.task_logs(f"nango_sync_{KILLED}", killed_run)] == ["attempt=1.log"]
    assert [path.name for path in survivor.task_logs(f"nango_sync_{KILLED}", killed_run)] == ["attempt=2.log"]

    uri = server.environment.postgres.uri
    assert table_rows(uri, KILLED) == table_rows(uri, TWIN)
    assert {row[0]: row[1] for row in table_rows(uri, KILLED)} == expected_records(slow_api, DATASETS["pokemon"])
    for sync in fast_syncs():
        rows = table_rows(uri, sync)
        expected = expected_records(server.environment.api, DATASETS[sync.rsplit("_", 1)[0]])
        assert {row[0]: row[1] for row in rows} == expected, sync
        assert not any(row[3] for row in rows), f"{sync} marked records deleted"
