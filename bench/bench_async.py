"""N concurrent calls from one event loop: the native async client vs the old thread-wrapping one.

Run: ``python bench/bench_async.py [--n 100 1000 10000]``. Starts its own redis-server and a
threads-pool worker serving the probe MCP server over stdio (``add``, a fast tool). For each N
and each client it reports wall time, calls/s, the client's threads (before and at the peak),
client RSS growth per call in flight, event-loop lag (a 5 ms ticker's overshoot, max and p99;
first on an idle loop: the floor a shared machine sets) and the longest garbage collection meanwhile
(a full collection stops every thread: it sets the lag max at 10,000), and the CPU seconds the
loop thread and the client's other threads spent (Python on another thread holds the GIL the loop
then waits for: a measure of that contention that the machine's load does not move much); the
clients take turns at
each N, so a change in the machine's load hits both, then the native client runs the same N calls
as one ``call_tools_parallel`` batch. Then the native client's RSS per pending call (calls parked on
a queue no worker reads, in steps of N, the slope of RSS over the count; then cancelled); then the
p50 of a single call, interleaved with the old client and the sync one. Prints a table and writes
``bench/results/async.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, percentile, print_table, start_redis, start_worker, temp_dir, write_json
from bench.threaded_client import ThreadedAsyncOrchestrator
from orchestrator.aio.client import AsyncOrchestrator
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings, load_settings

CONFIG = """
broker_url = "{broker}"
default_timeout = 120
[servers.probe.transport]
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
cwd = "{repo}"

[servers.parked.transport]  # no worker consumes mcp.parked: its calls stay pending
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
"""
TICK = 0.005
"""Seconds the lag ticker sleeps; its overshoot is the loop's lag."""
CLIENTS: dict[str, type[Any]] = {"native": AsyncOrchestrator, "threaded (old)": ThreadedAsyncOrchestrator}


class Sampler:
    """A ticker on the loop: how late each 5 ms sleep wakes, the process's threads and RSS at each tick, and
    the longest garbage collection while it runs."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.threads = threading.active_count()
        self.rss = psutil.Process().memory_info().rss
        self.running = True
        self.gc_max_ms = 0.0
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_max_ms = max(self.gc_max_ms, (time.perf_counter() - self._gc_started) * 1000)

    async def run(self) -> None:
        process = psutil.Process()
        gc.callbacks.append(self._on_gc)
        try:
            while self.running:
                started = time.perf_counter()
                await asyncio.sleep(TICK)
                self.lags.append((time.perf_counter() - started - TICK) * 1000)
                self.threads = max(self.threads, threading.active_count())
                if len(self.lags) % 10 == 0:
                    self.rss = max(self.rss, process.memory_info().rss)
        finally:
            gc.callbacks.remove(self._on_gc)

    def lag(self) -> dict[str, float]:
        return {"lag_max_ms": round(max(self.lags), 1), "lag_p99_ms": round(percentile(self.lags, 0.99), 1),
                "gc_max_ms": round(self.gc_max_ms, 1)}


async def burst(client: Any, n: int, *, batch: bool = False) -> dict[str, Any]:
    """``n`` concurrent calls (or one batch of ``n``); wall time, threads, RSS and loop lag while they are in flight."""
    await asyncio.gather(*(client.call_tool("probe", "add", {"a": 1, "b": 1}) for _ in range(20)))  # warm
    threads_before = threading.active_count()
    rss_before = psutil.Process().memory_info().rss
    sampler = Sampler()
    ticker = asyncio.create_task(sampler.run())
    started = time.perf_counter()
    process_cpu, loop_cpu = sum(psutil.Process().cpu_times()[:2]), time.thread_time()
    if batch:
        results = await client.call_tools_parallel([("probe", "add", {"a": i, "b": 1}) for i in range(n)])
    else:
        results = await asyncio.gather(*(client.call_tool("probe", "add", {"a": i, "b": 1}) for i in range(n)),
                                       return_exceptions=True)
    wall = time.perf_counter() - started
    loop_cpu = time.thread_time() - loop_cpu
    process_cpu = sum(psutil.Process().cpu_times()[:2]) - process_cpu
    sampler.running = False
    await ticker
    failed = sum(not hasattr(r, "data") for r in results)
    return {"n": n, "wall_s": round(wall, 2), "calls_per_s": round(n / wall), "failed": failed,
            "threads_before": threads_before, "threads_peak": sampler.threads,
            "rss_kb_per_call": round((sampler.rss - rss_before) / 1024 / n, 2), **sampler.lag(),
            "loop_cpu_s": round(loop_cpu, 2), "other_threads_cpu_s": round(process_cpu - loop_cpu, 2)}


PARK_STEPS = 5
"""Steps of N parked calls each for the RSS slope (fewer when N is large: at most ``PARK_MAX`` parked)."""
PARK_MAX = 10_000


async def park_more(client: AsyncOrchestrator, calls: list[asyncio.Task[Any]], n: int) -> int:
    """Park ``n`` more calls (a queue no worker reads: they wait for one); the client's RSS once every call is
    subscribed."""
    calls += [asyncio.create_task(client.call_tool("parked", "add", {"a": 1, "b": 1}, timeout=300,
                                                   wait_for_worker=True)) for _ in range(n)]
    deadline = time.monotonic() + 300
    while client.results.pending < len(calls) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return int(psutil.Process().memory_info().rss)


async def parked(client: AsyncOrchestrator, n: int) -> dict[str, Any]:
    """RSS per pending call at ``n``: the slope of RSS over steps of ``n`` more parked calls.

    RSS grows in pages and arenas, and the first calls to a server pay one-time costs (routes,
    queue objects, the breaker, buffers), so ``growth / n`` after one burst is noise at small ``n``
    (at 100 calls a single 256 KB arena is 2.5 KB per call). Here one step of ``n`` calls is parked
    first and kept pending (the warm-up), then ``PARK_STEPS`` more; the least-squares slope of RSS
    over the pending count (warm-up included as the first point) is the cost of one more pending
    call. When two steps would park more than ``PARK_MAX`` calls, the one step's growth is used
    (at that size the noise is small)."""
    calls: list[asyncio.Task[Any]] = []
    rss_start = int(psutil.Process().memory_info().rss)
    steps = min(PARK_STEPS, PARK_MAX // n - 1)
    points = [(n, await park_more(client, calls, n))]  # the warm-up step: its one-time costs stay out of the slope
    for _ in range(steps):
        points.append((len(calls), await park_more(client, calls, n)))
    pending = client.results.pending
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    first_step = (points[0][1] - rss_start) / n
    per_call = statistics.linear_regression(*zip(*points, strict=True)).slope if steps else first_step
    return {"n": n, "steps": steps, "pending": pending, "threads": threading.active_count(),
            "rss_kb_per_pending_call": round(per_call / 1024, 2), "first_step_kb_per_call": round(first_step / 1024, 2)}


async def idle_lag(seconds: float = 3.0) -> dict[str, float]:
    """The ticker on a loop doing nothing else: the lag the machine alone causes (CPU shared, scheduling)."""
    sampler = Sampler()
    ticker = asyncio.create_task(sampler.run())
    await asyncio.sleep(seconds)
    sampler.running = False
    await ticker
    return sampler.lag()


def measure(settings: Settings, sizes: list[int], single: int
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]:
    """Idle-loop lag, pending calls (native), bursts (the clients take turns at each N), then single calls."""
    rows: list[dict[str, Any]] = [{"client": "(idle loop, no calls)", **asyncio.run(idle_lag())}]
    pending: list[dict[str, Any]] = []

    async def park() -> None:
        async with AsyncOrchestrator(settings) as client:
            for n in sizes:
                pending.append(await parked(client, n))
    asyncio.run(park())
    for n in sizes:
        for name, cls in CLIENTS.items():
            async def one(cls: type[Any] = cls, name: str = name, n: int = n) -> None:
                async with cls(settings) as client:
                    rows.append({"client": name, **await burst(client, n)})
            asyncio.run(one())

        async def batch(n: int = n) -> None:
            async with AsyncOrchestrator(settings) as client:
                rows.append({"client": "native, one batch", **await burst(client, n, batch=True)})
        asyncio.run(batch())
    return pending, rows, asyncio.run(single_calls(settings, single))


async def single_calls(settings: Settings, rounds: int) -> dict[str, float]:
    """p50 (ms) of one call at a time: each round calls native, threaded and sync once."""
    latencies: dict[str, list[float]] = {name: [] for name in [*CLIENTS, "sync"]}
    sync = Orchestrator(settings)
    clients = {name: cls(settings) for name, cls in CLIENTS.items()}
    try:
        for _ in range(rounds + 1):  # the first round warms up
            for name, client in clients.items():
                started = time.perf_counter()
                await client.call_tool("probe", "add", {"a": 1, "b": 1})
                latencies[name].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            sync.call_tool("probe", "add", {"a": 1, "b": 1})
            latencies["sync"].append((time.perf_counter() - started) * 1000)
    finally:
        sync.close()
        for client in clients.values():
            await client.aclose()
    return {name: round(statistics.median(values[1:]), 2) for name, values in latencies.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000], help="concurrent calls per burst")
    parser.add_argument("--single", type=int, default=100, help="sequential calls for the single-call p50")
    parser.add_argument("--concurrency", type=int, default=16, help="worker threads")
    args = parser.parse_args()
    root = temp_dir()
    redis_child, url = start_redis(root)
    worker = None
    try:
        config = root / "bench.toml"
        config.write_text(CONFIG.format(broker=url, repo=REPO))
        settings = load_settings(config)
        app = make_celery(settings)
        worker = start_worker(app, name="bench", queues=["mcp.probe"], env={"MCP_ORCH_CONFIG": str(config)},
                              log_dir=root, concurrency=args.concurrency)
        app.close()
        pending, rows, p50 = measure(settings, args.n, args.single)
    finally:
        if worker is not None:
            worker.stop()
        redis_child.stop()
    print_table("N concurrent calls from one event loop", rows,
                ["client", "n", "wall_s", "calls_per_s", "failed", "threads_before", "threads_peak",
                 "rss_kb_per_call", "lag_max_ms", "lag_p99_ms", "gc_max_ms", "loop_cpu_s", "other_threads_cpu_s"])
    print_table("Calls pending at once (native client; no worker reads their queue)", pending,
                ["n", "steps", "pending", "threads", "rss_kb_per_pending_call", "first_step_kb_per_call"])
    print_table("Single call p50 (ms)", [{"client": k, "p50_ms": v} for k, v in p50.items()], ["client", "p50_ms"])
    path = write_json("async", {"pending": pending, "rows": rows, "single_call_p50_ms": p50,
                                "worker_threads": args.concurrency})
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
