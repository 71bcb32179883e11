"""One tool call: bare Celery no-op round trip vs direct call on a held MCP session vs this path.

Run: ``python bench/bench_call_path.py [--calls N]``. Starts its own redis-server and a
threads-pool worker serving the test suite's probe MCP server over stdio, measures the three
side by side in interleaved rounds (so machine noise hits all three alike), prints a table
and writes ``bench/results/call_path.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from celery import Celery, Signature
from mcp import Client
from mcp.client.stdio import StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, print_table, start_redis, start_worker, summarize, temp_dir, timed, write_json
from orchestrator.celery_app import make_celery
from orchestrator.client import Orchestrator
from orchestrator.config import Settings, load_settings

CONFIG = """
broker_url = "{broker}"
[servers.probe.transport]
type = "stdio"
command = "python"
args = ["-m", "tests.support.servers.probe"]
cwd = "{repo}"
"""


class HeldDirect:
    """A held MCP session in this process, owned by one coroutine on a loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.client: Client | None = None
        self.ready = threading.Event()
        self.owner = asyncio.run_coroutine_threadsafe(self._own(), self.loop)
        self.ready.wait(30)

    async def _own(self) -> None:
        self.done = asyncio.Event()
        params = StdioServerParameters(command=sys.executable, args=["-m", "tests.support.servers.probe"],
                                       cwd=str(REPO))
        async with Client(params, cache=None) as client:
            self.client = client
            self.ready.set()
            await self.done.wait()

    def call(self) -> None:
        assert self.client is not None
        asyncio.run_coroutine_threadsafe(self.client.call_tool("add", {"a": 1, "b": 2}), self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.done.set)
        self.owner.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


async def connect_per_call(calls: int) -> list[float]:
    """Latency of opening a fresh stdio session for each call (spawn, handshake, call, close), in ms."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "tests.support.servers.probe"], cwd=str(REPO))
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        async with Client(params, cache=None) as client:
            await client.call_tool("add", {"a": 1, "b": 2})
        out.append((time.perf_counter() - started) * 1000)
    return out


def probe_bench(work: Path, cleanup: ExitStack) -> tuple[str, Path, Settings, Celery]:
    """A Redis of the benchmark's own (stopped by ``cleanup``) and the probe server's config written in ``work``:
    the broker URL, the config path, its settings and a Celery app on them."""
    redis_proc, broker = start_redis(work)
    cleanup.callback(redis_proc.stop)
    config = work / "bench.toml"
    config.write_text(CONFIG.format(broker=broker, repo=REPO))
    settings = load_settings(config)
    return broker, config, settings, make_celery(settings)


def contenders(app: Celery, settings: Settings, cleanup: ExitStack) -> tuple[Orchestrator, HeldDirect, Signature]:
    """What one call is compared with, closed by ``cleanup``: the orchestrator's client, a direct held
    session, and a no-op task on the probe's queue (``bench_call_path`` and ``profile_call_path``)."""
    client = Orchestrator(settings)
    cleanup.callback(client.close)
    direct = HeldDirect()
    cleanup.callback(direct.close)
    return client, direct, app.signature("bench.noop", queue="mcp.probe")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=600, help="calls per variant (split over rounds)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connects", type=int, default=10, help="connect-per-call samples (each spawns a server)")
    args = parser.parse_args()
    work = temp_dir()
    with ExitStack() as cleanup:
        _, config, settings, app = probe_bench(work, cleanup)
        worker = start_worker(app, name="bench", queues=["mcp.probe"], env={"MCP_ORCH_CONFIG": str(config)},
                              log_dir=work, include="bench.noop_tasks")
        cleanup.callback(worker.stop)
        client, direct, noop = contenders(app, settings, cleanup)
        variants = {
            "celery no-op round trip": lambda: noop.apply_async().get(timeout=10),
            "direct call, held MCP session": direct.call,
            "orchestrator call_tool": lambda: client.call_tool("probe", "add", {"a": 1, "b": 2}),
        }
        for fn in variants.values():  # warm up: sessions open, connections pooled
            timed(fn, 20)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        per_round = max(1, args.calls // args.rounds)
        for _ in range(args.rounds):
            for name, fn in variants.items():
                samples[name] += timed(fn, per_round)
        samples["connect per call (stdio spawn + handshake)"] = asyncio.run(connect_per_call(args.connects))
    rows = [{"variant": name, **summarize(values)} for name, values in samples.items()]
    base = rows[0]["p50_ms"] + rows[1]["p50_ms"]
    overhead = round(rows[2]["p50_ms"] - base, 3)
    held_gain = round(rows[3]["p50_ms"] / rows[1]["p50_ms"], 1)
    print_table("One tool call (ms, lower is better)", rows, ["variant", "n", "p50_ms", "p99_ms", "mean_ms"])
    print(f"\norchestrator p50 - (celery no-op p50 + direct p50) = {overhead} ms (target <= 0.5 ms)")
    print(f"connect per call p50 / held session p50 = {held_gain}x (target >= 100x)")
    path = write_json("call_path", {"rows": rows, "overhead_p50_ms": overhead, "held_session_gain": held_gain})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
