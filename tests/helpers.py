"""Small helpers shared by the integration tests: run a sync directly, read a table back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from nango_provider.definition import SyncDefinition
from nango_provider.engine import run_sync
from nango_provider.hooks.nango import NangoHook
from nango_provider.store.postgres import PostgresStore, RunIdentity

EXAMPLES = Path(__file__).resolve().parent.parent / "dags_examples"


def sync(
    db: str,
    name: str,
    fields: dict[str, Any],
    *,
    run_id: str = "run-1",
    try_number: int = 1,
    hook: NangoHook | None = None,
    connection_id: str | None = None,
    **options: Any,
) -> dict[str, int]:
    """Run the sync ``name`` once, outside Airflow, the way the operator does (by default retries do not wait);
    with ``connection_id``, as the task of that connection of a sync with ``connections``."""
    definition = SyncDefinition.from_mapping(name, fields)
    store = PostgresStore(lambda: psycopg.connect(db), definition, connection_id=connection_id)
    run = RunIdentity(name, f"nango_sync_{name}", "sync", run_id, try_number, connection_id)
    hook = hook or NangoHook(sleep=lambda _: None)
    return run_sync(hook, store, definition, run, log=lambda _: None, **options)


def items_sync(api_url: str, **extra: Any) -> dict[str, Any]:
    """Fields of a sync of ``<api_url>/items``: key ``id``, page-number cursor ``next_page``, table nango.items."""
    return {
        "url": f"{api_url}/items",
        "unique_key": "id",
        "paging_request_path": "page",
        "paging_response_path": "next_page",
        "table": "nango.items",
        **extra,
    }


def rows(db: str, table: str = "nango.items", where: str = "true") -> dict[str, dict[str, Any]]:
    """``{unique key: row}`` of a sync table (row: data, hash, timestamps, xmin)."""
    schema, name = table.split(".")
    query = sql.SQL(
        "SELECT _nango_unique_key, _nango_data, _nango_hash, _nango_first_seen_at, _nango_updated_at, "
        "_nango_deleted_at, xmin::text FROM {} WHERE " + where
    ).format(sql.Identifier(schema, name))
    with psycopg.connect(db) as conn:
        result = conn.execute(query).fetchall()
    names = ("data", "hash", "first_seen_at", "updated_at", "deleted_at", "xmin")
    return {row[0]: dict(zip(names, row[1:], strict=True)) for row in result}


def jobs(db: str) -> list[dict[str, Any]]:
    """Every row of ``nango._nango_jobs``, oldest first."""
    with psycopg.connect(db) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute("SELECT * FROM nango._nango_jobs ORDER BY id").fetchall()


def airflow_dags_test(dag_id: str) -> subprocess.CompletedProcess[str]:
    """``airflow dags test <dag_id>`` in a process of its own."""
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False, timeout=300)


class AirflowRunner:
    """Writes sync definitions and runs DAGs of the test DAG folder in-process."""

    def __init__(self, dags: Path, syncs: Path) -> None:
        self.dags = dags
        self.syncs = syncs

    def write_syncs(self, text: str, file_name: str = "syncs.yaml") -> Path:
        path = self.syncs / file_name
        path.write_text(text, encoding="utf-8")
        return path

    def dag_bag(self) -> Any:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(str(self.dags))

    def run(self, dag_id: str, conf: dict[str, Any] | None = None) -> Any:
        """Run ``dag_id`` once with ``dag.test()``; returns the DagRun."""
        dag = self.dag_bag().get_dag(dag_id)
        assert dag is not None, f"{dag_id} not found"
        return dag.test(run_conf=conf)
