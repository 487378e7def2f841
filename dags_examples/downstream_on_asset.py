"""A downstream DAG scheduled on a sync's Asset: it runs each time `nango_sync_pokemon` updates its table."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG

from nango_provider.dag_factory import sync_asset

with DAG(
    dag_id="pokemon_report",
    schedule=[sync_asset("nango.pokemon")],
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["nango", "example"],
    doc_md=__doc__,
):
    SQLExecuteQueryOperator(
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
