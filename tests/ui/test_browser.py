"""The Airflow web UI in a real browser (Debian's headless Chromium, driven by Playwright): a fresh Airflow shows
every health badge green and no plugin import error; log in, trigger ``nango_sync_pokemon`` with the params
form, see the run succeed, then open the "Nango syncs" page from the nav and find the run's counts there; a run
waiting for its retry shows as retrying with its error readable on the page. Screenshots of every step go to
``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.airflow_server import AirflowServer, wait_for
from tests.live_airflow import SIGNED_SECRETS, job_rows, live_airflow, run_signed_sync, wait_until_idle

pytestmark = [pytest.mark.ui, pytest.mark.integration]
__all__ = ["live_airflow"]  # the fixture, imported for pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAG_ID = "nango_sync_pokemon"
MAX_TOTAL = 150
TIMEOUT_MS = 30_000
HEALTH_BADGES = ("MetaDatabase", "Scheduler", "Triggerer", "Dag Processor")
CHECK_ICON = "M20 6 9 17l-5-5"
"""The path of the check mark a healthy badge shows (an unhealthy one shows a cross)."""


@pytest.fixture(scope="module")
def pokemon_synced_once(live_airflow: AirflowServer) -> Iterator[AirflowServer]:
    """``nango_sync_pokemon`` unpaused and run once on its schedule; then the demo API's data changes."""
    client = live_airflow.client()
    resumed = client.put(
        f"{live_airflow.url}/nango/v1/syncs", json={"action": "resume", "sync_id": "pokemon"}, timeout=30
    )
    assert resumed.status_code == 200, resumed.text
    wait_until_idle(live_airflow, DAG_ID)
    assert [row["added"] for row in job_rows(live_airflow, DAG_ID)] == [600]
    live_airflow.environment.api.mutate(changed=60, removed=5, added=10)
    yield live_airflow
    live_airflow.environment.api.reset()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh headless Chromium profile."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Any, server: AirflowServer, user: str = "admin", path: str = f"/dags/{DAG_ID}") -> None:
    """Open ``path`` (a DAG's page by default), land on the login form, sign in, and come back to ``path``."""
    page.goto(f"{server.url}{path}")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(user)
    shot(page, "01-login")
    page.get_by_role("button", name="Sign in").click()
    # back from the login: a plugin page may add its iframe's path to the URL, so match the start only
    page.wait_for_url(lambda url: "/auth/" not in url and path in url)
    if path.startswith("/dags/"):
        page.get_by_text(path.removeprefix("/dags/")).first.wait_for()


def trigger_with_params(page: Any, server: AirflowServer) -> str:
    """Open the trigger form, set "Max records", trigger; the new run's id."""
    known = {run["dag_run_id"] for run in manual_runs(server)}
    page.get_by_role("button", name="Trigger Dag").first.click()
    form = page.get_by_role("dialog")
    form.get_by_label("Max records").fill(str(MAX_TOTAL))
    shot(page, "02-trigger-form")
    form.get_by_role("button", name="Trigger", exact=True).click()
    new: list[str] = []

    def created() -> bool:
        new[:] = [run["dag_run_id"] for run in manual_runs(server) if run["dag_run_id"] not in known]
        return bool(new)

    wait_for(created, 30, "the triggered run")
    (run_id,) = new
    return run_id


def manual_runs(server: AirflowServer) -> list[dict[str, Any]]:
    response = server.client().get(
        f"{server.url}/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "manual"}, timeout=30
    )
    response.raise_for_status()
    return list(response.json()["dag_runs"])


def test_a_fresh_airflow_shows_every_component_healthy_and_no_import_error(
    live_airflow: AirflowServer, page: Any
) -> None:
    log_in(page, live_airflow, path="/")
    health = page.get_by_role("heading", name="Health").locator("xpath=../..")
    badges = health.get_by_test_id("state-badge")
    badges.first.wait_for()
    assert badges.all_inner_texts() == list(HEALTH_BADGES)
    for index in range(badges.count()):
        assert CHECK_ICON in badges.nth(index).inner_html(), f"{HEALTH_BADGES[index]} is not healthy"
    shot(page, "00-home-health")
    assert "Import Error" not in page.inner_text("body")

    page.goto(f"{live_airflow.url}/plugins")
    page.get_by_role("cell", name="nango", exact=True).wait_for()
    shot(page, "00-plugins")
    assert "Import Error" not in page.inner_text("body")


def test_trigger_from_the_ui_then_find_the_counts_on_the_nango_page(
    pokemon_synced_once: AirflowServer, page: Any
) -> None:
    server = pokemon_synced_once
    log_in(page, server)
    run_id = trigger_with_params(page, server)
    assert server.wait_for_run(DAG_ID, run_id) == "success"
    run = server.client().get(f"{server.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", timeout=30).json()
    assert run["conf"] == {"full_refresh": False, "max_total": MAX_TOTAL}

    page.goto(f"{server.url}/dags/{DAG_ID}/runs/{run_id}")
    page.get_by_text("success").first.wait_for()
    shot(page, "03-run-success")

    job = job_rows(server, DAG_ID)[-1]
    assert (job["run_id"], job["status"], job["fetched"], job["deleted"]) == (run_id, "success", MAX_TOTAL, 0)
    assert job["added"] + job["updated"] + job["unchanged"] == MAX_TOTAL and job["updated"] > 0

    page.get_by_role("link", name="Nango syncs").click()
    page.wait_for_url("**/plugin/nango_syncs**")  # the UI may append the iframe's path
    row = page.frame_locator("iframe").locator(f'tr[data-sync="{DAG_ID.removeprefix("nango_sync_")}"]')
    for name in ("added", "updated", "unchanged", "deleted"):
        cell = row.locator(f'[data-field="{name}"]')
        cell.wait_for()
        assert cell.inner_text() == str(job[name]), name
    assert row.locator('[data-field="status"]').inner_text() == "success"
    assert row.locator('[data-field="state"]').inner_text() == "active"
    bars = row.locator("svg.chart rect")
    assert bars.count() == 2
    assert (bars.last.locator("title").text_content() or "").startswith(f"{MAX_TOTAL} fetched")
    assert row.get_by_role("link", name=DAG_ID).get_attribute("href") == f"../dags/{DAG_ID}"
    shot(page, "04-nango-page")


def test_the_rendered_templates_tab_shows_no_secret(live_airflow: AirflowServer, page: Any) -> None:
    dag_id, run_id = run_signed_sync(live_airflow, "signed_ui")
    log_in(page, live_airflow, path=f"/dags/{dag_id}")
    page.goto(f"{live_airflow.url}/dags/{dag_id}/runs/{run_id}/tasks/sync")
    page.get_by_role("link", name="Rendered Templates").click()
    page.wait_for_url("**/tasks/sync/rendered_templates")
    for shown in ("X-Signature", "Cookie", "client_id", "***"):
        page.get_by_text(shown).first.wait_for()
    shot(page, "05-rendered-templates")
    text = page.locator("body").inner_text() + page.content()
    assert not [secret for secret in SIGNED_SECRETS.values() if secret in text]


def test_a_retrying_run_and_its_error_are_readable_on_the_nango_page(live_airflow: AirflowServer, page: Any) -> None:
    """A try that failed on a transient error waits for its retry: ``retrying``, the error shown in full."""
    client = live_airflow.client()
    syncs = f"{live_airflow.url}/nango/v1/syncs"
    body = {"name": "unreachable", "url": "http://127.0.0.1:9/items", "request_retries": 0, "frequency": None}
    assert client.post(syncs, json=body, timeout=30).status_code == 201
    live_airflow.wait_for_dag("nango_sync_unreachable", timeout=60)
    triggered = client.put(syncs, json={"action": "trigger", "sync_id": "unreachable"}, timeout=30)
    assert triggered.status_code == 200, triggered.text

    def retrying() -> bool:
        last = client.get(f"{syncs}/unreachable", timeout=30).json()["last_run"]
        return bool(last) and last["status"] == "retrying"

    wait_for(retrying, 120, "the failed try to wait for its retry")
    try:
        log_in(page, live_airflow, path="/plugin/nango_syncs")
        frame = page.frame_locator("iframe")
        row = frame.locator('tr[data-sync="unreachable"]')
        assert row.locator('[data-field="status"]').inner_text() == "retrying"
        error = row.locator('[data-field="error"]')
        assert error.is_visible()
        assert error.inner_text().startswith("will retry: HttpError: sync 'unreachable': ConnectionError")
        assert "Connection refused" in error.inner_text()
        contacts = frame.locator('tr[data-sync="hubspot_contacts"] [data-field="schedule"]')
        assert contacts.inner_text() == "every 30 minutes"
        shot(page, "06-nango-page-retrying")
    finally:
        client.put(syncs, json={"action": "cancel", "sync_id": "unreachable"}, timeout=30)
        client.delete(f"{syncs}/unreachable", timeout=30)
