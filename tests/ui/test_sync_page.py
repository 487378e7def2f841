"""Operating syncs from the "Nango syncs" page in a real browser against a real Airflow: pause, resume and trigger
(with Airflow's params) from a row, the result shown without a reload; a sync's page with its runs' counts,
charts and links; a failed run's full error; a viewer who sees every action disabled with the reason (and whose
forced request the server refuses); keyboard use, times in the zone chosen in Airflow's UI, a narrow window and
the nav icon in light and dark mode. Screenshots of every step go to ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.airflow_server import AirflowServer, wait_for
from tests.live_airflow import job_rows, live_airflow, wait_until_idle
from tests.ui.test_browser import log_in, page, shot

pytestmark = [pytest.mark.ui, pytest.mark.integration]
__all__ = ["live_airflow", "page"]  # the fixtures, imported for pytest

PAGE = "/plugin/nango_syncs"
SYNC = "ui_pokedex"
BROKEN = "ui_broken"
MAX_TOTAL = 150


@pytest.fixture(scope="module")
def syncs(live_airflow: AirflowServer) -> Iterator[AirflowServer]:
    """Two syncs created through the REST API, only triggered: ``ui_pokedex`` (the demo API's 600 pokemon) and
    ``ui_broken`` (a path the demo API does not have: its run fails at once on the 404), run once."""
    client = live_airflow.client()
    base = f"{live_airflow.url}/nango/v1/syncs"
    demo = live_airflow.environment.api.url
    common = {"response_path": "results", "unique_key": "name", "paging_response_path": "next", "frequency": None}
    bodies = [
        {"name": SYNC, "url": f"{demo}/api/v2/pokemon?limit=100", **common},
        {"name": BROKEN, "url": f"{demo}/api/v2/no_such_collection", "request_retries": 0, **common},
    ]
    for body in bodies:
        created = client.post(base, json=body, timeout=60)
        assert created.status_code == 201, created.text
    for body in bodies:
        live_airflow.wait_for_dag(f"nango_sync_{body['name']}", timeout=90)
    triggered = client.put(base, json={"action": "trigger", "sync_id": BROKEN}, timeout=30)
    assert triggered.status_code == 200, triggered.text
    assert live_airflow.wait_for_run(f"nango_sync_{BROKEN}", triggered.json()["dag_run_id"]) == "failed"
    yield live_airflow
    for body in bodies:
        client.put(base, json={"action": "cancel", "sync_id": body["name"]}, timeout=30)
        client.delete(f"{base}/{body['name']}", timeout=30)


def nango_frame(page: Any) -> Any:
    """The page's iframe (the Nango syncs page inside Airflow's UI), once its table is shown."""
    frame = page.frame_locator("iframe")
    frame.locator("table.syncs").wait_for()
    return frame


def frame_of(page: Any) -> Any:
    """The iframe as a ``Frame`` (to run JavaScript in it)."""
    return page.locator("iframe").element_handle().content_frame()


def test_pause_resume_trigger_from_the_page_then_read_the_runs_on_the_syncs_page(
    syncs: AirflowServer, page: Any
) -> None:
    server = syncs
    log_in(page, server, path=PAGE)
    frame = nango_frame(page)
    frame_of(page).evaluate("window.notReloaded = true")
    row = frame.locator(f'tr[data-sync="{SYNC}"]')
    assert row.locator('[data-field="state"]').inner_text() == "active"

    row.get_by_role("button", name=f"Pause {SYNC}").click()
    frame.locator("#notice").get_by_text(f"Paused {SYNC}.").wait_for()
    row.locator('[data-field="state"]').get_by_text("paused").wait_for()
    assert server.client().get(f"{server.url}/api/v2/dags/nango_sync_{SYNC}", timeout=30).json()["is_paused"]
    row.scroll_into_view_if_needed()
    shot(page, "10-paused-from-the-page")

    resume = row.get_by_role("button", name=f"Resume {SYNC}")
    resume.focus()  # from the keyboard
    page.keyboard.press("Enter")
    frame.locator("#notice").get_by_text(f"Resumed {SYNC}.").wait_for()
    row.locator('[data-field="state"]').get_by_text("active").wait_for()
    assert not server.client().get(f"{server.url}/api/v2/dags/nango_sync_{SYNC}", timeout=30).json()["is_paused"]
    shot(page, "11-resumed-from-the-keyboard")

    row.get_by_role("button", name=f"Trigger {SYNC}").click()
    dialog = frame.get_by_role("dialog", name=f"Trigger {SYNC}")
    dialog.get_by_label("Max records").fill("0")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    dialog.get_by_text("Max records: expected a whole number of at least 1").wait_for()  # checked before sending
    dialog.get_by_label("Max records").fill(str(MAX_TOTAL))
    shot(page, "12-trigger-dialog")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    notice = frame.locator("#notice")
    notice.get_by_text(f"Triggered {SYNC}: run ").wait_for()
    run_id = notice.inner_text().split(": run ")[1].rsplit(" is ", 1)[0]
    assert server.wait_for_run(f"nango_sync_{SYNC}", run_id) == "success"
    dag_run = server.client().get(f"{server.url}/api/v2/dags/nango_sync_{SYNC}/dagRuns/{run_id}", timeout=30).json()
    assert dag_run["conf"] == {"full_refresh": False, "max_total": MAX_TOTAL}
    assert frame_of(page).evaluate("window.notReloaded") is True  # every result came without a reload
    row.locator('[data-field="status"]').get_by_text("success").wait_for()
    shot(page, "13-triggered")

    row.get_by_role("link", name=SYNC, exact=True).click()
    check_the_syncs_page(page, frame, server, run_id)


def check_the_syncs_page(page: Any, frame: Any, server: AirflowServer, run_id: str) -> None:
    """The sync's page shows the run's counts, its links into Airflow, where the sync is defined and the charts."""
    frame.locator(f'[data-sync-page="{SYNC}"]').wait_for()
    (job,) = [row for row in job_rows(server, f"nango_sync_{SYNC}") if row["run_id"] == run_id]
    run = frame.locator(f'tr[data-run="{run_id}"]')
    run.wait_for()
    for name in ("fetched", "pages", "added", "updated", "unchanged", "deleted"):
        assert run.locator(f'[data-field="{name}"]').inner_text() == str(job[name]), name
    assert job["fetched"] == MAX_TOTAL and job["added"] == MAX_TOTAL
    assert run.locator('[data-field="status"]').inner_text() == "success"
    encoded = run_id.replace(":", "%3A").replace("+", "%2B")
    assert run.get_by_role("link", name="run").get_attribute("href") == f"../dags/nango_sync_{SYNC}/runs/{encoded}"
    log_link = run.get_by_role("link", name="log").get_attribute("href")
    assert log_link == f"../dags/nango_sync_{SYNC}/runs/{encoded}/tasks/sync?try_number=1"
    about = frame.locator("dl.facts")
    assert about.locator('[data-field="table"]').inner_text() == f"nango.{SYNC}"
    assert about.locator('[data-field="defined-in"]').inner_text().startswith("the REST API")
    assert about.locator('[data-field="connections"]').inner_text() == "Postgres: postgres_default"
    changes = frame.locator('[data-field="changes-chart"] svg')
    assert changes.get_attribute("role") == "img"
    assert frame.locator("#changes-chart-title").text_content() == "Records changed per run"
    assert f"{MAX_TOTAL} added, 0 updated, 0 deleted, 0 unchanged" in (
        frame.locator("#changes-chart-desc").text_content() or ""
    )
    assert changes.locator('rect[data-field="added"]').count() == 1
    assert frame.locator('[data-field="duration-chart"] svg rect.success').count() == 1
    shot(page, "14-sync-page")


def test_a_failed_runs_full_error_is_on_its_row_and_on_the_syncs_page(syncs: AirflowServer, page: Any) -> None:
    (job,) = job_rows(syncs, f"nango_sync_{BROKEN}")
    assert job["status"] == "failed" and "404" in job["error"]
    log_in(page, syncs, path=PAGE)
    frame = nango_frame(page)
    row = frame.locator(f'tr[data-sync="{BROKEN}"]')
    assert row.locator('[data-field="status"]').inner_text() == "failed"
    assert row.locator('[data-field="error"]').inner_text() == job["error"]
    assert row.locator('[data-field="error"]').is_visible()
    row.get_by_role("link", name=BROKEN, exact=True).click()
    full = frame.locator(f'tr[data-error-of="{job["run_id"]}"] [data-field="error"]')
    full.wait_for()
    assert full.inner_text() == job["error"]
    assert full.is_visible()
    frame.locator('[data-field="duration-chart"] svg rect.failed').wait_for()
    full.scroll_into_view_if_needed()
    shot(page, "15-failed-run-error")


def test_a_viewer_sees_every_action_disabled_with_the_reason_and_the_server_refuses_it(
    syncs: AirflowServer, page: Any
) -> None:
    log_in(page, syncs, user="viewer", path=PAGE)
    frame = nango_frame(page)
    row = frame.locator(f'tr[data-sync="{SYNC}"]')
    buttons = row.locator("button[data-action]")
    assert buttons.count() == 3
    reason = f"user 'viewer' may not change the DAG nango_sync_{SYNC} (Airflow role)"
    for index in range(buttons.count()):
        assert buttons.nth(index).is_disabled()
        assert buttons.nth(index).get_attribute("title") == reason
    note = frame.locator('[data-field="permissions"]').inner_text()
    assert note.startswith("User 'viewer' may not change these syncs (Airflow role)")
    row.scroll_into_view_if_needed()
    shot(page, "16-viewer-list")

    # the page only follows the server: a button enabled by hand is still refused
    frame_of(page).evaluate(f"document.querySelector('[data-key=\"{SYNC}:pause\"]').disabled = false")
    row.get_by_role("button", name=f"Pause {SYNC}").click()
    frame.locator("#notice").get_by_text(f"Could not pause {SYNC}: 403: user 'viewer' is not allowed").wait_for()
    assert not syncs.client().get(f"{syncs.url}/api/v2/dags/nango_sync_{SYNC}", timeout=30).json()["is_paused"]

    row.get_by_role("link", name=SYNC, exact=True).click()
    frame.locator(f'[data-sync-page="{SYNC}"]').wait_for()
    page_buttons = frame.locator('[data-field="actions"] button')
    assert all(page_buttons.nth(index).is_disabled() for index in range(page_buttons.count()))
    assert reason in frame.locator('[data-field="permissions"]').inner_text()
    shot(page, "17-viewer-sync-page")


def test_times_follow_airflows_time_zone_and_the_page_reads_in_a_narrow_window_and_in_dark_mode(
    syncs: AirflowServer, page: Any
) -> None:
    wait_until_idle(syncs, f"nango_sync_{BROKEN}")
    log_in(page, syncs, path="/")
    page.evaluate("localStorage.setItem('timezone', JSON.stringify('Asia/Tokyo'))")  # as Airflow's picker does
    page.goto(f"{syncs.url}{PAGE}")
    frame = nango_frame(page)
    assert frame.locator("#timezone").inner_text() == "times in Asia/Tokyo"
    started = frame.locator(f'tr[data-sync="{BROKEN}"] time').get_attribute("title") or ""
    assert started.endswith("GMT+9"), started
    icon = page.locator('img[src$="/nango/icon.svg"]')
    icon.wait_for()
    assert page.evaluate("(img) => img.naturalWidth > 0", icon.element_handle())
    shot(page, "18-nav-icon-selected-light")

    page.set_viewport_size({"width": 1280, "height": 900})
    wide = frame_of(page).evaluate(
        "(() => { const box = document.querySelector('.scroll'); return box.scrollWidth - box.clientWidth; })()"
    )
    assert wide <= 0, f"the list scrolls sideways by {wide} px at 1280 px"
    shot(page, "19-list-1280")
    page.set_viewport_size({"width": 560, "height": 900})
    wait_for(lambda: frame_of(page).evaluate("innerWidth") < 560, 10, "the narrow layout")
    overflow = frame_of(page).evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px at a narrow width"
    cell = frame.locator(f'tr[data-sync="{SYNC}"] [data-field="schedule"]')
    assert cell.get_attribute("data-label") == "Schedule" and cell.is_visible()
    shot(page, "20-list-narrow")

    page.set_viewport_size({"width": 1440, "height": 900})
    page.evaluate("localStorage.setItem('theme', 'dark')")  # Airflow's theme switch
    page.goto(f"{syncs.url}{PAGE}")
    frame = nango_frame(page)
    page.locator('img[src$="/nango/icon-dark.svg"]').wait_for()
    assert frame_of(page).evaluate("document.documentElement.dataset.theme") == "dark"
    background = frame_of(page).evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 24, 39)"
    shot(page, "21-dark-mode")


def test_cancel_asks_for_confirmation_then_fails_the_queued_run(syncs: AirflowServer, page: Any) -> None:
    client = syncs.client()
    base = f"{syncs.url}/nango/v1/syncs"
    wait_until_idle(syncs, f"nango_sync_{SYNC}")
    assert client.put(base, json={"action": "pause", "sync_id": SYNC}, timeout=30).status_code == 200
    run_id = client.put(base, json={"action": "trigger", "sync_id": SYNC}, timeout=30).json()["dag_run_id"]
    try:  # a paused sync's run stays queued
        log_in(page, syncs, path=PAGE)
        frame = nango_frame(page)
        row = frame.locator(f'tr[data-sync="{SYNC}"]')
        row.locator('[data-field="status"]').get_by_text("queued").wait_for()
        row.get_by_role("button", name=f"Cancel run {SYNC}").click()
        confirm = frame.get_by_role("dialog", name="Are you sure?")
        confirm.get_by_text(f"Cancel the queued and running runs of {SYNC}?").wait_for()
        shot(page, "22-cancel-confirmation")
        confirm.get_by_role("button", name="Keep it").click()
        run = client.get(f"{syncs.url}/api/v2/dags/nango_sync_{SYNC}/dagRuns/{run_id}", timeout=30).json()
        assert run["state"] == "queued"

        row.get_by_role("button", name=f"Cancel run {SYNC}").click()
        confirm.get_by_role("button", name="Cancel run").click()
        frame.locator("#notice").get_by_text(f"Cancelled {SYNC}: {run_id} marked failed.").wait_for()
        assert syncs.wait_for_run(f"nango_sync_{SYNC}", run_id) == "failed"
        cancel = row.get_by_role("button", name=f"Cancel run {SYNC}")
        # The notice shows as soon as the action answers; the rows are reloaded after it.
        wait_for(cancel.is_disabled, 20, "the cancel button to be disabled: nothing left to cancel")
        shot(page, "23-cancelled")
    finally:
        client.put(base, json={"action": "resume", "sync_id": SYNC}, timeout=30)


def test_a_sync_with_connections_shows_each_connections_last_run_on_its_page(
    live_airflow: AirflowServer, page: Any
) -> None:
    client = live_airflow.client()
    base = f"{live_airflow.url}/nango/v1/syncs"
    connections = ["demo_tenant_acme", "demo_tenant_globex"]
    body = {
        "name": "ui_tenants",
        "url": "/v1/accounts",
        "connections": connections,
        "query_params": {"per_page": 10},
        "response_path": "accounts",
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "next_page",
    }
    assert client.post(base, json=body, timeout=60).status_code == 201
    try:
        live_airflow.wait_for_dag("nango_sync_ui_tenants", timeout=90)
        (dag_run,) = wait_until_idle(live_airflow, "nango_sync_ui_tenants")
        assert dag_run["state"] == "success", live_airflow.log_tail("scheduler")
        log_in(page, live_airflow, path=PAGE)
        frame = nango_frame(page)
        frame.locator('tr[data-sync="ui_tenants"]').get_by_role("link", name="ui_tenants", exact=True).click()
        about = frame.locator('dl.facts [data-field="connections"]')
        about.wait_for()
        assert about.inner_text() == f"Postgres: postgres_default; one run each: {', '.join(connections)}"
        jobs = {row["connection_id"]: row for row in job_rows(live_airflow, "nango_sync_ui_tenants")}
        for connection in connections:
            shown = frame.locator(f'table.connections tr[data-connection="{connection}"]')
            assert shown.locator('[data-field="added"]').inner_text() == str(jobs[connection]["added"])
        runs = frame.locator('table.runs:not(.connections) [data-field="connection"]')
        assert sorted(runs.all_inner_texts()) == connections
        shot(page, "24-sync-page-connections")
    finally:
        client.delete(f"{base}/ui_tenants", timeout=30)
