"""What ``mcp-orch stack`` costs a home server: memory, start-up time and speed of both layouts.

Runs ``mcp-orch stack`` as an operator does (a real subprocess, its own Redis) in each variant,
and measures with psutil over the stack's whole process tree:

- RSS of every process the stack starts (the ``stack`` process itself included), and the sum;
- seconds from launching the command to its readiness report (every server answered
  ``tools/list`` through its queue, Flower and metrics listening);
- with both layouts up at once: per-call latency (one call at a time, blocks of the two layouts
  interleaved so that the machine's noise hits both alike) and batch throughput
  (``call_tools_parallel`` over the four servers, alternating layouts);
- ``--soak N``: N calls through the compact stack after a warm-up of N/10, reporting the worker's RSS
  growth from the warmed baseline.

Variants: compact and distributed, each with its simulators and Flower; compact without Flower;
compact without Flower or simulators (the bench serves the upstreams from its own process, so
they are not counted, as a real SABnzbd/Sonarr/Radarr/Plex would not be). The distributed layout
without Flower is the distributed row minus its Flower process (Flower is a process of its own
that changes nothing else), shown as such.

    python bench/footprint.py [--calls 200] [--batch 400] [--soak N]

Prints tables and writes ``bench/results/footprint.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import upstream_sim
from bench.common import REPO, print_table, read_until_ready, summarize, write_json
from orchestrator.client import Orchestrator
from orchestrator.config import DEFAULTS_FILE, MEDIA_SERVER_VARIABLES, load_settings
from orchestrator.results import ToolResult

READY_TIMEOUT_SECONDS = 180.0
SETTLE_SECONDS = 3.0
"""Pause after readiness before reading RSS, so start-up transients are over."""
CALL = ("sabnzbd", "sabnzbd_get_queue", {"limit": 1})
BATCH_CALLS = [
    ("sabnzbd", "sabnzbd_get_queue", {"limit": 1}),
    ("sonarr", "sonarr_get_series_by_id", {"series_id": 1}),
    ("radarr", "radarr_get_movie_by_id", {"movie_id": 1}),
    ("plex", "plex_get_libraries", {}),
]
BLOCK = 25
"""Calls per latency block; blocks of the two layouts alternate."""
TARGETS = {"compact total MB (simulators + Flower)": 350, "compact total MB (simulators, no Flower)": 275,
           "ready s": 8}


def clean_env(root: Path) -> dict[str, str]:
    """This environment without orchestrator settings or upstream URLs/secrets; state under ``root``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MCP_ORCH_", "FLOWER_")) and not key.endswith(("_URL", "_API_KEY", "_TOKEN"))}
    env.update({"XDG_RUNTIME_DIR": str(root), "PYTHONUNBUFFERED": "1"})
    return env


def role(args: list[str]) -> str:
    """A short name for a process of the stack, from its command line."""
    line = " ".join(args)
    for needle, name in (("orchestrator.operator.cli stack", "stack"), ("redis-server", "redis"), ("flower", "flower"),
                         (" beat", "beat"), ("orchestrator.operator.cli metrics", "metrics")):
        if needle in line:
            return name
    if match := re.search(r"media_mcp\.(\w+)", line):
        return f"mcp-server {match.group(1)}"
    if match := re.search(r"upstream_sim (\w+)", line):
        return f"sim {match.group(1)}"
    if match := re.search(r" -n (\S+)@", line):
        return f"worker {match.group(1)}"
    return line[:40]


@dataclass
class Stack:
    """One running ``mcp-orch stack`` (a variant), its readiness time and broker."""

    name: str
    proc: subprocess.Popen[str]
    ready_seconds: float
    servers_ready_seconds: float
    """From launch to every server answering through its queue, as the stack reports it (Flower and
    metrics may still be starting); ``ready_seconds`` runs to the whole readiness report."""
    cpu_seconds_to_ready: float
    """CPU (user + system) the whole tree had spent when it reported readiness: start-up cost
    independent of how busy the machine is, where ``ready_seconds`` is not."""
    load_average: float
    broker_url: str
    output: list[str] = field(default_factory=list)

    def processes(self) -> list[dict[str, object]]:
        """RSS (MB) of the stack process and every process below it, by role."""
        rows = []
        for process in [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                rows.append({"process": role(process.cmdline()), "pid": process.pid,
                             "rss_mb": round(process.memory_info().rss / 2**20, 1)})
        return rows

    def client(self) -> Orchestrator:
        return Orchestrator(load_settings(DEFAULTS_FILE, broker_url=self.broker_url))


@contextlib.contextmanager
def launched(name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="mcp-orch-footprint-"))
    env = {**clean_env(root), **(extra_env or {})}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.operator.cli", "stack", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        load = os.getloadavg()[0]
        output = read_until_ready(proc, READY_TIMEOUT_SECONDS)
        ready = time.monotonic() - started
        cpu = tree_cpu_seconds(proc.pid)
        text = "\n".join(output)
        not_ready = [line for line in output if "NOT READY" in line]
        if not_ready:
            raise RuntimeError(f"{name}: {not_ready}")
        broker = re.search(r"^\s+redis\s+(redis://\S+)", text, re.M)
        servers = re.search(r"every server answered through its queue ([\d.]+) s after start", text)
        assert broker is not None and servers is not None, text
        yield Stack(name, proc, round(ready, 2), float(servers.group(1)), round(cpu, 2), round(load, 1),
                    broker.group(1), output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def footprint(stack: Stack) -> dict[str, object]:
    time.sleep(SETTLE_SECONDS)
    processes = stack.processes()
    total = sum(float(row["rss_mb"]) for row in processes)  # type: ignore[arg-type]
    flower = sum(float(row["rss_mb"]) for row in processes if row["process"] == "flower")  # type: ignore[arg-type]
    return {"variant": stack.name, "processes": len(processes), "total_rss_mb": round(total, 1),
            "without_flower_mb": round(total - flower, 1), "servers_ready_s": stack.servers_ready_seconds,
            "ready_s": stack.ready_seconds,
            "cpu_s_to_ready": stack.cpu_seconds_to_ready, "load_avg_at_start": stack.load_average,
            "per_process": processes}


def latency_interleaved(clients: dict[str, Orchestrator], calls: int) -> dict[str, list[list[float]]]:
    """Per-call latencies (ms) of each layout, one call at a time, as blocks of ``BLOCK`` calls: each
    round runs one block on every layout in turn (the order alternating between rounds), so the
    machine's noise hits both alike."""
    server, tool, params = CALL
    for client in clients.values():  # warm up: sessions open, catalog cached
        for _ in range(10):
            client.call_tool(server, tool, params, timeout=30)
    blocks: dict[str, list[list[float]]] = {name: [] for name in clients}
    order = list(clients)
    for _ in range(max(1, calls // BLOCK)):
        for name in order:
            block = []
            for _ in range(BLOCK):
                began = time.perf_counter()
                clients[name].call_tool(server, tool, params, timeout=30)
                block.append((time.perf_counter() - began) * 1000)
            blocks[name].append(block)
        order.reverse()
    return blocks


def latency_report(blocks: dict[str, list[list[float]]]) -> dict[str, object]:
    """Each layout's p50/p99 over all its calls and its p50 per round; compact / distributed as the
    ratio of the two p50s and as the median of the per-round ratios (a round's two blocks ran back
    to back, so that one is the least exposed to the machine's load changing during the run)."""
    round_p50s = {name: [statistics.median(block) for block in layout] for name, layout in blocks.items()}
    report: dict[str, object] = {
        name: {**summarize([ms for block in layout for ms in block]), "rounds": len(layout),
               "round_p50s_ms": [round(value, 2) for value in round_p50s[name]]}
        for name, layout in blocks.items()}
    compact = statistics.median([ms for block in blocks["compact"] for ms in block])
    distributed = statistics.median([ms for block in blocks["distributed"] for ms in block])
    per_round = [c / d for c, d in zip(round_p50s["compact"], round_p50s["distributed"], strict=True)]
    report["compact_over_distributed"] = {
        "p50_ratio": round(compact / distributed, 3), "median_round_ratio": round(statistics.median(per_round), 3),
        "rounds_compact_faster": sum(ratio < 1 for ratio in per_round), "rounds": len(per_round)}
    return report


def throughput_alternating(clients: dict[str, Orchestrator], size: int, repeats: int = 2) -> dict[str, object]:
    calls = [{"server": s, "tool": t, "params": p} for s, t, p in
             (BATCH_CALLS[i % len(BATCH_CALLS)] for i in range(size))]
    rates: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(repeats):
        for name, client in clients.items():
            began = time.perf_counter()
            outcomes = client.call_tools_parallel(calls, timeout=300)
            elapsed = time.perf_counter() - began
            failed = [outcome for outcome in outcomes if not isinstance(outcome, ToolResult)]
            assert not failed, failed[:3]
            rates[name].append(size / elapsed)
    return {name: {"median_calls_per_s": round(statistics.median(values), 1),
                   "runs": [round(value, 1) for value in values]} for name, values in rates.items()}


@contextlib.contextmanager
def external_upstreams() -> Iterator[dict[str, str]]:
    """The four upstreams served by simulators in this (the bench's) process: the env that reaches them."""
    handles, env = [], {}
    try:
        for service, (url_var, key_var) in MEDIA_SERVER_VARIABLES.items():
            key = secrets.token_hex(8)
            handles.append(upstream_sim.run_in_thread(service, key))
            env.update({url_var: handles[-1].url, key_var: key})
        yield env
    finally:
        for handle in handles:
            handle.stop()


def soak(calls: int) -> dict[str, object]:
    """The compact stack's worker (no Flower) serving ``calls`` calls in batches over the four servers:
    its RSS growth from a warmed baseline. A warm-up of ``calls // 10`` calls (at least one batch)
    runs first, so sessions, caches, the pool's threads and the allocator's arenas are at their
    working size; growth is counted from the RSS after it, so it is what the calls leave behind."""
    with launched("compact soak", ["--no-flower"]) as stack:
        worker = next(psutil.Process(int(str(row["pid"]))) for row in stack.processes()
                      if str(row["process"]).startswith("worker"))
        client = stack.client()
        batch = [{"server": s, "tool": t, "params": p} for s, t, p in BATCH_CALLS] * 125

        def serve(count: int) -> None:
            outcomes = client.call_tools_parallel(batch[:count], timeout=600)
            failed = [outcome for outcome in outcomes if not isinstance(outcome, ToolResult)]
            assert not failed, failed[:3]

        def rss_mb() -> float:
            return round(worker.memory_info().rss / 2**20, 2)

        try:
            warm = max(len(batch), calls // 10)
            for done in range(0, warm, len(batch)):
                serve(min(len(batch), warm - done))
            samples = [(0, rss_mb())]
            for done in range(0, calls, len(batch)):
                serve(min(len(batch), calls - done))
                samples.append((min(done + len(batch), calls), rss_mb()))
                if len(samples) % 20 == 0:
                    print(f"soak: {samples[-1][0]} of {calls} calls, worker RSS {samples[-1][1]} MB",
                          file=sys.stderr, flush=True)
        finally:
            client.close()
    start, middle, final = samples[0][1], samples[len(samples) // 2][1], samples[-1][1]
    return {"calls": calls, "warmup_calls": warm, "worker_rss_after_warmup_mb": start, "worker_rss_end_mb": final,
            "growth_pct": round(100 * (final - start) / start, 2),
            "second_half_growth_pct": round(100 * (final - middle) / start, 2),
            "samples": thinned(samples, 20)}


def thinned(samples: list[tuple[int, float]], count: int) -> list[tuple[int, float]]:
    """About ``count`` of ``samples``, evenly spaced, the last one always included."""
    kept = samples[:: max(1, len(samples) // count)]
    return kept if kept[-1] == samples[-1] else [*kept, samples[-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="sequential calls per layout for the latency")
    parser.add_argument("--batch", type=int, default=400, help="calls in each throughput batch")
    parser.add_argument("--soak", type=int, default=0,
                        help="also run N calls (after N/10 of warm-up) through the compact stack: worker RSS growth")
    args = parser.parse_args()
    report: dict[str, object] = {}
    rows = []
    with launched("compact", []) as compact, launched("distributed", ["--layout", "distributed"]) as distributed:
        rows += [footprint(compact), footprint(distributed)]
        clients = {"compact": compact.client(), "distributed": distributed.client()}
        try:
            report["latency"] = latency_report(latency_interleaved(clients, args.calls))
            report["throughput"] = throughput_alternating(clients, args.batch)
            after = {stack.name: footprint(stack) for stack in (compact, distributed)}
            report["after_load_total_rss_mb"] = {name: row["total_rss_mb"] for name, row in after.items()}
        finally:
            for client in clients.values():
                client.close()
    with launched("compact --no-flower", ["--no-flower"]) as stack:
        rows.append(footprint(stack))
    with external_upstreams() as upstreams, \
            launched("compact --no-flower, real upstreams", ["--no-flower"], upstreams) as stack:
        rows.append(footprint(stack))
    report["variants"] = rows
    if args.soak:
        report["soak"] = soak(args.soak)
    print_table("Footprint of mcp-orch stack (RSS in MB, psutil over the process tree)", rows,
                ["variant", "processes", "total_rss_mb", "without_flower_mb", "servers_ready_s", "ready_s",
                 "cpu_s_to_ready",
                 "load_avg_at_start"])
    for row in rows:
        print(f"\n{row['variant']}: " + ", ".join(f"{p['process']} {p['rss_mb']}"
                                                 for p in row["per_process"]))  # type: ignore[attr-defined]
    latency, throughput = report["latency"], report["throughput"]
    print_table("Speed, both layouts up at once (latency blocks interleaved, batches alternating)",
                [{"layout": name, **latency[name], **throughput[name]}  # type: ignore[index]
                 for name in ("compact", "distributed")],
                ["layout", "n", "p50_ms", "p99_ms", "median_calls_per_s", "runs"])
    print(f"\nlatency compact / distributed: {latency['compact_over_distributed']}")  # type: ignore[index]
    print(f"\ntotal RSS after the load: {report['after_load_total_rss_mb']}")
    if "soak" in report:
        soaked = report["soak"]
        print(f"\nsoak: {soaked['calls']} calls after a warm-up of {soaked['warmup_calls']}, worker RSS "  # type: ignore[index]
              f"{soaked['worker_rss_after_warmup_mb']} -> {soaked['worker_rss_end_mb']} MB "  # type: ignore[index]
              f"({soaked['growth_pct']:+.2f} %, of which {soaked['second_half_growth_pct']:+.2f} % "  # type: ignore[index]
              f"in the second half; target < 5 %)")
    print(f"targets: {TARGETS}")
    print(f"wrote {write_json('footprint', report)}")


if __name__ == "__main__":
    main()
