"""One owner per table, against the real Postgres and through Airflow: the first sync to write a table owns it,
a second sync on it fails before fetching or writing anything (naming both, and once: no retry), and the table
can be handed over with the SQL the reference gives."""

from __future__ import annotations

import textwrap
import threading
from typing import Any

import psycopg
import pytest

from nango_provider.exceptions import TableOwnedError
from tests.fixture_server import FixtureServer, Reply
from tests.helpers import AirflowRunner, items_sync, jobs, rows, sync

pytestmark = pytest.mark.integration

TABLE = "test_crm.items"
"""The table several syncs try to write (schema ``nango`` would refuse them already when they are read)."""


def shared(api_url: str) -> dict[str, Any]:
    """Fields of a sync of ``/items`` into :data:`TABLE`, whatever the sync's name."""
    return items_sync(api_url, table=TABLE)


@pytest.fixture
def items(api: FixtureServer) -> FixtureServer:
    """``/items``: three records on one page."""
    api.route("GET", "/items", lambda request: Reply(json={"results": [{"id": i} for i in (1, 2, 3)]}))
    return api


def owners(db: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(db) as conn:
        return conn.execute(  # type: ignore[return-value]
            "SELECT target_table, sync_name, dag_id, task_id FROM nango._nango_table_owners ORDER BY 1"
        ).fetchall()


def test_the_first_sync_owns_the_table_and_a_second_fails_before_fetching_or_writing(
    db: str, items: FixtureServer
) -> None:
    sync(db, "contacts", shared(items.url))
    before, requests_before = rows(db, TABLE), len(items.requests)

    with pytest.raises(TableOwnedError) as raised:
        sync(db, "contacts_copy", shared(items.url))

    message = str(raised.value)
    assert raised.value.field == "table" and raised.value.table == "test_crm.items"
    assert "sync 'contacts' (DAG 'nango_sync_contacts', task 'sync')" in message
    assert "sync 'contacts_copy' (DAG 'nango_sync_contacts_copy', task 'sync')" in message
    assert "set `table` to another table" in message
    assert rows(db, TABLE) == before  # same rows, same row versions
    assert len(items.requests) == requests_before
    assert owners(db) == [("test_crm.items", "contacts", "nango_sync_contacts", "sync")]
    ok, refused = jobs(db)
    assert (ok["status"], refused["status"], refused["sync_name"]) == ("success", "failed", "contacts_copy")
    assert refused["error"] == f"TableOwnedError: {message}"


def test_the_owner_keeps_its_table_across_runs_and_other_tables_are_independent(db: str, items: FixtureServer) -> None:
    sync(db, "contacts", shared(items.url), run_id="run-1")
    sync(db, "contacts", shared(items.url), run_id="run-2")
    sync(db, "contacts_copy", items_sync(items.url, table="test_crm.items_copy"))
    assert owners(db) == [
        ("test_crm.items", "contacts", "nango_sync_contacts", "sync"),
        ("test_crm.items_copy", "contacts_copy", "nango_sync_contacts_copy", "sync"),
    ]


@pytest.mark.parametrize(
    "handover",
    [
        "DELETE FROM nango._nango_table_owners WHERE target_table = 'test_crm.items'",
        "UPDATE nango._nango_table_owners SET sync_name = 'contacts_copy', dag_id = 'nango_sync_contacts_copy', "
        "task_id = 'sync' WHERE target_table = 'test_crm.items'",
    ],
)
def test_a_table_is_handed_over_with_the_documented_sql(db: str, items: FixtureServer, handover: str) -> None:
    sync(db, "contacts", shared(items.url))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(handover)  # type: ignore[arg-type]

    counts = sync(db, "contacts_copy", shared(items.url), run_id="run-2")

    assert counts["unchanged"] == 3
    assert owners(db) == [("test_crm.items", "contacts_copy", "nango_sync_contacts_copy", "sync")]
    with pytest.raises(TableOwnedError):
        sync(db, "contacts", shared(items.url), run_id="run-3")


def test_two_first_runs_racing_for_a_new_table_leave_one_owner(db: str, items: FixtureServer) -> None:
    sync(db, "other", items_sync(items.url, table="nango.other"))  # the bookkeeping tables exist
    start = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def run(name: str) -> None:
        start.wait()
        try:
            outcomes[name] = sync(db, name, shared(items.url))
        except TableOwnedError as error:
            outcomes[name] = error

    threads = [threading.Thread(target=run, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    refused = [name for name, outcome in outcomes.items() if isinstance(outcome, TableOwnedError)]
    assert len(outcomes) == 2 and len(refused) == 1
    (owner,) = [owner for owner in owners(db) if owner[0] == "test_crm.items"]
    assert owner[1] != refused[0]


_TWO_DAGS = """
from datetime import timedelta

from airflow.sdk import DAG

from nango_provider.operators.sync import NangoSyncOperator

for dag_id in ("crm_a", "crm_b"):
    with DAG(dag_id, schedule=None, default_args={{"retries": 2, "retry_delay": timedelta(0)}}) as dag:
        NangoSyncOperator(task_id="sync_contacts", url="{url}/items", unique_key="id")
    globals()[dag_id] = dag
"""


def test_two_dags_with_the_same_task_id_do_not_share_a_table(
    airflow: AirflowRunner, db: str, items: FixtureServer
) -> None:
    dag_file = airflow.dags / "two_crm_dags.py"  # in the DAG folder: dag.test() runs DAGs of a bundle
    dag_file.write_text(textwrap.dedent(_TWO_DAGS.format(url=items.url)))
    try:
        bag = airflow.dag_bag()
        first = bag.get_dag("crm_a").test()
        second = bag.get_dag("crm_b").test()
    finally:
        dag_file.unlink()

    assert (first.state, second.state) == ("success", "failed")
    (ti,) = second.get_task_instances()
    assert (ti.state, ti.try_number) == ("failed", 1)  # no retry: a retry would fail the same way
    assert len(rows(db, "nango.sync_contacts")) == 3
    assert [(job["dag_id"], job["status"]) for job in jobs(db)] == [("crm_a", "success"), ("crm_b", "failed")]
    error = jobs(db)[1]["error"]
    assert "sync 'sync_contacts' (DAG 'crm_a', task 'sync_contacts')" in error
    assert "sync 'sync_contacts' (DAG 'crm_b', task 'sync_contacts')" in error
