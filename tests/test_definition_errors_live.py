"""An invalid sync definition on a real Airflow (API server, scheduler, DAG processor): every valid sync, from
YAML or from the REST API, stays parsed, scheduled and triggerable; the error, naming file, sync and field, shows
in Airflow's import errors and in ``GET /nango/v1/syncs``; fixing the file brings the sync in."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.airflow_server import AirflowServer, wait_for
from nango_provider.dag_factory import ERRORS_FILE_NAME
from tests.live_airflow import live_airflow, syncs_folder

pytestmark = pytest.mark.integration
__all__ = ["live_airflow"]  # the fixture, imported for pytest

GOOD = """
syncs:
  isolation_ok:
    http_conn_id: nango_demo_api
    url: /api/v2/pokemon
    query_params: {limit: 100}
    response_path: results
    unique_key: name
    paging_response_path: next
    frequency: null
"""
BAD = """
syncs:
  isolation_typo:
    http_conn_id: nango_demo_api
    url: /api/v2/pokemon
    response_path: results
    unique_key: name
    {paging_field}: next
    frequency: null
  isolation_neighbour:
    http_conn_id: nango_demo_api
    url: /api/v2/pokemon
    response_path: results
    unique_key: name
    frequency: null
"""
TYPO_ERROR = "sync 'isolation_typo', field 'paging_respone_path': unknown field; did you mean 'paging_response_path'?"
API_SYNC = {
    "name": "isolation_api",
    "url": "/api/v2/pokemon?limit=100",
    "http_conn_id": "nango_demo_api",
    "response_path": "results",
    "unique_key": "name",
    "paging_response_path": "next",
    "frequency": None,
}


class Airflow:
    """The live Airflow's REST API (Airflow's own and ``/nango/v1/syncs``) as admin."""

    def __init__(self, server: AirflowServer) -> None:
        self.server = server
        self.http = server.client()

    def get(self, path: str) -> Any:
        response = self.http.get(f"{self.server.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def act(self, action: str, sync_id: str) -> requests.Response:
        body = {"action": action, "sync_id": sync_id}
        return self.http.put(f"{self.server.url}/nango/v1/syncs", json=body, timeout=60)

    def errors_file_errors(self) -> list[str]:
        """Stack traces of the import errors Airflow recorded for ``nango_sync_errors.py``."""
        found = self.get("/api/v2/importErrors")["import_errors"]
        return [error["stack_trace"] for error in found if Path(error["filename"]).name == ERRORS_FILE_NAME]

    def parsed_after(self, dag_id: str, moment: datetime) -> bool:
        """Whether the DAG processor parsed ``dag_id``'s file after ``moment`` (and the DAG is still there)."""
        response = self.http.get(f"{self.server.url}/api/v2/dags/{dag_id}", timeout=30)
        if response.status_code != 200:
            return False
        parsed = response.json()["last_parsed_time"]
        return parsed is not None and datetime.fromisoformat(parsed) > moment

    def trigger_and_wait(self, sync_id: str) -> str:
        """Trigger a run of the sync through ``PUT /nango/v1/syncs``; its final state."""
        triggered = self.act("trigger", sync_id)
        assert triggered.status_code == 200, triggered.text
        return self.server.wait_for_run(f"nango_sync_{sync_id}", triggered.json()["dag_run_id"])


def test_an_invalid_definition_hides_no_valid_sync_and_is_shown_until_fixed(live_airflow: AirflowServer) -> None:
    airflow = Airflow(live_airflow)
    folder = syncs_folder(live_airflow)
    good, bad = folder / "isolation_good.yaml", folder / "isolation_bad.yaml"
    good.write_text(GOOD)
    created = airflow.http.post(f"{live_airflow.url}/nango/v1/syncs", json=API_SYNC, timeout=60)
    assert created.status_code == 201, created.text
    try:
        live_airflow.wait_for_dag("nango_sync_isolation_ok")
        live_airflow.wait_for_dag("nango_sync_isolation_api")
        assert airflow.errors_file_errors() == []

        written = datetime.now().astimezone()
        bad.write_text(BAD.format(paging_field="paging_respone_path"))
        reported: list[str] = []

        def error_shown() -> bool:
            reported[:] = [trace for trace in airflow.errors_file_errors() if TYPO_ERROR in trace]
            return bool(reported)

        wait_for(error_shown, 90, "the import error of nango_sync_errors.py")
        assert f"{bad}: {TYPO_ERROR}" in reported[0]
        assert "1 invalid sync definition (every valid sync is loaded):" in reported[0]

        # the DAG file of the syncs was parsed since, and still holds every valid sync
        wait_for(lambda: airflow.parsed_after("nango_sync_isolation_ok", written), 90, "a parse of nango_syncs.py")
        for dag_id in ("nango_sync_isolation_ok", "nango_sync_isolation_api", "nango_sync_pokemon"):
            dag = airflow.get(f"/api/v2/dags/{dag_id}")
            assert dag["is_stale"] is False and dag["has_import_errors"] is False, dag
        assert airflow.get("/api/v2/dags/nango_sync_pokemon")["next_dagrun_run_after"] is not None  # scheduled
        live_airflow.wait_for_dag("nango_sync_isolation_neighbour")  # the valid sync of the broken file

        listed = airflow.get("/nango/v1/syncs")
        assert listed["has_import_errors"] is True
        assert f"{bad}: {TYPO_ERROR}" in listed["errors"]
        syncs = {sync["id"]: sync for sync in listed["syncs"]}
        assert syncs["isolation_ok"]["parsed"] is True and syncs["isolation_api"]["parsed"] is True
        assert "isolation_typo" not in syncs

        assert airflow.act("resume", "isolation_ok").status_code == 200
        assert airflow.trigger_and_wait("isolation_ok") == "success"
        assert airflow.trigger_and_wait("isolation_api") == "success"

        bad.write_text(BAD.format(paging_field="paging_response_path"))
        live_airflow.wait_for_dag("nango_sync_isolation_typo")
        wait_for(lambda: airflow.errors_file_errors() == [], 90, "the import error to go away")
        fixed = airflow.get("/nango/v1/syncs")
        assert fixed["has_import_errors"] is False and fixed["errors"] == []
        assert {"isolation_typo", "isolation_ok", "isolation_api"} <= {sync["id"] for sync in fixed["syncs"]}
    finally:
        good.unlink(missing_ok=True)
        bad.unlink(missing_ok=True)
        airflow.http.delete(f"{live_airflow.url}/nango/v1/syncs/isolation_api", timeout=60)
