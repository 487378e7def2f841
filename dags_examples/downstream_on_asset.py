"""A downstream DAG scheduled on a sync's Asset: it runs each time `nango_sync_pokemon` updates its table.

`record_changes` reads what the triggering sync run changed (the Asset event carries the run's counts and time
window; `changed_rows` returns the rows added, updated or deleted in that window) and appends them to
`reports.pokemon_changes`; `refresh_report` rebuilds a summary from the live rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG, task

from nango_provider.dag_factory import sync_asset

POKEMON = sync_asset("nango.pokemon")
_CHANGES_DDL = """
CREATE SCHEMA IF NOT EXISTS reports;
CREATE TABLE IF NOT EXISTS reports.pokemon_changes (
    job_id bigint, name text, change text, changed_at timestamptz, PRIMARY KEY (job_id, name)
)
"""


@task
def record_changes(triggering_asset_events: Any = None) -> dict[str, int]:
    """Append the rows each triggering sync run changed to ``reports.pokemon_changes``; counts by change."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from nango_provider.changes import changed_rows

    events = triggering_asset_events[POKEMON] if triggering_asset_events else []
    seen: dict[str, int] = {"added": 0, "updated": 0, "deleted": 0}
    with PostgresHook(postgres_conn_id="postgres_default").get_conn() as conn:
        conn.execute(_CHANGES_DDL)
        for event in events:  # several sync runs may have finished since this DAG last ran
            window = event.extra.get("started_at"), event.extra.get("ended_at")
            if None in window:
                continue  # an event raised by hand, not by a sync run
            for row in changed_rows(conn, "nango.pokemon", *window):
                seen[row.change] += 1
                conn.execute(
                    "INSERT INTO reports.pokemon_changes VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (event.extra["job_id"], row.key, row.change, event.extra["ended_at"]),
                )
        conn.commit()
    return seen


with DAG(
    dag_id="pokemon_report",
    schedule=[POKEMON],
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["nango", "example"],
    doc_md=__doc__,
):
    refresh_report = SQLExecuteQueryOperator(
        task_id="refresh_report",
        conn_id="postgres_default",
        sql="""
            CREATE SCHEMA IF NOT EXISTS reports;
            CREATE TABLE IF NOT EXISTS reports.pokemon_by_type (type text PRIMARY KEY, pokemon bigint);
            DELETE FROM reports.pokemon_by_type;
            INSERT INTO reports.pokemon_by_type
            SELECT t.type, count(*) FROM nango.pokemon p,
                 jsonb_array_elements_text(p._nango_data -> 'types') AS t(type)
            WHERE p._nango_deleted_at IS NULL GROUP BY t.type;
        """,
    )
    record_changes() >> refresh_report
