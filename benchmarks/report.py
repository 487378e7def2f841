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
    from benchmarks.bench import IncrementalResults, LatencyResults, ParseResults, Runs, SizeResults

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
START_MARKER = "<!-- bench:results:start -->"
END_MARKER = "<!-- bench:results:end -->"
PACKAGES = ("nango-provider", "apache-airflow", "psycopg", "msgspec", "requests", "dlt", "dag-factory")

MIN_CEILING_RATIO = 0.6
MIN_DLT_SPEEDUP = 5.0
MAX_RSS_GROWTH_MB = 30.0
MAX_PARSE_RATIO = 0.5
MAX_ONE_DAG_SECONDS = 0.100
MIN_LATENCY_BOUND_RATIO = 0.9
MIN_PARALLEL_SPEEDUP = 5.0
MIN_INCREMENTAL_SPEEDUP = 20.0


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


def machine_info(uri: str) -> dict[str, str]:
    """Cores, RAM, CPU model, OS, Python, Postgres and the versions of the packages involved."""
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
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
        "Postgres": f"{row[0] if row else '?'} (embedded, pgserver; fsync=off, full_page_writes=off)",
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
    """min(fetch ceiling, upsert ceiling) in records/s."""
    return min(size.records / size.fetch.median(), size.records / size.upsert.median())


def _throughput_rows(size: SizeResults) -> list[list[str]]:
    ceiling = ceiling_rate(size)
    n = size.records
    entries: list[tuple[str, Runs, str]] = [
        ("(a) fetch ceiling: `NangoHook().pages()`", size.fetch, "seconds"),
        ("(b) upsert ceiling: COPY + upsert into an empty table", size.upsert, "seconds"),
        ("(b) upsert loop again, nothing changed (for reference)", size.upsert, "unchanged_seconds"),
        ("full sync `run_sync`, initial (empty table)", size.initial, "seconds"),
        ("full sync `run_sync`, re-sync (nothing changed)", size.resync, "seconds"),
        ("dlt `rest_api`, merge on `id` (initial)", size.dlt, "seconds"),
    ]
    rows = []
    for label, runs, key in entries:
        if not runs.results:
            rows.append([label, f"{n:,}", "failed: see below", "", "", ""])
            continue
        median = runs.median(key)
        ratio = f"{n / median / ceiling:.2f}x"
        rows.append([label, f"{n:,}", _rate(n, median), _rates(n, runs, key), ratio, _mb(runs.median("rss_mb"))])
    return rows


def _throughput(sizes: list[SizeResults], repeat: int) -> list[str]:
    header = ["measurement", "records", "records/s (median)", f"each run ({repeat})", "x min(a, b)", "peak RSS"]
    rows = [row for size in sizes for row in _throughput_rows(size)]
    lines = ["### Throughput", "", *_table(header, rows), ""]
    for size in sizes:
        if size.dlt.results:
            speedup = (size.records / size.initial.median()) / (size.records / size.dlt.median())
            lines.append(f"- {size.records:,} records: initial sync is **{speedup:.1f}x** dlt's records/s.")
        if size.dlt.error:
            lines.append(f"- {size.records:,} records: dlt could not be run: `{_last_line(size.dlt.error)}`")
            lines.extend(["", "  ```text", *(f"  {line}" for line in size.dlt.error.splitlines()), "  ```"])
    rewrites = [run for size in sizes for run in size.rewritten]
    written = [run["tuples_written"] for run in rewrites]
    changed = sum(run["xmin_changed"] for run in rewrites)
    unflushed = sum(1 for run in rewrites if not run["stats_flushed"])
    lines.append(
        f"- Rows rewritten by the {len(rewrites)} re-syncs: pg_stat `n_tup_ins + n_tup_upd` of the table grew by "
        f"{written}; row versions (`xmin`, `ctid`) changed in {changed} of {len(rewrites)} re-syncs"
        + (f" ({unflushed} waits for the statistics timed out)" if unflushed else "")
        + "."
    )
    return [*lines, ""]


def _cpu(size: SizeResults) -> list[str]:
    """Wall time against the CPU time of each process: what runs in parallel and what waits."""
    entries: list[tuple[str, Runs, str, bool]] = [
        ("(a) fetch ceiling", size.fetch, "", True),
        ("(b) upsert ceiling, empty table", size.upsert, "", False),
        ("(b) upsert loop, nothing changed", size.upsert, "unchanged_", False),
        ("full sync, initial", size.initial, "", True),
        ("full sync, re-sync", size.resync, "", True),
        ("dlt `rest_api`", size.dlt, "", True),
    ]
    rows = []
    for label, runs, prefix, with_api in entries:
        if not runs.results:
            continue
        wall = runs.median(f"{prefix}seconds")
        client = runs.median(f"{prefix}cpu_seconds")
        api = runs.median("api_cpu_seconds") if with_api else None
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
        f"### Where the time goes ({size.records:,} records, medians)",
        "",
        *_table(header, rows),
        "",
        "Client CPU is the measuring process (all its threads) during the timed part; API server and Postgres "
        "CPU are read from `/proc` around the child (Postgres: every server process, autovacuum included). "
        "The machine has 2 cores, so CPU s / wall s can be at most 2.",
        "",
    ]


def _memory(sizes: list[SizeResults]) -> list[str]:
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    header = ["peak RSS of the process", f"{small.records:,}", f"{large.records:,}", "growth"]
    rows = []
    for label, attribute in (
        ("full sync, initial", "initial"),
        ("full sync, re-sync", "resync"),
        ("fetch ceiling (streams pages)", "fetch"),
        ("dlt `rest_api`", "dlt"),
    ):
        runs_small: Runs = getattr(small, attribute)
        runs_large: Runs = getattr(large, attribute)
        if not runs_small.results or not runs_large.results:
            continue
        low, high = runs_small.median("rss_mb"), runs_large.median("rss_mb")
        rows.append([label, _mb(low), _mb(high), f"{high - low:+.1f} MB"])
    return ["### Memory", "", *_table(header, rows), ""]


def _parsing(parse: ParseResults, repeat: int) -> list[str]:
    header = ["loader", "DAGs built", "build time (median)", f"each run ({repeat})", "import of the loader", "peak RSS"]
    entries = [
        ("nango-provider `load_sync_dags(folder)`", parse.ours),
        ("dag-factory 1.1.0 `load_yaml_dags(...)`", parse.dagfactory),
        ("nango-provider, one DAG (`_AIRFLOW_PARSING_CONTEXT_DAG_ID=nango_sync_sync_0500`)", parse.one),
    ]
    rows = [
        [
            label,
            f"{runs.results[0]['dags']:,}",
            f"{runs.median() * 1000:,.0f} ms",
            " / ".join(f"{value * 1000:,.0f}" for value in runs.values()) + " ms",
            f"{runs.median('import_seconds') * 1000:,.0f} ms",
            _mb(runs.median("rss_mb")),
        ]
        for label, runs in entries
    ]
    ratio = parse.ours.median() / parse.dagfactory.median()
    return [
        "### DAG parsing (1,000 one-sync YAML files)",
        "",
        *_table(header, rows),
        "",
        f"- nango-provider needs **{ratio:.2f}x** dag-factory's time for the 1,000 DAGs.",
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


def goals(sizes: list[SizeResults], parse: ParseResults | None) -> list[Goal]:
    """The five goals, measured at the largest size (and the smallest, for memory growth)."""
    large = sizes[-1]
    n = large.records
    initial = n / large.initial.median()
    resync = n / large.resync.median()
    ceiling = ceiling_rate(large)
    found: list[Goal] = [
        Goal(
            f"initial sync of {n:,} >= {MIN_CEILING_RATIO} x min(ceilings)",
            f">= {MIN_CEILING_RATIO * ceiling:,.0f} records/s",
            f"{initial:,.0f} records/s = {initial / ceiling:.2f} x {ceiling:,.0f}",
            initial >= MIN_CEILING_RATIO * ceiling,
        )
    ]
    if large.dlt.results:
        dlt = n / large.dlt.median()
        found.append(
            Goal(
                f"initial sync of {n:,} >= {MIN_DLT_SPEEDUP:.0f}x dlt",
                f">= {MIN_DLT_SPEEDUP * dlt:,.0f} records/s",
                f"{initial / dlt:.1f}x ({initial:,.0f} vs {dlt:,.0f} records/s)",
                initial / dlt >= MIN_DLT_SPEEDUP,
            )
        )
    else:
        error = _last_line(large.dlt.error or "no result")
        found.append(Goal(f"initial sync of {n:,} >= 5x dlt", "dlt runs", f"dlt failed: `{error}`", None))
    found.append(_resync_goal(sizes, initial, resync, n))
    found.append(_memory_goal(sizes))
    found.extend(_parse_goals(parse))
    return found


def _resync_goal(sizes: list[SizeResults], initial: float, resync: float, n: int) -> Goal:
    rewrites = [run for size in sizes for run in size.rewritten]
    untouched = all(run["tuples_written"] == 0 and not run["xmin_changed"] for run in rewrites)
    return Goal(
        f"re-sync of {n:,} >= initial speed, zero rows rewritten",
        f">= {initial:,.0f} records/s, 0 rows",
        f"{resync:,.0f} records/s ({resync / initial:.2f}x initial); rows rewritten: "
        + ("0 in every re-sync" if untouched else str([run["tuples_written"] for run in rewrites])),
        resync >= initial and untouched,
    )


def _memory_goal(sizes: list[SizeResults]) -> Goal:
    name = f"peak RSS growth {sizes[0].records:,} -> {sizes[-1].records:,} <= {MAX_RSS_GROWTH_MB:.0f} MB"
    if len(sizes) < 2:
        return Goal(name, f"<= {MAX_RSS_GROWTH_MB:.0f} MB", "needs two sizes", None)
    growth = {
        label: getattr(sizes[-1], attribute).median("rss_mb") - getattr(sizes[0], attribute).median("rss_mb")
        for label, attribute in (("initial", "initial"), ("re-sync", "resync"))
    }
    measured = ", ".join(f"{label} {value:+.1f} MB" for label, value in growth.items())
    return Goal(name, f"<= {MAX_RSS_GROWTH_MB:.0f} MB", measured, max(growth.values()) <= MAX_RSS_GROWTH_MB)


def _parse_goals(parse: ParseResults | None) -> list[Goal]:
    if parse is None:
        return [
            Goal("1,000 definitions <= half of dag-factory", "<= 0.50x", "not run (--skip-parsing)", None),
            Goal("one DAG <= 100 ms", "<= 100 ms", "not run (--skip-parsing)", None),
        ]
    ours, theirs, one = parse.ours.median(), parse.dagfactory.median(), parse.one.median()
    return [
        Goal(
            "1,000 definitions <= half of dag-factory",
            f"<= {MAX_PARSE_RATIO:.2f}x",
            f"{ours / theirs:.2f}x ({ours * 1000:,.0f} ms vs {theirs * 1000:,.0f} ms)",
            ours / theirs <= MAX_PARSE_RATIO,
        ),
        Goal(
            "one DAG (parsing context set) <= 100 ms",
            f"<= {MAX_ONE_DAG_SECONDS * 1000:.0f} ms",
            f"{one * 1000:.0f} ms (import of the loader module: {parse.one.median('import_seconds') * 1000:.0f} ms)",
            one <= MAX_ONE_DAG_SECONDS,
        ),
    ]


def _goals(found: list[Goal]) -> list[str]:
    rows = [[goal.name, goal.target, goal.measured, f"**{goal.verdict}**"] for goal in found]
    return ["### Goals", "", *_table(["goal", "target", "measured", "verdict"], rows), ""]


def render(
    machine: dict[str, str],
    sizes: list[SizeResults],
    parse: ParseResults | None,
    latency: LatencyResults | None = None,
    incremental: IncrementalResults | None = None,
    *,
    repeat: int,
    elapsed: float,
) -> str:
    """The whole results section as Markdown."""
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"Measured {stamp} by `make bench` ({repeat} repetitions per figure, medians; whole run {elapsed:.0f} s).",
        "",
        *_table(["machine", ""], [[key, value] for key, value in machine.items()]),
        "",
        *_throughput(sizes, repeat),
        *_cpu(sizes[-1]),
        *_memory(sizes),
        *(_parsing(parse, repeat) if parse is not None else []),
        *(_incremental(incremental, repeat) if incremental is not None else []),
        *(_latency(latency, repeat) if latency is not None else []),
        *_goals([*goals(sizes, parse), _incremental_goal(incremental), *_latency_goals(latency)]),
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_doc(results: str, doc: Path = DOC) -> None:
    """Replace the text between the result markers of ``doc`` with ``results``."""
    text = doc.read_text(encoding="utf-8")
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise SystemExit(f"{doc} has no {START_MARKER} ... {END_MARKER} section to rewrite")
    head, tail = text[: start + len(START_MARKER)], text[end:]
    doc.write_text(f"{head}\n{results}{tail}", encoding="utf-8")
