"""``make bench``: sync throughput against its ceilings and dlt, memory, and DAG parsing against dag-factory.

Everything runs in one go on this machine: a local paginated API (``devtools.demo_api``, its own process),
two Postgres servers one after the other (Debian's PostgreSQL with its stock configuration, JIT and fsync on,
as users run it; then the embedded one), and every measurement in a fresh child process
(``benchmarks.measure``) so that peak RSS figures are each measurement's own. Prints the results and the
goals; writes nothing into the repository unless ``--write-doc`` is given, which rewrites the results
section of docs/performance.md. Everything it starts, it stops.

A separate section, the scale run (``benchmarks.scale``), runs 200 syncs through a real Airflow scheduler and
parses the DAG file with 1,000 and 5,000 syncs; ``--only scale`` runs it alone, ``--skip-scale`` leaves it out.

Run: ``make bench`` or ``python -m benchmarks.bench [--repeat 3] [--sizes 40000 200000] [--servers stock embedded]
[--latency-ms 20] [--skip-latency] [--skip-incremental] [--skip-parsing] [--skip-scale] [--only scale|latency]
[--write-doc]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import parsing, report, scale
from benchmarks.cpu import postmaster_pid, process_cpu, process_tree_cpu
from benchmarks.services import ChildError, DemoApiProcess, child_environment, run_child
from devtools.embedded_postgres import EmbeddedPostgres
from devtools.stock_postgres import StockPostgres

SIZES = (40_000, 200_000)
PARSE_COUNT = 1000
PARSE_COUNT_LARGE = 5000
ONE_DAG_INDEX = 500
ONE_DAG_ID = f"nango_sync_{parsing.sync_name(ONE_DAG_INDEX)}"
CHANGED_SHARE = 0.01
SERVERS = ("stock", "embedded")
SYNC_TABLE = "bench.contacts"
INCREMENTAL_TABLE = "bench.contacts_incremental"
_AUTOVACUUM_WORKERS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
LATENCY_MS = 20.0
LATENCY_RECORDS = 20_000
LATENCY_PAGE_SIZE = 100
LATENCY_CONCURRENCY = 8
_STATS_WAIT_SECONDS = 15.0


@dataclass
class Runs:
    """Repeated measurements of one kind: each child's result dict."""

    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def median(self, key: str = "seconds") -> float:
        """Median of ``key`` over the runs."""
        return float(statistics.median(result[key] for result in self.results))

    def values(self, key: str = "seconds") -> list[float]:
        """``key`` of every run, in order."""
        return [result[key] for result in self.results]


@dataclass
class SizeResults:
    """Everything measured at one number of records."""

    records: int
    fetch: Runs = field(default_factory=Runs)
    upsert: Runs = field(default_factory=Runs)
    initial: Runs = field(default_factory=Runs)
    resync: Runs = field(default_factory=Runs)
    changed: Runs = field(default_factory=Runs)
    dlt: Runs = field(default_factory=Runs)
    dlt_tuned: Runs = field(default_factory=Runs)
    rewritten: list[dict[str, int]] = field(default_factory=list)
    rewritten_changed: list[int] = field(default_factory=list)
    initial_auto: Runs = field(default_factory=Runs)
    resync_auto: Runs = field(default_factory=Runs)
    rewritten_auto: list[int] = field(default_factory=list)


@dataclass
class ServerResults:
    """Every size measured on one Postgres server."""

    name: str
    description: str
    sizes: list[SizeResults] = field(default_factory=list)


@dataclass
class LatencyResults:
    """Syncs against an API with a fixed latency per page: one request at a time, and several at once."""

    records: int
    latency: float
    page_size: int
    concurrency: int
    sequential: Runs = field(default_factory=Runs)
    parallel: Runs = field(default_factory=Runs)

    @property
    def bound(self) -> float:
        """Records per second of a sync that waits only for the API: records per page / latency."""
        return self.page_size / self.latency


@dataclass
class IncrementalResults:
    """Re-syncs after 1% of the records changed upstream: incremental (since the mark) and full."""

    records: int
    changed: int
    incremental: Runs = field(default_factory=Runs)
    full: Runs = field(default_factory=Runs)


@dataclass
class ParseResults:
    """DAG parsing, each a fresh process running one DAG file, imports included.

    ``sdk`` is a bare ``import airflow.sdk``, which every DAG file pays and which the figures leave out.
    """

    sdk: Runs = field(default_factory=Runs)
    ours: Runs = field(default_factory=Runs)
    dagfactory: Runs = field(default_factory=Runs)
    one: Runs = field(default_factory=Runs)
    hand_written: Runs = field(default_factory=Runs)
    large: Runs = field(default_factory=Runs)

    def net(self, runs: Runs) -> float:
        """Median seconds of ``runs`` minus the median of a bare ``import airflow.sdk``."""
        return runs.median() - self.sdk.median()


class Bench:
    """Owns the Postgres, the temporary folder and the child environment for one benchmark run."""

    def __init__(
        self, uri: str, postmaster: int | None, workdir: Path, repeat: int, log: Callable[[str], None]
    ) -> None:
        self.uri = uri
        self.postmaster = postmaster
        self.workdir = workdir
        self.repeat = repeat
        self.log = log
        self.env = child_environment(workdir / "airflow")

    def child(self, kind: str, params: dict[str, Any], extra_env: dict[str, str] | None = None) -> dict[str, Any]:
        """One measurement in a fresh process."""
        return run_child(kind, params, self.env, extra_env=extra_env)

    def settle(self, table: str | None = None) -> None:
        """Let the server finish its background work before a timed run: ``VACUUM (ANALYZE)`` of ``table`` (what
        autovacuum does to a table soon after a sync wrote it, done now so that it cannot start in the middle of
        the next timed run), a ``CHECKPOINT``, then a wait of at most a minute for autovacuum workers to end."""
        with psycopg.connect(self.uri, autocommit=True) as conn:
            if table is not None and conn.execute("SELECT to_regclass(%s)", [table]).fetchone() != (None,):
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(*table.split("."))))
            conn.execute("CHECKPOINT")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and conn.execute(_AUTOVACUUM_WORKERS).fetchone() != (0,):
                time.sleep(0.2)

    def timed_child(self, kind: str, params: dict[str, Any], api: DemoApiProcess) -> dict[str, Any]:
        """A throughput measurement, plus the CPU seconds the API server and all of Postgres used meanwhile."""
        api_before = process_cpu(api.pid) if api.pid else 0.0
        postgres_before = process_tree_cpu(self.postmaster) if self.postmaster else 0.0
        result = self.child(kind, params)
        result.setdefault("api_cpu_seconds", (process_cpu(api.pid) if api.pid else 0.0) - api_before)
        postgres_after = process_tree_cpu(self.postmaster) if self.postmaster else 0.0
        result.setdefault("postgres_cpu_seconds", postgres_after - postgres_before)
        return result

    # -- throughput -----------------------------------------------------------------------------------

    def measure_size(self, records: int) -> SizeResults:
        """Ceilings, initial sync, re-sync and dlt at ``records``, ``repeat`` times, interleaved."""
        results = SizeResults(records)
        with DemoApiProcess(records) as api:
            warmed = api.warm_up()
            if warmed != records:
                raise ChildError(f"the demo API served {warmed} contacts, expected {records}")
            base = {"api_url": api.url, "uri": self.uri, "records": records}
            for repetition in range(1, self.repeat + 1):
                self.log(f"{records:,} records, repetition {repetition}/{self.repeat}")
                results.fetch.results.append(self.timed_child("fetch", base, api))
                results.upsert.results.append(self.timed_child("upsert", base, api))
                self._syncs(results, base, repetition, api)
                self._auto_mapped_syncs(results, base, repetition, api)
                self._dlt(results, results.dlt, base, f"dlt_{records}_{repetition}", api)
                self._dlt(results, results.dlt_tuned, base | {"tuned": True}, f"dlt_tuned_{records}_{repetition}", api)
        return results

    def _syncs(self, results: SizeResults, base: dict[str, Any], repetition: int, api: DemoApiProcess) -> None:
        """Initial sync into an empty table, a re-sync with nothing changed (which must rewrite nothing), then
        a re-sync after 1% of the records changed upstream (which must rewrite exactly those)."""
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {SYNC_TABLE}")
        run_id = f"bench_{base['records']}_{repetition}"
        start = table_state(self.uri, fingerprint=False)
        self.settle()
        initial = self.timed_child("sync", base | {"run_id": f"{run_id}_initial"}, api)
        expected = {"fetched": base["records"], "added": base["records"], "updated": 0, "unchanged": 0}
        _check_counts("initial sync", initial["counts"], expected)
        results.initial.results.append(initial)
        table_state(self.uri, wait_for_job_updates=start["job_updates"] + initial["counts"]["pages"] + 1)
        self.settle(SYNC_TABLE)
        before = table_state(self.uri)
        resync = self.timed_child("sync", base | {"run_id": f"{run_id}_resync"}, api)
        expected = {"fetched": base["records"], "added": 0, "updated": 0, "unchanged": base["records"]}
        _check_counts("re-sync", resync["counts"], expected)
        after = table_state(self.uri, wait_for_job_updates=before["job_updates"] + resync["counts"]["pages"] + 1)
        results.resync.results.append(resync)
        results.rewritten.append(
            {
                "tuples_written": after["tuples_written"] - before["tuples_written"],
                "xmin_changed": int(after["fingerprint"] != before["fingerprint"]),
                "stats_flushed": int(after["job_updates"] >= before["job_updates"] + resync["counts"]["pages"] + 1),
            }
        )
        changed = api.mutate(changed=round(base["records"] * CHANGED_SHARE))
        self.settle(SYNC_TABLE)
        after = table_state(self.uri)
        result = self.timed_child("sync", base | {"run_id": f"{run_id}_changed"}, api)
        expected = {"fetched": base["records"], "added": 0, "updated": changed, "unchanged": base["records"] - changed}
        _check_counts("re-sync with 1% changed", result["counts"], expected)
        end = table_state(self.uri, wait_for_job_updates=after["job_updates"] + result["counts"]["pages"] + 1)
        results.changed.results.append(result)
        results.rewritten_changed.append(end["tuples_written"] - after["tuples_written"])

    def _auto_mapped_syncs(
        self, results: SizeResults, base: dict[str, Any], repetition: int, api: DemoApiProcess
    ) -> None:
        """With ``auto_mapping: true`` (typed columns): an initial sync into an empty table, then a re-sync with
        nothing changed, which must rewrite nothing."""
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {SYNC_TABLE}")
        params = base | {"auto_mapping": True}
        run_id = f"bench_{base['records']}_{repetition}_auto"
        start = table_state(self.uri, fingerprint=False)
        self.settle()
        initial = self.timed_child("sync", params | {"run_id": f"{run_id}_initial"}, api)
        fetched = initial["counts"]["fetched"]
        _check_counts("auto-mapped initial sync", initial["counts"], {"added": fetched, "updated": 0, "unchanged": 0})
        results.initial_auto.results.append(initial)
        table_state(self.uri, wait_for_job_updates=start["job_updates"] + initial["counts"]["pages"] + 1)
        self.settle(SYNC_TABLE)
        before = table_state(self.uri)
        resync = self.timed_child("sync", params | {"run_id": f"{run_id}_resync"}, api)
        _check_counts("auto-mapped re-sync", resync["counts"], {"added": 0, "updated": 0, "unchanged": fetched})
        after = table_state(self.uri, wait_for_job_updates=before["job_updates"] + resync["counts"]["pages"] + 1)
        results.resync_auto.results.append(resync)
        results.rewritten_auto.append(after["tuples_written"] - before["tuples_written"])

    def _dlt(self, results: SizeResults, runs: Runs, params: dict[str, Any], dataset: str, api: DemoApiProcess) -> None:
        if runs.error is not None:
            return  # it failed once: it will not work the next time either
        try:
            runs.results.append(self.timed_child("dlt", params | {"pipeline": dataset, "dataset": dataset}, api))
        except ChildError as error:
            runs.error = str(error)
            self.log(f"dlt failed: {error}")
        finally:
            with psycopg.connect(self.uri, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{dataset}" CASCADE')
                conn.execute(f'DROP SCHEMA IF EXISTS "{dataset}_staging" CASCADE')

    # -- latency: sequential and parallel pages ------------------------------------------------------

    def measure_latency(self, records: int, latency: float, page_size: int, concurrency: int) -> LatencyResults:
        """The Jira-style offset sync, one page at a time and ``concurrency`` at once, ``repeat`` times each."""
        results = LatencyResults(records, latency, page_size, concurrency)
        with DemoApiProcess(records, latency=latency) as api:
            base = {"api_url": api.url, "uri": self.uri, "records": records, "page_size": page_size}
            self.child("latency_sync", base | {"concurrency": concurrency, "run_id": "latency_warm_up"})
            for repetition in range(1, self.repeat + 1):
                self.log(f"latency {latency * 1000:.0f} ms, {records:,} records, repetition {repetition}/{self.repeat}")
                run_id = f"latency_{repetition}"
                sequential = base | {"concurrency": 1, "run_id": f"{run_id}_sequential"}
                self.settle()
                results.sequential.results.append(self.child("latency_sync", sequential))
                parallel = base | {"concurrency": concurrency, "run_id": f"{run_id}_parallel"}
                self.settle()
                results.parallel.results.append(self.child("latency_sync", parallel))
        return results

    # -- incremental re-sync -------------------------------------------------------------------------

    def measure_incremental(self, records: int) -> IncrementalResults:
        """After a full run, repeatedly: 1% changed upstream, an incremental re-sync; 1% changed, a full re-sync."""
        changed = max(1, records // 100)
        results = IncrementalResults(records, changed)
        with DemoApiProcess(records) as api:
            api.warm_up()
            base = {"api_url": api.url, "uri": self.uri, "records": records}
            with psycopg.connect(self.uri, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {INCREMENTAL_TABLE}")
            self.child("incremental_sync", base | {"full_refresh": True, "run_id": "incremental_first"})
            for repetition in range(1, self.repeat + 1):
                self.log(f"incremental re-sync of {records:,} records, repetition {repetition}/{self.repeat}")
                api.mutate(changed)
                self.settle(INCREMENTAL_TABLE)
                run = self.child("incremental_sync", base | {"full_refresh": False, "run_id": f"inc_{repetition}"})
                _check_counts("incremental re-sync", run["counts"], {"updated": changed, "added": 0, "deleted": 0})
                results.incremental.results.append(run)
                api.mutate(changed)
                self.settle(INCREMENTAL_TABLE)
                run = self.child("incremental_sync", base | {"full_refresh": True, "run_id": f"full_{repetition}"})
                _check_counts("full re-sync", run["counts"], {"fetched": records, "updated": changed, "added": 0})
                results.full.results.append(run)
        return results

    # -- DAG parsing ----------------------------------------------------------------------------------

    def measure_parsing(self) -> ParseResults:
        """DAG files as Airflow parses them, each in a fresh process: 1,000 syncs with ours and with
        dag-factory, the one DAG a task needs against a hand-written file, and 5,000 syncs with ours. Ours read
        the registry of API-created syncs too (the default), as in a deployment."""
        folders = {name: self.workdir / name for name in ("syncs", "syncs_large", "dagfactory")}
        parsing.write_ours(folders["syncs"], PARSE_COUNT)
        parsing.write_ours(folders["syncs_large"], PARSE_COUNT_LARGE)
        parsing.write_dagfactory(folders["dagfactory"], PARSE_COUNT)
        files = parsing.write_dag_files(
            self.workdir / "dag_files", folders["syncs"], folders["syncs_large"], folders["dagfactory"], ONE_DAG_INDEX
        )
        results = ParseResults()
        registry_env = {"AIRFLOW_CONN_POSTGRES_DEFAULT": self.uri}  # the registry is read, as in a deployment
        one_env = registry_env | {
            "_AIRFLOW_PARSING_CONTEXT_DAG_ID": ONE_DAG_ID,
            "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "sync",
        }
        for repetition in range(1, self.repeat + 1):
            self.log(f"DAG parsing, repetition {repetition}/{self.repeat}")
            results.sdk.results.append(self.child("import_sdk", {}))
            ours = {"file": str(files["ours"]), "expect": PARSE_COUNT, "ours": True}
            results.ours.results.append(self.child("parse_file", ours, registry_env))
            dagfactory = {"file": str(files["dagfactory"]), "expect": PARSE_COUNT}
            results.dagfactory.results.append(self.child("parse_file", dagfactory))
            one = {"file": str(files["ours"]), "expect": 1, "ours": True}
            results.one.results.append(self.child("parse_file", one, one_env))
            hand_written = {"file": str(files["hand_written"]), "expect": 1}
            results.hand_written.results.append(self.child("parse_file", hand_written, one_env))
            large = {"file": str(files["ours_large"]), "expect": PARSE_COUNT_LARGE, "ours": True}
            results.large.results.append(self.child("parse_file", large, registry_env))
        return results


def table_state(uri: str, wait_for_job_updates: int | None = None, *, fingerprint: bool = True) -> dict[str, Any]:
    """Rows written to the sync's table so far (pg_stat), a fingerprint of its row versions, and job updates.

    Statistics of a finished child's backend reach pg_stat when it exits; ``wait_for_job_updates`` waits until
    the updates of ``nango._nango_jobs`` (one per page plus one at the end of a run) show that they have.
    """
    deadline = time.monotonic() + _STATS_WAIT_SECONDS
    with psycopg.connect(uri, autocommit=True) as conn:
        while True:
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                """SELECT (SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relid = to_regclass(%s)),
                          (SELECT n_tup_upd FROM pg_stat_user_tables
                           WHERE relid = to_regclass('nango._nango_jobs'))""",
                (SYNC_TABLE,),
            ).fetchone()
            written, job_updates = (int(value or 0) for value in row or (0, 0))
            if wait_for_job_updates is None or job_updates >= wait_for_job_updates or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        versions = None
        if fingerprint:
            versions = conn.execute(
                f"SELECT count(*), md5(string_agg(xmin::text || ctid::text, ',' ORDER BY _nango_unique_key)) "
                f"FROM {SYNC_TABLE}"
            ).fetchone()
    return {"tuples_written": written, "job_updates": job_updates, "fingerprint": versions}


def _check_counts(what: str, counts: dict[str, int], expected: dict[str, int]) -> None:
    wrong = {name: counts.get(name) for name, value in expected.items() if counts.get(name) != value}
    if wrong:
        raise ChildError(f"{what}: counts {counts} differ from the expected {expected} in {wrong}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line: ``--write-doc``, ``--repeat``, ``--sizes``, ``--skip-parsing``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--write-doc", action="store_true", help="rewrite the results section of docs/performance.md")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per figure; medians are reported")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="records per sync (default: %(default)s)"
    )
    parser.add_argument(
        "--servers", nargs="+", choices=SERVERS, default=list(SERVERS), help="Postgres servers (default: %(default)s)"
    )
    parser.add_argument("--skip-parsing", action="store_true", help="do not run the DAG-parsing benchmark")
    parser.add_argument("--skip-latency", action="store_true", help="do not run the latency benchmark")
    parser.add_argument("--skip-incremental", action="store_true", help="do not run the incremental re-sync benchmark")
    parser.add_argument(
        "--latency-ms", type=float, default=LATENCY_MS, help="the API's latency per page (default: %(default)s)"
    )
    parser.add_argument(
        "--latency-records",
        type=int,
        default=LATENCY_RECORDS,
        help="records of the latency runs (default: %(default)s)",
    )
    parser.add_argument("--skip-scale", action="store_true", help="do not run the scale run (200 syncs, 5,000 DAGs)")
    parser.add_argument(
        "--only",
        choices=["scale", "latency"],
        help="run only this section (latency: the latency runs on the first server, no throughput sizes)",
    )
    return parser.parse_args(argv)


def _stop(postgres: StockPostgres | EmbeddedPostgres) -> None:
    """Stop the Postgres; a failure to stop is reported, not raised over the real error."""
    try:
        postgres.stop()
    except Exception as error:
        log(f"could not stop the Postgres cleanly: {error}")


def _server(name: str) -> tuple[StockPostgres | EmbeddedPostgres, str]:
    """A Postgres to start, in its own temporary data directory, and how the report names it."""
    if name == "stock":
        stock = StockPostgres()
        return stock, f"stock: Debian's PostgreSQL {stock.version} server, default configuration (JIT on, fsync on)"
    return EmbeddedPostgres(), "embedded: pgserver's PostgreSQL (no JIT; fsync=off, full_page_writes=off)"


def measure_server(
    name: str, workdir: Path, args: argparse.Namespace, machine: dict[str, str], *, first: bool
) -> tuple[ServerResults, tuple[ParseResults | None, LatencyResults | None, IncrementalResults | None] | None]:
    """Start one Postgres, measure every size on it, stop it. On the ``first`` server also DAG parsing (whose DAG
    file reads the registry of API-created syncs from it), the incremental and the latency runs, unless skipped."""
    postgres, description = _server(name)
    try:
        log(f"starting {description}")
        postgres.start()
        machine[f"Postgres ({name})"] = report.server_info(postgres.uri, description)
        bench = Bench(postgres.uri, postmaster_pid(postgres.data_dir), workdir, args.repeat, log)
        server = ServerResults(name, description, [bench.measure_size(records) for records in sorted(args.sizes)])
        if not first:
            return server, None
        incremental = None if args.skip_incremental else bench.measure_incremental(max(args.sizes))
        latency = None
        if not args.skip_latency:
            latency = bench.measure_latency(
                args.latency_records, args.latency_ms / 1000, LATENCY_PAGE_SIZE, LATENCY_CONCURRENCY
            )
        return server, (None if args.skip_parsing else bench.measure_parsing(), latency, incremental)
    finally:
        _stop(postgres)


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the results."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_scale(args: argparse.Namespace) -> int:
    """The scale section: 200 syncs through the scheduler, then the DAG file's parse time; 1 if a sync failed."""
    load_at_start = report.load_average()
    workdir = Path(tempfile.mkdtemp(prefix="nango-bench-scale-"))
    try:
        results = scale.measure_runs(workdir, log)
        log(f"scale: runs measured: {scale.to_json(results)}")
        log("scale: parsing the DAG file with " + " and ".join(f"{n:,}" for n in scale.PARSE_COUNTS) + " syncs")
        with EmbeddedPostgres() as postgres:  # the registry the DAG file reads
            env = child_environment(workdir / "airflow")
            scale.measure_parse(results, workdir, env, postgres.uri, args.repeat)
    except (ChildError, AssertionError, TimeoutError) as error:
        log(f"the scale run failed, no results:\n{error}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results.load = f"{load_at_start} at the start, {report.load_average()} at the end"
    text = scale.render(results)
    print(text)
    if args.write_doc:
        scale.write_doc(text)
        log(f"rewrote the scale section of {scale.DOC}")
    return 0


def run_latency(args: argparse.Namespace) -> int:
    """The latency section alone, on the first of ``--servers``: sequential and parallel pages; prints its table."""
    load_at_start = report.load_average()
    workdir = Path(tempfile.mkdtemp(prefix="nango-bench-latency-"))
    postgres, description = _server(args.servers[0])
    try:
        log(f"starting {description}")
        postgres.start()
        bench = Bench(postgres.uri, postmaster_pid(postgres.data_dir), workdir, args.repeat, log)
        latency = bench.measure_latency(
            args.latency_records, args.latency_ms / 1000, LATENCY_PAGE_SIZE, LATENCY_CONCURRENCY
        )
    except ChildError as error:
        log(f"a measurement failed, no results:\n{error}")
        return 1
    finally:
        _stop(postgres)
        shutil.rmtree(workdir, ignore_errors=True)
    print(report.render_latency(latency, repeat=args.repeat))
    log(f"load average (1, 5, 15 min): {load_at_start} at the start, {report.load_average()} at the end")
    log(
        "runs (seconds): sequential "
        + ", ".join(f"{value:.2f}" for value in latency.sequential.values())
        + "; parallel "
        + ", ".join(f"{value:.2f}" for value in latency.parallel.values())
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run everything, print the results and the goals; with ``--write-doc`` update docs/performance.md."""
    args = parse_args(argv)
    if args.only == "scale":
        return run_scale(args)
    if args.only == "latency":
        return run_latency(args)
    started, load_at_start = time.monotonic(), report.load_average()
    workdir = Path(tempfile.mkdtemp(prefix="nango-bench-"))
    machine = report.machine_info()
    try:
        servers, parse, latency, incremental = [], None, None, None
        for index, name in enumerate(args.servers):
            server, extras = measure_server(name, workdir, args, machine, first=index == 0)
            servers.append(server)
            if extras is not None:
                parse, latency, incremental = extras
    except ChildError as error:
        log(f"a measurement failed, no results:\n{error}")
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    machine["load average (1, 5, 15 min)"] = f"{load_at_start} at the start, {report.load_average()} at the end"
    text = report.render(machine, servers, parse, latency, incremental, repeat=args.repeat, elapsed=elapsed)
    print(text)
    if args.write_doc:
        report.write_doc(text)
        log(f"rewrote the results section of {report.DOC}")
    return 0 if args.skip_scale else run_scale(args)


if __name__ == "__main__":
    sys.exit(main())
