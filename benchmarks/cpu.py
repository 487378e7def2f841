"""CPU seconds of processes, from ``/proc`` (Linux): where a measurement's time goes, per process."""

from __future__ import annotations

import os
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_stat(pid: int) -> tuple[int, float, float]:
    """``(parent pid, own CPU s, CPU s of waited-for children)`` from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    utime, stime, cutime, cstime = (int(value) / _CLOCK_TICKS for value in fields[11:15])
    return int(fields[1]), utime + stime, cutime + cstime


def process_tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root``, its live children, and its children that have exited.

    For the postmaster this is every Postgres process: backends and autovacuum workers that exited are in
    its children's time. Linux only; 0.0 elsewhere.
    """
    try:
        _, own, dead_children = proc_stat(root)
    except (OSError, ValueError):
        return 0.0
    total = own + dead_children
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == root:
            continue
        try:
            parent, child_own, _ = proc_stat(int(entry.name))
        except (OSError, ValueError):
            continue  # exited meanwhile
        if parent == root:
            total += child_own
    return total


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` itself (0.0 if it cannot be read)."""
    try:
        return proc_stat(pid)[1]
    except (OSError, ValueError):
        return 0.0


def postmaster_pid(data_dir: Path) -> int | None:
    """The postmaster's process id, from the first line of ``postmaster.pid`` in the data directory."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def descendant_tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and every descendant, live or exited (Linux; 0.0 elsewhere).

    Each process's own time plus that of its children that have exited and been waited for: summed over the
    live tree, every process that ever ran under ``root`` is counted once (if its parent waited for it).
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent, own, dead_children = proc_stat(int(entry.name))
            except (OSError, ValueError):
                continue  # exited meanwhile
            parents[int(entry.name)] = parent
            times[int(entry.name)] = own + dead_children
    if root not in times:
        return 0.0
    tree, frontier = {root}, [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(frontier)
    return sum(times[pid] for pid in tree)
