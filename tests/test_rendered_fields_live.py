"""A real Airflow stores the rendered fields of every task it runs (the "Rendered Templates" tab, and the
task instance's ``rendered_fields`` in its REST API). Its own redaction hides ``Authorization``-like names
only; the values this project treats as secret must be hidden there too, templated or written literally."""

from __future__ import annotations

import json

import pytest

from devtools.airflow_server import AirflowServer
from tests.live_airflow import SIGNED_SECRETS, live_airflow, run_signed_sync

pytestmark = pytest.mark.integration
__all__ = ["live_airflow"]  # the fixture, imported for pytest


def test_rendered_fields_in_airflows_rest_api_hold_no_secret(live_airflow: AirflowServer) -> None:
    dag_id, run_id = run_signed_sync(live_airflow, "signed_rest")
    response = live_airflow.client().get(
        f"{live_airflow.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/sync", timeout=30
    )
    response.raise_for_status()
    rendered = response.json()["rendered_fields"]
    assert rendered["headers"] == {
        "Accept": "application/json",
        "Cookie": "***",
        "X-Session": "***",
        "X-Signature": "***",
    }
    assert rendered["query_params"] == {"client_id": "***", "limit": 100, "sig": "***"}
    assert not [secret for secret in SIGNED_SECRETS.values() if secret in json.dumps(rendered)]
