"""An existing pipeline that uses NangoSyncOperator as one step: extract -> sync -> downstream SQL.

The first task decides which lifecycle stage to report on (it could read a config table or an API);
the sync lands every contact in `crm.pipeline_contacts`; the last task builds a summary table from it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG, task

from nango_provider.operators.sync import NangoSyncOperator

with DAG(
    dag_id="crm_pipeline_with_nango_sync",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["nango", "example"],
    doc_md=__doc__,
):

    @task
    def choose_stage() -> str:
        """Which lifecycle stage the summary counts."""
        return "customer"

    stage = choose_stage()

    sync_contacts = NangoSyncOperator(
        task_id="sync_contacts",
        sync_name="pipeline_contacts",
        http_conn_id="nango_demo_api",
        url="/crm/v3/objects/contacts",
        query_params={"limit": 100},
        unique_key="id",
        paging_request_path="after",
        paging_response_path="paging.next.after",
        table="crm.pipeline_contacts",
    )

    summarize = SQLExecuteQueryOperator(
        task_id="summarize_stage",
        conn_id="postgres_default",
        sql="""
            CREATE TABLE IF NOT EXISTS crm.stage_summary (
                stage text PRIMARY KEY, contacts bigint, computed_at timestamptz
            );
            INSERT INTO crm.stage_summary (stage, contacts, computed_at)
            SELECT %(stage)s, count(*), now() FROM crm.pipeline_contacts
            WHERE _nango_deleted_at IS NULL AND _nango_data -> 'properties' ->> 'lifecyclestage' = %(stage)s
            ON CONFLICT (stage) DO UPDATE SET contacts = EXCLUDED.contacts, computed_at = EXCLUDED.computed_at;
        """,
        parameters={"stage": "{{ ti.xcom_pull(task_ids='choose_stage') }}"},
        split_statements=True,
    )

    stage >> sync_contacts >> summarize
