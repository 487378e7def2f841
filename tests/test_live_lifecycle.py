"""Every run ends, in a real Airflow (scheduler, LocalExecutor, API server): a run stopped while its fetch waits
out a long ``Retry-After`` (cancelled through ``/nango/v1/syncs``, marked failed through Airflow's REST API, or
its task sent SIGTERM) ends its job row as ``cancelled`` within seconds and is not retried; a task killed with
SIGKILL is retried, and the retry closes the dead try's row as ``abandoned``, which the REST API shows."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from devtools.airflow_server import AirflowServer, wait_for
from tests.fixture_server import FixtureServer, Reply, Request
from tests.live_airflow import job_rows, live_airflow

pytestmark = pytest.mark.integration
__all__ = ["live_airflow"]  # the fixture, imported for pytest

SYNC = "stalling_items"
DAG_ID = f"nango_sync_{SYNC}"


class StallingItems:
    """Page 1 at once; page 2 answers 429 with ``Retry-After: 200`` (the fetch waits it out) until released."""

    def __init__(self, server: FixtureServer) -> None:
        self.released = threading.Event()
        self.page_two_asked = threading.Event()
        server.route("GET", "/items", self.handle)

    def handle(self, request: Request) -> Reply:
        if request.query.get("page", "1") == "1":
            return Reply(json={"results": [{"id": i} for i in range(1, 6)], "next_page": 2})
        self.page_two_asked.set()
        if not self.released.is_set():
            return Reply(429, {"error": "slow down"}, headers={"Retry-After": "200"})
        return Reply(json={"results": [{"id": 6}], "next_page": None})


@pytest.fixture(scope="module")
def stalling_api() -> Iterator[FixtureServer]:
    server = FixtureServer().start()
    yield server
    server.stop()


@pytest.fixture
def items(stalling_api: FixtureServer) -> Iterator[StallingItems]:
    stalling_api.reset()
    served = StallingItems(stalling_api)
    yield served
    served.released.set()


class Airflow:
    """The live Airflow's REST APIs, as admin."""

    def __init__(self, server: AirflowServer) -> None:
        self.server = server
        self.http = server.client("admin")

    def nango(self, action: str) -> requests.Response:
        return self.http.put(f"{self.server.url}/nango/v1/syncs", json={"action": action, "sync_id": SYNC}, timeout=60)

    def task(self, run_id: str) -> dict[str, Any]:
        url = f"{self.server.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/sync"
        response = self.http.get(url, timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def mark_failed(self, run_id: str) -> None:
        url = f"{self.server.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
        self.http.patch(url, json={"state": "failed"}, timeout=60).raise_for_status()


@pytest.fixture(scope="module")
def live(live_airflow: AirflowServer, stalling_api: FixtureServer) -> Airflow:
    """The live Airflow with the sync ``stalling_items`` (triggered only) created through the REST API."""
    client = Airflow(live_airflow)
    body = {
        "name": SYNC,
        "url": f"{stalling_api.url}/items",
        "response_path": "results",
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "next_page",
        "frequency": None,
    }
    created = client.http.post(f"{live_airflow.url}/nango/v1/syncs", json=body, timeout=60)
    assert created.status_code == 201, created.text
    live_airflow.wait_for_dag(DAG_ID, timeout=90)
    return client


def start_stalled_run(live: Airflow, items: StallingItems) -> str:
    """Trigger a run and wait until it wrote page 1 and its fetch waits out page 2's ``Retry-After``."""
    runs_before = len(job_rows(live.server, DAG_ID))
    triggered = live.nango("trigger")
    assert triggered.status_code == 200, triggered.text
    run_id = str(triggered.json()["dag_run_id"])

    def stalled() -> bool:
        rows = job_rows(live.server, DAG_ID)
        return len(rows) > runs_before and rows[-1]["pages"] == 1 and items.page_two_asked.is_set()

    wait_for(stalled, 120, f"run {run_id} to wait on page 2", lambda: live.server.log_tail("scheduler"))
    return run_id


def wait_for_end(live: Airflow, run_id: str, timeout: float = 30) -> dict[str, Any]:
    """The run's last job row, once it is no longer ``running``."""
    found: list[dict[str, Any]] = []

    def ended() -> bool:
        found[:] = [row for row in job_rows(live.server, DAG_ID) if row["run_id"] == run_id]
        return bool(found) and found[-1]["status"] != "running"

    wait_for(ended, timeout, f"the job row of {run_id} to end", lambda: live.server.log_tail("scheduler"))
    return found[-1]


def cancel_through_the_nango_api(live: Airflow, run_id: str) -> None:
    response = live.nango("cancel")
    assert response.status_code == 200 and response.json()["cancelled"] == [run_id], response.text


def mark_failed_through_airflows_api(live: Airflow, run_id: str) -> None:
    live.mark_failed(run_id)


def send_sigterm_to_the_task(live: Airflow, run_id: str) -> None:
    os.kill(int(live.task(run_id)["pid"]), signal.SIGTERM)


@pytest.mark.parametrize(
    "stop", [cancel_through_the_nango_api, mark_failed_through_airflows_api, send_sigterm_to_the_task]
)
def test_a_stopped_run_ends_as_cancelled_and_is_not_retried(
    live: Airflow, items: StallingItems, stop: Callable[[Airflow, str], None]
) -> None:
    run_id = start_stalled_run(live, items)

    stop(live, run_id)

    job = wait_for_end(live, run_id)
    assert job["status"] == "cancelled" and job["error"].startswith("cancelled: the task was told to terminate")
    assert job["ended_at"] is not None and job["pages"] == 1
    assert live.server.wait_for_run(DAG_ID, run_id, timeout=60) == "failed"
    task = live.task(run_id)
    assert (task["state"], task["try_number"]) == ("failed", 1)  # failed for good: no retry is scheduled
    assert [row["try_number"] for row in job_rows(live.server, DAG_ID) if row["run_id"] == run_id] == [1]
    shown = live.http.get(f"{live.server.url}/nango/v1/syncs/{SYNC}", timeout=60).json()
    assert (shown["last_run"]["run_id"], shown["last_run"]["status"]) == (run_id, "cancelled")


def test_a_killed_task_is_retried_and_its_dead_row_shown_as_abandoned(live: Airflow, items: StallingItems) -> None:
    run_id = start_stalled_run(live, items)
    killed = live.task(run_id)
    items.released.set()  # the retry gets page 2

    os.kill(int(killed["pid"]), signal.SIGKILL)

    assert live.server.wait_for_run(DAG_ID, run_id, timeout=150) == "success"  # retried after 30 s
    tries = [row for row in job_rows(live.server, DAG_ID) if row["run_id"] == run_id]
    assert [(row["try_number"], row["status"]) for row in tries] == [(1, "abandoned"), (2, "success")]
    assert tries[1]["resumed_from_page"] == 2
    history = live.http.get(f"{live.server.url}/nango/v1/syncs/{SYNC}", timeout=60).json()["history"]
    assert [run["status"] for run in history if run["run_id"] == run_id] == ["abandoned", "success"]
