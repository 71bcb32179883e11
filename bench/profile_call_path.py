"""Where one tool call's time goes: the Redis commands it costs, and cProfile of the client and the worker.

Run: ``python bench/profile_call_path.py [--calls N]``. Starts its own redis-server and a solo-pool
worker (task bodies on its main thread, so cProfile sees them) under cProfile, serving the probe MCP
server over stdio; makes N ``call_tool`` calls, then N bare Celery no-op round trips, each under the
client's cProfile. Prints the Redis commands per call (INFO commandstats, client and worker together)
and the heaviest functions of each side in microseconds per call; writes
``bench/results/call_path_profile.json``. A solo pool is not the threads pool ``bench_call_path.py``
measures: read it for where the time goes, not for the latency.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_call_path import probe_bench
from bench.common import REPO, temp_dir, write_json
from orchestrator.client import Orchestrator
from orchestrator.operator.processes import ChildProcess, wait_until

TOP = 18


def commands(client: redis.Redis) -> dict[str, int]:
    """Calls per command the server has run."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def per_call(before: dict[str, int], after: dict[str, int], calls: int) -> dict[str, float]:
    return {name: round((after[name] - before.get(name, 0)) / calls, 2) for name in sorted(after)
            if name != "info" and after[name] != before.get(name, 0)}


def top(stats: pstats.Stats, calls: int, *, within: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The heaviest functions by cumulative time (only those in files under ``within`` when given), in
    microseconds per call."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    kept = [item for item in raw.items() if not within or any(part in item[0][0] for part in within)]
    rows = sorted(kept, key=lambda item: item[1][3], reverse=True)[:TOP]
    return [{"function": f"{Path(file).name}:{line}({name})", "cum_us": round(cum / calls * 1e6, 1),
             "own_us": round(own / calls * 1e6, 1), "ncalls_per_call": round(n / calls, 2)}
            for (file, line, name), (_, n, own, cum, _) in rows]


def profiled(fn: Any, calls: int) -> pstats.Stats:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        fn()
    profile.disable()
    return pstats.Stats(profile)


def show(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}\n{'cum us':>8} {'own us':>8} {'n/call':>7}  function")
    for row in rows:
        print(f"{row['cum_us']:>8} {row['own_us']:>8} {row['ncalls_per_call']:>7}  {row['function']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    work = temp_dir()
    worker_profile = work / "worker.prof"
    with ExitStack() as cleanup:
        broker, config, settings, app = probe_bench(work, cleanup)
        worker = ChildProcess("worker", [sys.executable, "-m", "cProfile", "-o", str(worker_profile), "-m", "celery",
                                         "-A", "workers.app", "worker", "-Q", "mcp.probe", "-P", "solo",
                                         "-n", "profile@bench", "--without-gossip", "--without-mingle", "-l",
                                         "WARNING", "--include", "bench.noop_tasks"],
                              log=work / "worker.log", env={"MCP_ORCH_CONFIG": str(config)}, cwd=REPO)
        wait_until(lambda: bool(app.control.ping(destination=["profile@bench"], timeout=0.5)), 60, "the worker")
        client = Orchestrator(settings)
        state = redis.Redis.from_url(broker)

        def call() -> None:
            client.call_tool("probe", "add", {"a": 1, "b": 2})

        noop = app.signature("bench.noop", queue="mcp.probe")
        for _ in range(30):
            call()
            noop.apply_async().get(timeout=10)
        before = commands(state)
        client_stats = profiled(call, args.calls)
        middle = commands(state)
        noop_stats = profiled(lambda: noop.apply_async().get(timeout=10), args.calls)
        after = commands(state)
        client.close()
        worker.stop(timeout=30)
        cleanup.callback(state.close)
    report = {"calls": args.calls,
              "redis_commands_per_call_tool": per_call(before, middle, args.calls),
              "redis_commands_per_noop": per_call(middle, after, args.calls),
              "client_call_tool": top(client_stats, args.calls), "client_noop": top(noop_stats, args.calls)}
    if worker_profile.exists():
        worker_stats = pstats.Stats(str(worker_profile))
        report["worker_call_tool_task"] = top_task(worker_stats, args.calls)
    print("Redis commands per call_tool (client + worker):", report["redis_commands_per_call_tool"])
    print("Redis commands per no-op round trip:        ", report["redis_commands_per_noop"])
    show("client, call_tool", report["client_call_tool"])
    show("client, no-op round trip", report["client_noop"])
    if "worker_call_tool_task" in report:
        show("worker, per call_tool (solo pool; includes warm-up calls)", report["worker_call_tool_task"])
    print(f"\nwrote {write_json('call_path_profile', report)}")


def top_task(stats: pstats.Stats, calls: int) -> list[dict[str, Any]]:
    """The worker's heaviest functions of this project and redis-py, per call_tool (warm-up calls included)."""
    return top(stats, calls + 30, within=(f"{REPO}/workers/", f"{REPO}/orchestrator/", "/redis/client.py",
                                          "/redis/commands/core.py"))


if __name__ == "__main__":
    main()
