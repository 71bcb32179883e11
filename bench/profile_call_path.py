"""Where one tool call's time goes, in 0.1 ms items: time stamps along the path, client and worker side.

Run: ``python bench/profile_call_path.py [--calls N]``. Starts its own redis-server and the same
threads-pool worker as ``bench_call_path.py`` (serving the probe MCP server over stdio), with
``bench.stamps_worker`` included: Celery, kombu, the MCP SDK and this project's call path are
stamped on both sides (``bench.call_path_stamps``; CLOCK_MONOTONIC is one clock for every process
on a machine). Runs ``call_tool``, a bare Celery no-op round trip and a direct call on a held
session in interleaved rounds, then prints each span of the path as its p50 in microseconds for
the three (a span a variant does not have is blank), the ``extra`` of call_tool over its baseline
(the no-op's span, the direct call's for the MCP hop), the work beside the path, and the Redis
commands per call (INFO commandstats). Writes ``bench/results/call_path_profile.json``.

Medians of spans do not add up to the median of the whole exactly; the stamps cost about 1 us each.
``--cprofile`` instead runs a solo-pool worker under cProfile and prints the heaviest functions.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import json
import pstats
import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_call_path import contenders, probe_bench
from bench.call_path_stamps import STAMPS, Stamp, install_client, stamp
from bench.common import REPO, start_worker, temp_dir, write_json
from orchestrator.client import Orchestrator
from orchestrator.operator.processes import ChildProcess, wait_until

CALL, NOOP, DIRECT = "call_tool", "celery no-op", "direct held session"

CHAIN = ["C.start", "C.prepare<", "C.admit<", "C.epoch<", "C.subscribe>", "C.subscribe<", "C.publish_task>",
         "W.brpop>", "W.unacked>", "W.unacked<", "W.received", "W.pool>", "W.prerun", "W.guarded>",
         "W.run_call>", "W.admit<", "W.session<", "W.annotations<", "W.marker<", "W.hop>", "L.held>", "L.mcp>",
         "L.mcp<", "L.held<", "W.to_result<", "W.hop<", "W.record<", "W.run_call<", "W.scrub>", "W.scrub<",
         "W.guarded<", "W.store>", "W.store_get<", "W.store_set>", "C.poll<", "C.state>", "C.wait<", "C.end"]
"""The points one call passes, in order (``>`` entered, ``<`` returned; ``bench.call_path_stamps``). A point
may precede its predecessor in time when two processes race (the worker's BRPOP wakes before the client
reads its LPUSH reply): the chain skips such points, and ``BESIDE`` shows those spans on their own."""

DIRECT_AS = {"C.start": "W.hop>", "C.mcp>": "L.mcp>", "C.mcp<": "L.mcp<", "C.end": "W.hop<"}
"""The direct call's points also under the names of the worker's equivalents: its whole is the worker's hop."""

SPANS: list[tuple[str, str, str]] = [
    ("client, before publishing", "C.start", "C.publish_task>"),
    ("  validate params (prepare_call)", "C.start", "C.prepare<"),
    ("  resolve tool + breaker admission (cached)", "C.prepare<", "C.admit<"),
    ("  Redis epoch (cached)", "C.admit<", "C.epoch<"),
    ("  signature, routing, task message (as_task_v2)", "C.epoch<", "C.subscribe>"),
    ("  (all of the above: start -> SUBSCRIBE)", "C.start", "C.subscribe>"),
    ("  SUBSCRIBE to the result channel", "C.subscribe>", "C.subscribe<"),
    ("  kombu publish: body JSON-encoded", "C.subscribe<", "C.publish_task>"),
    ("kombu publish -> worker's BRPOP wakes", "C.publish_task>", "W.brpop>"),
    ("worker, message -> task thread", "W.brpop>", "W.prerun"),
    ("  BRPOP reply parsed, message decoded", "W.brpop>", "W.unacked>"),
    ("  unacked bookkeeping (MULTI ZADD HSET EXEC)", "W.unacked>", "W.unacked<"),
    ("  Request built (strategy)", "W.unacked<", "W.received"),
    ("  task-received event, expiry check, to pool", "W.received", "W.pool>"),
    ("  thread hand-off, tracer, task_prerun", "W.pool>", "W.prerun"),
    ("task body (no-op: nothing)", "W.prerun", "W.store>"),
    ("  tracer -> guarded_steps", "W.prerun", "W.guarded>"),
    ("  guards: deny-list, redelivery, deadline, slot", "W.guarded>", "W.run_call>"),
    ("  breaker admission (cached)", "W.run_call>", "W.admit<"),
    ("  held session lookup", "W.admit<", "W.session<"),
    ("  tool annotations", "W.session<", "W.annotations<"),
    ("  execution marker claim (unsafe tools only)", "W.annotations<", "W.marker<"),
    ("  safe_to_repeat, attempt set-up", "W.annotations<", "W.hop>"),
    ("  MCP call through the session loop", "W.hop>", "W.hop<"),
    ("    hop to the loop (run_coroutine_threadsafe)", "W.hop>", "L.held>"),
    ("    HeldSession._run: session, fail_after", "L.held>", "L.mcp>"),
    ("    hop to the loop, whole", "W.hop>", "L.mcp>"),
    ("    MCP request/response (SDK Client.call_tool)", "L.mcp>", "L.mcp<"),
    ("    HeldSession._run return", "L.mcp<", "L.held<"),
    ("    to_tool_result (on the loop)", "L.held<", "W.to_result<"),
    ("    hop back to the task thread", "W.to_result<", "W.hop<"),
    ("    hop back, whole", "L.mcp<", "W.hop<"),
    ("  breaker record (cached: no write)", "W.hop<", "W.record<"),
    ("  call_steps return", "W.record<", "W.run_call<"),
    ("  ToolResult.model_dump", "W.run_call<", "W.scrub>"),
    ("  scrub_json", "W.scrub>", "W.scrub<"),
    ("  guarded_steps, call_tool return", "W.scrub<", "W.guarded<"),
    ("  tracer -> store_result", "W.guarded<", "W.store>"),
    ("result store, pub/sub to the client", "W.store>", "C.poll<"),
    ("  GET of the result key (Celery's check)", "W.store>", "W.store_get<"),
    ("  result meta encoded (JSON)", "W.store_get<", "W.store_set>"),
    ("  MULTI SETEX PUBLISH EXEC -> client's poll wakes", "W.store_set>", "C.poll<"),
    ("client, after the result arrived", "C.poll<", "C.end"),
    ("  message read and decoded", "C.poll<", "C.state>"),
    ("  result handled, get returns (all below)", "C.state>", "C.end"),
    ("  AsyncResult bookkeeping, get returns", "C.state>", "C.wait<"),
    ("  ToolResult.model_validate, return", "C.wait<", "C.end"),
    ("whole call", "C.start", "C.end"),
]
"""The spans the table shows: sections, then their items (indented); an item is a span of consecutive points
of ``CHAIN`` unless it names a whole of several."""

BESIDE = ["C.publish_task", "C.publish_event", "W.store_set", "W.metrics", "W.ack", "W.events", "W.publish_event"]
"""Work beside the path, as its own duration (enter to return): the client's LPUSH round trip and task-sent
event (after the message: the worker runs meanwhile), the worker's result transaction as it sees it, and
what the worker does after storing the result (metrics pipeline, ack, events), while the next call starts."""

NAMES = {"C.publish_task": "client: LPUSH of the task message, as the client sees it",
         "C.publish_event": "client: task-sent event PUBLISH (after the message)",
         "W.store_set": "worker: MULTI SETEX PUBLISH EXEC, as the worker sees it",
         "W.metrics": "worker: call metrics pipeline (task_postrun, after the store)",
         "W.ack": "worker: ack (ZREM HDEL), after the store",
         "W.events": "worker: events flush (all events of a call)",
         "W.publish_event": "worker: event PUBLISH"}


def points(stamps: list[Stamp], start: int, rename: dict[str, str]) -> dict[str, Stamp]:
    """``CHAIN``'s points in one call's stamps (from ``start``): each the first occurrence after the point before
    it that was found."""
    found: dict[str, Stamp] = {}
    cursor = start
    by_label: dict[str, list[Stamp]] = {}
    for entry in stamps:
        for name in {entry[1], rename.get(entry[1], entry[1])}:
            by_label.setdefault(name, []).append(entry)
    for point in CHAIN:
        entries = by_label.get(point, [])
        at = bisect.bisect_left(entries, cursor, key=lambda entry: entry[0])
        if at < len(entries):
            found[point] = entries[at]
            cursor = entries[at][0]
    return found


def durations(stamps: list[Stamp], label: str, within: tuple[int, int] | None = None) -> tuple[int, int]:
    """Total (wall, CPU) time inside ``label`` (enter to return, per thread) in one call's stamps; with
    ``within``, only the wall time of it that falls inside that interval (CPU then 0)."""
    entered: dict[int, Stamp] = {}
    wall = cpu = 0
    for entry in stamps:
        ns, name, thread, thread_cpu = entry
        if name == f"{label}>":
            entered[thread] = entry
        elif name == f"{label}<" and thread in entered:
            begin = entered.pop(thread)
            start, end = begin[0], ns
            if within is not None:
                start, end = max(start, within[0]), min(end, within[1])
            else:
                cpu += thread_cpu - begin[3]
            wall += max(end - start, 0)
    return wall, cpu


def p50_us(values: list[int]) -> float | None:
    return round(statistics.median(values) / 1000, 1) if values else None


def breakdown(windows: list[tuple[str, int, int]], stamps: list[Stamp]) -> dict[str, Any]:
    """Per variant: the p50 of every span (wall time, and CPU time of a span within one thread) and of the
    work beside the path, over the calls in ``windows`` (variant, start, start of the next call)."""
    stamps.sort()
    times = [entry[0] for entry in stamps]
    wall: dict[str, dict[str, list[int]]] = {}
    cpu: dict[str, dict[str, list[int]]] = {}
    beside: dict[str, dict[str, list[int]]] = {}
    beside_cpu: dict[str, dict[str, list[int]]] = {}
    during_mcp: dict[str, list[int]] = {}
    for variant, start, end in windows:
        mine = stamps[bisect.bisect_left(times, start):bisect.bisect_left(times, end)]
        found = points(mine, start, DIRECT_AS if variant == DIRECT else {})
        for title, a, b in SPANS:
            if a in found and b in found:
                wall.setdefault(title, {}).setdefault(variant, []).append(found[b][0] - found[a][0])
                if found[a][2] == found[b][2]:
                    cpu.setdefault(title, {}).setdefault(variant, []).append(found[b][3] - found[a][3])
        for label in BESIDE:
            if any(entry[1].startswith(label) for entry in mine):
                wall_ns, cpu_ns = durations(mine, label)
                beside.setdefault(label, {}).setdefault(variant, []).append(wall_ns)
                beside_cpu.setdefault(label, {}).setdefault(variant, []).append(cpu_ns)
                if variant == CALL and "L.mcp>" in found and "L.mcp<" in found:
                    request = (found["L.mcp>"][0], found["L.mcp<"][0])
                    during_mcp.setdefault(label, []).append(durations(mine, label, request)[0])
    p50s = lambda spans: {title: {v: p50_us(values) for v, values in by.items()}  # noqa: E731
                          for title, by in spans.items()}
    means = {label: round(statistics.fmean(values) / 1000, 1) for label, values in during_mcp.items()}
    return {"wall": p50s(wall), "cpu": p50s(cpu), "beside": p50s(beside), "beside_cpu": p50s(beside_cpu),
            "beside_during_mcp_mean": means}


def baseline(title: str, by: dict[str, float | None]) -> float:
    """What call_tool's span is compared with: the direct call's (the MCP hop and its parts), else the no-op's,
    for the whole call both together; 0 for a span neither has."""
    if title == "whole call":
        return round((by.get(NOOP) or 0.0) + (by.get(DIRECT) or 0.0), 1)
    return next((value for value in (by.get(DIRECT), by.get(NOOP)) if value is not None), 0.0)


def with_extra(wall: dict[str, dict[str, float | None]],
               cpu: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    """Table rows: each span's wall p50 for the three variants and call_tool's extra over its ``baseline``,
    and the same in CPU time where the span is on one thread."""
    rows = []
    for title, _, _ in SPANS:
        by, cpu_by = wall.get(title, {}), cpu.get(title, {})
        call = by.get(CALL)
        if call is None:
            continue
        call_cpu = cpu_by.get(CALL)
        rows.append({"span": title, CALL: call, NOOP: by.get(NOOP), DIRECT: by.get(DIRECT),
                     "extra": round(call - baseline(title, by), 1), "cpu": call_cpu,
                     "cpu_extra": None if call_cpu is None else round(call_cpu - baseline(title, cpu_by), 1)})
    return rows


def show(rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    cell = lambda value: "" if value is None else f"{value:.1f}"  # noqa: E731
    print(f"\nOne call's path, p50 in microseconds: wall time of call_tool, the no-op and the direct call, the extra\n"
          f"of call_tool over its baseline; CPU time of call_tool and its extra, where the span is on one thread\n"
          f"{'span':<52}{CALL:>10}{'no-op':>8}{'direct':>8}{'extra':>8}{'cpu':>8}{'cpu+':>8}")
    for row in rows:
        print(f"{row['span']:<52}{cell(row[CALL]):>10}{cell(row[NOOP]):>8}{cell(row[DIRECT]):>8}"
              f"{cell(row['extra']):>8}{cell(row['cpu']):>8}{cell(row['cpu_extra']):>8}")
    print(f"\nBeside the path, p50 us: wall and CPU of call_tool and the no-op; 'during MCP': the mean wall time\n"
          f"of it inside call_tool's MCP request\n{'work':<64}{CALL:>10}{'cpu':>8}{'no-op':>8}{'cpu':>8}{'in MCP':>8}")
    for label, by in result["beside"].items():
        cpu = result["beside_cpu"][label]
        print(f"{NAMES[label]:<64}{cell(by.get(CALL)):>10}{cell(cpu.get(CALL)):>8}{cell(by.get(NOOP)):>8}"
              f"{cell(cpu.get(NOOP)):>8}{cell(result['beside_during_mcp_mean'].get(label)):>8}")


def commands(client: redis.Redis) -> dict[str, int]:
    """Calls per command the server has run."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def per_call(before: dict[str, int], after: dict[str, int], calls: int) -> dict[str, float]:
    return {name: round((after[name] - before.get(name, 0)) / calls, 2) for name in sorted(after)
            if name != "info" and after[name] != before.get(name, 0)}


def counted(state: redis.Redis, fn: Callable[[], object], calls: int) -> dict[str, float]:
    """Redis commands per call of ``fn`` (client and worker together)."""
    before = commands(state)
    for _ in range(calls):
        fn()
    return per_call(before, commands(state), calls)


def stamped_run(args: argparse.Namespace) -> None:
    work = temp_dir()
    worker_stamps = work / "worker-stamps.json"
    install_client()
    windows: list[tuple[str, int]] = []

    def timed(variant: str, fn: Callable[[], object]) -> None:
        stamp("C.start")
        windows.append((variant, STAMPS[-1][0]))
        fn()
        stamp("C.end")

    with ExitStack() as cleanup:
        broker, config, settings, app = probe_bench(work, cleanup)
        worker = start_worker(app, name="stamped", queues=["mcp.probe"], log_dir=work,
                              env={"MCP_ORCH_CONFIG": str(config), "CALL_PATH_STAMPS": str(worker_stamps)},
                              include="bench.noop_tasks,bench.stamps_worker")
        cleanup.callback(worker.stop)
        client, direct, noop = contenders(app, settings, cleanup)
        variants: dict[str, Callable[[], object]] = {
            NOOP: lambda: noop.apply_async().get(timeout=10),
            DIRECT: direct.call,
            CALL: lambda: client.call_tool("probe", "add", {"a": 1, "b": 2}),
        }
        for fn in variants.values():  # warm up: sessions open, connections pooled
            for _ in range(20):
                fn()
        STAMPS.clear()
        per_round = max(1, args.calls // args.rounds)
        for _ in range(args.rounds):
            for variant, fn in variants.items():
                for _ in range(per_round):
                    timed(variant, fn)
        stamp("C.start")
        state = redis.Redis.from_url(broker)
        cleanup.callback(state.close)
        redis_commands = {variant: counted(state, variants[variant], 100) for variant in (CALL, NOOP)}
        client_stamps = list(STAMPS)
        worker.stop()
    ends = [start for _, start in windows[1:]] + [client_stamps[-1][0]]
    result = breakdown([(v, start, end) for (v, start), end in zip(windows, ends, strict=True)],
                       client_stamps + [tuple(s) for s in json.loads(worker_stamps.read_text())])
    rows = with_extra(result["wall"], result["cpu"])
    show(rows, result)
    print("\nRedis commands per call (client + worker):")
    for variant, counts in redis_commands.items():
        print(f"  {variant}: {counts}")
    path = write_json("call_path_profile", {"calls_per_variant": per_round * args.rounds, "rows": rows,
                                            "beside": result["beside"],
                                            "beside_cpu": result["beside_cpu"],
                                            "beside_during_mcp_mean": result["beside_during_mcp_mean"],
                                            "redis_commands_per_call": redis_commands})
    print(f"\nwrote {path}")


TOP = 18


def top(stats: pstats.Stats, calls: int, *, within: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The heaviest functions by cumulative time (only those in files under ``within`` when given), in
    microseconds per call."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    kept = [item for item in raw.items() if not within or any(part in item[0][0] for part in within)]
    rows = sorted(kept, key=lambda item: item[1][3], reverse=True)[:TOP]
    return [{"function": f"{Path(file).name}:{line}({name})", "cum_us": round(cum / calls * 1e6, 1),
             "own_us": round(own / calls * 1e6, 1), "ncalls_per_call": round(n / calls, 2)}
            for (file, line, name), (_, n, own, cum, _) in rows]


def profiled(fn: Callable[[], object], calls: int) -> pstats.Stats:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        fn()
    profile.disable()
    return pstats.Stats(profile)


def show_top(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}\n{'cum us':>8} {'own us':>8} {'n/call':>7}  function")
    for row in rows:
        print(f"{row['cum_us']:>8} {row['own_us']:>8} {row['ncalls_per_call']:>7}  {row['function']}")


def cprofile_run(args: argparse.Namespace) -> None:
    """cProfile of the client and of a solo-pool worker (task bodies on its main thread, so cProfile sees
    them): read it for which functions cost, not for the latency (a solo pool is not the threads pool)."""
    work = temp_dir()
    worker_profile = work / "worker.prof"
    with ExitStack() as cleanup:
        _, config, settings, app = probe_bench(work, cleanup)
        worker = ChildProcess("worker", [sys.executable, "-m", "cProfile", "-o", str(worker_profile), "-m", "celery",
                                         "-A", "workers.app", "worker", "-Q", "mcp.probe", "-P", "solo",
                                         "-n", "profile@bench", "--without-gossip", "--without-mingle", "-l",
                                         "WARNING", "--include", "bench.noop_tasks"],
                              log=work / "worker.log", env={"MCP_ORCH_CONFIG": str(config)}, cwd=REPO)
        wait_until(lambda: bool(app.control.ping(destination=["profile@bench"], timeout=0.5)), 60, "the worker")
        client = Orchestrator(settings)

        def call() -> None:
            client.call_tool("probe", "add", {"a": 1, "b": 2})

        noop = app.signature("bench.noop", queue="mcp.probe")
        for _ in range(30):
            call()
            noop.apply_async().get(timeout=10)
        client_stats = profiled(call, args.calls)
        noop_stats = profiled(lambda: noop.apply_async().get(timeout=10), args.calls)
        client.close()
        worker.stop(timeout=30)
    report = {"calls": args.calls, "client_call_tool": top(client_stats, args.calls),
              "client_noop": top(noop_stats, args.calls)}
    if worker_profile.exists():  # the worker's functions of this project and redis-py, warm-up calls included
        report["worker_call_tool_task"] = top(pstats.Stats(str(worker_profile)), args.calls + 30,
                                              within=(f"{REPO}/workers/", f"{REPO}/orchestrator/",
                                                      "/redis/client.py", "/redis/commands/core.py"))
    show_top("client, call_tool", report["client_call_tool"])
    show_top("client, no-op round trip", report["client_noop"])
    if "worker_call_tool_task" in report:
        show_top("worker, per call_tool (solo pool; includes warm-up calls)", report["worker_call_tool_task"])
    print(f"\nwrote {write_json('call_path_cprofile', report)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=600, help="calls per variant (split over rounds)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--cprofile", action="store_true", help="cProfile of client and a solo-pool worker instead")
    args = parser.parse_args()
    (cprofile_run if args.cprofile else stamped_run)(args)


if __name__ == "__main__":
    main()
