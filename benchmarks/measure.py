"""One measurement per process: ``python -m benchmarks.measure KIND '<json parameters>'``.

Every measurement runs in a fresh interpreter so that its peak RSS (``ru_maxrss`` at the end) is its own.
Imports and setup are not timed; the timed part is described by each function. The result is printed as
the last line of stdout, ``RESULT {json}``, with at least ``seconds`` and ``rss_mb``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.cpu import process_cpu

Params = dict[str, Any]
Result = dict[str, Any]

RESULT_PREFIX = "RESULT "
CONTACTS_PATH = "/crm/v3/objects/contacts"
PAGE_SIZE = 1000
JIRA_PATH = "/rest/api/3/search"


def contacts_fields(api_url: str, table: str) -> dict[str, Any]:
    """Definition fields of the benchmark sync: the demo API's HubSpot-style contacts, 1,000 per page."""
    return {
        "url": f"{api_url}{CONTACTS_PATH}",
        "query_params": {"limit": PAGE_SIZE},
        "response_path": "results",
        "unique_key": "id",
        "paging_request_path": "after",
        "paging_response_path": "paging.next.after",
        "table": table,
    }


def _definition(params: Params) -> Any:
    from nango_provider.definition import SyncDefinition

    table = params.get("table", "bench.contacts")
    fields = contacts_fields(params["api_url"], table) | {"auto_mapping": bool(params.get("auto_mapping"))}
    return SyncDefinition.from_mapping(params.get("name", "bench_contacts"), fields)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- throughput ceilings -------------------------------------------------------------------------------


def measure_fetch(params: Params) -> Result:
    """Ceiling (a): ``NangoHook().pages(definition)`` consumed to the end (HTTP, msgspec decode, extraction)."""
    from nango_provider.hooks.nango import NangoHook

    definition = _definition(params)
    hook = NangoHook()
    started, cpu = time.perf_counter(), time.process_time()
    records = pages = 0
    for page in hook.pages(definition):
        records += len(page.records)
        pages += 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _expect(records == params["records"], f"fetched {records} records, expected {params['records']}")
    return {"seconds": seconds, "cpu_seconds": cpu, "records": records, "pages": pages}


_CEILING_DDL = """
DROP SCHEMA IF EXISTS bench_ceiling CASCADE;
CREATE SCHEMA bench_ceiling;
CREATE TABLE bench_ceiling.contacts (k text PRIMARY KEY, d jsonb NOT NULL, h text NOT NULL);
CREATE TABLE bench_ceiling.copied (k text PRIMARY KEY, d jsonb NOT NULL, h text NOT NULL);
CREATE TEMP TABLE stage (k text, d jsonb, h text) ON COMMIT DELETE ROWS;
"""
_CEILING_UPSERT = """
INSERT INTO bench_ceiling.contacts AS t (k, d, h) SELECT k, d, h FROM pg_temp.stage
ON CONFLICT (k) DO UPDATE SET d = EXCLUDED.d, h = EXCLUDED.h WHERE t.h IS DISTINCT FROM EXCLUDED.h
"""


def _stage_and_upsert(cursor: Any, copy_text: bytes) -> int:
    with cursor.copy("COPY pg_temp.stage (k, d, h) FROM STDIN") as copy:
        copy.write(copy_text)
    cursor.execute(_CEILING_UPSERT)
    return int(cursor.rowcount)


def _plain_copy(cursor: Any, copy_text: bytes) -> int:
    with cursor.copy("COPY bench_ceiling.copied (k, d, h) FROM STDIN") as copy:
        copy.write(copy_text)
    return int(cursor.rowcount)


def measure_upsert(params: Params) -> Result:
    """Ceilings (b) and (c): records pre-fetched into memory, then per page COPY text and one transaction.

    A plain psycopg loop into ``(k text primary key, d jsonb, h text)``, no bookkeeping. Timed three times:
    (b) COPY into a temporary stage and one ``INSERT .. ON CONFLICT`` into the empty table (the
    stage-and-upsert ceiling); the same again with nothing changed (for information); (c) a plain COPY
    into another empty table of the same shape (the COPY ceiling: no stage, no conflict handling).
    """
    import psycopg

    from nango_provider.hooks.nango import NangoHook
    from nango_provider.paths import compile_path
    from nango_provider.store.records import prepare_keyed

    definition = _definition(params)
    pages = [page.records for page in NangoHook().pages(definition)]  # not timed
    key = compile_path("id")
    result: Result = {"records": params["records"]}
    with psycopg.connect(params["uri"]) as conn:
        conn.autocommit = True
        conn.execute(_CEILING_DDL)
        conn.autocommit = False
        backend = conn.info.backend_pid
        for prefix, write in (("", _stage_and_upsert), ("unchanged_", _stage_and_upsert), ("copy_", _plain_copy)):
            started, cpu, postgres_cpu = time.perf_counter(), time.process_time(), process_cpu(backend)
            rows = 0
            for number, records in enumerate(pages, start=1):
                prepared = prepare_keyed(records, key, "bench", number)
                with conn.cursor() as cursor:
                    rows += write(cursor, prepared.copy_text)
                conn.commit()
            result[f"{prefix}seconds"] = time.perf_counter() - started
            result[f"{prefix}cpu_seconds"] = time.process_time() - cpu
            result[f"{prefix}postgres_cpu_seconds"] = process_cpu(backend) - postgres_cpu
            result[f"{prefix}rows"] = rows
        conn.autocommit = True
        conn.execute("DROP SCHEMA bench_ceiling CASCADE")
    written = [result["rows"], result["unchanged_rows"], result["copy_rows"]]
    expected = [params["records"], 0, params["records"]]
    _expect(written == expected, f"the ceiling loops wrote {written} rows, expected {expected}")
    return result


# -- the full sync, through the operator's code path ------------------------------------------------------


def measure_sync(params: Params) -> Result:
    """``run_sync(NangoHook(), PostgresStore(...), definition, RunIdentity(...))``: one whole run, timed."""
    import psycopg

    from nango_provider.engine import run_sync
    from nango_provider.hooks.nango import NangoHook
    from nango_provider.store.postgres import PostgresStore, RunIdentity

    definition = _definition(params)
    uri = params["uri"]
    store = PostgresStore(lambda: psycopg.connect(uri), definition)
    run = RunIdentity(definition.name, definition.dag_id, "sync", params["run_id"])
    started, cpu = time.perf_counter(), time.process_time()
    counts = run_sync(NangoHook(), store, definition, run, log=lambda _message: None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "counts": counts}


def jira_fields(api_url: str, table: str, page_size: int, concurrency: int) -> dict[str, Any]:
    """Definition fields of the latency benchmark: the demo API's Jira-style offset endpoint with a total."""
    return {
        "url": f"{api_url}{JIRA_PATH}",
        "response_path": "issues",
        "unique_key": "id",
        "table": table,
        "paging": {
            "type": "offset",
            "offset_name_in_request": "startAt",
            "offset_calculation_method": "by-limit",
            "limit_name_in_request": "maxResults",
            "limit": page_size,
            "total_path_in_response": "total",
            "concurrency": concurrency,
        },
    }


def measure_latency_sync(params: Params) -> Result:
    """A whole run into an empty table, against an API that answers each page after a fixed latency."""
    import psycopg

    from nango_provider.definition import SyncDefinition
    from nango_provider.engine import run_sync
    from nango_provider.hooks.nango import NangoHook
    from nango_provider.store.postgres import PostgresStore, RunIdentity

    table = "bench.latency"
    fields = jira_fields(params["api_url"], table, params["page_size"], params["concurrency"])
    definition = SyncDefinition.from_mapping("bench_latency", fields)
    uri = params["uri"]
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")  # not timed: every run is an initial sync
    store = PostgresStore(lambda: psycopg.connect(uri), definition)
    run = RunIdentity(definition.name, definition.dag_id, "sync", params["run_id"])
    started, cpu = time.perf_counter(), time.process_time()
    counts = run_sync(NangoHook(), store, definition, run, log=lambda _message: None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    records = params["records"]
    _expect(counts["fetched"] == counts["added"] == records, f"latency sync counts {counts}, expected {records} added")
    return {"seconds": seconds, "cpu_seconds": cpu, "counts": counts}


def measure_incremental_sync(params: Params) -> Result:
    """The contacts sync with ``incremental`` on ``updatedAt`` (``updated_since``): one whole run, timed; with
    ``full_refresh`` it fetches everything (and sets the mark), otherwise only what changed since the mark."""
    import psycopg

    from nango_provider.definition import SyncDefinition
    from nango_provider.engine import run_sync
    from nango_provider.hooks.nango import NangoHook
    from nango_provider.store.postgres import PostgresStore, RunIdentity

    fields = contacts_fields(params["api_url"], "bench.contacts_incremental")
    fields["incremental"] = {"record_field": "updatedAt", "request_name": "updated_since"}
    definition = SyncDefinition.from_mapping("bench_incremental", fields)
    uri = params["uri"]
    store = PostgresStore(lambda: psycopg.connect(uri), definition)
    run = RunIdentity(definition.name, definition.dag_id, "sync", params["run_id"])
    started, cpu = time.perf_counter(), time.process_time()
    counts = run_sync(NangoHook(), store, definition, run, full_refresh=params["full_refresh"], log=lambda _: None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "counts": counts}


# -- dlt ----------------------------------------------------------------------------------------------


def measure_dlt(params: Params) -> Result:
    """dlt's ``rest_api`` source, merge on ``id``, into the same Postgres: ``pipeline.run`` timed.

    With ``tuned``, dlt at its best for this data: its CSV loader (Postgres COPY instead of INSERT
    statements) and ``max_table_nesting=0`` (nested objects kept as JSON columns, no child tables).
    """
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {
                "base_url": params["api_url"],
                "paginator": JSONResponseCursorPaginator(cursor_path="paging.next.after", cursor_param="after"),
            },
            "resources": [
                {
                    "name": "contacts",
                    "endpoint": {
                        "path": CONTACTS_PATH.lstrip("/"),
                        "params": {"limit": PAGE_SIZE},
                        "data_selector": "results",
                    },
                    "primary_key": "id",
                    "write_disposition": "merge",
                }
            ],
        }
    )
    tuned = bool(params.get("tuned"))
    if tuned:
        source.max_table_nesting = 0
    with tempfile.TemporaryDirectory(prefix="nango-bench-dlt-") as workdir:
        pipeline = dlt.pipeline(
            pipeline_name=params["pipeline"],
            pipelines_dir=workdir,
            destination=dlt.destinations.postgres(credentials=_with_password(params["uri"])),
            dataset_name=params["dataset"],
        )
        started, cpu = time.perf_counter(), time.process_time()
        pipeline.run(source, loader_file_format="csv" if tuned else None)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    import psycopg
    from psycopg import sql

    with psycopg.connect(params["uri"]) as conn:
        table = sql.Identifier(params["dataset"], "contacts")
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        tables = conn.execute(
            """SELECT table_name, (SELECT count(*) FROM information_schema.columns c
                                   WHERE c.table_schema = t.table_schema AND c.table_name = t.table_name)
               FROM information_schema.tables t WHERE table_schema = %s AND table_name NOT LIKE '\\_dlt%%'
               ORDER BY table_name""",
            (params["dataset"],),
        ).fetchall()
    loaded = int(row[0]) if row else 0
    _expect(loaded == params["records"], f"dlt loaded {loaded} rows, expected {params['records']}")
    return {"seconds": seconds, "cpu_seconds": cpu, "records": loaded, "tables": {name: n for name, n in tables}}


def _with_password(uri: str) -> str:
    """dlt insists on a password; the embedded Postgres trusts loopback connections, so any one will do."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is not None or parts.username is None:
        return uri
    return urlunsplit(parts._replace(netloc=f"{parts.username}:unused@{parts.hostname}:{parts.port}"))


# -- DAG parsing --------------------------------------------------------------------------------------


def measure_import_sdk(_params: Params) -> Result:
    """A bare ``import airflow.sdk``, timed: what every DAG file pays and the parse figures leave out."""
    started, cpu = time.perf_counter(), time.process_time()
    import airflow.sdk  # noqa: F401

    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


def measure_parse_file(params: Params) -> Result:
    """One DAG file run as Airflow runs it, imports included: ``runpy.run_path(file)``, timed; DAGs counted.

    With ``ours``, the DAG file reads the registry of API-created syncs as in a deployment: the run fails if the
    registry was not read or the DAG factory reported a problem.
    """
    import runpy

    problems = _ProblemLog()
    if params.get("ours"):
        _expect(
            bool(os.environ.get("AIRFLOW_CONN_POSTGRES_DEFAULT")), "no registry connection: the default path reads it"
        )
    started, cpu = time.perf_counter(), time.process_time()
    namespace = runpy.run_path(params["file"], run_name="unusual_prefix_dag_file")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _expect(not problems.messages, f"parsing reported problems: {problems.messages}")
    import airflow.sdk

    dags = [value for value in namespace.values() if isinstance(value, airflow.sdk.DAG)]
    _expect(len(dags) == params["expect"], f"{params['file']} built {len(dags)} DAGs, expected {params['expect']}")
    return {"seconds": seconds, "cpu_seconds": cpu, "dags": len(dags), "tasks": sum(len(dag.task_dict) for dag in dags)}


class _ProblemLog(logging.Handler):
    """Collects the warnings of the DAG factory (an unreachable registry, invalid definitions)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        logging.getLogger("nango_provider.dag_factory").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def measure_parse_dag_file(params: Params) -> Result:
    """After ``import airflow``: Airflow's ``BundleDagBag`` over one DAG file, as the DAG processor loads it.

    ``seconds`` is the file's load duration that Airflow records (``dagbag_stats``: importing the file, which
    ``dagbag_import_timeout`` bounds, and checking every DAG it made); ``wall_seconds`` the whole construction;
    ``cpu_seconds`` this process's CPU time meanwhile (what the file costs on an idle core).
    """
    import airflow  # noqa: F401  # not timed: the DAG processor's parsing process has it imported
    from airflow.dag_processing.dagbag import BundleDagBag

    dag_file = Path(params["dag_file"])
    started, cpu_started = time.perf_counter(), time.process_time()
    bag = BundleDagBag(
        dag_folder=str(dag_file), bundle_path=dag_file.parent, bundle_name="dags-folder", load_op_links=False
    )
    ended, cpu_seconds = time.perf_counter(), time.process_time() - cpu_started
    _expect(not bag.import_errors, f"import errors: {bag.import_errors}")
    _expect(len(bag.dag_ids) == params["expect"], f"loaded {len(bag.dag_ids)} DAGs, expected {params['expect']}")
    stat = bag.dagbag_stats[0]
    duration = stat.duration.total_seconds()
    return {"seconds": duration, "wall_seconds": ended - started, "cpu_seconds": cpu_seconds, "dags": stat.dag_num}


MEASUREMENTS: dict[str, Callable[[Params], Result]] = {
    "import_sdk": measure_import_sdk,
    "parse_file": measure_parse_file,
    "fetch": measure_fetch,
    "upsert": measure_upsert,
    "sync": measure_sync,
    "latency_sync": measure_latency_sync,
    "incremental_sync": measure_incremental_sync,
    "dlt": measure_dlt,
    "parse_dag_file": measure_parse_dag_file,
}


TASK_MEASUREMENTS = frozenset({"fetch", "sync", "latency_sync", "incremental_sync"})
"""Measurements of what an Airflow task runs: they start with the modules a task process has imported."""


def import_as_a_task_has() -> None:
    """Import what an Airflow task process has imported before it runs a sync, so that the timed part does not
    import it: Airflow's supervisor module, which the first connection lookup imports in a bare process (about
    25 ms) but which a task process, forked from the supervisor, already holds."""
    import airflow.sdk.execution_time.supervisor  # noqa: F401


class MeasurementError(AssertionError):
    """A measurement whose result is wrong (counts differ): its time means nothing."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise MeasurementError(message)


def main(argv: list[str] | None = None) -> None:
    """Run the measurement named by the first argument with the JSON parameters of the second."""
    args = sys.argv[1:] if argv is None else argv
    kind, params = args[0], json.loads(args[1])
    if kind in TASK_MEASUREMENTS:
        import_as_a_task_has()
    result = MEASUREMENTS[kind](params)
    result["rss_mb"] = peak_rss_mb()
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
