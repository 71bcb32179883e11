"""A batch of 2,000 calls across the four media servers, three ways, side by side in one run:

- ``call_tools_parallel``: one Celery group through the orchestrator (workers, held sessions);
- a bare Celery group of 2,000 no-op tasks on the same workers and queues;
- ``asyncio.gather`` over held MCP sessions in one process (no queue at all).

Run: ``python bench/bench_batch.py [--calls 2000] [--repeats 3]``. Starts its own Redis, the
four simulators and one threads-pool worker for the four queues; prints a table (median of
the repeats) and writes ``bench/results/batch.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

from celery import group
from mcp import Client
from mcp.client.stdio import StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, print_table, start_redis, start_worker, temp_dir, write_json
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import load_settings
from orchestrator.results import ToolResult
from orchestrator.stack import SIMULATED_SERVICES, spawn_simulator, wait_listening

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


async def gather_held(env: dict[str, str], calls: list[tuple[str, str, dict]], repeats: int) -> list[float]:
    """Throughput of asyncio.gather over one held session per server, in this process."""
    sessions: dict[str, Client] = {}
    rates = []
    async with AsyncExitStack() as stack:
        for server in {c[0] for c in calls}:
            url_var, key_var = SIMULATED_SERVICES[server]
            params = StdioServerParameters(command=sys.executable, args=["-m", f"media_mcp.{server}"],
                                           cwd=str(REPO), env={url_var: env[url_var], key_var: env[key_var]})
            sessions[server] = await stack.enter_async_context(Client(params, cache=None))
        for _ in range(repeats):
            started = time.perf_counter()
            results = await asyncio.gather(*(sessions[s].call_tool(t, p) for s, t, p in calls))
            assert not any(r.is_error for r in results)
            rates.append(len(calls) / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = temp_dir()
    calls = [CALLS[i % len(CALLS)] for i in range(args.calls)]
    rates: dict[str, list[float]] = {"orchestrator call_tools_parallel": [], "bare Celery group of no-ops": []}
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
        client = Orchestrator(settings)
        cleanup.callback(client.close)
        client.call_tools_parallel(calls[:200], timeout=120)  # warm up the four sessions
        for _ in range(args.repeats):
            started = time.perf_counter()
            outcomes = client.call_tools_parallel(calls, timeout=300)
            elapsed = time.perf_counter() - started
            failed = [o for o in outcomes if not isinstance(o, ToolResult)]
            assert not failed, failed[:3]
            rates["orchestrator call_tools_parallel"].append(len(calls) / elapsed)
            noops = group(app.signature("bench.noop", queue=queues[i % len(queues)]) for i in range(len(calls)))
            started = time.perf_counter()
            noops.apply_async().join(timeout=300)
            rates["bare Celery group of no-ops"].append(len(calls) / (time.perf_counter() - started))
        rates["asyncio.gather, held sessions, one process"] = asyncio.run(gather_held(env, calls, args.repeats))
    rows = [{"variant": name, "calls": len(calls), "median calls/s": round(statistics.median(values), 1),
             "runs": ", ".join(f"{v:.0f}" for v in values)} for name, values in rates.items()]
    ratio = round(rows[0]["median calls/s"] / rows[1]["median calls/s"], 3)
    print_table(f"Batch of {len(calls)} calls across 4 servers (higher is better)", rows,
                ["variant", "calls", "median calls/s", "runs"])
    print(f"\norchestrator / bare Celery group = {ratio} (target >= 0.8)")
    print(f"wrote {write_json('batch', {'rows': rows, 'ratio_vs_bare_group': ratio})}")


if __name__ == "__main__":
    main()
