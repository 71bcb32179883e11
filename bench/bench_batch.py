"""A batch of 2,000 calls across the four media servers, four ways, side by side in one run:

- ``call_tools_parallel`` in chunks (``batch_chunk_size``, adaptive by default): a Celery group of
  chunk tasks, each running its calls concurrently on the worker's held session;
- ``call_tools_parallel`` with a task per call (``batch_chunk_size = 1``, the mode before chunks);
- a bare Celery group of 2,000 no-op tasks on the same workers and queues;
- ``asyncio.gather`` over held MCP sessions in one process (no queue at all).

The four take turns in every repeat (the machine's state drifts: a variant run after the others would
measure another machine).

Run: ``python bench/bench_batch.py [--calls 2000] [--repeats 3] [--chunk-size 0]``. Starts its own
Redis, the four simulators and one threads-pool worker for the four queues; prints a table (median
of the repeats) with the CPU each part of the system spent per call and, for the orchestrator, the
time from the call to its first outcome (its progress callback), and writes ``bench/results/batch.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, ExitStack
from functools import partial
from pathlib import Path
from typing import TypeVar

from celery import group
from mcp import Client
from mcp.client.stdio import StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, print_table, start_redis, start_worker, temp_dir, write_json
from bench.cpu import PARTS, cpu_ms_per_call, cpu_seconds
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import load_settings
from orchestrator.operator.stack import SIMULATED_SERVICES, spawn_simulator, wait_listening
from orchestrator.results import ToolResult

CALLS = [
    ("sabnzbd", "sabnzbd_get_queue", {"limit": 1}),
    ("sonarr", "sonarr_get_series_by_id", {"series_id": 1}),
    ("radarr", "radarr_get_movie_by_id", {"movie_id": 1}),
    ("plex", "plex_get_libraries", {}),
]


def start_simulators(work: Path, cleanup: ExitStack) -> dict[str, str]:
    """The four simulators as processes (stopped by ``cleanup``); returns the env that reaches them."""
    env: dict[str, str] = {}
    for service, (url_var, _) in SIMULATED_SERVICES.items():
        child, reach = spawn_simulator(service, work, secrets.token_hex(8))
        cleanup.callback(child.stop)
        wait_listening(child, reach[url_var])
        env.update(reach)
    return env


T = TypeVar("T")
Run = tuple[float, dict[str, float]]
"""One measured run: calls/s and CPU ms per call by part."""


def measured(run: Callable[[], T], calls: int) -> tuple[Run, T]:
    """Run it once: its rate and CPU per call, and what it returned."""
    before = cpu_seconds()
    started = time.perf_counter()
    returned = run()
    rate = calls / (time.perf_counter() - started)
    return (rate, cpu_ms_per_call(before, cpu_seconds(), calls)), returned


def run_group(signatures: group) -> object:
    return signatures.apply_async().join(timeout=300)


class HeldGather:
    """``asyncio.gather`` over one held session per server, in this process, on a loop thread of its own, so
    that its runs take turns with the other variants'. The sessions are opened and closed by one owner task
    (the MCP SDK wants a session entered and exited by the same task)."""

    def __init__(self, env: dict[str, str], servers: set[str]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gather", daemon=True)
        self._thread.start()
        self._sessions: dict[str, Client] = {}
        self._opened = threading.Event()
        self._closing = asyncio.Event()
        self._owner = asyncio.run_coroutine_threadsafe(self._own(env, servers), self._loop)
        if not self._opened.wait(60):
            raise RuntimeError(f"the gather's sessions did not open: {self._owner}")

    async def _own(self, env: dict[str, str], servers: set[str]) -> None:
        async with AsyncExitStack() as stack:
            for server in servers:
                url_var, key_var = SIMULATED_SERVICES[server]
                params = StdioServerParameters(command=sys.executable, args=["-m", f"media_mcp.{server}"],
                                               cwd=str(REPO), env={url_var: env[url_var], key_var: env[key_var]})
                self._sessions[server] = await stack.enter_async_context(Client(params, cache=None))
            self._opened.set()
            await self._closing.wait()

    async def _gather(self, calls: list[tuple[str, str, dict]]) -> None:
        results = await asyncio.gather(*(self._sessions[s].call_tool(t, p) for s, t, p in calls))
        assert not any(r.is_error for r in results)

    def run(self, calls: list[tuple[str, str, dict]]) -> Run:
        """One gather of ``calls``: its rate and CPU per call."""
        gathered = partial(asyncio.run_coroutine_threadsafe, self._gather(calls), self._loop)
        return measured(lambda: gathered().result(), len(calls))[0]

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._closing.set)
        self._owner.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def row(variant: str, runs: list[Run], first: list[float] | None = None) -> dict[str, object]:
    """Median rate and median CPU ms per call of each part over the runs (and the median time to the
    first outcome, when measured)."""
    cpu = {part: round(statistics.median(run[1][part] for run in runs), 2) for part in PARTS}
    return {"variant": variant, "median calls/s": round(statistics.median(run[0] for run in runs), 1),
            "runs": ", ".join(f"{run[0]:.0f}" for run in runs), "cpu ms/call": round(sum(cpu.values()), 2),
            "first outcome ms": round(statistics.median(first) * 1000, 1) if first else "", **cpu}


def batch_run(client: Orchestrator, calls: list[tuple[str, str, dict]]) -> tuple[Run, float]:
    """One batch through the orchestrator: its rate and CPU per call, and the seconds to its first outcome."""
    firsts: list[float] = []
    started = time.perf_counter()

    def progress(done: int, _total: int) -> None:
        if done == 1:
            firsts.append(time.perf_counter() - started)

    patient = [(*call, CALL_TIMEOUT) for call in calls]  # a loaded machine must not turn a slow run into errors
    run, outcomes = measured(partial(client.call_tools_parallel, patient, timeout=300, progress=progress), len(calls))
    failed = [o for o in outcomes if not isinstance(o, ToolResult)]
    assert not failed, failed[:3]
    return run, firsts[0]


CALL_TIMEOUT = 300.0
"""Each call's own deadline (seconds): the whole batch must fit in it, however loaded the machine."""
CHUNKED, PER_CALL = "call_tools_parallel, chunked", "call_tools_parallel, a task per call"
GATHER = "asyncio.gather, held sessions, one process"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=0, help="batch_chunk_size of the chunked rows (0: adaptive)")
    args = parser.parse_args()
    work = temp_dir()
    calls = [CALLS[i % len(CALLS)] for i in range(args.calls)]
    runs: dict[str, list[Run]] = {CHUNKED: [], PER_CALL: [], "bare Celery group of no-ops": [], GATHER: []}
    firsts: dict[str, list[float]] = {CHUNKED: [], PER_CALL: []}
    with ExitStack() as cleanup:
        redis_proc, broker = start_redis(work)
        cleanup.callback(redis_proc.stop)
        env = start_simulators(work, cleanup)
        env["MCP_ORCH_BROKER_URL"] = broker
        settings = load_settings(broker_url=broker)
        app = make_celery(settings)
        queues = [settings.servers[name].queue for name in SIMULATED_SERVICES]
        worker = start_worker(app, name="batch", queues=queues, env=env, log_dir=work, include="bench.noop_tasks",
                              concurrency=16)
        cleanup.callback(worker.stop)
        clients = {CHUNKED: Orchestrator(settings.model_copy(update={"batch_chunk_size": args.chunk_size})),
                   PER_CALL: Orchestrator(settings.model_copy(update={"batch_chunk_size": 1}))}
        for client in clients.values():
            cleanup.callback(client.close)
            client.call_tools_parallel(calls[:200], timeout=120)  # warm up the four sessions
        gather = HeldGather(env, {call[0] for call in calls})
        cleanup.callback(gather.close)
        gather.run(calls[:200])  # warm up its sessions as the clients' were
        for _ in range(args.repeats):
            for name, client in clients.items():
                run, first = batch_run(client, calls)
                runs[name].append(run)
                firsts[name].append(first)
            noops = group(app.signature("bench.noop", queue=queues[i % len(queues)]) for i in range(len(calls)))
            runs["bare Celery group of no-ops"].append(measured(partial(run_group, noops), len(calls))[0])
            runs[GATHER].append(gather.run(calls))
    rows = [row(name, variant_runs, firsts.get(name)) for name, variant_runs in runs.items()]
    rate = {str(r["variant"]): float(r["median calls/s"]) for r in rows}  # type: ignore[arg-type]
    ratios = {"chunked / gather": round(rate[CHUNKED] / rate[GATHER], 3),
              "chunked / a task per call": round(rate[CHUNKED] / rate[PER_CALL], 3),
              "a task per call / bare group": round(rate[PER_CALL] / rate["bare Celery group of no-ops"], 3)}
    print_table(f"Batch of {len(calls)} calls across 4 servers (higher is better; CPU ms per call by part; "
                f"chunk size {args.chunk_size or 'adaptive'})", rows,
                ["variant", "median calls/s", "runs", "first outcome ms", "cpu ms/call", *PARTS])
    targets = {"chunked / gather": 0.85, "chunked / a task per call": 1.5}
    for name, value in ratios.items():
        print(f"{name} = {value}" + (f" (target >= {targets[name]})" if name in targets else ""))
    tool_work = round(rows[0]["mcp servers"] + rows[0]["upstreams"], 2)  # type: ignore[operator]
    print(f"the tools' own work (MCP servers + upstreams) costs {tool_work} CPU ms per call in the chunked batch")
    print(f"wrote {write_json('batch', {'calls': len(calls), 'chunk_size': args.chunk_size, 'rows': rows, **ratios})}")


if __name__ == "__main__":
    main()
