"""Metadata against a real Postgres: constant values stored with every row in ``_nango_metadata``, templated by
Airflow; changing them counts as a change of every row."""

from __future__ import annotations

import psycopg
import pytest

from tests.fixture_server import FixtureServer
from tests.helpers import AirflowRunner, items_sync, sync
from tests.test_store import items, serve

pytestmark = pytest.mark.integration


def metadata_of(db: str, table: str = "nango.items") -> dict[str, object]:
    with psycopg.connect(db) as conn:
        found = conn.execute(f"SELECT _nango_unique_key, _nango_metadata FROM {table}").fetchall()
    return dict(found)


def test_metadata_is_stored_with_every_row_and_a_change_of_it_updates_every_row(db: str, api: FixtureServer) -> None:
    serve(api, items(5))
    tenant = {"tenant": "acme", "source": {"system": "crm", "region": 3}}
    counts = sync(db, "items", items_sync(api.url, metadata=tenant), run_id="run-1")
    assert counts["added"] == 5
    assert list(metadata_of(db).values()) == [tenant] * 5
    assert sync(db, "items", items_sync(api.url, metadata=tenant), run_id="run-2")["unchanged"] == 5
    counts = sync(db, "items", items_sync(api.url, metadata={**tenant, "tenant": "globex"}), run_id="run-3")
    assert counts["updated"] == 5 and counts["unchanged"] == 0
    assert {value["tenant"] for value in metadata_of(db).values()} == {"globex"}  # type: ignore[index]


def test_metadata_added_to_a_sync_that_had_none(db: str, api: FixtureServer) -> None:
    serve(api, items(3))
    sync(db, "items", items_sync(api.url), run_id="run-1")
    counts = sync(db, "items", items_sync(api.url, metadata={"tenant": "acme"}), run_id="run-2")
    assert counts["updated"] == 3
    assert metadata_of(db) == {key: {"tenant": "acme"} for key in ["1", "2", "3"]}
    counts = sync(db, "items", items_sync(api.url), run_id="run-3")
    assert counts["updated"] == 3 and metadata_of(db) == dict.fromkeys(["1", "2", "3"], None)


def test_metadata_of_a_table_without_unique_key(db: str, api: FixtureServer) -> None:
    fields = {"url": f"{api.url}/items", "paging_request_path": "page", "paging_response_path": "next_page"}
    serve(api, items(4))
    sync(db, "plain", {**fields, "metadata": {"tenant": "acme"}}, run_id="run-1")
    assert list(metadata_of(db, "nango.plain").values()) == [{"tenant": "acme"}] * 4
    counts = sync(db, "plain", {**fields, "metadata": {"tenant": "globex"}}, run_id="run-2")
    assert counts["added"] == 4 and counts["deleted"] == 4
    assert list(metadata_of(db, "nango.plain").values()) == [{"tenant": "globex"}] * 4


def test_metadata_is_templated_in_a_factory_dag(airflow: AirflowRunner, db: str, api: FixtureServer) -> None:
    serve(api, items(2))
    airflow.write_syncs(
        f"""
syncs:
  items:
    url: {api.url}/items
    unique_key: id
    paging_request_path: page
    paging_response_path: next_page
    metadata:
      tenant: acme
      dag: "{{{{ dag.dag_id }}}}"
"""
    )
    assert airflow.run("nango_sync_items").state == "success"
    assert metadata_of(db) == {key: {"tenant": "acme", "dag": "nango_sync_items"} for key in ["1", "2"]}
