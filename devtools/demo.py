"""``make demo``: every example sync through Airflow against the local demo API, then a re-sync after the
upstream data changed (a full one and an incremental one), with the counts and a few rows of each table printed."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import yaml

from devtools.environment import EXAMPLES, LocalEnvironment, local_environment

COUNTS = ("pages", "fetched", "added", "updated", "unchanged", "deleted")
RESYNC = ("hubspot_contacts", "crm.contacts")
INCREMENTAL = ("hubspot_contacts_incremental", "crm.contacts_incremental")


def example_syncs() -> list[tuple[str, str]]:
    """``(sync name, table)`` of every example YAML sync."""
    found = []
    for path in sorted((EXAMPLES / "syncs").glob("*.yaml")):
        for name, fields in yaml.safe_load(path.read_text())["syncs"].items():
            found.append((name, fields.get("table") or f"nango.{name}"))
    return found


def run_sync_dag(environment: LocalEnvironment, name: str) -> float:
    """``airflow dags test nango_sync_<name>``; returns the seconds it took. Fails loudly if the run failed."""
    started = time.monotonic()
    result = environment.airflow("dags", "test", f"nango_sync_{name}", check=False)
    if result.returncode != 0:
        raise SystemExit(f"airflow dags test nango_sync_{name} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return time.monotonic() - started


def last_jobs(conn: psycopg.Connection[Any], name: str) -> list[dict[str, Any]]:
    """The last job of the sync: one, or one per connection of a sync with ``connections`` (in its last run)."""
    rows = conn.execute(
        f"""SELECT DISTINCT ON (connection_id) connection_id, status, {", ".join(COUNTS)} FROM nango._nango_jobs
            WHERE sync_name = %s AND run_id = (SELECT run_id FROM nango._nango_jobs WHERE sync_name = %s
                                               ORDER BY id DESC LIMIT 1)
            ORDER BY connection_id, id DESC""",
        (name, name),
    ).fetchall()
    assert rows, f"no job recorded for {name}"
    return [dict(zip(("connection_id", "status", *COUNTS), row, strict=True)) for row in rows]


def sample_rows(conn: psycopg.Connection[Any], table: str, limit: int = 3) -> list[tuple[str, str]]:
    schema, name = table.split(".")
    query = psycopg.sql.SQL(
        "SELECT _nango_unique_key, left(_nango_data::text, 100) FROM {} ORDER BY _nango_updated_at DESC, "
        "_nango_unique_key LIMIT %s"
    ).format(psycopg.sql.Identifier(schema, name))
    return [(str(key), str(data)) for key, data in conn.execute(query, (limit,)).fetchall()]


def report(conn: psycopg.Connection[Any], name: str, table: str, seconds: float) -> None:
    for job in last_jobs(conn, name):
        counts = "  ".join(f"{key} {job[key]:>5}" for key in COUNTS)
        shown = f"{name} [{job['connection_id']}]" if job["connection_id"] else name
        print(f"  {shown:<28} {job['status']:<8} {counts}   ({seconds:.1f} s) -> {table}")


def main() -> None:
    """Run the demo end to end and print what happened."""
    print("Starting an embedded Postgres, the local demo API and a throwaway Airflow home ...")
    with local_environment() as environment:
        print(f"  Postgres: {environment.postgres.uri}\n  Demo API: {environment.api.url}\n")
        syncs = example_syncs()
        with psycopg.connect(environment.postgres.uri, autocommit=True) as conn:
            print("First run of every example sync (airflow dags test nango_sync_<name>):")
            for name, table in syncs:
                report(conn, name, table, run_sync_dag(environment, name))
            changes = environment.api.mutate(changed=25, removed=5, added=10)
            name, table = RESYNC
            print(
                f"\nUpstream changed: {changes['changed']} records edited, {changes['removed']} removed, "
                f"{changes['added']} added. Running {name} again:"
            )
            report(conn, name, table, run_sync_dag(environment, name))
            name, table = INCREMENTAL
            print(f"The same changes, incrementally ({name}: only contacts updated since the last run's highest):")
            report(conn, name, table, run_sync_dag(environment, name))
            name, table = RESYNC
            print(f"\nA few rows of {table} (most recently updated first):")
            for key, data in sample_rows(conn, table):
                print(f"    {key:<8} {data}")
            gone = psycopg.sql.SQL("SELECT count(*) FROM {} WHERE _nango_deleted_at IS NOT NULL").format(
                psycopg.sql.Identifier(*table.split("."))
            )
            deleted = conn.execute(gone).fetchone()
            print(
                f"\n  rows of {table} gone upstream (_nango_deleted_at set, data kept): {deleted[0] if deleted else 0}"
            )
    print("\nDone: Postgres, the demo API and the Airflow home were stopped and removed.")


if __name__ == "__main__":
    main()
