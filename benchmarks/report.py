"""The benchmark's output: machine description, result tables and goal verdicts, as Markdown.

The same text is printed and, with ``--write-doc``, put between the result markers of docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from benchmarks.bench import IncrementalResults, LatencyResults, ParseResults, Runs, ServerResults, SizeResults

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
START_MARKER = "<!-- bench:results:start -->"
END_MARKER = "<!-- bench:results:end -->"
PACKAGES = ("nango-provider", "apache-airflow", "psycopg", "msgspec", "requests", "dlt", "dag-factory")

MIN_CEILING_RATIO = 0.8
MIN_DLT_SPEEDUP = 5.0
MIN_RESYNC_RATIO = 1.0
MIN_CHANGED_RATIO = 0.9
MAX_RSS_GROWTH_MB = 30.0
MAX_PARSE_RATIO = 0.5
MIN_LATENCY_BOUND_RATIO = 0.9
MIN_PARALLEL_SPEEDUP = 5.0
MIN_INCREMENTAL_SPEEDUP = 20.0
MAX_ONE_DAG_EXTRA_SECONDS = 0.050
MAX_LARGE_PARSE_SECONDS = 3.0


@dataclass(frozen=True)
class Goal:
    """One goal: what it asks, what was measured, and whether it passed (None: could not be measured)."""

    name: str
    target: str
    measured: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``n/a``."""
        return "n/a" if self.passed is None else ("PASS" if self.passed else "FAIL")


def server_info(uri: str, description: str) -> str:
    """The server's version and the settings that matter here, after ``description``."""
    with psycopg.connect(uri) as conn:
        row = conn.execute(
            """SELECT current_setting('server_version'), current_setting('jit'), current_setting('fsync'),
                      current_setting('shared_buffers'), current_setting('work_mem')"""
        ).fetchone()
    version, jit, fsync, shared_buffers, work_mem = row or ("?",) * 5
    settings = f"jit={jit}, fsync={fsync}, shared_buffers={shared_buffers}, work_mem={work_mem}"
    return f"{version}; {description.split(': ', 1)[-1]}; {settings}"


def machine_info() -> dict[str, str]:
    """Cores, RAM, CPU model, OS, Python and the versions of the packages involved."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "RAM": f"{_mem_total_gib():.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "packages": ", ".join(versions),
    }


def load_average() -> str:
    """``os.getloadavg()`` as text: other work on the machine competes with the benchmark for the cores."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


# -- formatting -----------------------------------------------------------------------------------------


def _rate(records: int, seconds: float) -> str:
    return f"{records / seconds:,.0f}"


def _rates(records: int, runs: Runs, key: str = "seconds") -> str:
    return " / ".join(f"{records / seconds / 1000:.1f}k" for seconds in runs.values(key))


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].replace("|", "\\|") if lines else ""


def _mb(value: float) -> str:
    return f"{value:.0f} MB"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def ceiling_rate(size: SizeResults) -> float:
    """min(fetch ceiling, stage-and-upsert ceiling) in records/s."""
    return min(size.records / size.fetch.median(), size.records / size.upsert.median())


DLT_DEFAULT = "dlt `rest_api`, defaults (INSERT statements, nested objects flattened), merge on `id`"
DLT_TUNED = "dlt `rest_api`, CSV loader (COPY) and `max_table_nesting=0`, merge on `id`"


def _entries(size: SizeResults) -> list[tuple[str, Runs, str, str]]:
    """(label, runs, key prefix, short label) of every throughput figure."""
    return [
        ("(a) fetch ceiling: `NangoHook().pages()`", size.fetch, "", "(a) fetch ceiling"),
        (
            "(b) stage-and-upsert ceiling: COPY into a stage + `INSERT .. ON CONFLICT`, empty table",
            size.upsert,
            "",
            "(b) stage-and-upsert ceiling",
        ),
        (
            "(b) the same loop again, nothing changed (for reference)",
            size.upsert,
            "unchanged_",
            "(b) again, nothing changed",
        ),
        ("(c) COPY ceiling: plain COPY into an empty table", size.upsert, "copy_", "(c) COPY ceiling"),
        ("full sync `run_sync`, initial (empty table)", size.initial, "", "full sync, initial"),
        ("full sync `run_sync`, re-sync, nothing changed", size.resync, "", "full sync, re-sync, nothing changed"),
        ("full sync `run_sync`, re-sync, 1% changed", size.changed, "", "full sync, re-sync, 1% changed"),
        ("full sync, `auto_mapping: true`, initial", size.initial_auto, "", "full sync, typed columns, initial"),
        (
            "full sync, `auto_mapping: true`, re-sync, nothing changed",
            size.resync_auto,
            "",
            "full sync, typed columns, re-sync",
        ),
        (DLT_DEFAULT, size.dlt, "", "dlt, defaults"),
        (DLT_TUNED, size.dlt_tuned, "", "dlt, tuned"),
    ]


def _throughput_rows(size: SizeResults) -> list[list[str]]:
    ceiling = ceiling_rate(size)
    n = size.records
    rows = []
    for label, runs, prefix, _short in _entries(size):
        if not runs.results:
            rows.append([label, f"{n:,}", "failed: see below", "", "", ""])
            continue
        median = runs.median(f"{prefix}seconds")
        ratio = f"{n / median / ceiling:.2f}x"
        rows.append(
            [label, f"{n:,}", _rate(n, median), _rates(n, runs, f"{prefix}seconds"), ratio, _mb(runs.median("rss_mb"))]
        )
    return rows


def _throughput(server: ServerResults, repeat: int) -> list[str]:
    header = ["measurement", "records", "records/s (median)", f"each run ({repeat})", "x min(a, b)", "peak RSS"]
    sizes = server.sizes
    rows = [row for size in sizes for row in _throughput_rows(size)]
    lines = [f"### Throughput on the {server.name} server", "", *_table(header, rows), ""]
    for size in sizes:
        initial = size.records / size.initial.median()
        for label, runs in (("dlt with its defaults", size.dlt), ("dlt tuned", size.dlt_tuned)):
            if runs.results:
                speedup = initial / (size.records / runs.median())
                lines.append(f"- {size.records:,} records: initial sync at **{speedup:.1f}x** {label} in records/s.")
            if runs.error:
                lines.append(f"- {size.records:,} records: {label} could not be run: `{_last_line(runs.error)}`")
                lines.extend(["", "  ```text", *(f"  {line}" for line in runs.error.splitlines()), "  ```"])
    for label, runs in (("dlt with its defaults", sizes[-1].dlt), ("dlt tuned", sizes[-1].dlt_tuned)):
        if runs.results and runs.results[0].get("tables"):
            tables = ", ".join(f"`{name}` ({columns} columns)" for name, columns in runs.results[0]["tables"].items())
            lines.append(f"- Tables {label} wrote (besides its `_dlt_*` bookkeeping): {tables}.")
    rewrites = [run for size in sizes for run in size.rewritten]
    written = [run["tuples_written"] for run in rewrites]
    changed = sum(run["xmin_changed"] for run in rewrites)
    unflushed = sum(1 for run in rewrites if not run["stats_flushed"])
    lines.append(
        f"- Rows rewritten by the {len(rewrites)} re-syncs with nothing changed: pg_stat `n_tup_ins + n_tup_upd` of "
        f"the table grew by {written}; row versions (`xmin`, `ctid`) changed in {changed} of {len(rewrites)} re-syncs"
        + (f" ({unflushed} waits for the statistics timed out)" if unflushed else "")
        + "."
    )
    for size in sizes:
        lines.append(
            f"- {size.records:,} records, re-syncs with typed columns, nothing changed: rows written "
            f"{size.rewritten_auto}."
        )
        lines.append(
            f"- {size.records:,} records, re-syncs with 1% changed: rows written {size.rewritten_changed} "
            f"({round(size.records * 0.01):,} records changed upstream)."
        )
    return [*lines, ""]


def _cpu(server: ServerResults) -> list[str]:
    """Wall time against the CPU time of each process: what runs in parallel and what waits."""
    size = server.sizes[-1]
    with_api = {"(a)": True, "(b)": False, "(c)": False}
    rows = []
    for _label, runs, prefix, label in _entries(size):
        if not runs.results:
            continue
        wall = runs.median(f"{prefix}seconds")
        client = runs.median(f"{prefix}cpu_seconds")
        api = runs.median("api_cpu_seconds") if with_api.get(label[:3], True) else None
        postgres = runs.median(f"{prefix}postgres_cpu_seconds")
        busy = client + (api or 0.0) + postgres
        rows.append(
            [
                label,
                f"{wall:.2f}",
                f"{client:.2f}",
                "-" if api is None else f"{api:.2f}",
                f"{postgres:.2f}",
                f"{busy / wall:.2f}",
            ]
        )
    header = ["measurement", "wall s", "client CPU s", "API server CPU s", "Postgres CPU s", "CPU s / wall s"]
    return [
        f"### Where the time goes on the {server.name} server ({size.records:,} records, medians)",
        "",
        *_table(header, rows),
        "",
        "Client CPU is the measuring process (all its threads) during the timed part; API server and Postgres "
        "CPU are read from `/proc` around the child (Postgres: every server process, autovacuum included; for "
        "the ceilings (b) and (c), the one backend). The machine has 2 cores, so CPU s / wall s can be at most 2.",
        "",
    ]


_MEMORY_ROWS = (
    ("full sync, initial", "initial"),
    ("full sync, re-sync, nothing changed", "resync"),
    ("full sync, re-sync, 1% changed", "changed"),
    ("fetch ceiling (streams pages)", "fetch"),
    ("dlt, defaults", "dlt"),
    ("dlt, tuned", "dlt_tuned"),
)


def _memory(server: ServerResults) -> list[str]:
    sizes = server.sizes
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    header = ["peak RSS of the process", f"{small.records:,}", f"{large.records:,}", "growth"]
    rows = []
    for label, attribute in _MEMORY_ROWS:
        runs_small: Runs = getattr(small, attribute)
        runs_large: Runs = getattr(large, attribute)
        if not runs_small.results or not runs_large.results:
            continue
        low, high = runs_small.median("rss_mb"), runs_large.median("rss_mb")
        rows.append([label, _mb(low), _mb(high), f"{high - low:+.1f} MB"])
    return [f"### Memory on the {server.name} server", "", *_table(header, rows), ""]


def _parsing(parse: ParseResults, repeat: int) -> list[str]:
    header = ["DAG file", "DAGs", "time (median)", f"each run ({repeat})", "CPU time (median)", "peak RSS"]
    entries = [
        ("nango-provider, 1,000 sync files (`load_sync_dags(folder)`)", parse.ours),
        ("dag-factory 1.1.0, 1,000 files (`load_yaml_dags(...)`)", parse.dagfactory),
        ("nango-provider, one DAG for a task (parsing context set)", parse.one),
        ("hand-written DAG file with the same operator (parsing context set)", parse.hand_written),
        ("nango-provider, 5,000 sync files", parse.large),
    ]
    sdk = parse.sdk.median()
    rows = [
        [
            label,
            f"{runs.results[0]['dags']:,}",
            f"{parse.net(runs) * 1000:,.0f} ms",
            " / ".join(f"{(value - sdk) * 1000:,.0f}" for value in runs.values()) + " ms",
            f"{(runs.median('cpu_seconds') - parse.sdk.median('cpu_seconds')) * 1000:,.0f} ms",
            _mb(runs.median("rss_mb")),
        ]
        for label, runs in entries
    ]
    return [
        "### DAG parsing",
        "",
        "Each figure is a fresh process running the whole DAG file (`runpy.run_path`), imports included, minus "
        f"the median of a bare `import airflow.sdk` in a fresh process ({sdk * 1000:,.0f} ms: "
        + " / ".join(f"{value * 1000:,.0f}" for value in parse.sdk.values())
        + " ms). CPU time is the process's own, measured the same way: it moves less than the wall time when "
        "other work shares the cores.",
        "",
        *_table(header, rows),
        "",
        f"- nango-provider needs **{parse.net(parse.ours) / parse.net(parse.dagfactory):.2f}x** dag-factory's time "
        "for the 1,000 DAGs.",
        "",
    ]


def _latency(latency: LatencyResults, repeat: int) -> list[str]:
    bound = latency.bound
    sequential = latency.records / latency.sequential.median()
    rows = []
    for label, runs in (
        ("one page at a time", latency.sequential),
        (f"concurrency {latency.concurrency}", latency.parallel),
    ):
        rate = latency.records / runs.median()
        rows.append([label, _rates(latency.records, runs), f"{rate / bound:.2f}", f"{rate / sequential:.1f}x"])
    return [
        f"### Latency: {latency.latency * 1000:.0f} ms per page, {latency.page_size} records per page",
        "",
        f"The demo API answers each page of its Jira-style offset endpoint after {latency.latency * 1000:.0f} ms "
        f"({latency.records:,} records, `total` in every page). The bound of a sync that waits only for the API, "
        f"one page at a time, is {bound:,.0f} records/s. Records/s over {repeat} runs, median first.",
        "",
        *_table(["sync", "records/s", "x bound", "x one at a time"], rows),
        "",
    ]


def _incremental(incremental: IncrementalResults, repeat: int) -> list[str]:
    rows = [
        ["incremental (since the mark)", _seconds(incremental.incremental), f"{_fetched(incremental.incremental)}"],
        ["full (full_refresh)", _seconds(incremental.full), f"{_fetched(incremental.full)}"],
    ]
    speedup = incremental.full.median() / incremental.incremental.median()
    return [
        f"### Incremental re-sync ({incremental.records:,} records, {incremental.changed:,} changed upstream)",
        "",
        f"The contacts sync with `incremental: {{record_field: updatedAt, request_name: updated_since}}` after "
        f"{incremental.changed:,} records changed upstream, each way; seconds over {repeat} runs, median first.",
        "",
        *_table(["re-sync", "seconds", "records fetched"], rows),
        "",
        f"- The incremental re-sync takes **1/{speedup:.0f}** of the full re-sync's time.",
        "",
    ]


def _seconds(runs: Runs) -> str:
    values = runs.values()
    return f"{runs.median():.3f} ({', '.join(f'{value:.3f}' for value in values)})"


def _fetched(runs: Runs) -> str:
    return ", ".join(f"{result['counts']['fetched']:,}" for result in runs.results)


def _incremental_goal(incremental: IncrementalResults | None) -> Goal:
    name = f"incremental re-sync >= {MIN_INCREMENTAL_SPEEDUP:.0f}x faster than full (1% changed)"
    if incremental is None:
        return Goal(name, f">= {MIN_INCREMENTAL_SPEEDUP:.0f}x", "not run (--skip-incremental)", None)
    full, fast = incremental.full.median(), incremental.incremental.median()
    return Goal(
        name.replace("full", f"full, {incremental.records:,} records"),
        f"<= {full / MIN_INCREMENTAL_SPEEDUP * 1000:,.0f} ms",
        f"{full / fast:.0f}x ({fast * 1000:,.0f} ms vs {full * 1000:,.0f} ms)",
        full / fast >= MIN_INCREMENTAL_SPEEDUP,
    )


def _latency_goals(latency: LatencyResults | None) -> list[Goal]:
    if latency is None:
        return [
            Goal("sequential sync >= 0.9 x latency bound", ">= 0.90", "not run (--skip-latency)", None),
            Goal("concurrency 8 >= 5x sequential", ">= 5.0x", "not run (--skip-latency)", None),
        ]
    sequential = latency.records / latency.sequential.median()
    parallel = latency.records / latency.parallel.median()
    return [
        Goal(
            f"sequential sync >= {MIN_LATENCY_BOUND_RATIO} x latency bound ({latency.latency * 1000:.0f} ms a page)",
            f">= {MIN_LATENCY_BOUND_RATIO * latency.bound:,.0f} records/s",
            f"{sequential:,.0f} records/s = {sequential / latency.bound:.2f} x {latency.bound:,.0f}",
            sequential >= MIN_LATENCY_BOUND_RATIO * latency.bound,
        ),
        Goal(
            f"concurrency {latency.concurrency} >= {MIN_PARALLEL_SPEEDUP:.0f}x sequential",
            f">= {MIN_PARALLEL_SPEEDUP * sequential:,.0f} records/s",
            f"{parallel / sequential:.1f}x ({parallel:,.0f} vs {sequential:,.0f} records/s)",
            parallel >= MIN_PARALLEL_SPEEDUP * sequential,
        ),
    ]


# -- goals ----------------------------------------------------------------------------------------------


def goals(server: ServerResults, parse: ParseResults | None) -> list[Goal]:
    """The goals of the sync on ``server`` at its largest size (and smallest, for memory); then parsing."""
    large = server.sizes[-1]
    n = large.records
    initial = n / large.initial.median()
    ceiling = ceiling_rate(large)
    found: list[Goal] = [
        Goal(
            f"initial sync of {n:,} >= {MIN_CEILING_RATIO} x min(fetch, stage-and-upsert ceilings)",
            f">= {MIN_CEILING_RATIO * ceiling:,.0f} records/s",
            f"{initial:,.0f} records/s = {initial / ceiling:.2f} x {ceiling:,.0f}",
            initial >= MIN_CEILING_RATIO * ceiling,
        ),
        _dlt_goal(large, initial),
        _resync_goal(server, initial),
        _changed_goal(large, initial),
        _memory_goal(server.sizes),
    ]
    found.extend(_parse_goals(parse))
    return found


def _dlt_goal(large: SizeResults, initial: float) -> Goal:
    name = f"initial sync of {large.records:,} >= {MIN_DLT_SPEEDUP:.0f}x dlt tuned"
    if not large.dlt_tuned.results:
        error = _last_line(large.dlt_tuned.error or "no result")
        return Goal(name, "dlt runs", f"dlt failed: `{error}`", None)
    dlt = large.records / large.dlt_tuned.median()
    return Goal(
        name,
        f">= {MIN_DLT_SPEEDUP * dlt:,.0f} records/s",
        f"{initial / dlt:.1f}x ({initial:,.0f} vs {dlt:,.0f} records/s)",
        initial / dlt >= MIN_DLT_SPEEDUP,
    )


def _resync_goal(server: ServerResults, initial: float) -> Goal:
    large = server.sizes[-1]
    resync = large.records / large.resync.median()
    rewrites = [run for size in server.sizes for run in size.rewritten]
    untouched = all(run["tuples_written"] == 0 and not run["xmin_changed"] for run in rewrites)
    return Goal(
        f"re-sync of {large.records:,}, nothing changed, >= {MIN_RESYNC_RATIO:.1f}x initial, zero rows rewritten",
        f">= {MIN_RESYNC_RATIO * initial:,.0f} records/s, 0 rows",
        f"{resync:,.0f} records/s ({resync / initial:.2f}x initial); rows rewritten: "
        + ("0 in every re-sync" if untouched else str([run["tuples_written"] for run in rewrites])),
        resync >= MIN_RESYNC_RATIO * initial and untouched,
    )


def _changed_goal(large: SizeResults, initial: float) -> Goal:
    changed = large.records / large.changed.median()
    return Goal(
        f"re-sync of {large.records:,}, 1% changed, >= {MIN_CHANGED_RATIO:.1f}x initial",
        f">= {MIN_CHANGED_RATIO * initial:,.0f} records/s",
        f"{changed:,.0f} records/s ({changed / initial:.2f}x initial)",
        changed >= MIN_CHANGED_RATIO * initial,
    )


def _memory_goal(sizes: list[SizeResults]) -> Goal:
    name = f"peak RSS growth {sizes[0].records:,} -> {sizes[-1].records:,} <= {MAX_RSS_GROWTH_MB:.0f} MB"
    if len(sizes) < 2:
        return Goal(name, f"<= {MAX_RSS_GROWTH_MB:.0f} MB", "needs two sizes", None)
    growth = {
        label: getattr(sizes[-1], attribute).median("rss_mb") - getattr(sizes[0], attribute).median("rss_mb")
        for label, attribute in (("initial", "initial"), ("re-sync", "resync"), ("1% changed", "changed"))
    }
    measured = ", ".join(f"{label} {value:+.1f} MB" for label, value in growth.items())
    return Goal(name, f"<= {MAX_RSS_GROWTH_MB:.0f} MB", measured, max(growth.values()) <= MAX_RSS_GROWTH_MB)


def _parse_goals(parse: ParseResults | None) -> list[Goal]:
    names = (
        f"1,000 syncs' DAG file <= {MAX_PARSE_RATIO:.1f}x dag-factory's",
        f"one DAG for a task <= hand-written DAG file + {MAX_ONE_DAG_EXTRA_SECONDS * 1000:.0f} ms",
        f"5,000 syncs' DAG file <= {MAX_LARGE_PARSE_SECONDS:.0f} s",
    )
    if parse is None:
        return [Goal(name, "", "not run (--skip-parsing)", None) for name in names]
    ours, theirs = parse.net(parse.ours), parse.net(parse.dagfactory)
    one, hand = parse.net(parse.one), parse.net(parse.hand_written)
    large = parse.net(parse.large)
    return [
        Goal(
            names[0],
            f"<= {MAX_PARSE_RATIO:.2f}x",
            f"{ours / theirs:.2f}x ({ours * 1000:,.0f} ms vs {theirs * 1000:,.0f} ms)",
            ours / theirs <= MAX_PARSE_RATIO,
        ),
        Goal(
            names[1],
            f"<= {(hand + MAX_ONE_DAG_EXTRA_SECONDS) * 1000:,.0f} ms",
            f"{one * 1000:,.0f} ms ({(one - hand) * 1000:+,.0f} ms against {hand * 1000:,.0f} ms)",
            one - hand <= MAX_ONE_DAG_EXTRA_SECONDS,
        ),
        Goal(
            names[2],
            f"<= {MAX_LARGE_PARSE_SECONDS * 1000:,.0f} ms",
            f"{large * 1000:,.0f} ms",
            large <= MAX_LARGE_PARSE_SECONDS,
        ),
    ]


def _goals(title: str, found: list[Goal]) -> list[str]:
    rows = [[goal.name, goal.target, goal.measured, f"**{goal.verdict}**"] for goal in found]
    return [f"### {title}", "", *_table(["goal", "target", "measured", "verdict"], rows), ""]


def render(
    machine: dict[str, str],
    servers: list[ServerResults],
    parse: ParseResults | None,
    latency: LatencyResults | None = None,
    incremental: IncrementalResults | None = None,
    *,
    repeat: int,
    elapsed: float,
) -> str:
    """The whole results section as Markdown: the machine, each server's figures, parsing, then the goals."""
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"Measured {stamp} by `make bench` ({repeat} repetitions per figure, medians; whole run {elapsed:.0f} s).",
        "",
        *_table(["machine", ""], [[key, value] for key, value in machine.items()]),
        "",
    ]
    for server in servers:
        lines += [*_throughput(server, repeat), *_cpu(server), *_memory(server)]
    if parse is not None:
        lines += _parsing(parse, repeat)
    for index, server in enumerate(servers):
        title = f"Goals on the {server.name} server" + ("" if index == 0 else " (for reference)")
        found = goals(server, parse if index == 0 else None)
        lines += _goals(title, found if index == 0 else found[:5])
    if incremental is not None or latency is not None:
        lines += [*(_incremental(incremental, repeat) if incremental is not None else [])]
        lines += [*(_latency(latency, repeat) if latency is not None else [])]
        lines += _goals(
            "Goals of the incremental and latency runs", [_incremental_goal(incremental), *_latency_goals(latency)]
        )
    return "\n".join(lines).rstrip() + "\n"


def render_latency(latency: LatencyResults, *, repeat: int) -> str:
    """The latency section alone (``--only latency``): its table and its goals."""
    lines = [*_latency(latency, repeat), *_goals("Goals of the latency runs", _latency_goals(latency))]
    return "\n".join(lines).rstrip() + "\n"


def write_doc(results: str, doc: Path = DOC) -> None:
    """Replace the text between the result markers of ``doc`` with ``results``."""
    text = doc.read_text(encoding="utf-8")
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise SystemExit(f"{doc} has no {START_MARKER} ... {END_MARKER} section to rewrite")
    head, tail = text[: start + len(START_MARKER)], text[end:]
    doc.write_text(f"{head}\n{results}{tail}", encoding="utf-8")
