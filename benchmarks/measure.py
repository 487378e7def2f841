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
    return SyncDefinition.from_mapping(params.get("name", "bench_contacts"), contacts_fields(params["api_url"], table))


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
CREATE TEMP TABLE stage (k text, d jsonb, h text) ON COMMIT DELETE ROWS;
"""
_CEILING_UPSERT = """
INSERT INTO bench_ceiling.contacts AS t (k, d, h) SELECT k, d, h FROM pg_temp.stage
ON CONFLICT (k) DO UPDATE SET d = EXCLUDED.d, h = EXCLUDED.h WHERE t.h IS DISTINCT FROM EXCLUDED.h
"""


def measure_upsert(params: Params) -> Result:
    """Ceiling (b): records pre-fetched into memory, then per page: COPY text, COPY, one upsert, commit.

    A plain psycopg loop into ``(k text primary key, d jsonb, h text)``, no bookkeeping. Timed twice: into
    the empty table (the ceiling) and again with nothing changed (for information).
    """
    import psycopg

    from nango_provider.hooks.nango import NangoHook
    from nango_provider.paths import compile_path
    from nango_provider.store.records import prepare_keyed

    definition = _definition(params)
    pages = [page.records for page in NangoHook().pages(definition)]  # not timed
    key = compile_path("id")
    with psycopg.connect(params["uri"]) as conn:
        conn.autocommit = True
        conn.execute(_CEILING_DDL)
        conn.autocommit = False
        backend = conn.info.backend_pid
        timings: list[float] = []
        cpu: list[float] = []
        postgres_cpu: list[float] = []
        written = []
        for _ in range(2):
            started = time.perf_counter()
            cpu.append(time.process_time())
            postgres_cpu.append(process_cpu(backend))
            rows = 0
            for number, records in enumerate(pages, start=1):
                prepared = prepare_keyed(records, key, "bench", number)
                with conn.cursor() as cursor:
                    with cursor.copy("COPY pg_temp.stage (k, d, h) FROM STDIN") as copy:
                        copy.write(prepared.copy_text)
                    cursor.execute(_CEILING_UPSERT)
                    rows += cursor.rowcount
                conn.commit()
            timings.append(time.perf_counter() - started)
            cpu[-1] = time.process_time() - cpu[-1]
            postgres_cpu[-1] = process_cpu(backend) - postgres_cpu[-1]
            written.append(rows)
        conn.autocommit = True
        conn.execute("DROP SCHEMA bench_ceiling CASCADE")
    _expect(written == [params["records"], 0], f"upsert wrote {written} rows, expected [{params['records']}, 0]")
    return {
        "seconds": timings[0],
        "cpu_seconds": cpu[0],
        "postgres_cpu_seconds": postgres_cpu[0],
        "unchanged_seconds": timings[1],
        "unchanged_cpu_seconds": cpu[1],
        "unchanged_postgres_cpu_seconds": postgres_cpu[1],
        "records": params["records"],
    }


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
    """dlt's ``rest_api`` source, merge on ``id``, into the same Postgres: ``pipeline.run`` timed."""
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
    with tempfile.TemporaryDirectory(prefix="nango-bench-dlt-") as workdir:
        pipeline = dlt.pipeline(
            pipeline_name=params["pipeline"],
            pipelines_dir=workdir,
            destination=dlt.destinations.postgres(credentials=_with_password(params["uri"])),
            dataset_name=params["dataset"],
        )
        started, cpu = time.perf_counter(), time.process_time()
        pipeline.run(source)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    import psycopg
    from psycopg import sql

    with psycopg.connect(params["uri"]) as conn:
        table = sql.Identifier(params["dataset"], "contacts")
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    loaded = int(row[0]) if row else 0
    _expect(loaded == params["records"], f"dlt loaded {loaded} rows, expected {params['records']}")
    return {"seconds": seconds, "cpu_seconds": cpu, "records": loaded}


def _with_password(uri: str) -> str:
    """dlt insists on a password; the embedded Postgres trusts loopback connections, so any one will do."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is not None or parts.username is None:
        return uri
    return urlunsplit(parts._replace(netloc=f"{parts.username}:unused@{parts.hostname}:{parts.port}"))


# -- DAG parsing --------------------------------------------------------------------------------------


def measure_parse_ours(params: Params) -> Result:
    """After ``import airflow.sdk``: import ``nango_provider.dag_factory``, then ``load_sync_dags(folder)``, which
    reads the registry of API-created syncs as in a deployment (the run fails if the registry was not read)."""
    import airflow.sdk  # noqa: F401  # not timed: every DAG file pays it

    _expect(bool(os.environ.get("AIRFLOW_CONN_POSTGRES_DEFAULT")), "no registry connection: the default path reads it")
    problems = _ProblemLog()
    started = time.perf_counter()
    from nango_provider.dag_factory import load_sync_dags

    imported = time.perf_counter()
    dags = load_sync_dags(params["folder"])
    ended = time.perf_counter()
    _expect(not problems.messages, f"parsing reported problems: {problems.messages}")
    _expect(len(dags) == params["expect"], f"built {len(dags)} DAGs, expected {params['expect']}")
    tasks = sum(len(dag.task_dict) for dag in dags.values())
    return {"seconds": ended - imported, "import_seconds": imported - started, "dags": len(dags), "tasks": tasks}


class _ProblemLog(logging.Handler):
    """Collects the warnings of the DAG factory (an unreachable registry, invalid definitions)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        logging.getLogger("nango_provider.dag_factory").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def measure_parse_dagfactory(params: Params) -> Result:
    """After ``import airflow.sdk``: import ``dagfactory``, then ``load_yaml_dags(globals_dict=, dags_folder=)``."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # dag-factory's telemetry would try the internet
    os.environ.setdefault("SCARF_NO_ANALYTICS", "1")
    import airflow.sdk

    started = time.perf_counter()
    import dagfactory

    imported = time.perf_counter()
    namespace: dict[str, Any] = {}
    dagfactory.load_yaml_dags(
        globals_dict=namespace, dags_folder=params["folder"], defaults_config_path=params["folder"]
    )
    ended = time.perf_counter()
    dags = [value for value in namespace.values() if isinstance(value, airflow.sdk.DAG)]
    _expect(len(dags) == params["expect"], f"dag-factory built {len(dags)} DAGs, expected {params['expect']}")
    tasks = sum(len(dag.task_dict) for dag in dags)
    return {"seconds": ended - imported, "import_seconds": imported - started, "dags": len(dags), "tasks": tasks}


MEASUREMENTS: dict[str, Callable[[Params], Result]] = {
    "fetch": measure_fetch,
    "upsert": measure_upsert,
    "sync": measure_sync,
    "latency_sync": measure_latency_sync,
    "incremental_sync": measure_incremental_sync,
    "dlt": measure_dlt,
    "parse_ours": measure_parse_ours,
    "parse_dagfactory": measure_parse_dagfactory,
}


class MeasurementError(AssertionError):
    """A measurement whose result is wrong (counts differ): its time means nothing."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise MeasurementError(message)


def main(argv: list[str] | None = None) -> None:
    """Run the measurement named by the first argument with the JSON parameters of the second."""
    args = sys.argv[1:] if argv is None else argv
    kind, params = args[0], json.loads(args[1])
    result = MEASUREMENTS[kind](params)
    result["rss_mb"] = peak_rss_mb()
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
