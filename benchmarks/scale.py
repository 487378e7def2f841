"""The scale run of ``make bench`` (``--only scale`` runs it alone): hundreds of syncs through a real Airflow.

1. 200 syncs over the demo API through a real scheduler, DAG processor and API server
   (``devtools.airflow_server``, LocalExecutor, ``[core] parallelism`` 8, metadata in the embedded Postgres).
   The 200 DAGs are parsed while paused; one ``PATCH /api/v2/dags`` unpauses them all, and the scheduler creates
   and runs one run each. Measured: the makespan (unpause to the end of the last run), the CPU seconds of the
   scheduler (its own process; its executor workers and their task processes) and of the DAG processor (with
   the parsing processes it forks) over that span, and each task's peak RSS (``VmHWM`` of every task process,
   sampled from ``/proc`` every 100 ms). Every sync must complete: 200 successful runs, each with every record.
2. The DAG file's parse time with 1,000 and 5,000 syncs (one YAML file each): a fresh process per measurement
   builds Airflow's ``BundleDagBag`` over ``nango_syncs.py`` as the DAG processor does, and reports the file's
   load duration that Airflow records. Goal: under a tenth of the default ``dagbag_import_timeout`` (30 s).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
import yaml

from benchmarks import parsing
from benchmarks.cpu import descendant_tree_cpu, proc_stat, process_cpu
from benchmarks.services import run_child
from devtools.airflow_server import AirflowServer, airflow_server, wait_for
from devtools.environment import EXAMPLES

SYNCS: Final = 200
PARALLELISM: Final = 8
RECORDS: Final = 500
"""Records per demo data set; each sync fetches all of one data set, 100 per page."""
PARSE_COUNTS: Final = (1000, 5000)
IMPORT_TIMEOUT_SECONDS: Final = 30.0
"""Airflow's default ``[core] dagbag_import_timeout``."""
PARSE_GOAL_SECONDS: Final = IMPORT_TIMEOUT_SECONDS / 10
PREFIX: Final = "scale_"
DOC: Final = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
START_MARKER: Final = "<!-- bench:scale:start -->"
END_MARKER: Final = "<!-- bench:scale:end -->"
_SAMPLE_SECONDS: Final = 0.1
_TASK_TITLE: Final = re.compile(rb"^airflow worker -- (\S+)")
DATASETS: Final[tuple[dict[str, Any], ...]] = (
    {"url": "/api/v2/pokemon", "query_params": {"limit": 100}, "response_path": "results", "unique_key": "name"}
    | {"paging_response_path": "next"},
    {"url": "/crm/v3/objects/contacts", "query_params": {"limit": 100}, "response_path": "results"}
    | {"unique_key": "id", "paging_request_path": "after", "paging_response_path": "paging.next.after"},
    {"url": "/v1/objects", "query_params": {"per_page": 100}, "response_path": "returned.data.objects"}
    | {"unique_key": "id", "paging_request_path": "page", "paging_response_path": "meta.next_page"},
)


@dataclass
class ScaleResults:
    """What the scale run measured."""

    syncs: int = SYNCS
    succeeded: int = 0
    records: int = 0
    makespan: float = 0.0
    first_start: float = 0.0
    """Seconds from the unpause to the start of the first run's task."""
    scheduler_cpu: float = 0.0
    executor_cpu: float = 0.0
    dag_processor_cpu: float = 0.0
    task_rss_mb: list[float] = field(default_factory=list)
    parse: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    load: str = ""

    def parse_median(self, count: int) -> float:
        """Median CPU seconds of loading the DAG file with ``count`` syncs."""
        return float(statistics.median(run["cpu_seconds"] for run in self.parse[count]))

    def parse_wall_median(self, count: int) -> float:
        """Median load duration (wall seconds, as Airflow records it) of the DAG file with ``count`` syncs."""
        return float(statistics.median(run["seconds"] for run in self.parse[count]))


def scale_syncs() -> dict[str, dict[str, Any]]:
    """200 syncs over the demo API, the three data sets in turn, each into its own table; daily, no catchup."""
    return {
        f"{PREFIX}{index:03d}": DATASETS[index % len(DATASETS)] | {"http_conn_id": "nango_demo_api"}
        for index in range(SYNCS)
    }


class TaskMemory:
    """Samples the peak RSS (``VmHWM``) of every task process (``airflow worker -- <task instance id>``) that
    descends from ``root`` (the scheduler: other Airflows on the machine are not counted)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peaks_kb: dict[bytes, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-memory", daemon=True)

    def __enter__(self) -> TaskMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        """One pass over ``/proc``."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = _TASK_TITLE.match((entry / "cmdline").read_bytes())
                if title is None or not _descends_from(int(entry.name), self.root):
                    continue
                status = (entry / "status").read_text()
            except OSError:
                continue  # exited meanwhile
            found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if found:
                key = title.group(1)
                self.peaks_kb[key] = max(self.peaks_kb.get(key, 0), int(found.group(1)))

    def peaks_mb(self) -> list[float]:
        """Each sampled task's peak RSS in MiB."""
        return [kb / 1024 for kb in self.peaks_kb.values()]


def _descends_from(pid: int, root: int, depth: int = 6) -> bool:
    """Whether ``root`` is among the first ``depth`` ancestors of ``pid``."""
    for _ in range(depth):
        pid = proc_stat(pid)[0]
        if pid == root:
            return True
        if pid <= 1:
            return False
    return False


def write_dags_folder(folder: Path) -> None:
    """The project's DAG files and one YAML file of the 200 syncs."""
    folder.mkdir(parents=True)
    for dag_file in ("nango_syncs.py", "nango_sync_errors.py"):
        shutil.copy(EXAMPLES / dag_file, folder)
    (folder / "syncs").mkdir()
    document = {"syncs": {name: fields | {"frequency": "@daily"} for name, fields in scale_syncs().items()}}
    document = json.loads(json.dumps(document))  # no shared objects: sync files refuse YAML aliases
    (folder / "syncs" / "scale.yaml").write_text(yaml.safe_dump(document))


def run_states(server: AirflowServer) -> dict[str, int]:
    """How many runs of the scale DAGs are in each state (read from Airflow's metadata database)."""
    with psycopg.connect(server.environment.postgres.uri.rsplit("/", 1)[0] + "/airflow") as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM dag_run WHERE dag_id LIKE %s GROUP BY state", (f"nango_sync_{PREFIX}%",)
        ).fetchall()
    return {str(state): int(count) for state, count in rows}


def run_span(server: AirflowServer) -> tuple[float, float]:
    """Epoch seconds of the first task's start and the last run's end."""
    with psycopg.connect(server.environment.postgres.uri.rsplit("/", 1)[0] + "/airflow") as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM min(ti.start_date)), extract(epoch FROM max(dr.end_date)) "
            "FROM dag_run dr JOIN task_instance ti ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
            "WHERE dr.dag_id LIKE %s",
            (f"nango_sync_{PREFIX}%",),
        ).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


def successful_jobs(server: AirflowServer) -> tuple[int, int]:
    """Successful job rows of the scale syncs and the records they fetched."""
    with psycopg.connect(server.environment.postgres.uri) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(fetched), 0) FROM nango._nango_jobs WHERE status = 'success' "
            "AND sync_name LIKE %s",
            (f"{PREFIX}%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_until_parsed(server: AirflowServer, timeout: float = 600) -> None:
    """Wait until the API server lists all 200 scale DAGs."""
    client = server.client()

    def parsed() -> bool:
        params: dict[str, Any] = {"dag_id_pattern": f"nango_sync_{PREFIX}", "limit": 1, "exclude_stale": True}
        response = client.get(f"{server.url}/api/v2/dags", params=params, timeout=60)
        return response.ok and response.json()["total_entries"] == SYNCS

    wait_for(parsed, timeout, f"{SYNCS} DAGs to be parsed", server.diagnostics, poll=2)


def measure_runs(workdir: Path, log: Callable[[str], None], timeout: float = 1800) -> ScaleResults:
    """Part 1: 200 syncs through the scheduler; every one must succeed with every record."""
    dags = workdir / "scale-dags"
    write_dags_folder(dags)
    settings = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "NANGO_SYNCS_PATH": str(dags / "syncs"),
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # Airflow's defaults, not the quick re-parsing that the live tests use
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
        "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "50",
        "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "60",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "0",
    }
    log(f"scale: starting Airflow (LocalExecutor, parallelism {PARALLELISM}) with {SYNCS} syncs")
    with airflow_server(api_records=RECORDS, extra_env=settings) as server:
        wait_until_parsed(server)
        log(f"scale: {SYNCS} DAGs parsed; unpausing them all")
        results = ScaleResults()
        scheduler, processor = server.processes["scheduler"].pid, server.processes["dag-processor"].pid
        cpu_before = (process_cpu(scheduler), descendant_tree_cpu(scheduler), descendant_tree_cpu(processor))
        with TaskMemory(scheduler) as memory:
            unpaused_at = time.time()
            response = server.client().patch(
                f"{server.url}/api/v2/dags",
                params={"dag_id_pattern": f"nango_sync_{PREFIX}"},
                json={"is_paused": False},
                timeout=60,
            )
            response.raise_for_status()
            wait_for(lambda: _all_finished(server), timeout, f"{SYNCS} runs to finish", server.diagnostics, poll=1)
        scheduler_own = process_cpu(scheduler) - cpu_before[0]
        results.scheduler_cpu = scheduler_own
        results.executor_cpu = descendant_tree_cpu(scheduler) - cpu_before[1] - scheduler_own
        results.dag_processor_cpu = descendant_tree_cpu(processor) - cpu_before[2]
        first_start, last_end = run_span(server)
        results.makespan, results.first_start = last_end - unpaused_at, first_start - unpaused_at
        results.succeeded = run_states(server).get("success", 0)
        jobs, results.records = successful_jobs(server)
        results.task_rss_mb = memory.peaks_mb()
    if results.succeeded != SYNCS or jobs != SYNCS or results.records != SYNCS * RECORDS:
        raise AssertionError(
            f"not every sync completed: {results.succeeded} successful runs, {jobs} successful job rows, "
            f"{results.records} records (expected {SYNCS}, {SYNCS}, {SYNCS * RECORDS})"
        )
    return results


def _all_finished(server: AirflowServer) -> bool:
    states = run_states(server)
    return sum(states.get(state, 0) for state in ("success", "failed")) >= SYNCS


def measure_parse(results: ScaleResults, workdir: Path, env: dict[str, str], uri: str, repeat: int) -> None:
    """Part 2: the DAG file's load duration with 1,000 and 5,000 syncs, ``repeat`` fresh processes each."""
    for count in PARSE_COUNTS:
        dags = workdir / f"parse-{count}"
        dags.mkdir(parents=True)
        shutil.copy(EXAMPLES / "nango_syncs.py", dags)
        parsing.write_ours(dags / "syncs", count)
        params = {"dag_file": str(dags / "nango_syncs.py"), "expect": count}
        extra = {
            "NANGO_SYNCS_PATH": str(dags / "syncs"),
            "AIRFLOW_CONN_POSTGRES_DEFAULT": uri,
            # measured against the default, not cut off by it: a busy machine can take longer than 30 s
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
        }
        results.parse[count] = [run_child("parse_dag_file", params, env, extra_env=extra) for _ in range(repeat)]
        shutil.rmtree(dags, ignore_errors=True)


# -- report ---------------------------------------------------------------------------------------------


def render(results: ScaleResults) -> str:
    """The scale section as Markdown."""
    rss = results.task_rss_mb
    cpu_total = results.scheduler_cpu + results.executor_cpu + results.dag_processor_cpu
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} by the scale run of `make bench`; "
        f"load average (1, 5, 15 min) {results.load}.",
        "",
        f"**{SYNCS} syncs through the scheduler** (LocalExecutor, parallelism {PARALLELISM}; {RECORDS} records "
        f"each, 100 per page, over the demo API):",
        "",
        "| figure | value |",
        "|---|---|",
        f"| runs that succeeded | {results.succeeded} of {results.syncs} ({results.records:,} records) |",
        f"| makespan (unpause to the end of the last run) | {results.makespan:.1f} s "
        f"({results.syncs / results.makespan:.2f} syncs/s) |",
        f"| first task started after | {results.first_start:.1f} s |",
        f"| scheduler CPU (its own process) | {results.scheduler_cpu:.1f} s |",
        f"| executor workers and task processes CPU (children of the scheduler) | {results.executor_cpu:.1f} s "
        f"({results.executor_cpu / results.syncs:.2f} s per sync) |",
        f"| DAG processor CPU (with its parsing processes) | {results.dag_processor_cpu:.1f} s |",
        f"| CPU s / wall s (2 cores at most) | {cpu_total / results.makespan:.2f} |",
        f"| task peak RSS, max / median ({len(rss)} tasks sampled) | "
        f"{max(rss, default=0):.0f} MB / {statistics.median(rss) if rss else 0:.0f} MB |",
        "",
        "**The DAG file's parse time** (`nango_syncs.py` loaded by Airflow's `BundleDagBag` in a fresh process, "
        "one YAML file per sync, the registry read too). The load duration is the wall time Airflow records for "
        "the file; CPU is what the file costs on an idle core, and is what the verdict is about, since on this "
        "shared machine the wall time mostly measures waiting for a core:",
        "",
        "| syncs | load duration, median (each run) | CPU s, median (each run) | peak RSS | CPU < 3 s |",
        "|---|---|---|---|---|",
    ]
    for count, runs in results.parse.items():
        wall = " / ".join(f"{run['seconds']:.2f}" for run in runs)
        cpu = " / ".join(f"{run['cpu_seconds']:.2f}" for run in runs)
        verdict = "**PASS**" if results.parse_median(count) < PARSE_GOAL_SECONDS else "**FAIL**"
        timed_out = sum(run["seconds"] >= IMPORT_TIMEOUT_SECONDS for run in runs)
        if timed_out:
            wall += f"; {timed_out} over the default 30 s timeout, which would have failed the file"
        lines.append(
            f"| {count:,} | {results.parse_wall_median(count):.2f} s ({wall}) | "
            f"{results.parse_median(count):.2f} s ({cpu}) | {max(run['rss_mb'] for run in runs):.0f} MB | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def write_doc(text: str, doc: Path = DOC) -> None:
    """Replace the text between the scale markers of ``doc`` with ``text``."""
    content = doc.read_text(encoding="utf-8")
    start, end = content.find(START_MARKER), content.find(END_MARKER)
    if start < 0 or end < start:
        raise SystemExit(f"{doc} has no {START_MARKER} ... {END_MARKER} section to rewrite")
    doc.write_text(f"{content[: start + len(START_MARKER)]}\n{text}{content[end:]}", encoding="utf-8")


def to_json(results: ScaleResults) -> str:
    """The raw figures, for the log."""
    return json.dumps(results.__dict__, default=str)
