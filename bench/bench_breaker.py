"""Benchmark: this Redis breaker against pybreaker's CircuitRedisStorage, side by side, one run.

Ours twice: as the client and the workers run it (``orchestrator``: the closed path answered from the
tracked cache, ``orchestrator/tracking.py``) and with every decision a script call (``scripts only``,
what it was before the cache). Measures, for all three: Redis round trips per call on each path,
calls/s of a guarded no-op call with 1 and 8 processes, and how many half-open trial calls get
through when 8 processes race.
Prints a table of medians and writes them to bench/results/breaker.json.

    python bench/bench_breaker.py [--redis-url redis://127.0.0.1:6379/15] [--calls 1000] [--repeats 3]

Without --redis-url it starts its own redis-server on a free port. The database used is flushed.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pybreaker
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import start_redis, temp_dir
from orchestrator.breaker import CircuitBreaker
from orchestrator.breaker.policy import BreakerPolicy
from orchestrator.tracking import TrackedReads

RESULTS = Path(__file__).with_name("results") / "breaker.json"
PROCESSES = 8
TRIAL_SECONDS = 0.2  # each half-open trial call lasts this long, so all racers arrive while it runs
OURS = "orchestrator"
SCRIPTS = "scripts only"
THEIRS = "pybreaker"
KINDS = (OURS, SCRIPTS, THEIRS)


class CountingConnection(redis.Connection):
    """Counts requests written to the socket: one per command, one per pipeline."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """Yield the given URL, or start a throwaway redis-server and yield its URL."""
    if url:
        yield url
        return
    workdir = temp_dir()
    child, started = start_redis(workdir)
    try:
        yield started
    finally:
        child.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- the two breakers behind one small interface, both with the seed's policy: 5 failures trip,
# 60 s open, 3 trial successes close (ours also admits 1 trial at a time, pybreaker does not limit).
def ours(client: redis.Redis, clock: Callable[[], float] = time.time, *, cached: bool = True) -> CircuitBreaker:
    return CircuitBreaker(client, "bench", BreakerPolicy(), clock=clock,
                          tracked=TrackedReads(client) if cached else None)


def theirs(client: redis.Redis) -> pybreaker.CircuitBreaker:
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="bench")
    return pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60, success_threshold=3, state_storage=storage)


def call_ours(breaker: CircuitBreaker, success: bool = True, work: float = 0.0) -> bool:
    """One guarded call; True if it ran."""
    admission = breaker.admit()
    if not admission.allowed:
        return False
    if work:
        time.sleep(work)
    breaker.record(admission, success=success, duration=work)
    return True


def call_theirs(breaker: pybreaker.CircuitBreaker, success: bool = True, work: float = 0.0) -> bool:
    """One guarded call; True if it ran."""
    ran = []

    def body() -> None:
        ran.append(True)
        if work:
            time.sleep(work)
        if not success:
            raise RuntimeError("upstream failed")

    with suppress(pybreaker.CircuitBreakerError, RuntimeError):
        breaker.call(body)
    return bool(ran)


def open_ours(client: redis.Redis) -> CircuitBreaker:
    """Trip ours 61 s in the past; returns a breaker whose clock says the wait is over."""
    past = ours(client, clock=lambda: time.time() - 61)
    for _ in range(past.policy.failure_threshold):
        call_ours(past, success=False)
    return ours(client)


def open_theirs(client: redis.Redis) -> pybreaker.CircuitBreaker:
    """Trip pybreaker, then move its opened_at 61 s back so the next call is a trial."""
    breaker = theirs(client)
    for _ in range(breaker.fail_max):
        call_theirs(breaker, success=False)
    # Its opened_at setter only moves forward, so write the key directly.
    client.set(breaker._state_storage._namespace("opened_at"), int(time.time()) - 61)
    return breaker


# -- measurements ----------------------------------------------------------------------------------
def guarded(kind: str, client: redis.Redis) -> tuple[Any, Callable[..., bool]]:
    """A breaker of ``kind`` on ``client`` and the function that makes one guarded call through it."""
    if kind == THEIRS:
        return theirs(client), call_theirs
    return ours(client, cached=kind == OURS), call_ours


def opened(kind: str, client: redis.Redis) -> Any:
    """A breaker of ``kind`` whose open wait just ended (its next call is a half-open trial)."""
    if kind == THEIRS:
        return open_theirs(client)
    open_ours(client)
    return guarded(kind, client)[0]


def _sent_by(call: Callable[[], object]) -> int:
    before = CountingConnection.sent
    call()
    return CountingConnection.sent - before


def _path_round_trips(client: redis.Redis, kind: str) -> dict[str, int]:
    client.flushdb()
    breaker, call = guarded(kind, client)
    threshold = breaker.fail_max if kind == THEIRS else breaker.policy.failure_threshold
    call(breaker, success=False)  # warm: connections made (ours: its tracked one too), counts back to zero
    call(breaker)
    trips = {"closed success": _sent_by(lambda: call(breaker)),
             "closed failure": _sent_by(lambda: call(breaker, success=False))}
    for _ in range(threshold - 2):
        call(breaker, success=False)
    trips["failure that trips"] = _sent_by(lambda: call(breaker, success=False))
    trips["open refusal"] = _sent_by(lambda: call(breaker))
    client.flushdb()
    trial = opened(kind, client)
    if kind != THEIRS:
        trial.peek()  # warm: its tracked connection made (the state is left as it is)
    trips["half-open trial"] = _sent_by(lambda: call(trial))
    return trips


def round_trips(url: str) -> dict[str, dict[str, int]]:
    """Requests sent to Redis for one guarded call on each path (scripts already loaded)."""
    client = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, connection_class=CountingConnection))
    result = {kind: _path_round_trips(client, kind) for kind in (SCRIPTS, *KINDS)}  # scripts-only first: loads them
    client.close()
    return result


def _throughput_child(kind: str, url: str, calls: int, barrier: Any, out: Any) -> None:
    client = redis.Redis.from_url(url)
    breaker, call = guarded(kind, client)
    call(breaker)  # connect, load scripts
    barrier.wait(timeout=60)
    start = time.time()
    for _ in range(calls):
        call(breaker)
    out.put((start, time.time()))


def _race_child(kind: str, url: str, barrier: Any, out: Any) -> None:
    client = redis.Redis.from_url(url)
    breaker, call = guarded(kind, client)
    barrier.wait(timeout=60)
    out.put(call(breaker, work=TRIAL_SECONDS))


def _run(target: Callable[..., None], processes: int, *args: Any) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, out)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    return results


def throughput(url: str, kind: str, processes: int, calls: int) -> float:
    """Closed-state guarded no-op calls per second, all processes together."""
    redis.Redis.from_url(url).flushdb()
    spans = _run(_throughput_child, processes, kind, url, calls)
    return processes * calls / (max(end for _, end in spans) - min(start for start, _ in spans))


def half_open_race(url: str, kind: str) -> int:
    """Trial calls that ran when 8 processes called a breaker whose open wait just ended."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    opened(kind, client)
    client.close()
    return sum(_run(_race_child, PROCESSES, kind, url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="Redis database to use (flushed); default: own redis-server")
    parser.add_argument("--calls", type=int, default=1000, help="calls per process per throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; medians reported")
    args = parser.parse_args()
    logging.getLogger("orchestrator.breaker").setLevel(logging.ERROR)  # transitions are expected here
    began = time.monotonic()
    with redis_server(args.redis_url) as url:
        trips = round_trips(url)
        runs: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):  # interleaved, so load changes hit both alike
            for n in (1, PROCESSES):
                for kind in KINDS:
                    runs.setdefault((kind, n), []).append(throughput(url, kind, n, args.calls))
        rates = {kind: {n: statistics.median(runs[kind, n]) for n in (1, PROCESSES)} for kind in KINDS}
        races = {kind: statistics.median(half_open_race(url, kind) for _ in range(args.repeats)) for kind in KINDS}
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "python": platform.python_version(),
        "pybreaker": version("pybreaker"), "calls_per_process": args.calls, "repeats": args.repeats,
        "round_trips_per_call": trips, "calls_per_second": rates,
        "half_open_trials_admitted_of_8_racing (allowed: 1)": races,
        "seconds": round(time.monotonic() - began, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)


def print_table(report: dict[str, Any]) -> None:
    trips, rates = report["round_trips_per_call"], report["calls_per_second"]
    rows = [(f"round trips: {path}", *(trips[kind][path] for kind in KINDS)) for path in trips[OURS]]
    rows += [(f"calls/s, {n} process{'es' if n > 1 else ''} (median)", *(f"{rates[kind][n]:,.0f}" for kind in KINDS))
             for n in (1, PROCESSES)]
    rows += [(f"calls/s, {n} process{'es' if n > 1 else ''}: x pybreaker",
              *(f"{rates[kind][n] / rates[THEIRS][n]:.2f}x" for kind in KINDS)) for n in (1, PROCESSES)]
    races = report["half_open_trials_admitted_of_8_racing (allowed: 1)"]
    rows.append(("half-open trials let through, 8 racing (median)", *(races[kind] for kind in KINDS)))
    print(f"{'':52}" + "".join(f"{kind:>14}" for kind in KINDS))
    for name, *values in rows:
        print(f"{name:52}" + "".join(f"{value!s:>14}" for value in values))
    print(f"\n{report['seconds']} s; JSON in {RESULTS}")


if __name__ == "__main__":
    main()
