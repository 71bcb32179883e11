"""CPU time spent per part of the system while a benchmark variant runs (Linux and macOS, psutil).

Throughput on a small machine is bounded by the CPU every process burns per call, not only by
the worker's: the client, Redis, the MCP servers and their upstreams share the same cores.
Splitting CPU milliseconds per call by part shows where a variant's time goes.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil

PARTS: dict[str, Callable[[psutil.Process], bool]] = {
    "client": lambda proc: proc.pid == os.getpid(),
    "worker": lambda proc: "celery" in _cmdline(proc) and " worker" in _cmdline(proc),
    "mcp servers": lambda proc: "media_mcp." in _cmdline(proc),
    "upstreams": lambda proc: "upstream_sim" in _cmdline(proc),
    "redis": lambda proc: proc.name().startswith("redis-server"),
}
"""Which of the benchmark's processes make up each part (first match wins)."""


def _cmdline(proc: psutil.Process) -> str:
    return " ".join(proc.cmdline())


def _part_of(proc: psutil.Process) -> str | None:
    return next((name for name, matches in PARTS.items() if matches(proc)), None)


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """User + system CPU seconds so far of every process belonging to a part, by pid: this process and
    its descendants only (the benchmark starts everything it measures; other work on a shared machine,
    another Celery worker or MCP server included, is not counted)."""
    out: dict[int, tuple[str, float]] = {}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            part = _part_of(proc)
            if part is not None:
                times = proc.cpu_times()
                out[proc.pid] = (part, times.user + times.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def cpu_ms_per_call(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                    calls: int) -> dict[str, float]:
    """CPU milliseconds per call spent by each part between two ``cpu_seconds`` snapshots."""
    spent = dict.fromkeys(PARTS, 0.0)
    for pid, (part, seconds) in after.items():
        spent[part] += seconds - before.get(pid, (part, 0.0))[1]
    return {part: round(seconds * 1000 / calls, 2) for part, seconds in spent.items()}
