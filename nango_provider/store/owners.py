"""Table ownership: each sync table has one owning sync, recorded in ``nango._nango_table_owners``.

The owner is the Airflow task that first wrote the table, identified by its DAG id and task id (the sync name
is kept for messages). A run of any other task on the same table fails before writing anything: two syncs on
one table would each mark the other's records deleted. Renaming the DAG or the task makes a new owner, so the
table has to be handed over (delete or update its row; see the reference).
"""

from __future__ import annotations

from typing import Any

import psycopg

from nango_provider.exceptions import TableOwnedError
from nango_provider.store.jobs import RunIdentity


def claim_table(cursor: psycopg.Cursor[Any], table: str, run: RunIdentity) -> None:
    """Record ``run``'s task as the owner of ``table`` unless it has one; :class:`TableOwnedError` if another
    task owns it. Safe when two first runs race: the primary key lets one insert win, the other reads it."""
    cursor.execute(
        """INSERT INTO nango._nango_table_owners (target_table, sync_name, dag_id, task_id)
           VALUES (%s, %s, %s, %s) ON CONFLICT (target_table) DO NOTHING""",
        (table, run.sync_name, run.dag_id, run.task_id),
    )
    cursor.execute("SELECT sync_name, dag_id, task_id FROM nango._nango_table_owners WHERE target_table = %s", (table,))
    row = cursor.fetchone()
    if row is None:  # deleted by hand between the two statements: the next run claims it
        return
    sync_name, dag_id, task_id = row
    if (dag_id, task_id) != (run.dag_id, run.task_id):
        raise TableOwnedError(
            run.sync_name,
            table=table,
            owner=describe(sync_name, dag_id, task_id),
            claimant=describe(run.sync_name, run.dag_id, run.task_id),
        )


def describe(sync_name: str, dag_id: str, task_id: str) -> str:
    """``sync 'contacts' (DAG 'crm', task 'sync_contacts')``."""
    return f"sync {sync_name!r} (DAG {dag_id!r}, task {task_id!r})"
