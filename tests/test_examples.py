"""Every example DAG runs through Airflow (``dag.test()``) against the local demo API and a real Postgres;
the operator works inside a DAG with templated secrets that never reach logs, XCom or the jobs table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.demo_api import DemoApi
from nango_provider.dag_factory import sync_asset
from tests.helpers import EXAMPLES, AirflowRunner, airflow_dags_test, jobs, rows

pytestmark = pytest.mark.integration

EXAMPLE_SYNCS = {
    "nango_sync_pokemon": "nango.pokemon",
    "nango_sync_hubspot_contacts": "crm.contacts",
    "nango_sync_hubspot_contacts_search": "nango.hubspot_contacts_search",
    "nango_sync_hubspot_contacts_incremental": "crm.contacts_incremental",
    "nango_sync_nested_objects": "nango.nested_objects",
    **{
        f"nango_sync_{name}": f"nango.{name}"
        for name in ("github_items", "jira_issues", "zoho_leads", "notion_pages", "stripe_customers", "zendesk_tickets")
    },
}


@pytest.fixture
def examples(airflow: AirflowRunner, demo_api: DemoApi, monkeypatch: pytest.MonkeyPatch) -> AirflowRunner:
    monkeypatch.setenv("NANGO_SYNCS_PATH", str(EXAMPLES / "syncs"))
    return airflow


def xcom(dag_run: Any, task_id: str = "sync") -> Any:
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == task_id]
    return ti.xcom_pull(task_ids=task_id)


@pytest.mark.parametrize(("dag_id", "table"), sorted(EXAMPLE_SYNCS.items()))
def test_example_sync_lands_every_record(examples: AirflowRunner, db: str, dag_id: str, table: str) -> None:
    dag_run = examples.run(dag_id)
    assert dag_run.state == "success"
    assert len(rows(db, table)) == 600
    assert xcom(dag_run) == {"pages": 6 if "nested" not in dag_id else 3, "fetched": 600, "added": 600,
                             "updated": 0, "unchanged": 0, "deleted": 0}  # fmt: skip


def test_example_resync_after_upstream_changes(examples: AirflowRunner, db: str, demo_api: DemoApi) -> None:
    examples.run("nango_sync_hubspot_contacts")
    demo_api.mutate(changed=25, removed=5, added=10)
    dag_run = examples.run("nango_sync_hubspot_contacts", conf={"full_refresh": True})
    counts = xcom(dag_run)
    assert (counts["added"], counts["updated"], counts["deleted"], counts["unchanged"]) == (10, 25, 5, 570)
    awkward = rows(db, "crm.contacts")
    assert awkward["2"]["data"]["properties"]["lastname"] == "O'Brien"
    assert awkward["5"]["data"]["properties"]["score"] == 2**62


def test_incremental_example_fetches_only_what_changed(examples: AirflowRunner, db: str, demo_api: DemoApi) -> None:
    examples.run("nango_sync_hubspot_contacts_incremental")
    demo_api.mutate(changed=8, removed=2, added=5)
    counts = xcom(examples.run("nango_sync_hubspot_contacts_incremental"))
    # 8 changed, 5 added, and the contact holding the mark again (the lookback and the filter are inclusive)
    assert (counts["fetched"], counts["added"], counts["updated"], counts["deleted"]) == (14, 5, 8, 0)
    full = xcom(examples.run("nango_sync_hubspot_contacts_incremental", conf={"full_refresh": True}))
    assert (full["fetched"], full["deleted"]) == (603, 2)


def test_data_interval_templates_reach_the_request(airflow: AirflowRunner, db: str, demo_api: DemoApi) -> None:
    """A backfill-style window from Airflow's data interval; an unrendered template would be refused by the API."""
    airflow.write_syncs(
        f"""
syncs:
  windowed:
    url: {demo_api.url}/crm/v3/objects/contacts
    query_params:
      limit: 1000
      updated_since: "{{{{ data_interval_start.subtract(years=10).isoformat() }}}}"
    unique_key: id
    paging_request_path: after
    paging_response_path: paging.next.after
"""
    )
    dag_run = airflow.run("nango_sync_windowed")
    assert dag_run.state == "success"
    assert xcom(dag_run)["fetched"] == 600


def test_max_total_param_from_the_trigger_form(examples: AirflowRunner, db: str) -> None:
    dag_run = examples.run("nango_sync_pokemon", conf={"max_total": 150})
    assert xcom(dag_run)["fetched"] == 150
    assert len(rows(db, "nango.pokemon")) == 150


def test_pipeline_example_runs_extract_sync_and_downstream_sql(examples: AirflowRunner, db: str) -> None:
    dag_run = examples.run("crm_pipeline_with_nango_sync")
    assert dag_run.state == "success"
    with psycopg.connect(db) as conn:
        (stage, contacts) = conn.execute("SELECT stage, contacts FROM crm.stage_summary").fetchone() or ("", 0)
        expected = conn.execute(
            "SELECT count(*) FROM crm.pipeline_contacts WHERE _nango_data->'properties'->>'lifecyclestage' = 'customer'"
        ).fetchone()
    assert stage == "customer" and (contacts,) == expected and contacts > 0


def test_downstream_dag_is_scheduled_on_the_sync_asset(examples: AirflowRunner, db: str) -> None:
    bag = examples.dag_bag()
    downstream = bag.get_dag("pokemon_report")
    sync_task = bag.get_dag("nango_sync_pokemon").get_task("sync")
    assert list(downstream.timetable.asset_condition.objects) == list(sync_task.outlets)
    examples.run("nango_sync_pokemon")
    assert examples.run("pokemon_report").state == "success"
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT sum(pokemon) > 0 FROM reports.pokemon_by_type").fetchone() == (True,)


def test_templated_secret_header_works_and_never_leaks(
    airflow: AirflowRunner,
    db: str,
    demo_api: DemoApi,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret = "s3cr3t-token-value-42"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MY_API", json.dumps({"conn_type": "nango", "host": demo_api.url, "password": secret})
    )
    airflow.write_syncs(
        """
syncs:
  guarded:
    http_conn_id: my_api
    url: /crm/v3/objects/contacts?limit=300
    headers:
      Authorization: "Bearer {{ conn.my_api.password }}"
    unique_key: id
    paging_request_path: after
    paging_response_path: paging.next.after
"""
    )
    dag_run = airflow.run("nango_sync_guarded")
    assert dag_run.state == "success"
    assert secret not in json.dumps(xcom(dag_run))
    assert secret not in capfd.readouterr().out
    assert secret not in json.dumps([job["error"] for job in jobs(db)])


def test_airflow_dags_test_cli_runs_a_sync_written_by_a_user(
    airflow: AirflowRunner, db: str, demo_api: DemoApi
) -> None:
    airflow.write_syncs(
        f"""
syncs:
  user_objects:
    url: {demo_api.url}/v1/objects
    query_params: {{per_page: 250}}
    response_path: returned.data.objects
    unique_key: id
    paging_request_path: page
    paging_response_path: meta.next_page
    table: test_user.objects
"""
    )
    result = airflow_dags_test("nango_sync_user_objects")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(rows(db, "test_user.objects")) == 600
    assert [(job["status"], job["pages"], job["added"]) for job in jobs(db)] == [("success", 3, 600)]


def test_airflow_dags_test_cli_follows_the_link_header_of_an_example(examples: AirflowRunner, db: str) -> None:
    result = airflow_dags_test("nango_sync_github_items")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(int(key) for key in rows(db, "nango.github_items")) == list(range(1, 601))
    assert [(job["status"], job["pages"], job["fetched"], job["warnings"]) for job in jobs(db)] == [
        ("success", 6, 600, None)
    ]


def test_provider_is_discovered_by_airflow() -> None:
    def airflow_cli(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, check=True, timeout=120
        )
        return result.stdout

    assert "nango-provider" in airflow_cli("providers", "get", "nango-provider")
    hooks = airflow_cli("providers", "hooks", "--output", "json")
    assert any(h["connection_type"] == "nango" and "NangoHook" in h["class"] for h in json.loads(hooks))


def test_examples_folder_is_what_make_demo_uses() -> None:
    assert sorted(path.name for path in (EXAMPLES / "syncs").glob("*.yaml")) == [
        "hubspot_contacts.yaml",
        "nested_objects.yaml",
        "paging_styles.yaml",
        "pokemon.yaml",
        "tenants.yaml",
    ]
    assert Path(EXAMPLES / "nango_syncs.py").read_text().count("load_sync_dags") == 2


def run_on_asset_events(dag_id: str, asset_uri: str, after: int) -> str:
    """Start a run of ``dag_id`` the way the scheduler does for an asset-scheduled DAG: triggered by the asset's
    events not consumed yet (of those after event id ``after``). Returns its run id."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    with create_session() as session:
        dag = SerializedDagModel.get_dag(dag_id, session=session)
        assert dag is not None
        consumed = {event.id for run in session.scalars(select(DagRun).where(DagRun.dag_id == dag_id))
                    for event in run.consumed_asset_events}  # fmt: skip
        events = [
            event
            for event in session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.uri == asset_uri)
                .order_by(AssetEvent.timestamp)
            )
            if event.id not in consumed and event.id > after
        ]
        now = timezone.utcnow()
        run_id = DagRun.generate_run_id(run_type=DagRunType.ASSET_TRIGGERED, logical_date=None, run_after=now)
        dag_run = dag.create_dagrun(
            run_id=run_id,
            run_after=now,
            run_type=DagRunType.ASSET_TRIGGERED,
            triggered_by=DagRunTriggeredByType.ASSET,
            state=DagRunState.RUNNING,
            session=session,
        )
        dag_run.consumed_asset_events.extend(events)
    return run_id


def run_task(dag_id: str, task_id: str, run_id: str) -> None:
    """``airflow tasks test <dag_id> <task_id> <run_id>`` in this process: one task of an existing run."""
    from airflow.cli import cli_parser

    args = cli_parser.get_parser().parse_args(["tasks", "test", dag_id, task_id, run_id])
    environment = dict(os.environ)
    try:
        args.func(args)
    finally:  # the command sets Airflow's parsing context (build only this DAG) in the environment
        os.environ.clear()
        os.environ.update(environment)


def test_downstream_dag_learns_what_each_sync_run_changed_from_the_asset_event(
    examples: AirflowRunner, db: str, demo_api: DemoApi
) -> None:
    asset = sync_asset("nango.pokemon")
    earlier = len(asset_event_extras(asset.uri, after=0))  # events of other tests in this Airflow
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS reports CASCADE")
    first = examples.run("nango_sync_pokemon")
    assert xcom(first)["added"] == 600
    after = last_asset_event_id()
    run_task("pokemon_report", "record_changes", run_on_asset_events("pokemon_report", asset.uri, after - 1))
    demo_api.mutate(changed=7, removed=3, added=2)
    examples.run("nango_sync_pokemon", conf={"full_refresh": True})
    run_id = run_on_asset_events("pokemon_report", asset.uri, after)
    run_task("pokemon_report", "record_changes", run_id)
    run_task("pokemon_report", "refresh_report", run_id)
    with psycopg.connect(db) as conn:
        by_job = conn.execute(
            "SELECT job_id, change, count(*) FROM reports.pokemon_changes GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    (first_job, second_job) = sorted({job for job, _, _ in by_job})
    assert [(change, count) for job, change, count in by_job if job == first_job] == [("added", 600)]
    assert [(change, count) for job, change, count in by_job if job == second_job] == [
        ("added", 2), ("deleted", 3), ("updated", 7)
    ]  # fmt: skip
    extras = asset_event_extras(asset.uri, after=0)[earlier:]
    assert [extra["counts"] for extra in extras] == [
        {"pages": 6, "fetched": 600, "added": 600, "updated": 0, "unchanged": 0, "deleted": 0},
        {"pages": 6, "fetched": 599, "added": 2, "updated": 7, "unchanged": 590, "deleted": 3},
    ]
    assert [extra["job_id"] for extra in extras] == [first_job, second_job]
    assert all(extra["started_at"] < extra["ended_at"] and extra["table"] == "nango.pokemon" for extra in extras)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT sum(pokemon) > 0 FROM reports.pokemon_by_type").fetchone() == (True,)


def asset_event_extras(asset_uri: str, after: int) -> list[dict[str, Any]]:
    """The extras of the asset's events after event id ``after``, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        query = query.where(AssetModel.uri == asset_uri, AssetEvent.id > after).order_by(AssetEvent.id)
        return list(session.scalars(query))


def last_asset_event_id() -> int:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(session.scalar(select(func.max(AssetEvent.id))) or 0)


def test_auto_mapped_demo_objects_are_filtered_and_aggregated_by_typed_columns(
    airflow: AirflowRunner, db: str, demo_api: DemoApi
) -> None:
    example = (EXAMPLES / "syncs" / "nested_objects.yaml").read_text(encoding="utf-8")
    airflow.write_syncs(
        example.replace("    frequency:", "    auto_mapping: true\n    metadata:\n      tenant: demo\n    frequency:")
    )
    assert airflow.run("nango_sync_nested_objects").state == "success"
    with psycopg.connect(db) as conn:
        types = dict(
            conn.execute(
                """SELECT column_name, data_type FROM information_schema.columns
                   WHERE table_schema = 'nango' AND table_name = 'nested_objects' AND column_name NOT LIKE '\\_%'"""
            ).fetchall()
        )
        typed = conn.execute(
            """SELECT price__currency, count(*), sum(price__amount), max(id) FROM nango.nested_objects
               WHERE price__amount > 50 AND tenant = 'demo' AND tags ? 'sale' GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        from_json = conn.execute(
            """SELECT _nango_data #>> '{price,currency}', count(*), sum((_nango_data #>> '{price,amount}')::numeric),
                      max((_nango_data ->> 'id')::bigint)
               FROM nango.nested_objects
               WHERE (_nango_data #>> '{price,amount}')::numeric > 50 AND _nango_data -> 'tags' ? 'sale'
               GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    assert types == {"id": "bigint", "name": "text", "tags": "jsonb", "price__amount": "numeric",
                     "price__currency": "text", "tenant": "text"}  # fmt: skip
    assert typed == from_json and len(typed) > 1
