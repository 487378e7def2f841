"""An invalid sync definition as a person sees it in the browser: Airflow's "Dag Import Error" on the home page
names ``nango_sync_errors.py`` and the sync, and the Nango syncs page lists the error above the valid syncs: its
file, sync, field, message and hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devtools.airflow_server import AirflowServer, wait_for
from nango_provider.dag_factory import ERRORS_FILE_NAME
from tests.live_airflow import live_airflow, syncs_folder
from tests.ui.test_browser import log_in, page, shot

pytestmark = [pytest.mark.ui, pytest.mark.integration]
__all__ = ["live_airflow", "page"]  # the fixtures, imported for pytest

BAD = "syncs:\n  ui_typo:\n    http_conn_id: nango_demo_api\n    url: /api/v2/pokemon\n    uniqe_key: name\n"
FIELDS = ("file", "sync", "field", "message", "hint")
MESSAGE = "sync 'ui_typo', field 'uniqe_key': unknown field; did you mean 'unique_key'?"


def errors_file_errors(server: AirflowServer) -> list[str]:
    response = server.client().get(f"{server.url}/api/v2/importErrors", timeout=30)
    response.raise_for_status()
    found = response.json()["import_errors"]
    return [error["stack_trace"] for error in found if Path(error["filename"]).name == ERRORS_FILE_NAME]


def test_an_invalid_definition_shows_in_airflow_and_on_the_nango_page(live_airflow: AirflowServer, page: Any) -> None:
    bad = syncs_folder(live_airflow) / "ui_bad.yaml"
    bad.write_text(BAD)
    try:
        wait_for(lambda: any(MESSAGE in trace for trace in errors_file_errors(live_airflow)), 90, "the import error")
        log_in(page, live_airflow)

        page.goto(f"{live_airflow.url}/")
        page.get_by_text("Dag Import Error").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text(ERRORS_FILE_NAME).first.wait_for()
        dialog.get_by_text(ERRORS_FILE_NAME).first.click()  # unfolds the stack trace
        dialog.get_by_text(MESSAGE, exact=False).first.wait_for()
        shot(page, "05-import-error")

        page.goto(f"{live_airflow.url}/plugin/nango_syncs")
        errors = page.frame_locator("iframe").locator("#errors")
        listed = errors.locator("li.definition-error")
        listed.wait_for()
        assert "could not be loaded" in errors.inner_text()
        assert listed.get_attribute("title") == f"{bad}: {MESSAGE}"
        shown = {name: listed.locator(f'[data-field="{name}"]').inner_text() for name in FIELDS}
        assert shown == {
            "file": bad.name,  # relative to the syncs folder: no server path
            "sync": "ui_typo",
            "field": "uniqe_key",
            "message": "unknown field",
            "hint": "did you mean 'unique_key'?",
        }
        page.frame_locator("iframe").locator('tr[data-sync="pokemon"]').wait_for()
        shot(page, "06-nango-page-error")
    finally:
        bad.unlink(missing_ok=True)
        wait_for(lambda: errors_file_errors(live_airflow) == [], 90, "the import error to go away")
